"""Subgraph matching anchored at one vertex.

The evaluator never scans the graph for a scenario: when a vertex changes, it
binds each template entity the vertex can stand for to that vertex and extends
the binding along the clause's relationships, following only the edges of the
bound vertices. The cost is bounded by the degrees around the change, not by
the size of the graph (Vitrage scanned the whole graph for every alarm).

The order in which a clause's relationships are followed from a given anchor
is worked out once, when the template is loaded (a :class:`Plan`), not at every
match. Adjacency lists are kept sorted by neighbour id, so candidates come in
``vitrage_id`` order and the same graph gives the same matches in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum

from vitrail.evaluator.model import Clause, EntitySpec, Relationship
from vitrail.graph.entity_graph import EntityGraph
from vitrail.graph.model import Vertex

Binding = dict[str, str]


class StepKind(Enum):
    CHECK = "check"  # both ends bound: the edge must exist
    FORWARD = "forward"  # source bound: bind the target among its out-neighbours
    BACKWARD = "backward"  # target bound: bind the source among its in-neighbours
    SCAN = "scan"  # nothing bound yet (a disconnected pattern): try every vertex for the source


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    relationship: Relationship | None
    free: str | None  # the entity this step binds (None for CHECK)


@dataclass(frozen=True, slots=True)
class Plan:
    """How to extend a binding of ``anchor`` to the whole clause."""

    anchor: str
    steps: tuple[Step, ...]


def plan(clause: Clause, anchor: str) -> Plan:
    """The order to follow the clause's relationships in, starting from ``anchor``."""
    bound = {anchor}
    pending = list(clause.positive)
    steps: list[Step] = []
    while pending:
        index = next((i for i, rel in enumerate(pending) if rel.source in bound or rel.target in bound), None)
        if index is None:
            rel = pending[0]
            steps.append(Step(StepKind.SCAN, None, rel.source))
            bound.add(rel.source)
            continue
        rel = pending.pop(index)
        if rel.source in bound and rel.target in bound:
            steps.append(Step(StepKind.CHECK, rel, None))
        elif rel.source in bound:
            steps.append(Step(StepKind.FORWARD, rel, rel.target))
            bound.add(rel.target)
        else:
            steps.append(Step(StepKind.BACKWARD, rel, rel.source))
            bound.add(rel.source)
    for entity in clause.entities:  # standalone entities not reached by any relationship
        if entity not in bound:
            steps.append(Step(StepKind.SCAN, None, entity))
            bound.add(entity)
    return Plan(anchor, tuple(steps))


def usable(vertex: Vertex, spec: EntitySpec) -> bool:
    """Can ``vertex`` stand for ``spec``? Placeholders and deleted vertices never do."""
    return not vertex.vitrage_is_placeholder and not vertex.vitrage_is_deleted and spec.matches(vertex)


def anchored_matches(
    graph: EntityGraph,
    clause: Clause,
    entities: Mapping[str, EntitySpec],
    route: Plan,
    vertex: Vertex,
) -> list[Binding]:
    """Every binding of ``clause`` that maps ``route.anchor`` to ``vertex``.

    Most calls find nothing (a host with no alarm on it): the first step is
    checked inline so that those cost no generator and no recursion.
    """
    if not usable(vertex, entities[route.anchor]):
        return []
    steps = route.steps
    if steps:
        first = steps[0]
        rel = first.relationship
        if first.kind is StepKind.FORWARD:
            assert rel is not None
            if not any(e.label == rel.label for e in vertex.out_edges):
                return []
        elif first.kind is StepKind.BACKWARD:
            assert rel is not None
            if not any(e.label == rel.label for e in vertex.in_edges):
                return []
    return list(_follow(graph, clause, entities, steps, 0, {route.anchor: vertex.vitrage_id}))


def _follow(
    graph: EntityGraph,
    clause: Clause,
    entities: Mapping[str, EntitySpec],
    steps: tuple[Step, ...],
    index: int,
    binding: Binding,
) -> Iterator[Binding]:
    if index == len(steps):
        if not clause.negative or _negatives_hold(graph, clause, entities, binding):
            yield dict(binding)
        return
    step = steps[index]
    rel = step.relationship
    if step.kind is StepKind.CHECK:
        assert rel is not None
        if graph.get_edge(binding[rel.source], binding[rel.target], rel.label) is not None:
            yield from _follow(graph, clause, entities, steps, index + 1, binding)
        return
    free = step.free
    assert free is not None
    spec = entities[free]
    taken = binding.values()
    if step.kind is StepKind.SCAN:
        candidates: list[str] = sorted(v.vitrage_id for v in graph.vertices() if usable(v, spec))
    else:
        assert rel is not None
        label = rel.label
        if step.kind is StepKind.FORWARD:
            # out-edges are sorted by target: candidates come in vitrage_id order
            candidates = [e.target for e in graph.vertex(binding[rel.source]).out_edges if e.label == label]
        else:
            candidates = [e.source for e in graph.vertex(binding[rel.target]).in_edges if e.label == label]
    for candidate in candidates:
        if candidate in taken:
            continue
        if step.kind is not StepKind.SCAN and not usable(graph.vertex(candidate), spec):
            continue
        binding[free] = candidate
        yield from _follow(graph, clause, entities, steps, index + 1, binding)
        del binding[free]


def _negatives_hold(graph: EntityGraph, clause: Clause, entities: Mapping[str, EntitySpec], binding: Binding) -> bool:
    """No negated relationship is present around the binding."""
    for rel in clause.negative:
        source = binding.get(rel.source)
        target = binding.get(rel.target)
        if source is not None and target is not None:
            if graph.get_edge(source, target, rel.label) is not None:
                return False
        elif source is not None:
            spec = entities[rel.target]
            for edge in graph.vertex(source).out_edges:
                if edge.label == rel.label and usable(graph.vertex(edge.target), spec):
                    return False
        elif target is not None:
            spec = entities[rel.source]
            for edge in graph.vertex(target).in_edges:
                if edge.label == rel.label and usable(graph.vertex(edge.source), spec):
                    return False
    return True


def still_holds(graph: EntityGraph, clause: Clause, entities: Mapping[str, EntitySpec], binding: Binding) -> bool:
    """Is an existing match still true? (Cheaper than searching again.)"""
    for name, vitrage_id in binding.items():
        vertex = graph.get_vertex(vitrage_id)
        if vertex is None or not usable(vertex, entities[name]):
            return False
    for rel in clause.positive:
        if graph.get_edge(binding[rel.source], binding[rel.target], rel.label) is None:
            return False
    return _negatives_hold(graph, clause, entities, binding)
