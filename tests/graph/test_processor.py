"""The processor: sequence numbers, duplicates, placeholders, ownership, consistency, states."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.graph.fake import FAKE, FakeTransformer, delete, round_end, snapshot, ts, update
from vitrail.datasources.state_tables import load_state_table
from vitrail.graph.events import Event, EventAction
from vitrail.graph.identity import vitrage_id_for
from vitrail.graph.processor import EventRejected, Processor, ProcessorConfig, SequenceGap


def vid(entity_id: str, vtype: str = "fake.node") -> str:
    return vitrage_id_for("RESOURCE", vtype, entity_id)


def make(**config: int) -> Processor:
    return Processor(
        {FAKE: FakeTransformer(), "other": FakeTransformer()}, load_state_table(), ProcessorConfig(**config)
    )


def test_accepted_events_get_consecutive_sequence_numbers() -> None:
    p = make()
    first = p.process(update("e1", {"id": "a"}, 1))
    second = p.process(update("e2", {"id": "b"}, 2))
    assert first is not None and first.sequence == 1
    assert second is not None and second.sequence == 2
    assert p.sequence == 2


def test_duplicate_event_id_is_a_no_op() -> None:
    p = make()
    p.process(update("e1", {"id": "a", "state": "ERROR"}, 1))
    before = p.dump()
    assert p.process(update("e1", {"id": "a", "state": "available"}, 5)) is None
    assert p.dump() == before
    assert p.stats.duplicates == 1


def test_rejected_event_changes_nothing_and_takes_no_sequence() -> None:
    p = make()
    p.process(update("e1", {"id": "a"}, 1))
    before = p.dump()
    with pytest.raises(EventRejected, match=r"payload\.id"):
        p.process(update("e2", {"name": "no id"}, 2))
    with pytest.raises(EventRejected, match="no datasource named 'nope'"):
        p.process(Event("e3", "nope", EventAction.UPDATE, ts(3), {"id": "x"}))
    assert p.dump() == before
    # The rejected ids were not remembered: a corrected event with the same id applies.
    assert p.process(update("e2", {"id": "b"}, 2)) is not None


def test_replayed_events_must_continue_the_sequence() -> None:
    p = make()
    event = update("e1", {"id": "a"}, 1)
    event.sequence = 3
    with pytest.raises(SequenceGap, match="expected 1"):
        p.process(event)


def test_older_update_does_not_roll_state_back() -> None:
    p = make()
    p.process(update("e1", {"id": "a", "state": "ERROR"}, 10))
    p.process(update("e2", {"id": "a", "state": "available"}, 5))
    assert p.graph.vertex(vid("a")).state == "ERROR"
    assert p.stats.stale == 1


def test_placeholder_is_created_then_completed() -> None:
    p = make()
    p.process(update("e1", {"id": "vm", "parent": "host"}, 1))
    host = p.graph.vertex(vid("host"))
    assert host.vitrage_is_placeholder is True
    assert host.vitrage_datasource_name is None
    edge = p.graph.get_edge(vid("host"), vid("vm"), "contains")
    assert edge is not None
    p.process(update("e2", {"id": "host", "state": "available"}, 2))
    host = p.graph.vertex(vid("host"))
    assert host.vitrage_is_placeholder is False
    assert host.vitrage_datasource_name == FAKE
    assert host.vitrage_operational_state == "OK"
    assert p.graph.get_edge(vid("host"), vid("vm"), "contains") is edge


def test_moving_an_entity_removes_the_old_edge_and_the_orphan_placeholder() -> None:
    p = make()
    p.process(update("e1", {"id": "vm", "parent": "h1"}, 1))
    p.process(update("e2", {"id": "vm", "parent": "h2"}, 2))
    assert p.graph.get_vertex(vid("h1")) is None  # placeholder left without edges
    assert p.graph.get_edge(vid("h2"), vid("vm"), "contains") is not None
    assert p.graph.num_edges == 1


def test_an_update_only_withdraws_edges_it_asserted() -> None:
    p = make()
    p.process(update("e1", {"id": "host"}, 1))
    p.process(update("e2", {"id": "vm", "parent": "host"}, 2))  # vm asserts host->vm
    p.process(update("e3", {"id": "host", "parent": "zone"}, 3))  # host asserts zone->host
    assert p.graph.get_edge(vid("host"), vid("vm"), "contains") is not None
    p.process(update("e4", {"id": "host", "parent": None}, 4))  # host withdraws zone->host only
    assert p.graph.get_edge(vid("zone"), vid("host"), "contains") is None
    assert p.graph.get_edge(vid("host"), vid("vm"), "contains") is not None


def test_delete_removes_vertex_edges_and_orphan_placeholders() -> None:
    p = make()
    p.process(update("e1", {"id": "vm", "parent": "host"}, 1))
    p.process(delete("e2", "vm", 2))
    assert p.graph.num_vertices == 0


def test_a_datasource_cannot_delete_what_another_owns() -> None:
    p = make()
    p.process(update("e1", {"id": "host"}, 1, ds="other"))
    p.process(update("e2", {"id": "host", "parent": "zone"}, 2))  # fake asserts zone->host on other's host
    assert p.graph.vertex(vid("host")).vitrage_datasource_name == FAKE  # a full update takes ownership
    p.process(delete("e3", "host", 3))
    assert p.graph.get_vertex(vid("host")) is None
    p2 = make()
    p2.process(update("e1", {"id": "host"}, 1, ds="other"))
    p2.process(update("e2", {"id": "host", "parent": "zone", "weak": True}, 2))
    p2.process(delete("e3", "host", 3))
    host = p2.graph.get_vertex(vid("host"))
    assert host is not None and host.vitrage_datasource_name == "other"
    assert p2.graph.get_vertex(vid("zone")) is None  # fake's edge withdrawn, placeholder gone


def test_weak_update_fills_in_but_never_overwrites() -> None:
    p = make()
    p.process(update("e1", {"id": "h", "state": "ERROR", "weak": True}, 1))
    assert p.graph.vertex(vid("h")).state == "ERROR"  # created: nobody else had it
    p.process(update("e2", {"id": "h", "state": "available"}, 2, ds="other"))
    p.process(update("e3", {"id": "h", "state": "ERROR", "weak": True}, 3))
    vertex = p.graph.vertex(vid("h"))
    assert vertex.state == "available"
    assert vertex.vitrage_datasource_name == "other"


def test_sample_times_are_compared_within_one_datasource_only() -> None:
    p = make()
    p.process(update("e1", {"id": "h", "state": "ERROR", "weak": True}, 10))  # a reference, created at t=10
    p.process(update("e2", {"id": "h", "state": "available", "parent": "z"}, 5, ds="other"))  # owner, sampled at 5
    vertex = p.graph.vertex(vid("h"))
    assert (vertex.vitrage_datasource_name, vertex.state) == ("other", "available")
    p.process(update("e3", {"id": "h", "parent": "rack", "weak": True}, 1))  # old, but only edges change
    assert p.graph.get_edge(vid("rack"), vid("h"), "contains") is not None
    assert vertex.state == "available"


def test_neighbours_can_be_found_by_a_property() -> None:
    p = make()
    p.process(update("h1", {"id": "host-1", "address": "10.0.0.1"}, 1))
    p.process(update("a1", {"id": "alert-1", "parent": "fallback-1", "match": ["address", "10.0.0.1"]}, 2))
    assert p.graph.get_edge(vid("host-1"), vid("alert-1"), "contains") is not None
    assert p.graph.get_vertex(vid("fallback-1")) is None
    # Nobody has that address: the neighbour is a placeholder named by the fallback id.
    p.process(update("a2", {"id": "alert-2", "parent": "fallback-2", "match": ["address", "10.9.9.9"]}, 3))
    assert p.graph.vertex(vid("fallback-2")).vitrage_is_placeholder is True
    # The index follows changes made after it was built.
    p.process(update("h2", {"id": "host-2", "address": "10.0.0.2"}, 4))
    p.process(update("h1b", {"id": "host-1", "address": "10.0.0.3"}, 5))
    p.process(update("a3", {"id": "alert-3", "parent": "x", "match": ["address", "10.0.0.2"]}, 6))
    p.process(update("a4", {"id": "alert-4", "parent": "y", "match": ["address", "10.0.0.3"]}, 7))
    assert p.graph.get_edge(vid("host-2"), vid("alert-3"), "contains") is not None
    assert p.graph.get_edge(vid("host-1"), vid("alert-4"), "contains") is not None
    p.process(delete("d", "host-2", 8))
    p.process(update("a5", {"id": "alert-5", "parent": "z", "match": ["address", "10.0.0.2"]}, 9))
    assert p.graph.vertex(vid("z")).vitrage_is_placeholder is True


def test_a_property_shared_by_several_vertices_resolves_to_the_smallest_id() -> None:
    one, two = make(), make()
    hosts = [update(f"h{n}", {"id": f"host-{n}", "address": "10.0.0.1"}, n) for n in range(4)]
    one.process_many(hosts)
    two.process_many(list(reversed([update(e.event_id, dict(e.payload), 1) for e in hosts])))
    for p in (one, two):
        p.process(update("a", {"id": "alert", "parent": "f", "match": ["address", "10.0.0.1"]}, 9))
    expected = min(vid(f"host-{n}") for n in range(4))
    for p in (one, two):
        (edge,) = p.graph.vertex(vid("alert")).in_edges
        assert edge.source == expected


def test_state_aggregation_uses_priorities() -> None:
    p = make()
    p.process(update("e1", {"id": "i1", "type": "nova.instance", "state": "active"}, 1))
    vertex = p.graph.vertex(vid("i1", "nova.instance"))
    assert (vertex.vitrage_aggregated_state, vertex.vitrage_operational_state) == ("ACTIVE", "OK")
    p.graph.update_vertex(vertex.vitrage_id, {"vitrage_state": "SUBOPTIMAL"})
    p.process(update("e2", {"id": "i1", "type": "nova.instance", "state": "ACTIVE"}, 2))
    assert vertex.vitrage_aggregated_state == "SUBOPTIMAL"
    p.process(update("e3", {"id": "i1", "type": "nova.instance", "state": "ERROR"}, 3))
    assert (vertex.vitrage_aggregated_state, vertex.vitrage_operational_state) == ("ERROR", "ERROR")
    p.process(update("e4", {"id": "x", "type": "unknown.kind", "state": "weird"}, 4))
    assert p.graph.vertex(vid("x", "unknown.kind")).vitrage_operational_state == "N/A"


def _round(p: Processor, round_id: int, ids: list[str], t: int) -> None:
    for entity_id in ids:
        p.process(snapshot(f"r{round_id}/{entity_id}", {"id": entity_id}, round_id, t))
    p.process(round_end(f"r{round_id}/end", round_id, t))


def test_consistency_deletes_after_two_missed_rounds() -> None:
    p = make()
    _round(p, 1, ["a", "b", "c"], 1)
    _round(p, 2, ["a", "b"], 2)
    assert p.graph.get_vertex(vid("c")) is not None  # missed one round only
    _round(p, 3, ["a"], 3)
    assert p.graph.get_vertex(vid("c")) is None
    assert p.graph.get_vertex(vid("b")) is not None
    assert p.stats.deleted_by_consistency == 1


def test_consistency_keeps_entities_updated_during_the_rounds() -> None:
    p = make()
    _round(p, 1, ["a"], 1)
    p.process(update("u", {"id": "new"}, 5))  # created by a change after round 1 began
    _round(p, 2, ["a"], 3)
    assert p.graph.get_vertex(vid("new")) is not None
    _round(p, 3, ["a"], 10)
    assert p.graph.get_vertex(vid("new")) is not None  # round 2 may have been read before it existed
    _round(p, 4, ["a"], 11)
    assert p.graph.get_vertex(vid("new")) is None  # missing from two rounds that began after its update


def test_consistency_only_touches_its_own_datasource() -> None:
    p = make()
    p.process(update("o", {"id": "theirs"}, 1, ds="other"))
    _round(p, 1, [], 2)
    _round(p, 2, [], 3)
    assert p.graph.get_vertex(vid("theirs")) is not None


def test_snapshot_duplicates_are_caught_by_their_round_whatever_the_window() -> None:
    p = make(dedup_window=1)
    p.process(snapshot("r1/a", {"id": "a"}, 1, 1))
    assert p.process(snapshot("r1/a", {"id": "a", "state": "ERROR"}, 1, 1)) is None  # same round, still open
    p.process(round_end("r1/end", 1, 1))
    assert p.open_rounds == {}  # nothing kept for a finished round
    before = p.dump()
    assert p.process(snapshot("r1/b", {"id": "b"}, 1, 1)) is None  # late: round 1 has ended
    assert p.process(round_end("r1/end-again", 1, 1)) is None
    assert p.dump() == before
    assert p.stats.duplicates == 3


def test_change_ids_are_remembered_for_the_window_only() -> None:
    p = make(dedup_window=2)
    for n in range(3):
        p.process(update(f"u{n}", {"id": f"e{n}"}, n))
    assert "u0" not in p.recent and "u1" in p.recent and "u2" in p.recent
    assert [eid for eid, _ in p.recent.in_order()] == ["u1", "u2"]
    # Beyond the window an old update is still harmless: it is older than the vertex.
    p.process(update("u3", {"id": "e0", "state": "ERROR"}, 9))
    assert p.process(update("u0", {"id": "e0", "state": "available"}, 0)) is not None
    assert p.graph.vertex(vid("e0")).state == "ERROR"


def test_snapshot_and_round_end_need_a_round() -> None:
    p = make()
    with pytest.raises(EventRejected, match="round"):
        p.process(Event("x", FAKE, EventAction.SNAPSHOT, ts(1), {"id": "a"}))


def test_state_round_trips_through_dump_and_load() -> None:
    p = make(consistency_rounds=2, dedup_window=3)
    _round(p, 1, ["a", "b"], 1)
    p.process(update("u1", {"id": "c", "parent": "a"}, 2))
    restored = Processor.load(p.dump(), {FAKE: FakeTransformer()}, load_state_table(), ProcessorConfig(2, 3))
    assert restored.dump() == p.dump()
    assert restored.sequence == p.sequence
    assert "u1" in restored.recent
    assert restored.process(update("u1", {"id": "z"}, 9)) is None


# -- properties --------------------------------------------------------------------------

_entity_ids = st.sampled_from(["a", "b", "c", "d", "e", "f"])
_states = st.sampled_from(["available", "ERROR", "SUBOPTIMAL", None])


@st.composite
def event_streams(draw: st.DrawFn) -> list[Event]:
    """Random but valid streams: rounds, updates with parents, deletes, from two datasources."""
    events: list[Event] = []
    clock = 0
    round_id = 0
    for step in range(draw(st.integers(1, 25))):
        clock += draw(st.integers(0, 2))
        ds = draw(st.sampled_from([FAKE, "other"]))
        kind = draw(st.sampled_from(["update", "update", "delete", "round"]))
        if kind == "round":
            round_id += 1
            members = draw(st.lists(_entity_ids, unique=True, max_size=4))
            for entity_id in members:
                entity = {"id": entity_id, "state": draw(_states)}
                events.append(snapshot(f"s{step}/{entity_id}", entity, round_id, clock, ds))
            events.append(round_end(f"s{step}/end", round_id, clock, ds))
        elif kind == "delete":
            events.append(delete(f"d{step}", draw(_entity_ids), clock, ds))
        else:
            entity = {"id": draw(_entity_ids), "state": draw(_states)}
            if draw(st.booleans()):
                entity["parent"] = draw(st.one_of(st.none(), _entity_ids))
            if draw(st.integers(0, 5)) == 0:
                entity["weak"] = True
            events.append(update(f"u{step}", entity, clock, ds))
    return events


def _fresh(events: list[Event]) -> list[Event]:
    return [Event(e.event_id, e.datasource, e.action, e.sample_time, dict(e.payload), e.round) for e in events]


@settings(max_examples=150, deadline=None)
@given(event_streams())
def test_same_events_same_order_give_identical_dumps(events: list[Event]) -> None:
    one, two = make(), make()
    one.process_many(_fresh(events))
    two.process_many(_fresh(events))
    assert one.dump() == two.dump()


@settings(max_examples=150, deadline=None)
@given(event_streams(), st.data())
def test_reapplying_applied_events_changes_nothing(events: list[Event], data: st.DataObject) -> None:
    p = make()
    p.process_many(_fresh(events))
    before = p.dump()
    again = data.draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
    for event in _fresh(again):
        assert p.process(event) is None
    assert p.dump() == before


@settings(max_examples=150, deadline=None)
@given(event_streams(), st.data())
def test_snapshot_plus_the_rest_of_the_log_equals_the_live_state(events: list[Event], data: st.DataObject) -> None:
    live = make()
    accepted = live.process_many(_fresh(events))
    cut = data.draw(st.integers(0, len(accepted)))
    log = [_logged(event) for event in accepted]  # what the event log would hand back
    early = make()
    for event in log[:cut]:
        early.process(event)
    rebuilt = Processor.load(early.dump(), early.transformers, load_state_table())
    for event in log[cut:]:
        rebuilt.process(event)
    assert rebuilt.dump() == live.dump()


def _logged(event: Event) -> Event:
    return Event(
        event.event_id,
        event.datasource,
        event.action,
        event.sample_time,
        dict(event.payload),
        event.round,
        event.received_at,
        event.sequence,
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(_entity_ids, unique=True, max_size=5), min_size=1, max_size=6), st.integers(1, 3))
def test_consistency_deletes_exactly_the_stale_entities(rounds: list[list[str]], keep: int) -> None:
    p = make(consistency_rounds=keep)
    for number, members in enumerate(rounds, start=1):
        _round(p, number, members, number)
    recent = rounds[-keep:] if len(rounds) >= keep else rounds
    expected = {vid(e) for members in recent for e in members}
    if len(rounds) < keep:  # not enough rounds yet: nothing was ever deleted
        expected = {vid(e) for members in rounds for e in members}
    assert {v.vitrage_id for v in p.graph.vertices()} == expected


_DETERMINISM_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
    from vitrail.datasources.state_tables import load_state_table
    from vitrail.graph.processor import Processor
    driver = SimulatorDriver(SimulatorShape(hosts=30, instances_per_host=3, switches=3, networks=2, seed=7,
                                            changes_per_poll=5))
    p = Processor({"simulator": driver.transformer()}, load_state_table())
    p.process_many(driver.round_events(driver.get_all(), 1, "2026-11-22 00:00:00.000000+00:00"))
    p.process_many(driver.change_events(driver.get_changes(), "c1", "2026-11-22 00:00:01.000000+00:00"))
    p.process_many(driver.round_events(driver.get_all(), 2, "2026-11-22 00:00:02.000000+00:00"))
    print(hashlib.sha256(p.dump()).hexdigest())
    """
)


def test_dump_does_not_depend_on_the_hash_seed() -> None:
    """Two processes with different string hashing build byte-identical graphs."""
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", _DETERMINISM_SCRIPT], capture_output=True, text=True, env=env, check=True
        )
        digests.add(result.stdout.strip())
    assert len(digests) == 1
    assert len(next(iter(digests))) == len(hashlib.sha256().hexdigest())
