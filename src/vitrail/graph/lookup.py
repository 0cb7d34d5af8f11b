"""Find vertices by a property value: how an alert's labels reach the resource they are about.

An Alertmanager alert names its host by address or its instance by libvirt
name, not by Vitrail id. A transformer cannot search the graph (it is a pure
function of the event), so it says "the ``nova.instance`` whose
``instance_name`` is ``instance-00000042``" and the processor resolves it here.

Indexes are built on first use per (category, type, property) and then kept
current through the graph's watcher hook (:meth:`EntityGraph.add_watcher`),
whoever changes the graph. The index remembers what it holds for each indexed
vertex, so a change costs a dictionary look-up (measured: the change observer it
used before copied every vertex's properties twice on every update, a fifth of a
replay's time). They are derived data: never dumped, rebuilt after a load. When
several vertices match, real vertices win over placeholders, then the smallest
``vitrage_id``, so the answer never depends on the order the index was built in.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from vitrail.graph.entity_graph import EntityGraph
from vitrail.graph.model import Edge, Vertex

IndexKey = tuple[str, str, str]  # (category, vitrage_type, property)


class PropertyIndex:
    def __init__(self, graph: EntityGraph) -> None:
        self.graph = graph
        self._indexes: dict[IndexKey, dict[Hashable, set[str]]] = {}
        self._by_kind: dict[tuple[str, str], list[str]] = {}  # (category, type) -> indexed properties
        # What each indexed vertex is filed under: vitrage_id -> ((category, type), {property: value}).
        self._filed: dict[str, tuple[tuple[str, str], dict[str, Hashable]]] = {}
        self._watching = False

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
        kind = (category, vitrage_type)
        for vertex in self.graph.vertices():
            if vertex.vitrage_category == category and vertex.vitrage_type == vitrage_type:
                value = _key(vertex.get(prop))
                if value is not None:
                    index.setdefault(value, set()).add(vertex.vitrage_id)
                    self._filed.setdefault(vertex.vitrage_id, (kind, {}))[1][prop] = value
        self._indexes[key] = index
        self._by_kind.setdefault(kind, []).append(prop)
        if not self._watching:
            self.graph.add_watcher(self)
            self._watching = True
        return index

    # -- the graph's watcher protocol --------------------------------------------------

    def vertex_changed(self, vitrage_id: str, vertex: Vertex | None) -> None:
        filed = self._filed.get(vitrage_id)
        if vertex is None:
            if filed is not None:
                self._unfile(vitrage_id, filed[0], filed[1])
            return
        kind = (vertex.vitrage_category, vertex.vitrage_type)
        props = self._by_kind.get(kind)  # type: ignore[arg-type]
        if filed is not None and filed[0] != kind:  # its type changed: filed under the old one
            self._unfile(vitrage_id, filed[0], filed[1])
            filed = None
        if not props:
            return
        values = filed[1] if filed is not None else {}
        for prop in props:
            new, old = _key(vertex.get(prop)), values.get(prop)
            if new == old and type(new) is type(old):
                continue
            index = self._indexes[(*kind, prop)]  # type: ignore[arg-type]
            if old is not None:
                _discard(index, old, vitrage_id)
            if new is None:
                del values[prop]
            else:
                index.setdefault(new, set()).add(vitrage_id)
                values[prop] = new
        if values:
            self._filed[vitrage_id] = (kind, values)  # type: ignore[assignment]
        else:
            self._filed.pop(vitrage_id, None)

    def edge_changed(self, edge: Edge) -> None:
        """Edges are not indexed."""

    def _unfile(self, vitrage_id: str, kind: tuple[str, str], values: dict[str, Hashable]) -> None:
        for prop, value in values.items():
            _discard(self._indexes[(*kind, prop)], value, vitrage_id)
        del self._filed[vitrage_id]

    def close(self) -> None:
        if self._watching:
            self.graph.remove_watcher(self)
            self._watching = False


def _key(value: Any) -> Hashable | None:
    """What a property value is filed under (None: not indexable)."""
    return value if value is not None and isinstance(value, Hashable) else None


def _discard(index: dict[Hashable, set[str]], value: Hashable, vitrage_id: str) -> None:
    holders = index.get(value)
    if holders is not None:
        holders.discard(vitrage_id)
        if not holders:
            del index[value]
