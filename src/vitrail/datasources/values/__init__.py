"""Built-in state and severity tables (Vitrage ``datasources_values`` format)."""
