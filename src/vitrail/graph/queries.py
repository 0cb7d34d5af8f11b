"""Read-only questions asked of the entity graph: the API's topology and resources.

Pure functions over an :class:`EntityGraph`, so the same code answers in the
embedded process, behind the graph service's RPC, and on a graph rebuilt at a
past time. They follow Vitrage's API semantics (query language, tenant
visibility, node-link and tree output) and differ only where Vitrage fails
unhelpfully: an unknown operator or a malformed query is a :class:`QueryError`
naming the problem instead of a 500, and a tree or a root/depth walk without a
query uses the default query instead of failing.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from vitrail.graph.entity_graph import EntityGraph
from vitrail.graph.model import Edge, Vertex
from vitrail.graph.properties import CLUSTER_TYPE, Category, Direction

VertexPredicate = Callable[[Vertex], bool]


class QueryError(ValueError):
    """A query that cannot be evaluated. ``parameter`` names the request field."""

    def __init__(self, message: str, parameter: str = "query") -> None:
        super().__init__(message)
        self.parameter = parameter


class NotFound(LookupError):
    """The asked-for entity does not exist or is not visible to the viewer."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who asks, as the API's identity headers say.

    ``project_id`` None with ``is_admin`` is the local operator of the embedded
    mode (no identity headers): it sees every tenant.
    """

    project_id: str | None = None
    is_admin: bool = True
    roles: frozenset[str] = field(default_factory=lambda: frozenset({"admin"}))

    @property
    def is_local_operator(self) -> bool:
        return self.project_id is None and self.is_admin


# -- the query language -------------------------------------------------------------

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_LOGICAL = ("and", "or", "not")


def compile_query(query: Any, path: str = "query") -> VertexPredicate:
    """A predicate for a Vitrage query expression.

    Grammar: ``{"and": [e, ...]}``, ``{"or": [e, ...]}``, ``{"not": e}`` (a
    Vitrail addition), and ``{op: {field: value, ...}}`` with op one of
    ``== != < <= > >=`` (several fields are and-ed). A missing property reads as
    ``null``; an ordering comparison between values that cannot be ordered is
    false rather than an error.
    """
    if not isinstance(query, dict) or len(query) != 1:
        raise QueryError(f"{path}: an expression is an object with exactly one operator, got {query!r}")
    ((op, operand),) = query.items()
    if op in ("and", "or"):
        if not isinstance(operand, list):
            raise QueryError(f"{path}.{op}: expects a list of expressions")
        parts = [compile_query(item, f"{path}.{op}[{i}]") for i, item in enumerate(operand)]
        if op == "and":
            return lambda v: bool(parts) and all(p(v) for p in parts)
        return lambda v: any(p(v) for p in parts)
    if op == "not":
        inner = compile_query(operand, f"{path}.not")
        return lambda v: not inner(v)
    compare = _COMPARISONS.get(op)
    if compare is None:
        raise QueryError(f"{path}: unknown operator {op!r}; use one of {[*_LOGICAL, *_COMPARISONS]}")
    if not isinstance(operand, dict) or not operand:
        raise QueryError(f"{path}.{op}: expects an object of property: value")
    terms = list(operand.items())

    def matches(vertex: Vertex) -> bool:
        for name, expected in terms:
            actual = vertex.get(name)
            try:
                if not compare(actual, expected):
                    return False
            except TypeError:
                return False
        return True

    return matches


def parse_query(text: Any, parameter: str = "query") -> Any:
    """The query as sent by python-vitrageclient: a JSON string (or already an object)."""
    if text is None or text == "":
        return None
    if isinstance(text, dict):
        return text
    if not isinstance(text, str):
        raise QueryError(f"{parameter}: expected a JSON object or a string holding one", parameter)
    import orjson

    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise QueryError(f"{parameter}: not valid JSON ({exc})", parameter) from None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise QueryError(f"{parameter}: expected a JSON object, got {type(value).__name__}", parameter)
    return value


def _live(v: Vertex) -> bool:
    return not v.vitrage_is_deleted and not v.vitrage_is_placeholder


def _visible_project(viewer: Viewer) -> VertexPredicate:
    """Vitrage's tenant rule: your project; admins also see what has no project."""
    project = viewer.project_id
    if viewer.is_admin:
        return lambda v: v.project_id == project or v.project_id is None
    return lambda v: v.project_id == project


def _and(*predicates: VertexPredicate | None) -> VertexPredicate:
    active = [p for p in predicates if p is not None]
    if not active:
        return lambda v: True
    if len(active) == 1:
        return active[0]
    return lambda v: all(p(v) for p in active)


# -- topology ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopologyRequest:
    graph_type: str = "graph"
    depth: int | None = None
    root: str | None = None
    query: Any = None
    all_tenants: bool = False


def cluster_root(graph: EntityGraph) -> Vertex | None:
    """The ``openstack.cluster`` vertex, Vitrage's default root."""
    for vertex in graph.vertices():
        if vertex.vitrage_type == CLUSTER_TYPE and vertex.vitrage_category == Category.RESOURCE:
            return vertex
    return None


def topology(graph: EntityGraph, request: TopologyRequest, viewer: Viewer) -> dict[str, Any]:
    """The topology as Vitrage's ``POST /v1/topology/`` returns it."""
    if request.graph_type not in ("graph", "tree"):
        raise QueryError("graph_type: must be 'graph' or 'tree'", "graph_type")
    if request.depth is not None and request.depth < 0:
        raise QueryError("depth: must be 0 or more", "depth")
    if request.graph_type == "graph" and request.depth is not None and request.root is None:
        raise QueryError("root: graph_type 'graph' with a depth needs a root", "root")
    query = parse_query(request.query)
    user_filter = compile_query(query) if query is not None else None
    all_tenants = request.all_tenants or viewer.is_local_operator
    if request.root is not None and request.root not in graph:
        raise NotFound(f"root vertex {request.root!r} does not exist")
    root = graph.get_vertex(request.root) if request.root else cluster_root(graph)

    if request.graph_type == "tree" or (request.root is not None and request.depth is not None):
        if user_filter is None:
            if request.graph_type == "tree":
                user_filter = lambda v: _live(v) and v.vitrage_category == Category.RESOURCE  # noqa: E731
            else:
                user_filter = _live
        flt = user_filter if all_tenants else _and(user_filter, _visible_project(Viewer(viewer.project_id, True)))
        if root is None:
            vertices: list[Vertex] = []
        else:
            vertices = graph.bfs(root.vitrage_id, request.depth, Direction.BOTH, flt, _live_edge)
        if request.graph_type == "tree":
            return tree_output(graph, vertices, root.vitrage_id if root else None)
        return node_link_output(graph, vertices)

    if all_tenants:
        flt = user_filter or _default_topology_filter
        selected = [v for v in graph.vertices() if flt(v)]
    else:
        if user_filter is not None:
            flt = _and(user_filter, _visible_project(viewer))
        else:
            resources = _and(lambda v: v.vitrage_category == Category.RESOURCE, _live, _visible_project(viewer))
            alarms = _and(
                lambda v: v.vitrage_category == Category.ALARM,
                _live,
                _visible_project(Viewer(viewer.project_id, True)),
            )
            flt = lambda v: resources(v) or alarms(v)  # noqa: E731
        selected = [v for v in graph.vertices() if flt(v)]
        if root is not None:
            selected = _with_paths_from(graph, root, selected)
        selected = [v for v in selected if not _alarm_of_other_project(graph, v, viewer)]
    return node_link_output(graph, selected)


def _default_topology_filter(v: Vertex) -> bool:
    return _live(v) and v.vitrage_category in (Category.RESOURCE, Category.ALARM)


def _live_edge(edge: Edge) -> bool:
    return not edge.vitrage_is_deleted


def _with_paths_from(graph: EntityGraph, root: Vertex, selected: list[Vertex]) -> list[Vertex]:
    """``selected`` plus every vertex on a shortest directed path from ``root`` to one of them.

    This is how a tenant sees cluster → zone → host above its own instances.
    """
    parent: dict[str, str | None] = {root.vitrage_id: None}
    frontier = [root]
    while frontier:
        following: list[Vertex] = []
        for vertex in frontier:
            for edge in vertex.out_edges:
                if edge.vitrage_is_deleted or edge.target in parent:
                    continue
                parent[edge.target] = vertex.vitrage_id
                following.append(graph.vertex(edge.target))
        frontier = following
    result: dict[str, Vertex] = {v.vitrage_id: v for v in selected}
    for vertex in selected:
        step = parent.get(vertex.vitrage_id)
        while step is not None and step not in result:
            result[step] = graph.vertex(step)
            step = parent.get(step)
    if root.vitrage_id in parent and any(v.vitrage_id in parent for v in selected):
        result.setdefault(root.vitrage_id, root)
    return list(result.values())


def _alarm_of_other_project(graph: EntityGraph, vertex: Vertex, viewer: Viewer) -> bool:
    """An alarm without a project shown only if its resource is the viewer's (Vitrage's rule)."""
    if vertex.vitrage_category != Category.ALARM or vertex.project_id is not None:
        return False
    for edge in vertex.out_edges:
        resource = graph.vertex(edge.target)
        if resource.vitrage_category == Category.RESOURCE:
            if viewer.is_admin:
                return resource.project_id is not None and resource.project_id != viewer.project_id
            return resource.project_id != viewer.project_id
    return False


def api_properties(vertex: Vertex) -> dict[str, Any]:
    """A vertex as the API shows it (Vitrage also marks ids as real)."""
    props = vertex.properties()
    props["is_real_vitrage_id"] = True
    return props


def node_link_output(graph: EntityGraph, vertices: Iterable[Vertex]) -> dict[str, Any]:
    """networkx node-link JSON, as Vitrage returns it: integer link ends, ``graph_index``."""
    chosen = list(vertices)
    index = {v.vitrage_id: i for i, v in enumerate(chosen)}
    nodes = []
    for i, vertex in enumerate(chosen):
        node = api_properties(vertex)
        if vertex.id is not None:
            node["graph_index"] = i
        else:
            node["id"] = vertex.vitrage_id
        nodes.append(node)
    links = []
    for vertex in chosen:
        for edge in vertex.out_edges:
            target = index.get(edge.target)
            if target is None or edge.vitrage_is_deleted:
                continue
            link = edge.properties()
            link["source"] = index[vertex.vitrage_id]
            link["target"] = target
            link["key"] = edge.label
            links.append(link)
    return {"directed": True, "multigraph": True, "graph": {}, "nodes": nodes, "links": links, "raw": True}


def tree_output(graph: EntityGraph, vertices: list[Vertex], root_id: str | None) -> dict[str, Any]:
    """The selection as a nested tree below ``root_id`` following outgoing edges.

    Each vertex appears once, under the first parent that reaches it; leaves
    have no ``children`` key; an empty selection is ``{}`` (all as Vitrage).
    """
    if root_id is None or not vertices:
        return {}
    members = {v.vitrage_id: i for i, v in enumerate(vertices)}
    if root_id not in members:
        return {}

    def node(vertex: Vertex) -> dict[str, Any]:
        data = api_properties(vertex)
        data["graph_index"] = members[vertex.vitrage_id]
        return data

    root = graph.vertex(root_id)
    top = node(root)
    placed = {root_id}
    frontier = [(root, top)]
    while frontier:
        following = []
        for vertex, data in frontier:
            children = []
            for edge in vertex.out_edges:
                if edge.target in placed or edge.target not in members or edge.vitrage_is_deleted:
                    continue
                placed.add(edge.target)
                child_vertex = graph.vertex(edge.target)
                child = node(child_vertex)
                children.append(child)
                following.append((child_vertex, child))
            if children:
                data["children"] = children
        frontier = following
    return top


# -- resources -----------------------------------------------------------------------


def _resource_filter(viewer: Viewer, all_tenants: bool, resource_type: str | None, query: Any) -> VertexPredicate:
    parsed = parse_query(query)
    user = compile_query(parsed) if parsed is not None else None
    base = _and(lambda v: v.vitrage_category == Category.RESOURCE, _live)
    tenant = None if (all_tenants or viewer.is_local_operator) else _visible_project(viewer)
    typed = (lambda v: v.vitrage_type == resource_type) if resource_type else None
    return _and(base, tenant, typed, user)


def list_resources(
    graph: EntityGraph,
    viewer: Viewer,
    all_tenants: bool = False,
    resource_type: str | None = None,
    query: Any = None,
) -> list[dict[str, Any]]:
    """``POST /v1/resources/``: a bare list of resource property dicts."""
    flt = _resource_filter(viewer, all_tenants, resource_type, query)
    return [api_properties(v) for v in graph.vertices() if flt(v)]


def count_resources(
    graph: EntityGraph,
    viewer: Viewer,
    all_tenants: bool = False,
    resource_type: str | None = None,
    query: Any = None,
    group_by: str | None = None,
) -> dict[str, int]:
    """``POST /v1/resources/count/``: ``{group value: count}``; a missing value counts as ``""``."""
    flt = _resource_filter(viewer, all_tenants, resource_type, query)
    field_name = group_by or "vitrage_type"
    counts: dict[str, int] = {}
    for vertex in graph.vertices():
        if flt(vertex):
            key = _count_key(vertex.get(field_name, ""))
            counts[key] = counts.get(key, 0) + 1
    return counts


def _count_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return value if isinstance(value, str) else str(value)


def show_resource(graph: EntityGraph, vitrage_id: str, viewer: Viewer) -> dict[str, Any]:
    """``GET /v1/resources/{id}``; :class:`NotFound` when absent or not the viewer's."""
    vertex = graph.get_vertex(vitrage_id)
    if vertex is None or vertex.vitrage_category != Category.RESOURCE:
        raise NotFound(f"resource {vitrage_id!r} does not exist")
    if not viewer.is_admin and vertex.project_id != viewer.project_id:
        raise NotFound(f"resource {vitrage_id!r} does not exist")
    return api_properties(vertex)


# -- alarms --------------------------------------------------------------------------

SEVERITY_KEYS = ("CRITICAL", "SEVERE", "WARNING", "OK", "N/A")


def _resource_of(graph: EntityGraph, alarm: Vertex) -> Vertex | None:
    """The resource an alarm is ``on`` (its first such edge, in adjacency order)."""
    for edge in alarm.out_edges:
        if edge.label == "on":
            resource = graph.get_vertex(edge.target)
            if resource is not None and resource.vitrage_category == Category.RESOURCE:
                return resource
    return None


def alarm_properties(graph: EntityGraph, alarm: Vertex) -> dict[str, Any]:
    """An alarm as the API shows it, with the resource it is on (Vitrage's ``vitrage_resource_*``)."""
    props = api_properties(alarm)
    resource = _resource_of(graph, alarm)
    if resource is not None:
        props["vitrage_resource_id"] = resource.vitrage_id
        props["vitrage_resource_type"] = resource.vitrage_type
        props["vitrage_resource_name"] = resource.name
        if resource.project_id is not None:
            props["vitrage_resource_project_id"] = resource.project_id
    props.setdefault("start_timestamp", alarm.update_timestamp)
    return props


def _alarm_visible(graph: EntityGraph, alarm: Vertex, viewer: Viewer, all_tenants: bool) -> bool:
    if all_tenants or viewer.is_local_operator:
        return True
    project = alarm.project_id
    if project is None:
        resource = _resource_of(graph, alarm)
        project = resource.project_id if resource is not None else None
    if project is None:
        return viewer.is_admin
    return project == viewer.project_id


@dataclass(frozen=True, slots=True)
class AlarmListRequest:
    vitrage_id: str = "all"
    all_tenants: bool = False
    sort_by: tuple[str, ...] = ("start_timestamp", "vitrage_id")
    sort_dirs: tuple[str, ...] = ("asc", "asc")
    limit: int | None = None
    marker: str | None = None
    next_page: bool = True


def list_alarms(graph: EntityGraph, request: AlarmListRequest, viewer: Viewer) -> list[dict[str, Any]]:
    """``GET /v1/alarm/``: active alarms, of one resource or all, sorted and paged like Vitrage."""
    if len(request.sort_dirs) not in (0, len(request.sort_by)):
        raise QueryError("sort_dirs: give one direction per sort_by key", "sort_dirs")
    for direction in request.sort_dirs:
        if direction not in ("asc", "desc"):
            raise QueryError(f"sort_dirs: {direction!r} is not asc or desc", "sort_dirs")
    if request.limit is not None and request.limit < 0:
        raise QueryError("limit: must be 0 or more", "limit")
    resource_filter = None if request.vitrage_id in ("all", "", None) else request.vitrage_id
    if resource_filter is not None and resource_filter not in graph:
        raise NotFound(f"resource {resource_filter!r} does not exist")
    rows = []
    for vertex in graph.vertices():
        if vertex.vitrage_category != Category.ALARM or not _live(vertex):
            continue
        if not _alarm_visible(graph, vertex, viewer, request.all_tenants):
            continue
        props = alarm_properties(graph, vertex)
        if resource_filter is not None and props.get("vitrage_resource_id") != resource_filter:
            continue
        rows.append(props)
    directions = request.sort_dirs or ("asc",) * len(request.sort_by)
    for key, direction in reversed(list(zip(request.sort_by, directions, strict=True))):
        rows.sort(key=lambda r, k=key: _sort_value(r.get(k)), reverse=direction == "desc")
    if request.marker is not None:
        index = next((i for i, r in enumerate(rows) if r["vitrage_id"] == request.marker), None)
        if index is None:
            raise QueryError(f"marker: no alarm {request.marker!r} in this list", "marker")
        if request.next_page:
            rows = rows[index + 1 :]
        else:
            rows = rows[:index][-request.limit :] if request.limit else rows[:index]
            return rows
    if request.limit is not None:
        rows = rows[: request.limit]
    return rows


def _sort_value(value: Any) -> tuple[int, str]:
    # None sorts first; everything else by its text, so mixed types never fail.
    return (0, "") if value is None else (1, str(value))


def show_alarm(graph: EntityGraph, vitrage_id: str, viewer: Viewer) -> dict[str, Any]:
    vertex = graph.get_vertex(vitrage_id)
    if vertex is None or vertex.vitrage_category != Category.ALARM or not _live(vertex):
        raise NotFound(f"alarm {vitrage_id!r} does not exist")
    # As for resources (and Vitrage): an admin may look at any alarm, others at their project's.
    if not viewer.is_admin and not _alarm_visible(graph, vertex, viewer, False):
        raise NotFound(f"alarm {vitrage_id!r} does not exist")
    return alarm_properties(graph, vertex)


def count_alarms(graph: EntityGraph, viewer: Viewer, all_tenants: bool = False) -> dict[str, int]:
    """``GET /v1/alarm/count/``: active alarms by operational severity (upper-case keys, all present)."""
    counts = dict.fromkeys(SEVERITY_KEYS, 0)
    for vertex in graph.vertices():
        live_alarm = vertex.vitrage_category == Category.ALARM and _live(vertex)
        if live_alarm and _alarm_visible(graph, vertex, viewer, all_tenants):
            severity = vertex.get("vitrage_operational_severity") or "N/A"
            counts[severity] = counts.get(severity, 0) + 1
    return counts


def rca(graph: EntityGraph, alarm_id: str, viewer: Viewer, all_tenants: bool = False) -> dict[str, Any]:
    """``GET /v1/rca/``: the alarm, its causes and its consequences, as node-link JSON.

    Follows ``causes`` edges both ways, transitively; ``inspected_index`` is the
    position of the asked alarm among the nodes.
    """
    start = graph.get_vertex(alarm_id)
    if start is None or start.vitrage_category != Category.ALARM:
        raise NotFound(f"alarm {alarm_id!r} does not exist")
    if not _alarm_visible(graph, start, viewer, all_tenants):
        raise NotFound(f"alarm {alarm_id!r} does not exist")
    causal = graph.bfs(
        alarm_id,
        None,
        Direction.BOTH,
        vertex_filter=lambda v: v.vitrage_category == Category.ALARM,
        edge_filter=lambda e: e.label == "causes" and not e.vitrage_is_deleted,
    )
    index = {v.vitrage_id: i for i, v in enumerate(causal)}
    nodes = []
    for i, vertex in enumerate(causal):
        node = alarm_properties(graph, vertex)
        node["graph_index"] = i
        nodes.append(node)
    links = []
    for vertex in causal:
        for edge in vertex.out_edges:
            if edge.label == "causes" and edge.target in index:
                link = edge.properties()
                link.update(source=index[edge.source], target=index[edge.target], key=edge.label)
                links.append(link)
    return {
        "directed": True,
        "multigraph": True,
        "graph": {},
        "nodes": nodes,
        "links": links,
        "inspected_index": index[alarm_id],
    }


def alarms_on_unknown_resources(graph: EntityGraph) -> int:
    """Active alarms whose resource is only a placeholder (an alert naming nothing Vitrail knows)."""
    count = 0
    for vertex in graph.vertices():
        if vertex.vitrage_category == Category.ALARM and _live(vertex):
            for edge in vertex.out_edges:
                if edge.label == "on" and graph.vertex(edge.target).vitrage_is_placeholder:
                    count += 1
                    break
    return count
