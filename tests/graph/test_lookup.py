"""The property index follows every change of the graph: values that change, vertices that change
type, vertices that go, placeholders that become real. Checked against a search of the whole graph
after every step of random edit sequences."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vitrail.graph.entity_graph import EntityGraph
from vitrail.graph.lookup import PropertyIndex
from vitrail.graph.model import Vertex

KINDS = [("RESOURCE", "nova.host"), ("RESOURCE", "nova.instance")]
VALUES = st.sampled_from([None, "a", "b", 1, True, ["not", "hashable"]])
IDS = st.sampled_from([f"v{n}" for n in range(5)])


def _search(graph: EntityGraph, category: str, vtype: str, prop: str, value: object) -> str | None:
    """What the index must answer: real vertices first, then the smallest vitrage_id."""
    found = [
        v
        for v in graph.vertices()
        if v.vitrage_category == category and v.vitrage_type == vtype and v.get(prop) == value and value is not None
    ]
    real = sorted(v.vitrage_id for v in found if not v.vitrage_is_placeholder)
    every = sorted(v.vitrage_id for v in found)
    return real[0] if real else every[0] if every else None


edits = st.lists(
    st.tuples(st.sampled_from(["add", "set", "retype", "remove", "real"]), IDS, st.sampled_from(KINDS), VALUES),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(edits=edits, early=st.booleans())
def test_the_index_follows_every_change(edits: list[tuple[str, str, tuple[str, str], object]], early: bool) -> None:
    graph = EntityGraph()
    index = PropertyIndex(graph)
    if early:  # built on an empty graph, then kept current; otherwise built after the edits
        index.find("RESOURCE", "nova.host", "name", "a")
    for action, vitrage_id, (category, vtype), value in edits:
        vertex = graph.get_vertex(vitrage_id)
        if action == "add" and vertex is None:
            new = Vertex(vitrage_id, {"name": value} if value is not None else None)
            new.vitrage_category, new.vitrage_type = category, vtype
            new.vitrage_is_placeholder = value == "b"
            graph.add_vertex(new)
        elif vertex is None:
            continue
        elif action == "set":
            graph.update_vertex(vitrage_id, {"name": value})
        elif action == "retype":
            graph.update_vertex(vitrage_id, {"vitrage_type": vtype})
        elif action == "remove":
            graph.remove_vertex(vitrage_id)
        elif action == "real":
            graph.update_vertex(vitrage_id, {"vitrage_is_placeholder": False})
        for kind in KINDS:
            for wanted in ("a", "b", 1):
                assert index.find(*kind, "name", wanted) == _search(graph, *kind, "name", wanted), (kind, wanted)
    index.close()
    assert index not in graph._watchers  # type: ignore[attr-defined]
