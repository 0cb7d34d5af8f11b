"""State and severity aggregation, configured the way Vitrage configures it.

A resource has the state its datasource reports (``state``) and possibly a state
deduced by a template (``vitrage_state``). Each ``vitrage_type`` has a table that
maps every known original value to an operational value (OK, SUBOPTIMAL, ERROR…)
and a priority; the value with the higher priority wins (the datasource's on a
tie) and becomes ``vitrage_aggregated_state`` (upper-cased original) and
``vitrage_operational_state``. Alarms do the same with ``severity``.

The tables use Vitrage's ``datasources_values`` YAML format, so existing files
work unchanged::

    category: RESOURCE
    values:
      - aggregated values:
          priority: 40
          original values:
            - name: ERROR
              operational_value: ERROR

This module only interprets already-parsed documents; reading files is the
caller's job (the graph core does no I/O).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vitrail.graph.properties import Category, OperationalSeverity, OperationalState

DEFAULT_TABLE = "default"
_NOT_APPLICABLE = "N/A"


class StateTableError(ValueError):
    """A values document that does not follow the format; names where."""


@dataclass(frozen=True, slots=True)
class ValueMapping:
    operational: str
    priority: int


@dataclass(slots=True)
class StateTable:
    """Per-``vitrage_type`` value tables plus the ``default`` fallback."""

    tables: dict[str, dict[str, ValueMapping]] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)
    _cache: dict[tuple[str | None, str | None, str | None], tuple[str | None, str]] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def from_documents(cls, documents: Mapping[str, Any]) -> StateTable:
        """Build from ``{vitrage_type: parsed YAML document}``.

        Raises :class:`StateTableError` naming the table, entry and field of the
        first problem.
        """
        table = cls()
        for vitrage_type, document in sorted(documents.items()):
            table.add(vitrage_type, document)
        return table

    def add(self, vitrage_type: str, document: Any) -> None:
        where = f"values table {vitrage_type!r}"
        if not isinstance(document, dict):
            raise StateTableError(f"{where}: expected a mapping with 'category' and 'values'")
        category = str(document.get("category", "")).upper()
        if category not in (Category.RESOURCE, Category.ALARM):
            raise StateTableError(f"{where}: category must be RESOURCE or ALARM, got {document.get('category')!r}")
        allowed = {s.value for s in (OperationalState if category == Category.RESOURCE else OperationalSeverity)}
        values = document.get("values")
        if not isinstance(values, list):
            raise StateTableError(f"{where}: 'values' must be a list")
        mapping: dict[str, ValueMapping] = {}
        for index, item in enumerate(values):
            block = item.get("aggregated values") if isinstance(item, dict) else None
            if not isinstance(block, dict):
                raise StateTableError(f"{where}: values[{index}] must hold 'aggregated values'")
            try:
                priority = int(block.get("priority"))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise StateTableError(
                    f"{where}: values[{index}].priority must be an integer, got {block.get('priority')!r}"
                ) from None
            originals = block.get("original values")
            if not isinstance(originals, list):
                raise StateTableError(f"{where}: values[{index}] needs a list 'original values'")
            for j, original in enumerate(originals):
                if not isinstance(original, dict) or "name" not in original:
                    raise StateTableError(f"{where}: values[{index}].original values[{j}] needs 'name'")
                operational = str(original.get("operational_value", "")).upper()
                if operational not in allowed:
                    raise StateTableError(
                        f"{where}: values[{index}].original values[{j}].operational_value "
                        f"{original.get('operational_value')!r} is not one of {sorted(allowed)}"
                    )
                mapping[str(original["name"]).upper()] = ValueMapping(operational, priority)
        self.tables[vitrage_type] = mapping
        self.categories[vitrage_type] = category
        self._cache.clear()

    def _lookup(self, vitrage_type: str | None, value: str | None) -> tuple[str | None, str, int]:
        if value is None:
            return None, _NOT_APPLICABLE, 0
        upper = str(value).upper()
        table = self.tables.get(vitrage_type or "")
        if table is None:
            table = self.tables.get(DEFAULT_TABLE, {})
        mapping = table.get(upper)
        if mapping is None:
            return upper, _NOT_APPLICABLE, 0
        return upper, mapping.operational, mapping.priority

    def priority(self, vitrage_type: str | None, value: Any) -> int:
        """The priority of ``value`` in the type's table (0 when unknown or None)."""
        return self._lookup(vitrage_type, None if value is None else str(value))[2]

    def aggregate(
        self, vitrage_type: str | None, value: str | None, deduced: str | None = None
    ) -> tuple[str | None, str]:
        """``(aggregated, operational)`` of a datasource value and a deduced one.

        The deduced value wins only with a strictly higher priority.
        """
        key = (vitrage_type, value, deduced)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        agg, operational, priority = self._lookup(vitrage_type, value)
        if deduced is not None:
            d_agg, d_operational, d_priority = self._lookup(vitrage_type, deduced)
            if d_priority > priority or agg is None:
                agg, operational = d_agg, d_operational
        result = (agg, operational)
        if len(self._cache) < 65536:
            self._cache[key] = result
        return result
