"""The evaluator engine on hand-built templates: raise and clear, overlap, not, cascades, replay."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.evaluator.engine_fixtures import (
    add_template,
    clear_alarm,
    delete_template,
    escalate,
    host_down,
    make_processor,
    parse,
    quiet_host,
    raise_alarm,
)
from vitrail.datasources.state_tables import load_state_table
from vitrail.evaluator.engine import DEDUCED_TYPE, Evaluator, deduced_alarm_id
from vitrail.graph.events import Event
from vitrail.graph.identity import vitrage_id_for
from vitrail.graph.model import Vertex
from vitrail.graph.processor import EventRejected, Processor

HOST = "host-00001"


def host_id(name: str = HOST) -> str:
    return vitrage_id_for("RESOURCE", "nova.host", name)


def alarm_id(alarm: str) -> str:
    return vitrage_id_for("ALARM", "test.alarm", alarm)


def instances_of(processor: Processor, host: str = HOST) -> list[Vertex]:
    return [
        v for v in processor.graph.neighbors(host_id(host), labels=["contains"]) if v.vitrage_type == "nova.instance"
    ]


def deduced(processor: Processor) -> list[Vertex]:
    return sorted((v for v in processor.graph.vertices() if v.vitrage_type == DEDUCED_TYPE), key=lambda v: v.vitrage_id)


def test_a_host_alarm_raises_deduced_alarms_states_and_causes_then_clears_them() -> None:
    p, _ = make_processor()
    p.process(add_template("t1", host_down(), 1))
    assert deduced(p) == []
    p.process(raise_alarm("a1", "down-1", HOST, 2))
    instances = instances_of(p)
    assert len(instances) == 2
    for instance in instances:
        assert (instance.vitrage_state, instance.vitrage_operational_state) == ("SUBOPTIMAL", "SUBOPTIMAL")
        alarm = p.graph.vertex(deduced_alarm_id(instance.vitrage_id, "instance_down"))
        assert (alarm.name, alarm.get("severity"), alarm.get("vitrage_operational_severity")) == (
            "instance_down",
            "WARNING",
            "WARNING",
        )
        assert p.graph.get_edge(alarm.vitrage_id, instance.vitrage_id, "on") is not None
        assert p.graph.get_edge(alarm_id("down-1"), alarm.vitrage_id, "causes") is not None
        assert alarm.project_id == instance.project_id
    assert p.graph.vertex(host_id()).vitrage_operational_state == "ERROR"
    assert instances_of(p, "host-00000")[0].vitrage_state is None  # other hosts untouched

    p.process(clear_alarm("c1", "down-1", HOST, 3))
    assert deduced(p) == []
    for instance in instances_of(p):
        assert (instance.vitrage_state, instance.vitrage_operational_state) == (None, "OK")
    assert p.graph.vertex(host_id()).vitrage_operational_state == "OK"
    assert p.graph.vertex(host_id()).vitrage_state is None


def test_two_scenarios_raising_one_alarm_keep_it_until_both_stop_the_strongest_wins() -> None:
    p, _ = make_processor()
    p.process(add_template("t1", host_down("mild", "WARNING", "SUBOPTIMAL"), 1))
    p.process(add_template("t2", host_down("severe", "CRITICAL", "ERROR"), 2))
    p.process(raise_alarm("a1", "down-1", HOST, 3))
    instance = instances_of(p)[0]
    alarm_vid = deduced_alarm_id(instance.vitrage_id, "instance_down")
    assert p.graph.vertex(alarm_vid).get("severity") == "CRITICAL"
    assert instance.vitrage_state == "ERROR"
    p.process(delete_template("d2", "severe", 4))
    assert p.graph.vertex(alarm_vid).get("severity") == "WARNING"  # the other scenario still holds it
    assert instance.vitrage_state == "SUBOPTIMAL"
    p.process(delete_template("d1", "mild", 5))
    assert p.graph.get_vertex(alarm_vid) is None
    assert instance.vitrage_state is None


def test_a_template_added_after_the_alarm_applies_at_once() -> None:
    p, _ = make_processor()
    p.process(raise_alarm("a1", "down-1", HOST, 1))
    p.process(add_template("t1", host_down(), 2))
    assert len(deduced(p)) == 2


def test_a_second_alarm_on_the_same_host_keeps_the_effects_until_both_clear() -> None:
    p, _ = make_processor()
    p.process(add_template("t1", host_down(), 1))
    p.process(raise_alarm("a1", "down-1", HOST, 2))
    p.process(raise_alarm("a2", "down-2", HOST, 3))
    assert len(deduced(p)) == 2
    instance = instances_of(p)[0]
    alarm_vid = deduced_alarm_id(instance.vitrage_id, "instance_down")
    assert p.graph.get_edge(alarm_id("down-2"), alarm_vid, "causes") is not None
    p.process(clear_alarm("c1", "down-1", HOST, 4))
    assert len(deduced(p)) == 2
    assert p.graph.get_edge(alarm_id("down-1"), alarm_vid, "causes") is None
    assert p.graph.get_edge(alarm_id("down-2"), alarm_vid, "causes") is not None
    p.process(clear_alarm("c2", "down-2", HOST, 5))
    assert deduced(p) == []


def test_an_alarm_with_another_name_does_not_match() -> None:
    p, _ = make_processor()
    p.process(add_template("t1", host_down(), 1))
    p.process(raise_alarm("a1", "disk-1", HOST, 2, name="disk.full"))
    assert deduced(p) == []


def test_not_conditions_follow_the_negated_relationship() -> None:
    p, _ = make_processor(hosts=2)
    p.process(add_template("t1", quiet_host(), 1))
    quiet = {v.vitrage_id for v in deduced(p)}
    assert quiet == {deduced_alarm_id(host_id(f"host-0000{n}"), "host_quiet") for n in range(2)}
    p.process(raise_alarm("a1", "down-1", "host-00001", 2))
    assert {v.vitrage_id for v in deduced(p)} == {deduced_alarm_id(host_id("host-00000"), "host_quiet")}
    p.process(clear_alarm("c1", "down-1", "host-00001", 3))
    assert {v.vitrage_id for v in deduced(p)} == quiet


def test_templates_on_deduced_alarms_cascade_and_unwind() -> None:
    p, _ = make_processor()
    p.process(add_template("t1", host_down(), 1))
    p.process(add_template("t2", escalate(), 2))
    p.process(raise_alarm("a1", "down-1", HOST, 3))
    assert all(i.get("is_marked_down") is True for i in instances_of(p))
    p.process(clear_alarm("c1", "down-1", HOST, 4))
    assert all(i.get("is_marked_down") is None for i in instances_of(p))


def test_moving_an_instance_moves_its_deduced_state() -> None:
    p, _driver = make_processor()
    p.process(add_template("t1", host_down(), 1))
    p.process(raise_alarm("a1", "down-1", HOST, 2))
    moving = instances_of(p)[0]
    payload = {
        "kind": "instance",
        "id": moving.id,
        "name": moving.name,
        "host": "host-00002",
        "state": "ACTIVE",
        "project_id": moving.project_id,
    }
    from vitrail.graph.events import EventAction

    p.process(Event("move", "simulator", EventAction.UPDATE, "2026-11-22 01:00:09.000000+00:00", payload))
    assert moving.vitrage_state is None
    assert p.graph.get_vertex(deduced_alarm_id(moving.vitrage_id, "instance_down")) is None
    assert len(deduced(p)) == 1


def test_a_broken_or_unknown_template_event_is_rejected_and_changes_nothing() -> None:
    import pytest

    from vitrail.evaluator.engine import TEMPLATES_DATASOURCE
    from vitrail.graph.events import EventAction

    p, _ = make_processor()
    before = p.dump()
    for payload in ({"document": {"name": "x"}}, {"name": "nope", "document": {"name": "nope"}}, {"name": "n"}):
        with pytest.raises(EventRejected):
            p.process(
                Event("bad", TEMPLATES_DATASOURCE, EventAction.UPDATE, "2026-11-22 01:00:00.000000+00:00", payload)
            )
    assert p.dump() == before


def test_deleting_a_template_that_is_not_loaded_is_harmless() -> None:
    p, _ = make_processor()
    before = p.graph_dump()
    p.process(delete_template("d", "never-loaded", 1))
    assert p.graph_dump() == before


# -- replay with templates ----------------------------------------------------------------------


@st.composite
def alarm_streams(draw: st.DrawFn) -> list[Event]:
    events: list[Event] = []
    loaded: set[str] = set()
    templates = {
        "mild": host_down("mild", "WARNING"),
        "severe": host_down("severe", "CRITICAL", "ERROR"),
        "quiet": quiet_host("quiet"),
        "escalate": escalate("escalate"),
    }
    for step in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["raise", "raise", "clear", "add", "delete"]))
        host = draw(st.sampled_from(["host-00000", "host-00001", "host-00002"]))
        alarm = draw(st.sampled_from(["a", "b", "c"]))
        if kind == "raise":
            events.append(
                raise_alarm(f"r{step}", alarm, host, step, severity=draw(st.sampled_from(["critical", "warning"])))
            )
        elif kind == "clear":
            events.append(clear_alarm(f"c{step}", alarm, host, step))
        elif kind == "add":
            name = draw(st.sampled_from(sorted(templates)))
            events.append(add_template(f"t{step}", templates[name], step))
            loaded.add(name)
        else:
            events.append(delete_template(f"d{step}", draw(st.sampled_from(sorted(templates))), step))
    return events


def _copy(event: Event) -> Event:
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


@settings(max_examples=60, deadline=None)
@given(alarm_streams(), st.data())
def test_snapshot_plus_log_equals_the_live_graph_with_templates(events: list[Event], data: st.DataObject) -> None:
    live, _ = make_processor()
    accepted = live.process_many([_copy(e) for e in events])
    cut = data.draw(st.integers(0, len(accepted)))
    early, _ = make_processor()
    log = [_copy(e) for e in accepted]
    for event in log[:cut]:
        early.process(event)
    states = load_state_table()
    rebuilt = Processor.load(early.dump(), early.transformers, states, reactor=lambda g: Evaluator(g, states, parse))
    for event in log[cut:]:
        rebuilt.process(event)
    assert rebuilt.dump() == live.dump()


@settings(max_examples=40, deadline=None)
@given(alarm_streams())
def test_a_full_pass_agrees_with_the_incremental_result(events: list[Event]) -> None:
    """Loading the templates on the final graph from scratch finds exactly the live matches."""
    live, _ = make_processor()
    live.process_many([_copy(e) for e in events])
    evaluator = live.reactor
    assert isinstance(evaluator, Evaluator)
    fresh = Evaluator(live.graph, evaluator.states, parse)
    for name in evaluator.templates:
        fresh.templates[name] = evaluator.templates[name]
    fresh._reindex()
    fresh._full_pass([s for t in fresh.templates.values() for s in t.scenarios])
    assert sorted(fresh.matches) == sorted(evaluator.matches)
