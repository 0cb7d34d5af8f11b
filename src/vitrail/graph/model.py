"""Vertex and edge objects of the entity graph.

Both use ``__slots__`` for the properties every vertex has and a small dict for
the rest. A vertex with its core properties in a plain dict costs ~460 bytes
before any value; the slotted object costs ~170 (see ``docs/graph-structure.md``),
which is what keeps a 110k-entity graph under 1 KiB per entity.

Adjacency is kept on the vertex as two lists of :class:`Edge` (outgoing,
incoming). Most vertices have one or two edges, where a list (64 bytes) is far
cheaper than a dict (184 bytes); lookups scan the shorter of the two endpoint
lists, so a zone with 10,000 hosts is never scanned to find a host's edge. A
vertex without edges in one direction shares the empty tuple instead of
owning an empty list (leaves are most of a cloud).

Properties beyond the core ones live in ``extra``, a flat tuple
``(name1, value1, name2, value2, ...)`` sorted by name: 56 bytes for one
property against 184 for a dict, and canonical by construction.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Iterator, Mapping
from typing import Any

from vitrail.graph.properties import EdgeProperty, VertexProperty

#: Vertex properties stored as attributes, in the order they are shown.
CORE_VERTEX_PROPERTIES: tuple[str, ...] = (
    VertexProperty.VITRAGE_ID,
    VertexProperty.VITRAGE_CATEGORY,
    VertexProperty.VITRAGE_TYPE,
    VertexProperty.ID,
    VertexProperty.NAME,
    VertexProperty.STATE,
    VertexProperty.VITRAGE_STATE,
    VertexProperty.VITRAGE_AGGREGATED_STATE,
    VertexProperty.VITRAGE_OPERATIONAL_STATE,
    VertexProperty.VITRAGE_SAMPLE_TIMESTAMP,
    VertexProperty.UPDATE_TIMESTAMP,
    VertexProperty.VITRAGE_IS_DELETED,
    VertexProperty.VITRAGE_IS_PLACEHOLDER,
    VertexProperty.PROJECT_ID,
    VertexProperty.VITRAGE_DATASOURCE_NAME,
)
_CORE = frozenset(CORE_VERTEX_PROPERTIES)
_FLAGS = frozenset((VertexProperty.VITRAGE_IS_DELETED, VertexProperty.VITRAGE_IS_PLACEHOLDER))

#: Key of the processor's bookkeeping field in a dumped vertex record. It is not a
#: property: it never appears in API output.
ROUND_FIELD = "_round"


class Vertex:
    """One entity (resource or alarm) of the graph.

    Properties are read with :meth:`get` / ``vertex[name]`` and written with
    :meth:`set`, which hide whether a property lives in a slot or in ``extra``.
    ``None`` means "absent": setting a property to ``None`` removes it.
    ``round`` is the last ``get_all`` round of the vertex's datasource that
    reported it; the processor uses it for consistency.
    """

    __slots__ = (*CORE_VERTEX_PROPERTIES, "extra", "out_edges", "in_edges", "round")

    vitrage_id: str
    vitrage_category: str | None
    vitrage_type: str | None
    id: str | None
    name: str | None
    state: str | None
    vitrage_state: str | None
    vitrage_aggregated_state: str | None
    vitrage_operational_state: str | None
    vitrage_sample_timestamp: str | None
    update_timestamp: str | None
    vitrage_is_deleted: bool
    vitrage_is_placeholder: bool
    project_id: str | None
    vitrage_datasource_name: str | None
    extra: tuple[Any, ...] | None
    out_edges: list[Edge] | tuple[()]
    in_edges: list[Edge] | tuple[()]
    round: int | None

    def __init__(self, vitrage_id: str, properties: Mapping[str, Any] | None = None) -> None:
        self.vitrage_id = vitrage_id
        self.vitrage_category = None
        self.vitrage_type = None
        self.id = None
        self.name = None
        self.state = None
        self.vitrage_state = None
        self.vitrage_aggregated_state = None
        self.vitrage_operational_state = None
        self.vitrage_sample_timestamp = None
        self.update_timestamp = None
        self.vitrage_is_deleted = False
        self.vitrage_is_placeholder = False
        self.project_id = None
        self.vitrage_datasource_name = None
        self.extra = None
        self.out_edges = ()
        self.in_edges = ()
        self.round = None
        if properties:
            extra: dict[str, Any] | None = None
            for key, value in properties.items():
                if value is None:
                    continue
                if key in _CORE:
                    if key == VertexProperty.VITRAGE_ID:
                        if value != vitrage_id:
                            raise ValueError(f"vitrage_id {value!r} does not match {vitrage_id!r}")
                    elif key in _FLAGS:
                        setattr(self, key, bool(value))
                    else:
                        setattr(self, key, value)
                elif extra is None:
                    extra = {key: value}
                else:
                    extra[key] = value
            if extra:
                self.extra = pack_extra(extra)

    def get(self, name: str, default: Any = None) -> Any:
        """The value of property ``name``, or ``default`` when it is absent."""
        if name in _CORE:
            value = getattr(self, name)
            return default if value is None else value
        extra = self.extra
        if extra is not None:
            for i in range(0, len(extra), 2):
                if extra[i] == name:
                    return extra[i + 1]
        return default

    def __getitem__(self, name: str) -> Any:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def set(self, name: str, value: Any) -> bool:
        """Set property ``name``; return True when its value changed."""
        if name == VertexProperty.VITRAGE_ID:
            if value != self.vitrage_id:
                raise ValueError("vitrage_id of a vertex cannot change")
            return False
        if name in _CORE:
            if name in _FLAGS:
                value = bool(value)
            if getattr(self, name) == value:
                return False
            setattr(self, name, value)
            return True
        current = self.extra_dict()
        if value is None:
            if name not in current:
                return False
            del current[name]
        else:
            if name in current and current[name] == value:
                return False
            current[name] = value
        self.extra = pack_extra(current)
        return True

    def update(self, properties: Mapping[str, Any]) -> list[str]:
        """Set every property of ``properties`` (None removes); return the names that changed, in order.

        The same as :meth:`set` for each, with the non-core properties unpacked and
        packed once instead of once per property: an update sets a dozen of them.
        """
        changed: list[str] = []
        current: dict[str, Any] | None = None
        extra_changed = False
        for name, value in properties.items():
            if name == VertexProperty.VITRAGE_ID:
                self.set(name, value)  # refuses a change
                continue
            if name in _CORE:
                if name in _FLAGS:
                    value = bool(value)
                if getattr(self, name) != value:
                    setattr(self, name, value)
                    changed.append(name)
                continue
            if current is None:
                current = self.extra_dict()
            if value is None:
                if name in current:
                    del current[name]
                    changed.append(name)
                    extra_changed = True
            elif name not in current or current[name] != value:
                current[name] = value
                changed.append(name)
                extra_changed = True
        if extra_changed:
            assert current is not None
            self.extra = pack_extra(current)
        return changed

    def extra_dict(self) -> dict[str, Any]:
        """The non-core properties as a new dict."""
        extra = self.extra
        if not extra:
            return {}
        return dict(zip(extra[0::2], extra[1::2], strict=True))

    def properties(self) -> dict[str, Any]:
        """Every present property as a new dict (what the API shows)."""
        props: dict[str, Any] = {}
        for name in CORE_VERTEX_PROPERTIES:
            value = getattr(self, name)
            if value is not None:
                props[name] = value
        extra = self.extra
        if extra:
            for i in range(0, len(extra), 2):
                props[extra[i]] = extra[i + 1]
        return props

    def degree(self) -> int:
        return len(self.out_edges) + len(self.in_edges)

    def __repr__(self) -> str:
        return f"Vertex({self.vitrage_id!r}, {self.vitrage_category}/{self.vitrage_type} id={self.id!r})"


class Edge:
    """A labelled, directed relationship between two vertices.

    Between one ordered pair of vertices there is at most one edge per label
    (Vitrage keys its multigraph edges by label).

    ``owner`` (a datasource name) and ``asserted_by`` (the ``vitrage_id`` whose
    update named the edge) are bookkeeping, not properties shown by the API:
    when an entity's next update no longer names an edge, exactly the edges
    that entity asserted through that datasource are removed, and nobody
    else's.
    """

    __slots__ = (
        "asserted_by",
        "extra",
        "label",
        "owner",
        "source",
        "target",
        "update_timestamp",
        "vitrage_is_deleted",
    )

    def __init__(
        self,
        source: str,
        target: str,
        label: str,
        update_timestamp: str | None = None,
        extra: dict[str, Any] | None = None,
        owner: str | None = None,
        asserted_by: str | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.label = label
        self.vitrage_is_deleted = False
        self.update_timestamp = update_timestamp
        self.extra = extra or None
        self.owner = owner
        self.asserted_by = asserted_by

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.target, self.label)

    def get(self, name: str, default: Any = None) -> Any:
        if name == EdgeProperty.RELATIONSHIP_TYPE:
            return self.label
        if name == EdgeProperty.VITRAGE_IS_DELETED:
            return self.vitrage_is_deleted
        if name == EdgeProperty.UPDATE_TIMESTAMP:
            return default if self.update_timestamp is None else self.update_timestamp
        if self.extra is None:
            return default
        return self.extra.get(name, default)

    def properties(self) -> dict[str, Any]:
        """Every property of the edge as a new dict (without its endpoints)."""
        props: dict[str, Any] = {
            EdgeProperty.RELATIONSHIP_TYPE: self.label,
            EdgeProperty.VITRAGE_IS_DELETED: self.vitrage_is_deleted,
        }
        if self.update_timestamp is not None:
            props[EdgeProperty.UPDATE_TIMESTAMP] = self.update_timestamp
        if self.extra:
            props.update(self.extra)
        return props

    def other(self, vitrage_id: str) -> str:
        """The endpoint that is not ``vitrage_id``."""
        return self.target if self.source == vitrage_id else self.source

    def __repr__(self) -> str:
        return f"Edge({self.source!r} -[{self.label}]-> {self.target!r})"


def pack_extra(properties: dict[str, Any]) -> tuple[Any, ...] | None:
    """The flat, name-sorted tuple ``extra`` holds (None when empty)."""
    if not properties:
        return None
    flat: list[Any] = []
    for name in sorted(properties):
        flat.append(name)
        flat.append(properties[name])
    return tuple(flat)


_by_target = operator.attrgetter("target", "label")
_by_source = operator.attrgetter("source", "label")


def add_out_edge(vertex: Vertex, edge: Edge) -> None:
    """Insert into the outgoing list, kept sorted by (target, label).

    Sorted adjacency makes iteration order a property of the graph, not of its
    history: a graph loaded from a dump walks its edges exactly as the live one
    did, and the dump needs no sorting.
    """
    if vertex.out_edges:
        bisect.insort(vertex.out_edges, edge, key=_by_target)  # type: ignore[type-var]
    else:
        vertex.out_edges = [edge]


def add_in_edge(vertex: Vertex, edge: Edge) -> None:
    """Insert into the incoming list, kept sorted by (source, label)."""
    if vertex.in_edges:
        bisect.insort(vertex.in_edges, edge, key=_by_source)  # type: ignore[type-var]
    else:
        vertex.in_edges = [edge]


def iter_edges(vertex: Vertex, outgoing: bool, incoming: bool) -> Iterator[Edge]:
    """Edges of ``vertex`` in the asked directions, outgoing first."""
    if outgoing:
        yield from vertex.out_edges
    if incoming:
        yield from vertex.in_edges


def restore_vertex(
    vitrage_id: str,
    vitrage_category: str | None,
    vitrage_type: str | None,
    id: str | None,
    name: str | None,
    state: str | None,
    vitrage_state: str | None,
    vitrage_aggregated_state: str | None,
    vitrage_operational_state: str | None,
    vitrage_sample_timestamp: str | None,
    update_timestamp: str | None,
    vitrage_is_deleted: bool,
    vitrage_is_placeholder: bool,
    project_id: str | None,
    vitrage_datasource_name: str | None,
    extra: dict[str, Any] | None,
    round: int | None,
) -> Vertex:
    """A vertex from one row of a canonical dump, without edges.

    Spelled out attribute by attribute because it runs for every vertex when a
    snapshot loads: about twice as fast as a ``setattr`` loop.
    """
    vertex = Vertex.__new__(Vertex)
    vertex.vitrage_id = vitrage_id
    vertex.vitrage_category = vitrage_category
    vertex.vitrage_type = vitrage_type
    vertex.id = id
    vertex.name = name
    vertex.state = state
    vertex.vitrage_state = vitrage_state
    vertex.vitrage_aggregated_state = vitrage_aggregated_state
    vertex.vitrage_operational_state = vitrage_operational_state
    vertex.vitrage_sample_timestamp = vitrage_sample_timestamp
    vertex.update_timestamp = update_timestamp
    vertex.vitrage_is_deleted = bool(vitrage_is_deleted)
    vertex.vitrage_is_placeholder = bool(vitrage_is_placeholder)
    vertex.project_id = project_id
    vertex.vitrage_datasource_name = vitrage_datasource_name
    if extra:
        if len(extra) % 2:
            raise ValueError(f"extra of vertex {vitrage_id!r} is not a flat list of name, value pairs")
        vertex.extra = tuple(extra)
    else:
        vertex.extra = None
    vertex.round = round
    vertex.out_edges = ()
    vertex.in_edges = ()
    return vertex
