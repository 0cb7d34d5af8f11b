"""The graph at a time T: rebuilt from the nearest snapshot and the log, equal to what the live graph was.

The property test folds random event streams with reception times that repeat
and go slightly backwards (as they do when a priority alarm overtakes a bulk
page), stores the accepted events in a real event log and snapshots at random
points, records the live processor's canonical dump after every event, and
checks for random times T that the sequence the log gives for T is the one the
definition gives, and that the graph rebuilt there dumps to the recorded bytes.
The service tests run the real worker process.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.graph.fake import FAKE, FakeTransformer, delete, round_end, snapshot, update
from tests.graph.test_processor import event_streams
from tests.graph.test_snapshot import _copies
from tests.servers import POSTGRESQL, fresh_database
from tests.time_travel_scenario import HistoryScenario, recent_start, scenario_settings
from vitrail.api.history import OutsideWindow
from vitrail.config import Settings
from vitrail.datasources.state_tables import load_state_table
from vitrail.evaluator.engine import DEDUCED_TYPE
from vitrail.graph.events import Event, format_timestamp
from vitrail.graph.processor import Processor, ProcessorConfig
from vitrail.graph.queries import AlarmListRequest, NotFound, TopologyRequest, Viewer
from vitrail.graph.snapshot import encode_state
from vitrail.services.graph_role import ProcessorFactory
from vitrail.services.snapshots import prune_history
from vitrail.services.time_travel import Reconstructor, TimeTravel, compare
from vitrail.storage import EpochStore, EventLog, SnapshotStore, create_engine, upgrade

TRANSFORMERS = {FAKE: FakeTransformer(), "other": FakeTransformer()}
CONFIG = ProcessorConfig(consistency_rounds=2, dedup_window=7)
FACTORY = ProcessorFactory(
    fresh=lambda: Processor(TRANSFORMERS, load_state_table(), CONFIG),
    load=lambda document: Processor.load(document, TRANSFORMERS, load_state_table(), CONFIG),
)
BASE = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def expected_sequence(logged: list[Event], moment: datetime) -> int:
    """The definition: one less than the first logged event received after ``moment``, else the last."""
    for event in logged:
        if event.received_at is not None and datetime.fromisoformat(event.received_at) > moment:
            return event.sequence - 1  # type: ignore[operator]
    return logged[-1].sequence if logged else 0  # type: ignore[return-value]


@st.composite
def receptions(draw: st.DrawFn, count: int) -> list[float | None]:
    """Reception offsets (s) mostly increasing, some equal, some a little earlier than the one before,
    a few missing (events logged without a reception time)."""
    offsets: list[float | None] = []
    clock = 0.0
    for _ in range(count):
        clock += draw(st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.0]))
        kind = draw(st.sampled_from(["in order"] * 6 + ["earlier", "none"]))
        offsets.append(None if kind == "none" else clock - 1.5 if kind == "earlier" else clock)
    return offsets


async def _fold_and_log(
    url: str, events: list[Event], offsets: list[float | None], cuts: set[int]
) -> tuple[list[Event], dict[int, bytes]]:
    """Fold ``events`` (stamped with ``offsets``), log the accepted ones, snapshot before each index of
    ``cuts``; the logged events and the live dump after every sequence number."""
    live = FACTORY.fresh()
    dumps = {0: live.dump()}
    engine = create_engine(url)
    try:
        await upgrade(engine)
        epoch = await EpochStore(engine).bump("graph", "test")
        snapshots = SnapshotStore(engine)
        logged: list[Event] = []
        for index, (event, offset) in enumerate(zip(_copies(events), offsets, strict=True)):
            if index in cuts:
                state = encode_state(live)
                await snapshots.save_state(state, epoch)
            if offset is not None:
                event.received_at = format_timestamp(BASE + timedelta(seconds=offset))
            done = live.process(event)
            if done is not None:
                logged.append(done)
                dumps[live.sequence] = live.dump()
        await EventLog(engine).append(logged, epoch=epoch, contiguous=True)
    finally:
        await engine.dispose()
    return logged, dumps


def _moments(logged: list[Event], picks: list[int]) -> list[datetime]:
    """Times around the receptions: just before, at, just after each, before all and after all."""
    stamps = sorted({datetime.fromisoformat(e.received_at) for e in logged if e.received_at is not None})
    candidates = [BASE - timedelta(seconds=5), BASE + timedelta(hours=1)]
    for stamp in stamps:
        candidates += [stamp - timedelta(microseconds=1), stamp, stamp + timedelta(milliseconds=500)]
    return [candidates[pick % len(candidates)] for pick in picks]


def _check(url: str, events: list[Event], offsets: list[float | None], cuts: set[int], picks: list[int]) -> None:
    logged, dumps = asyncio.run(_fold_and_log(url, events, offsets, cuts))
    rebuilder = Reconstructor(Settings(database={"url": url}, history={"reconstruction_cache": 2}), factory=FACTORY)
    try:
        for moment in _moments(logged, picks):
            sequence = rebuilder.loop.run_until_complete(rebuilder.event_log.sequence_at(moment))
            assert sequence == expected_sequence(logged, moment), moment
            assert rebuilder.processor_at(sequence).dump() == dumps[sequence], (moment, sequence)
    finally:
        rebuilder.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_streams(), data=st.data())
def test_the_graph_rebuilt_at_t_is_the_graph_the_live_one_was_at_t(events: list[Event], data: st.DataObject) -> None:
    offsets = data.draw(receptions(len(events)))
    cuts = set(data.draw(st.lists(st.integers(0, max(0, len(events) - 1)), max_size=3)))
    picks = data.draw(st.lists(st.integers(0, 10_000), min_size=1, max_size=6))
    with tempfile.TemporaryDirectory() as directory:
        _check(f"sqlite:///{Path(directory) / 'v.db'}", events, offsets, cuts, picks)


@pytest.mark.postgres
def test_the_graph_rebuilt_at_t_on_postgresql() -> None:
    events = [
        snapshot("s1/a", {"id": "a", "state": "available"}, 1, 1),
        snapshot("s1/b", {"id": "b", "state": "ERROR"}, 1, 1),
        round_end("s1/end", 1, 1),
        update("u1", {"id": "c", "parent": "a"}, 2),
        update("u2", {"id": "b", "state": "available"}, 3),
        update("u2", {"id": "b", "state": "available"}, 3),  # a duplicate: not logged
        delete("d1", "a", 4),
        snapshot("s2/b", {"id": "b", "state": "SUBOPTIMAL"}, 2, 5, "other"),
        round_end("s2/end", 2, 5, "other"),
        update("u3", {"id": "d", "parent": "c", "weak": True}, 6, "other"),
        snapshot("s3/c", {"id": "c"}, 3, 7),
        round_end("s3/end", 3, 7),
    ]
    offsets: list[float | None] = [0, 0, 0, 1, 2.5, 3, 2, None, 4, 4, 6, 5]
    with fresh_database(POSTGRESQL) as url:
        _check(url, events, offsets, {2, len(events) // 2}, list(range(0, 200, 7)))


# -- the reconstructor: snapshots, cache, unreachable times ------------------------------------------


@pytest.fixture
def scenario(tmp_path: Path) -> HistoryScenario:
    built = HistoryScenario(scenario_settings(tmp_path, reconstruction_cache=2), recent_start())
    asyncio.run(built.build())
    return built


def test_a_rebuild_starts_from_the_nearest_snapshot_and_is_cached(scenario: HistoryScenario) -> None:
    rebuilder = Reconstructor(scenario.settings)
    try:
        moments = scenario.moments
        after_snapshot = rebuilder.processor_at(moments["host_down"].sequence)
        assert after_snapshot.dump() == moments["host_down"].dump
        assert rebuilder.last_rebuild is not None
        assert rebuilder.last_rebuild["snapshot_sequence"] == moments["get_all"].sequence
        assert rebuilder.last_rebuild["replayed"] == moments["host_down"].sequence - moments["get_all"].sequence
        before_snapshot = rebuilder.processor_at(moments["template"].sequence)
        assert before_snapshot.dump() == moments["template"].dump
        assert rebuilder.last_rebuild["snapshot_sequence"] is None  # the log from its start
        # A cache hit is the very processor, not rebuilt.
        rebuilds = rebuilder.last_rebuild
        assert rebuilder.processor_at(moments["host_down"].sequence) is after_snapshot
        assert rebuilder.last_rebuild is rebuilds
        # Least recently used out: host_down was used last, so template goes.
        rebuilder.processor_at(moments["host_up"].sequence)
        assert list(rebuilder.cache) == [moments["host_down"].sequence, moments["host_up"].sequence]
        assert rebuilder.processor_at(moments["template"].sequence) is not before_snapshot
    finally:
        rebuilder.close()


def test_an_unloadable_snapshot_is_passed_over(scenario: HistoryScenario) -> None:
    async def corrupt() -> None:
        engine = create_engine(scenario.settings.database_url())
        try:
            epoch = await EpochStore(engine).bump("graph", "corrupt")
            sequence = scenario.moments["changes"].sequence
            await SnapshotStore(engine).save(
                b"not zlib", sequence=sequence, epoch=epoch, format=encode_state(FACTORY.fresh()).format,
                entities=0, relationships=0, raw_bytes=8,
            )  # fmt: skip
        finally:
            await engine.dispose()

    asyncio.run(corrupt())
    rebuilder = Reconstructor(scenario.settings)
    try:
        assert rebuilder.processor_at(scenario.moments["host_up"].sequence).dump() == scenario.moments["host_up"].dump
        assert rebuilder.last_rebuild is not None
        assert rebuilder.last_rebuild["snapshot_sequence"] == scenario.moments["get_all"].sequence
    finally:
        rebuilder.close()


# -- the service: the window, the worker process, the diff ---------------------------------------------


@pytest.fixture
async def service(scenario: HistoryScenario) -> Any:
    engine = create_engine(scenario.settings.database_url())
    history = TimeTravel(scenario.settings, engine)
    yield history
    await history.close()
    await engine.dispose()


async def test_queries_at_t_answer_as_the_live_graph_did(scenario: HistoryScenario, service: TimeTravel) -> None:
    viewer = Viewer()
    down = scenario.moments["host_down"]
    alarms = await service.alarms(down.at, AlarmListRequest(), viewer)
    assert _by_id(alarms) == _by_id(down.alarms)
    assert {a["vitrage_type"] for a in alarms} == {"doctor", DEDUCED_TYPE}
    deduced = scenario.deduced_alarm("host_down")
    rca = await service.rca(down.at, deduced["vitrage_id"], viewer, False)
    assert sorted(node["vitrage_type"] for node in rca["nodes"]) == ["doctor", DEDUCED_TYPE, DEDUCED_TYPE]
    assert len(rca["links"]) == 2  # the host alarm causes both instances' alarms
    # The same alarm once the host came back: gone, as it was from the live graph then.
    up = scenario.moments["host_up"]
    assert await service.alarms(up.at, AlarmListRequest(), viewer) == up.alarms == []
    with pytest.raises(NotFound):
        await service.alarm(up.at, deduced["vitrage_id"], viewer)
    assert await service.alarm(down.at, deduced["vitrage_id"], viewer) == deduced
    resources = await service.resources(up.at, viewer, False, None, None)
    assert _by_id(resources) == _by_id(up.resources)
    counts = await service.resource_count(up.at, viewer, False, "nova.instance", None, "vitrage_aggregated_state")
    assert sum(counts.values()) == 8
    topology = await service.topology(down.at, TopologyRequest(), viewer)
    assert len(topology["nodes"]) == len(down.resources) + len(down.alarms)
    assert (await service.alarm_count(down.at, viewer, False))["CRITICAL"] == len(down.alarms)


async def test_the_window_refuses_the_future_and_the_past_beyond_it(
    scenario: HistoryScenario, service: TimeTravel
) -> None:
    window = await service.window()
    first_received = scenario.start + timedelta(minutes=1)  # the template event, the log's first
    assert window.start == first_received
    assert window.end <= datetime.now(UTC)
    future = datetime.now(UTC) + timedelta(minutes=5)
    with pytest.raises(OutsideWindow, match=r"at: .* is in the future; the graph can be rebuilt from .* to .*"):
        await service.alarms(future, AlarmListRequest(), Viewer())
    start = format_timestamp(first_received)
    expected = re.escape(f"outside the history window; the graph can be rebuilt from {start}")
    with pytest.raises(OutsideWindow, match=expected):
        await service.topology(first_received - timedelta(seconds=1), TopologyRequest(), Viewer())
    # Within the window but before anything was received: the empty graph it was.
    assert await service.resources(first_received, Viewer(), True, None, None) == []
    # The retention bounds the window too.
    service.settings = scenario_settings(scenario.settings.data_dir, retention_days=0.01)
    window = await service.window()
    assert window.start is not None and window.start > first_received + timedelta(minutes=30)


async def test_pruning_the_log_moves_the_start_of_the_window(scenario: HistoryScenario, service: TimeTravel) -> None:
    engine = create_engine(scenario.settings.database_url())
    try:
        log, snapshots = EventLog(engine), SnapshotStore(engine)
        removed, pruned = await prune_history(snapshots, log, scenario.settings.history)
        assert removed == 0 and pruned == scenario.moments["get_all"].sequence  # the events before the snapshot
    finally:
        await engine.dispose()
    (snapshot,) = await service.snapshots.list()
    window = await service.window()
    assert window.start == snapshot.taken_at  # its events were pruned: when it was taken
    with pytest.raises(OutsideWindow, match="outside the history window"):
        await service.resources(scenario.moments["template"].at, Viewer(), True, None, None)
    down = scenario.moments["host_down"]
    assert _by_id(await service.alarms(down.at, AlarmListRequest(), Viewer())) == _by_id(down.alarms)


async def test_diff_between_two_times(scenario: HistoryScenario, service: TimeTravel) -> None:
    moments = scenario.moments
    diff = await service.diff(moments["get_all"].at, moments["host_down"].at, Viewer())
    assert diff["from"] == {"time": format_timestamp(moments["get_all"].at), "sequence": moments["get_all"].sequence}
    assert diff["to"]["sequence"] == moments["host_down"].sequence
    assert diff["summary"]["alarms"] == {"added": 3, "removed": 0, "changed": 0}  # the host's and its 2 instances'
    assert _by_id(diff["alarms"]["added"]) == _by_id(moments["host_down"].alarms)
    changed = {entry["name"]: entry["changes"] for entry in diff["resources"]["changed"]}
    assert changed["host-00001"]["vitrage_aggregated_state"] == {"from": "AVAILABLE", "to": "ERROR"}
    assert diff["summary"]["resources"] == {"added": 0, "removed": 0, "changed": 3}
    assert all("vitrage_sample_timestamp" not in c for c in changed.values())
    back = await service.diff(moments["host_down"].at, moments["host_up"].at, Viewer(), limit=1)
    assert back["summary"]["alarms"] == {"added": 0, "removed": 3, "changed": 0}
    assert len(back["alarms"]["removed"]) == 1  # limited; the summary counts them all
    same = await service.diff(moments["changes"].at, moments["changes"].at, Viewer())
    assert same["summary"] == {kind: {"added": 0, "removed": 0, "changed": 0} for kind in ("resources", "alarms")}
    with pytest.raises(OutsideWindow, match=r"from: .* is after to"):
        await service.diff(moments["host_up"].at, moments["host_down"].at, Viewer())


def test_compare_names_each_changed_property() -> None:
    before = {"a": {"vitrage_id": "a", "name": "x", "state": "OK", "update_timestamp": "1"}, "b": {"vitrage_id": "b"}}
    after = {"a": {"vitrage_id": "a", "name": "x", "state": "ERROR", "update_timestamp": "2"}, "c": {"vitrage_id": "c"}}
    assert compare(before, after) == {
        "added": [{"vitrage_id": "c"}],
        "removed": [{"vitrage_id": "b"}],
        "changed": [
            {"vitrage_id": "a", "vitrage_type": None, "name": "x", "changes": {"state": {"from": "OK", "to": "ERROR"}}}
        ],
    }
    only_stamps = {"a": {**after["a"], "state": "OK"}}
    assert compare(before, only_stamps)["changed"] == []


def _by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["vitrage_id"]: row for row in rows}
