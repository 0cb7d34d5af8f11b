"""The alarm-history recorder: what it derives from the fold, and that replays derive the same."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.evaluator.engine_fixtures import add_template, clear_alarm, host_down, make_processor, raise_alarm
from vitrail.graph.events import Event
from vitrail.graph.history import AlarmRecord, CauseRecord, HistoryRecorder, RecordKind
from vitrail.graph.processor import Processor


def _host(processor: Processor, index: int = 0) -> str:
    hosts = sorted(v.id for v in processor.graph.vertices() if v.vitrage_type == "nova.host" and v.id)
    return hosts[index]


def _kinds(records: list) -> list[tuple[str, str, str]]:
    out = []
    for record in records:
        if isinstance(record, AlarmRecord):
            name = record.alarm.name if record.alarm else ""
            out.append(("alarm", record.kind.value, name or record.vitrage_id))
        else:
            out.append(("cause", record.kind.value, ""))
    return out


def test_a_host_alarm_and_its_deduced_alarms_start_change_and_end_with_their_causes() -> None:
    processor, _ = make_processor(hosts=2, instances=2)
    recorder = HistoryRecorder.follow(processor)
    host = _host(processor)
    processor.process(add_template("t1", host_down(), 1))
    assert recorder.drain() == []  # a template with nothing to match records nothing

    processor.process(raise_alarm("a1", "alarm-1", host, 2, severity="warning"))
    records = recorder.drain()
    started = [r for r in records if isinstance(r, AlarmRecord) and r.kind is RecordKind.STARTED]
    assert sorted(r.alarm.name for r in started) == ["host.down", "instance_down", "instance_down"]
    assert all(r.sequence == processor.sequence for r in records)
    deduced = [r for r in started if r.alarm.deduced]
    assert {r.alarm.templates for r in deduced} == {("host_down",)}
    assert all(r.alarm.resource_type == "nova.instance" for r in deduced)
    host_alarm = next(r for r in started if not r.alarm.deduced)
    assert host_alarm.alarm.resource_type == "nova.host" and host_alarm.alarm.resource_name
    causes = [r for r in records if isinstance(r, CauseRecord)]
    assert len(causes) == 2 and {c.source_id for c in causes} == {host_alarm.vitrage_id}
    assert all(c.kind is RecordKind.STARTED for c in causes)

    processor.process(raise_alarm("a2", "alarm-1", host, 3, severity="critical"))
    changed = recorder.drain()
    assert [(r.kind, r.vitrage_id) for r in changed] == [(RecordKind.CHANGED, host_alarm.vitrage_id)]
    assert changed[0].alarm.payload["severity"] == "critical"  # test.alarm has no state table: N/A

    processor.process(raise_alarm("a3", "alarm-1", host, 4, severity="critical"))
    assert recorder.drain() == []  # nothing the history keeps changed

    processor.process(clear_alarm("a4", "alarm-1", host, 5))
    ended = recorder.drain()
    assert sorted(_kinds(ended)) == sorted(
        [("cause", "ended", "")] * 2
        + [("alarm", "ended", host_alarm.vitrage_id)]
        + [("alarm", "ended", r.vitrage_id) for r in deduced]
    )
    # Links end before the alarms they join, alarms start before their links.
    kinds = [type(r).__name__ for r in ended]
    assert kinds.index("AlarmRecord") > max(i for i, k in enumerate(kinds) if k == "CauseRecord")
    assert recorder.active_alarms == 0


def test_resync_takes_the_graph_as_recorded_and_reconcile_says_what_differs() -> None:
    processor, _ = make_processor(hosts=2, instances=1)
    host = _host(processor)
    processor.process(add_template("t1", host_down(), 1))
    processor.process(raise_alarm("a1", "alarm-1", host, 2))
    recorder = HistoryRecorder.follow(processor)  # after the fact: these alarms count as recorded
    assert recorder.drain() == [] and recorder.active_alarms == 2
    assert recorder.reconcile(set(), set(), processor.sequence, "t") != []
    everything = recorder.reconcile(set(), set(), 7, "t")
    assert sorted(_kinds(everything)) == sorted(
        [("alarm", "started", "host.down"), ("alarm", "started", "instance_down"), ("cause", "started", "")]
    )
    stale = recorder.reconcile({"gone-alarm"}, {("gone-alarm", "other")}, 7, "t")
    assert ("alarm", "ended", "gone-alarm") in _kinds(stale)
    assert ("cause", "ended", "") in _kinds(stale)


_STEPS = st.lists(
    st.tuples(st.sampled_from(["raise", "clear", "severity"]), st.integers(0, 2), st.integers(0, 1)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_STEPS, st.integers(0, 24))
def test_records_after_a_restore_are_those_the_live_recorder_made(steps: list, cut: int) -> None:
    """A processor restored at any point and followed by a fresh recorder records exactly what the
    original recorded after that point (the history a new leader writes is the one the old would have)."""
    processor, _ = make_processor(hosts=3, instances=2)
    processor.process(add_template("t1", host_down(), 1))
    hosts = [_host(processor, i) for i in range(3)]
    events: list[Event] = []
    for n, (action, host, alarm) in enumerate(steps):
        alarm_id = f"alarm-{host}-{alarm}"
        if action == "clear":
            events.append(clear_alarm(f"e{n}", alarm_id, hosts[host], 10 + n))
        else:
            severity = "critical" if action == "raise" else "warning"
            events.append(raise_alarm(f"e{n}", alarm_id, hosts[host], 10 + n, severity=severity))
    live = HistoryRecorder.follow(processor)
    cut = min(cut, len(events))
    restored_document = None
    live_records = []
    for index, event in enumerate(events):
        if index == cut:
            restored_document = processor.dump()
        processor.process(event)
        records = live.drain()
        if index >= cut:
            live_records.extend(records)
    if restored_document is None:
        restored_document = processor.dump()
    restored = _reload(restored_document)
    again = HistoryRecorder.follow(restored)
    replayed = []
    for event in events[cut:]:
        copy = Event(event.event_id, event.datasource, event.action, event.sample_time, dict(event.payload))
        restored.process(copy)
        replayed.extend(again.drain())
    assert replayed == live_records


def _reload(document: bytes) -> Processor:
    from tests.evaluator import engine_fixtures as f
    from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
    from vitrail.datasources.state_tables import load_state_table
    from vitrail.evaluator.engine import Evaluator

    driver = SimulatorDriver(SimulatorShape(hosts=3, instances_per_host=2, seed=1))
    states = load_state_table()
    return Processor.load(
        document,
        {"simulator": driver.transformer(), "alarms": f.AlarmTransformer()},
        states,
        reactor=lambda graph: Evaluator(graph, states, f.parse),
    )
