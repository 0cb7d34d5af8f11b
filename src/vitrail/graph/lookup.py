"""Find vertices by a property value: how an alert's labels reach the resource they are about.

An Alertmanager alert names its host by address or its instance by libvirt
name, not by Vitrail id. A transformer cannot search the graph (it is a pure
function of the event), so it says "the ``nova.instance`` whose
``instance_name`` is ``instance-00000042``" and the processor resolves it here.

Indexes are built on first use per (category, type, property) and then kept
current through the graph's change observer, whoever changes the graph. They
are derived data: never dumped, rebuilt after a load. When several vertices
match, real vertices win over placeholders, then the smallest ``vitrage_id``,
so the answer never depends on the order the index was built in.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from vitrail.graph.entity_graph import ChangeKind, EntityGraph, GraphChange

IndexKey = tuple[str, str, str]  # (category, vitrage_type, property)


class PropertyIndex:
    def __init__(self, graph: EntityGraph) -> None:
        self.graph = graph
        self._indexes: dict[IndexKey, dict[Hashable, set[str]]] = {}
        self._by_kind: dict[tuple[str, str], list[str]] = {}  # (category, type) -> indexed properties
        self._observing = False

    def find(self, category: str, vitrage_type: str, prop: str, value: Any) -> str | None:
        """The ``vitrage_id`` of a vertex of that category and type whose ``prop`` equals ``value``."""
        if not isinstance(value, Hashable):
            return None
        key = (category, vitrage_type, prop)
        index = self._indexes.get(key)
        if index is None:
            index = self._build(key)
        found = index.get(value)
        if not found:
            return None
        # A real vertex wins over a placeholder that happens to carry the value.
        real = [vid for vid in found if not self.graph.vertex(vid).vitrage_is_placeholder]
        return min(real) if real else min(found)

    def _build(self, key: IndexKey) -> dict[Hashable, set[str]]:
        category, vitrage_type, prop = key
        index: dict[Hashable, set[str]] = {}
        for vertex in self.graph.vertices():
            if vertex.vitrage_category == category and vertex.vitrage_type == vitrage_type:
                value = vertex.get(prop)
                if value is not None and isinstance(value, Hashable):
                    index.setdefault(value, set()).add(vertex.vitrage_id)
        self._indexes[key] = index
        self._by_kind.setdefault((category, vitrage_type), []).append(prop)
        if not self._observing:
            self.graph.add_observer(self._on_change)
            self._observing = True
        return index

    def _on_change(self, change: GraphChange) -> None:
        if change.kind not in (ChangeKind.VERTEX_ADDED, ChangeKind.VERTEX_UPDATED, ChangeKind.VERTEX_REMOVED):
            return
        vitrage_id = change.vitrage_id
        assert vitrage_id is not None
        for side, add in ((change.before, False), (change.after, True)):
            if side is None:
                continue
            props = self._by_kind.get((side.get("vitrage_category"), side.get("vitrage_type")))  # type: ignore[arg-type]
            if not props:
                continue
            for prop in props:
                value = side.get(prop)
                if value is None or not isinstance(value, Hashable):
                    continue
                index = self._indexes[(side["vitrage_category"], side["vitrage_type"], prop)]
                if add:
                    index.setdefault(value, set()).add(vitrage_id)
                else:
                    holders = index.get(value)
                    if holders is not None:
                        holders.discard(vitrage_id)
                        if not holders:
                            del index[value]

    def close(self) -> None:
        if self._observing:
            self.graph.remove_observer(self._on_change)
            self._observing = False
