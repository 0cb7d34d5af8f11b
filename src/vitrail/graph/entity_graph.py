"""The entity graph: vertices, labelled directed edges, traversal and change hooks.

Plain dicts and slotted objects, chosen by measurement over NetworkX and
rustworkx (``docs/graph-structure.md``). Nothing here does I/O, reads the clock
or iterates a ``set``: the same calls in the same order always leave the same
graph, which is what snapshots, replay and failover rely on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from vitrail.graph.model import Edge, Vertex, add_in_edge, add_out_edge
from vitrail.graph.properties import Direction

VertexFilter = Mapping[str, Any] | Callable[[Vertex], bool] | None
EdgeFilter = Mapping[str, Any] | Callable[[Edge], bool] | None


class GraphError(Exception):
    """A graph operation that refers to something that is not there."""


class ChangeKind(StrEnum):
    VERTEX_ADDED = "vertex_added"
    VERTEX_UPDATED = "vertex_updated"
    VERTEX_REMOVED = "vertex_removed"
    EDGE_ADDED = "edge_added"
    EDGE_UPDATED = "edge_updated"
    EDGE_REMOVED = "edge_removed"


@dataclass(frozen=True, slots=True)
class GraphChange:
    """One mutation, as observers see it.

    ``before``/``after`` are property dicts (``None`` for the side that does not
    exist); for edges they include ``source`` and ``target``.
    """

    kind: ChangeKind
    vitrage_id: str | None
    edge_key: tuple[str, str, str] | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


GraphObserver = Callable[[GraphChange], None]


class GraphWatcher(Protocol):
    """Told *what* changed, never how: cheaper than an observer (no property dicts).

    The alarm-history recorder watches through this: it runs for every
    mutation of a 100k-entity graph, so it must cost one call and a check.
    """

    def vertex_changed(self, vitrage_id: str, vertex: Vertex | None) -> None:
        """The vertex was added, updated or (``vertex`` None) removed."""

    def edge_changed(self, edge: Edge) -> None:
        """The edge was added, updated or removed (look it up to know which)."""


def _matches(obj: Vertex | Edge, flt: Mapping[str, Any] | Callable[[Any], bool] | None) -> bool:
    if flt is None:
        return True
    if callable(flt):
        return bool(flt(obj))
    return all(obj.get(name) == value for name, value in flt.items())


def _find_edge(src: Vertex, tgt: Vertex, label: str) -> Edge | None:
    """The edge src -[label]-> tgt, scanning the shorter of the two adjacency lists."""
    if len(src.out_edges) <= len(tgt.in_edges):
        target = tgt.vitrage_id
        for edge in src.out_edges:
            if edge.target == target and edge.label == label:
                return edge
    else:
        source = src.vitrage_id
        for edge in tgt.in_edges:
            if edge.source == source and edge.label == label:
                return edge
    return None


def _edge_record(edge: Edge) -> dict[str, Any]:
    record = edge.properties()
    record["source"] = edge.source
    record["target"] = edge.target
    return record


class EntityGraph:
    """A directed multigraph of :class:`Vertex` keyed by ``vitrage_id``."""

    __slots__ = ("_edge_count", "_observers", "_touched", "_vertices", "_watchers")

    def __init__(self) -> None:
        self._vertices: dict[str, Vertex] = {}
        self._edge_count = 0
        self._observers: list[GraphObserver] = []
        self._touched: dict[str, set[str] | None] | None = None
        self._watchers: tuple[GraphWatcher, ...] = ()

    # -- touched vertices ----------------------------------------------------------

    def track_touched(self) -> None:
        """Record which vertices change from now on (see :meth:`drain_touched`).

        Lighter than an observer: no property dicts are built. The evaluator uses
        it to know where to look after each event.
        """
        if self._touched is None:
            self._touched = {}

    def drain_touched(self) -> list[tuple[str, frozenset[str] | None]]:
        """The vertices touched since the last call, in the order first touched.

        For each: the names of the properties that changed, or None when the vertex
        was added or removed or one of its edges changed (structure).
        """
        touched = self._touched
        if not touched:
            return []
        self._touched = {}
        return [(vid, None if names is None else frozenset(names)) for vid, names in touched.items()]

    def _touch(self, vitrage_id: str, names: set[str] | None) -> None:
        touched = self._touched
        if touched is None:
            return
        if names is None:
            touched[vitrage_id] = None  # structure changed: everything about it is new
        elif vitrage_id not in touched:
            touched[vitrage_id] = set(names)
        else:
            current = touched[vitrage_id]
            if current is not None:
                current.update(names)

    # -- watchers and observers ------------------------------------------------------

    def add_watcher(self, watcher: GraphWatcher) -> None:
        """Tell ``watcher`` which vertices and edges change from now on."""
        self._watchers = (*self._watchers, watcher)

    def remove_watcher(self, watcher: GraphWatcher) -> None:
        self._watchers = tuple(w for w in self._watchers if w is not watcher)

    def add_observer(self, observer: GraphObserver) -> None:
        """Call ``observer`` after every mutation (the evaluator hooks in here)."""
        self._observers.append(observer)

    def remove_observer(self, observer: GraphObserver) -> None:
        self._observers.remove(observer)

    def _emit(self, change: GraphChange) -> None:
        for observer in self._observers:
            observer(change)

    # -- size ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._vertices)

    def __contains__(self, vitrage_id: object) -> bool:
        return vitrage_id in self._vertices

    @property
    def num_vertices(self) -> int:
        return len(self._vertices)

    @property
    def num_edges(self) -> int:
        return self._edge_count

    # -- vertices ------------------------------------------------------------------

    def get_vertex(self, vitrage_id: str) -> Vertex | None:
        return self._vertices.get(vitrage_id)

    def vertex(self, vitrage_id: str) -> Vertex:
        """The vertex ``vitrage_id``; :class:`GraphError` when it is not there."""
        try:
            return self._vertices[vitrage_id]
        except KeyError:
            raise GraphError(f"no vertex with vitrage_id {vitrage_id!r}") from None

    def vertices(self, flt: VertexFilter = None) -> Iterator[Vertex]:
        """All vertices (in insertion order) that match ``flt``.

        A mapping filter matches when every named property equals its value; a
        callable gets the vertex.
        """
        if flt is None:
            return iter(self._vertices.values())
        return (v for v in self._vertices.values() if _matches(v, flt))

    def add_vertex(self, vertex: Vertex) -> Vertex:
        if vertex.vitrage_id in self._vertices:
            raise GraphError(f"vertex {vertex.vitrage_id!r} already exists")
        if vertex.out_edges or vertex.in_edges:
            raise GraphError("a vertex is added without edges; add them with add_edge")
        self._vertices[vertex.vitrage_id] = vertex
        if self._touched is not None:
            self._touch(vertex.vitrage_id, None)
        for watcher in self._watchers:
            watcher.vertex_changed(vertex.vitrage_id, vertex)
        if self._observers:
            self._emit(GraphChange(ChangeKind.VERTEX_ADDED, vertex.vitrage_id, None, None, vertex.properties()))
        return vertex

    def update_vertex(self, vitrage_id: str, properties: Mapping[str, Any]) -> bool:
        """Set ``properties`` on the vertex; return True when anything changed."""
        vertex = self.vertex(vitrage_id)
        before = vertex.properties() if self._observers else None
        changed = vertex.update(properties)
        if changed and self._touched is not None:
            self._touch(vitrage_id, set(changed))
        if changed:
            for watcher in self._watchers:
                watcher.vertex_changed(vitrage_id, vertex)
        if changed and self._observers:
            self._emit(GraphChange(ChangeKind.VERTEX_UPDATED, vitrage_id, None, before, vertex.properties()))
        return bool(changed)

    def remove_vertex(self, vitrage_id: str) -> Vertex:
        """Remove the vertex and every edge incident to it."""
        vertex = self.vertex(vitrage_id)
        for edge in list(vertex.out_edges):
            self._unlink(edge)
        for edge in list(vertex.in_edges):
            self._unlink(edge)
        del self._vertices[vitrage_id]
        if self._touched is not None:
            self._touch(vitrage_id, None)
        for watcher in self._watchers:
            watcher.vertex_changed(vitrage_id, None)
        if self._observers:
            self._emit(GraphChange(ChangeKind.VERTEX_REMOVED, vitrage_id, None, vertex.properties(), None))
        return vertex

    # -- edges ---------------------------------------------------------------------

    def get_edge(self, source: str, target: str, label: str) -> Edge | None:
        src = self._vertices.get(source)
        tgt = self._vertices.get(target)
        if src is None or tgt is None:
            return None
        return _find_edge(src, tgt, label)

    def add_edge(
        self,
        source: str,
        target: str,
        label: str,
        update_timestamp: str | None = None,
        extra: dict[str, Any] | None = None,
        owner: str | None = None,
        asserted_by: str | None = None,
    ) -> Edge:
        """Add the edge ``source -[label]-> target``; both vertices must exist."""
        src = self.vertex(source)
        tgt = self.vertex(target)
        if _find_edge(src, tgt, label) is not None:
            raise GraphError(f"edge {source!r} -[{label}]-> {target!r} already exists")
        return self._insert(src, tgt, Edge(source, target, label, update_timestamp, extra, owner, asserted_by))

    def ensure_edge(
        self,
        source: str,
        target: str,
        label: str,
        update_timestamp: str | None = None,
        owner: str | None = None,
        asserted_by: str | None = None,
    ) -> Edge:
        """The edge ``source -[label]-> target``, added when missing.

        An existing edge takes the new ``owner``/``asserted_by`` (the latest
        datasource to assert an edge owns it). One lookup instead of
        ``get_edge`` + ``add_edge``: this runs for every neighbour of every event.
        """
        vertices = self._vertices
        try:
            src = vertices[source]
            tgt = vertices[target]
        except KeyError as exc:
            raise GraphError(f"no vertex with vitrage_id {exc.args[0]!r}") from None
        edge = _find_edge(src, tgt, label)
        if edge is not None:
            edge.owner = owner
            edge.asserted_by = asserted_by
            return edge
        return self._insert(src, tgt, Edge(source, target, label, update_timestamp, None, owner, asserted_by))

    def _insert(self, src: Vertex, tgt: Vertex, edge: Edge) -> Edge:
        add_out_edge(src, edge)
        add_in_edge(tgt, edge)
        self._edge_count += 1
        if self._touched is not None:
            self._touch(edge.source, None)
            self._touch(edge.target, None)
        for watcher in self._watchers:
            watcher.edge_changed(edge)
        if self._observers:
            self._emit(GraphChange(ChangeKind.EDGE_ADDED, None, edge.key, None, _edge_record(edge)))
        return edge

    def update_edge(self, edge: Edge, properties: Mapping[str, Any]) -> bool:
        """Set properties (``update_timestamp`` or extra ones) on ``edge``."""
        before = _edge_record(edge) if self._observers else None
        changed = False
        for name, value in properties.items():
            if name == "update_timestamp":
                if edge.update_timestamp != value:
                    edge.update_timestamp = value
                    changed = True
            elif name in ("relationship_type", "source", "target", "vitrage_is_deleted"):
                raise GraphError(f"edge property {name!r} cannot be updated")
            elif value is None:
                if edge.extra and name in edge.extra:
                    del edge.extra[name]
                    edge.extra = edge.extra or None
                    changed = True
            elif edge.extra is None or edge.extra.get(name) != value:
                edge.extra = {**(edge.extra or {}), name: value}
                changed = True
        if changed:
            for watcher in self._watchers:
                watcher.edge_changed(edge)
        if changed and self._observers:
            self._emit(GraphChange(ChangeKind.EDGE_UPDATED, None, edge.key, before, _edge_record(edge)))
        return changed

    def remove_edge(self, source: str, target: str, label: str) -> bool:
        """Remove the edge; return False when there was none."""
        edge = self.get_edge(source, target, label)
        if edge is None:
            return False
        self._unlink(edge)
        return True

    def _unlink(self, edge: Edge) -> None:
        self._vertices[edge.source].out_edges.remove(edge)  # type: ignore[union-attr]
        self._vertices[edge.target].in_edges.remove(edge)  # type: ignore[union-attr]
        self._edge_count -= 1
        if self._touched is not None:
            self._touch(edge.source, None)
            self._touch(edge.target, None)
        for watcher in self._watchers:
            watcher.edge_changed(edge)
        if self._observers:
            self._emit(GraphChange(ChangeKind.EDGE_REMOVED, None, edge.key, _edge_record(edge), None))

    def edges(
        self,
        vitrage_id: str | None = None,
        direction: Direction = Direction.BOTH,
        labels: Iterable[str] | None = None,
        flt: EdgeFilter = None,
    ) -> Iterator[Edge]:
        """Edges incident to one vertex (or all edges when ``vitrage_id`` is None)."""
        wanted = tuple(labels) if labels is not None else None
        if vitrage_id is None:
            sources: Iterable[Edge] = (e for v in self._vertices.values() for e in v.out_edges)
        else:
            vertex = self.vertex(vitrage_id)
            if direction == Direction.OUT:
                sources = vertex.out_edges
            elif direction == Direction.IN:
                sources = vertex.in_edges
            else:
                sources = [*vertex.out_edges, *vertex.in_edges]
        for edge in sources:
            if wanted is not None and edge.label not in wanted:
                continue
            if flt is not None and not _matches(edge, flt):
                continue
            yield edge

    def neighbors(
        self,
        vitrage_id: str,
        direction: Direction = Direction.BOTH,
        labels: Iterable[str] | None = None,
        vertex_filter: VertexFilter = None,
        edge_filter: EdgeFilter = None,
    ) -> list[Vertex]:
        """Distinct neighbour vertices reached over matching edges (outgoing first, then incoming)."""
        vertex = self.vertex(vitrage_id)
        wanted = None if labels is None else tuple(labels)
        found: dict[str, None] = {}
        if direction != Direction.IN:
            for edge in vertex.out_edges:
                if (wanted is None or edge.label in wanted) and (edge_filter is None or _matches(edge, edge_filter)):
                    found[edge.target] = None
        if direction != Direction.OUT:
            for edge in vertex.in_edges:
                if (wanted is None or edge.label in wanted) and (edge_filter is None or _matches(edge, edge_filter)):
                    found[edge.source] = None
        vertices = self._vertices
        if vertex_filter is None:
            return [vertices[other] for other in found]
        return [v for v in map(vertices.__getitem__, found) if _matches(v, vertex_filter)]

    # -- traversal -----------------------------------------------------------------

    def bfs(
        self,
        root: str,
        depth: int | None = None,
        direction: Direction = Direction.BOTH,
        vertex_filter: VertexFilter = None,
        edge_filter: EdgeFilter = None,
    ) -> list[Vertex]:
        """Vertices reachable from ``root`` within ``depth`` hops, root first.

        Vertices that fail ``vertex_filter`` are neither returned nor crossed.
        ``depth=None`` means unbounded.
        """
        start = self.vertex(root)
        if not _matches(start, vertex_filter):
            return []
        visited: dict[str, Vertex] = {root: start}
        frontier = [start]
        level = 0
        while frontier and (depth is None or level < depth):
            next_frontier: list[Vertex] = []
            for vertex in frontier:
                for edge in self.edges(vertex.vitrage_id, direction, None, edge_filter):
                    other_id = edge.other(vertex.vitrage_id)
                    if other_id in visited:
                        continue
                    other = self._vertices[other_id]
                    if not _matches(other, vertex_filter):
                        continue
                    visited[other_id] = other
                    next_frontier.append(other)
            frontier = next_frontier
            level += 1
        return list(visited.values())

    def subgraph(self, vitrage_ids: Iterable[str]) -> tuple[list[Vertex], list[Edge]]:
        """The given vertices and the edges between them (both in a stable order)."""
        members: dict[str, Vertex] = {}
        for vid in vitrage_ids:
            members[vid] = self.vertex(vid)
        edges = [e for v in members.values() for e in v.out_edges if e.target in members]
        return list(members.values()), edges
