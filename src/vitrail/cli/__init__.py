"""The ``vitrail`` command."""
