"""The entity graph structure: vertices, edges, traversal, observers, canonical dump."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitrail.graph.canonical import DumpFormatError, dump_graph, graph_document, load_graph
from vitrail.graph.entity_graph import ChangeKind, EntityGraph, GraphChange, GraphError
from vitrail.graph.model import Vertex
from vitrail.graph.properties import Direction


def make(*ids: str) -> EntityGraph:
    graph = EntityGraph()
    for vid in ids:
        graph.add_vertex(Vertex(vid, {"vitrage_type": "t", "name": vid.upper()}))
    return graph


def test_vertex_properties_live_in_slots_or_extra() -> None:
    vertex = Vertex("v1", {"name": "host-1", "state": "available", "host_id": "h", "rack": None})
    assert vertex.name == "host-1"
    assert vertex.extra_dict() == {"host_id": "h"}
    assert vertex["host_id"] == "h"
    assert "rack" not in vertex
    assert vertex.get("rack", "none") == "none"
    assert vertex.set("host_id", None) is True
    assert vertex.extra is None
    assert vertex.set("name", "host-1") is False
    with pytest.raises(ValueError, match="vitrage_id"):
        vertex.set("vitrage_id", "other")
    assert vertex.properties() == {
        "vitrage_id": "v1",
        "name": "host-1",
        "state": "available",
        "vitrage_is_deleted": False,
        "vitrage_is_placeholder": False,
    }


def test_add_and_remove_vertex_removes_its_edges() -> None:
    graph = make("a", "b", "c")
    graph.add_edge("a", "b", "contains")
    graph.add_edge("c", "a", "on")
    assert graph.num_edges == 2
    graph.remove_vertex("a")
    assert graph.num_edges == 0
    assert graph.vertex("b").in_edges == []
    assert graph.vertex("c").out_edges == []
    with pytest.raises(GraphError, match="no vertex"):
        graph.vertex("a")


def test_one_edge_per_label_between_a_pair() -> None:
    graph = make("a", "b")
    graph.add_edge("a", "b", "contains")
    graph.add_edge("a", "b", "attached")
    with pytest.raises(GraphError, match="already exists"):
        graph.add_edge("a", "b", "contains")
    assert graph.get_edge("a", "b", "attached") is not None
    assert graph.get_edge("b", "a", "attached") is None
    assert graph.remove_edge("a", "b", "contains") is True
    assert graph.remove_edge("a", "b", "contains") is False
    assert graph.num_edges == 1


def test_edges_need_both_vertices() -> None:
    graph = make("a")
    with pytest.raises(GraphError):
        graph.add_edge("a", "missing", "on")


def test_neighbors_by_direction_label_and_filter() -> None:
    graph = make("zone", "h1", "h2", "alarm")
    graph.vertex("h2").set("state", "ERROR")
    graph.add_edge("zone", "h1", "contains")
    graph.add_edge("zone", "h2", "contains")
    graph.add_edge("alarm", "h1", "on")
    assert [v.vitrage_id for v in graph.neighbors("zone", Direction.OUT)] == ["h1", "h2"]
    assert graph.neighbors("zone", Direction.IN) == []
    assert [v.vitrage_id for v in graph.neighbors("h1", labels=["on"])] == ["alarm"]
    assert [v.vitrage_id for v in graph.neighbors("zone", vertex_filter={"state": "ERROR"})] == ["h2"]
    assert [v.vitrage_id for v in graph.neighbors("h1", Direction.IN, vertex_filter=lambda v: v.name == "ZONE")] == [
        "zone"
    ]


def test_bfs_depth_and_filter() -> None:
    graph = make("cluster", "zone", "host", "vm", "alarm")
    graph.add_edge("cluster", "zone", "contains")
    graph.add_edge("zone", "host", "contains")
    graph.add_edge("host", "vm", "contains")
    graph.add_edge("alarm", "host", "on")
    assert [v.vitrage_id for v in graph.bfs("cluster", depth=1)] == ["cluster", "zone"]
    assert [v.vitrage_id for v in graph.bfs("cluster", depth=2)] == ["cluster", "zone", "host"]
    assert {v.vitrage_id for v in graph.bfs("cluster")} == {"cluster", "zone", "host", "vm", "alarm"}
    assert [v.vitrage_id for v in graph.bfs("cluster", direction=Direction.OUT, depth=None)] == [
        "cluster",
        "zone",
        "host",
        "vm",
    ]
    blocked = graph.bfs("cluster", vertex_filter=lambda v: v.vitrage_id != "host")
    assert [v.vitrage_id for v in blocked] == ["cluster", "zone"]
    vertices, edges = graph.subgraph(["zone", "host", "vm"])
    assert len(vertices) == 3
    assert {e.label for e in edges} == {"contains"}
    assert len(edges) == 2


def test_observers_see_every_change_with_before_and_after() -> None:
    graph = make("a", "b")
    seen: list[GraphChange] = []
    graph.add_observer(seen.append)
    graph.update_vertex("a", {"state": "ERROR"})
    graph.update_vertex("a", {"state": "ERROR"})  # no change, no notification
    graph.add_edge("a", "b", "on")
    graph.remove_vertex("b")
    kinds = [c.kind for c in seen]
    assert kinds == [
        ChangeKind.VERTEX_UPDATED,
        ChangeKind.EDGE_ADDED,
        ChangeKind.EDGE_REMOVED,
        ChangeKind.VERTEX_REMOVED,
    ]
    assert seen[0].before is not None and "state" not in seen[0].before
    assert seen[0].after is not None and seen[0].after["state"] == "ERROR"
    assert seen[1].edge_key == ("a", "b", "on")


def test_dump_is_independent_of_insertion_order() -> None:
    one = make("a", "b", "c")
    one.add_edge("a", "b", "x")
    one.add_edge("c", "b", "y")
    two = make("c", "b", "a")
    two.add_edge("c", "b", "y")
    two.add_edge("a", "b", "x")
    assert dump_graph(one) == dump_graph(two)
    two.update_vertex("a", {"state": "ERROR"})
    assert dump_graph(one) != dump_graph(two)


def test_dump_shares_repeated_strings_in_a_table() -> None:
    graph = make("a", "b", "c")
    document = graph_document(graph)
    assert document["strings"].count("t") == 1
    kind, refs = document["vertices"]["vitrage_type"]
    assert kind == "shared"
    assert len(set(refs)) == 1
    assert document["strings"][refs[0]] == "t"


def test_load_rejects_foreign_or_broken_dumps() -> None:
    with pytest.raises(DumpFormatError, match="not a vitrail graph dump"):
        load_graph(b'{"format": "something"}')
    good = graph_document(make("a"))
    good["version"] = 99
    with pytest.raises(DumpFormatError, match="version"):
        load_graph(good)
    broken = graph_document(make("a", "b"))
    broken["vertices"]["name"] = ["raw", ["A"]]
    with pytest.raises(DumpFormatError, match="name"):
        load_graph(broken)
    outside = graph_document(make("a"))
    outside["vertices"]["vitrage_type"] = ["shared", [7]]
    with pytest.raises(DumpFormatError, match="string table"):
        load_graph(outside)


# -- property: dump → load → dump is the identity ---------------------------------------

_ids = st.sampled_from([f"v{i}" for i in range(12)])
_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=6), st.sampled_from(["OK", "ERROR"]))
_props = st.dictionaries(
    st.sampled_from(["name", "state", "vitrage_type", "project_id", "rack", "host_id", "vitrage_is_placeholder"]),
    _values,
    max_size=5,
)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("vertex"), _ids, _props),
        st.tuples(st.just("edge"), _ids, _ids, st.sampled_from(["contains", "on", "attached"])),
        st.tuples(st.just("remove"), _ids),
        st.tuples(st.just("unlink"), _ids, _ids, st.sampled_from(["contains", "on"])),
    ),
    max_size=60,
)


def _build(ops: list[tuple]) -> EntityGraph:
    graph = EntityGraph()
    for op in ops:
        if op[0] == "vertex":
            _, vid, props = op
            if vid in graph:
                graph.update_vertex(vid, props)
            else:
                graph.add_vertex(Vertex(vid, props))
        elif op[0] == "edge":
            _, a, b, label = op
            if a in graph and b in graph and graph.get_edge(a, b, label) is None:
                graph.add_edge(a, b, label, "2026-11-22 00:00:00.000000+00:00", {"weight": len(a)} if a < b else None)
        elif op[0] == "remove":
            if op[1] in graph:
                graph.remove_vertex(op[1])
        else:
            graph.remove_edge(op[1], op[2], op[3])
    return graph


@settings(max_examples=200, deadline=None)
@given(_ops)
def test_dump_load_dump_is_identical(ops: list[tuple]) -> None:
    graph = _build(ops)
    first = dump_graph(graph)
    loaded = load_graph(first)
    assert dump_graph(loaded) == first
    assert loaded.num_vertices == graph.num_vertices
    assert loaded.num_edges == graph.num_edges
    for vertex in graph.vertices():
        twin = loaded.vertex(vertex.vitrage_id)
        assert twin.properties() == vertex.properties()
        assert sorted(e.key for e in twin.out_edges) == sorted(e.key for e in vertex.out_edges)
        assert sorted(e.key for e in twin.in_edges) == sorted(e.key for e in vertex.in_edges)


_NAMES = st.sampled_from(["name", "state", "project_id", "vitrage_is_deleted", "flavor", "ip", "zone", "x"])
_VALUES = st.one_of(st.none(), st.integers(0, 3), st.text(max_size=2), st.booleans())


@given(st.dictionaries(_NAMES, _VALUES), st.dictionaries(_NAMES, _VALUES))
def test_update_sets_a_batch_exactly_as_set_one_by_one(first: dict, second: dict) -> None:
    """Vertex.update packs the extra properties once; the result must be set's, name for name."""
    batched, single = Vertex("v", first), Vertex("v", first)
    changed = batched.update(second)
    expected = [name for name, value in second.items() if single.set(name, value)]
    assert changed == expected
    assert batched.properties() == single.properties()
    assert batched.extra == single.extra
