"""Taking over: the newest snapshot plus the log after it is exactly the lost graph.

The property test folds random event streams, stores a snapshot at a random
point and the accepted events in a real (SQLite) event log, then rebuilds as
a new leader does and compares canonical dumps. The role tests run two graph
processes' worth of GraphRole on one database and one in-process bus: one
leads, the other waits, and takes over when the first one dies.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.graph.fake import FAKE, FakeTransformer
from tests.graph.test_processor import event_streams
from tests.graph.test_snapshot import _copies
from vitrail.bus import InProcessBus
from vitrail.config import GraphSettings, Settings
from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
from vitrail.datasources.state_tables import load_state_table
from vitrail.graph.events import Event
from vitrail.graph.processor import Processor, ProcessorConfig
from vitrail.graph.snapshot import encode_state
from vitrail.services.collector import Collector
from vitrail.services.graph import GraphService
from vitrail.services.graph_role import GraphRole, ProcessorFactory, load_latest_state
from vitrail.services.persistor import Persistor
from vitrail.services.templates import TemplateService
from vitrail.services.topics import BULK_EVENTS, GRAPH_GROUP, PRIORITY_EVENTS, publisher
from vitrail.storage import (
    DeadLetterStore,
    EpochStore,
    EventLog,
    SnapshotStore,
    TemplateStore,
    create_engine,
    upgrade,
)

TRANSFORMERS = {FAKE: FakeTransformer(), "other": FakeTransformer()}
CONFIG = ProcessorConfig(consistency_rounds=2, dedup_window=7)
FACTORY = ProcessorFactory(
    fresh=lambda: Processor(TRANSFORMERS, load_state_table(), CONFIG),
    load=lambda document: Processor.load(document, TRANSFORMERS, load_state_table(), CONFIG),
)


async def _rebuild_after(events: list[Event], cut: int, corrupt_latest: bool) -> tuple[bytes, bytes]:
    """(live dump, dump rebuilt from a snapshot at ``cut`` and the log after it)."""
    live = FACTORY.fresh()
    with tempfile.TemporaryDirectory() as directory:
        engine = create_engine(f"sqlite:///{Path(directory) / 'v.db'}")
        try:
            await upgrade(engine)
            epoch = await EpochStore(engine).bump("graph", "test")
            snapshots, event_log = SnapshotStore(engine), EventLog(engine)
            accepted: list[Event] = []
            for index, event in enumerate(_copies(events)):
                if index == cut:
                    state = encode_state(live)
                    await snapshots.save_state(state, epoch)
                done = live.process(event)
                if done is not None:
                    accepted.append(done)
            await event_log.append(accepted, epoch=epoch, contiguous=True)
            if corrupt_latest:  # a newer snapshot that does not decode: the one before it is used
                await snapshots.save(
                    b"not zlib",
                    sequence=live.sequence,
                    epoch=epoch,
                    format="vitrail.state+json+zlib/1",
                    entities=0,
                    relationships=0,
                    raw_bytes=8,
                )
            processor, _, _, replay = await load_latest_state(snapshots, event_log, FACTORY)
            assert replay
            service = GraphService(processor, InProcessBus(), None, [], [], GraphSettings())  # type: ignore[arg-type]
            await service.restore(event_log.iter_batches(after=processor.sequence, batch_size=3))
            return live.dump(), service.processor.dump()
        finally:
            await engine.dispose()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_streams(), cut_at=st.floats(0, 1), corrupt_latest=st.booleans())
def test_a_snapshot_and_the_log_after_it_rebuild_the_lost_graph_exactly(
    events: list[Event], cut_at: float, corrupt_latest: bool
) -> None:
    live, rebuilt = asyncio.run(_rebuild_after(events, int(cut_at * len(events)), corrupt_latest))
    assert rebuilt == live


async def test_a_log_pruned_beyond_every_snapshot_starts_empty_and_continues_the_numbering(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'v.db'}")
    await upgrade(engine)
    try:
        live = FACTORY.fresh()
        from tests.graph.fake import update

        accepted = [e for e in (live.process(update(f"u{n}", {"id": f"n{n}"}, n)) for n in range(1, 6)) if e]
        await EventLog(engine).append(accepted)
        await EventLog(engine).prune(before_sequence=3)  # events 1-2 gone, no snapshot
        processor, snapshot_sequence, _, replay = await load_latest_state(
            SnapshotStore(engine), EventLog(engine), FACTORY
        )
        assert (snapshot_sequence, replay) == (None, False)
        assert processor.sequence == 5 and processor.graph.num_vertices == 0  # the datasources are asked again
    finally:
        await engine.dispose()


# -- two graph roles on one database -------------------------------------------------------


class _Cloud:
    """What two graph processes share: the database, the bus, a collector and a persistor."""

    def __init__(self, tmp_path: Path) -> None:
        self.settings = Settings(
            data_dir=tmp_path,
            datasources=["simulator"],
            graph={"leader_heartbeat": 0.2, "snapshot_interval": 0.3},
            persistor={"batch_timeout": 0.01},
        )
        self.engine = create_engine(self.settings.database_url())
        self.bus = InProcessBus()
        self.driver = SimulatorDriver(SimulatorShape(hosts=6, instances_per_host=3, changes_per_poll=2, seed=4))
        self.collector = Collector({"simulator": self.driver}, self.bus, page_size=10)
        self.persistor: Persistor | None = None

    async def start(self) -> None:
        await upgrade(self.engine)
        self.persistor = Persistor(
            self.bus, EventLog(self.engine), DeadLetterStore(self.engine), self.settings.persistor
        )
        await self.persistor.start()

    def role(self) -> GraphRole:
        states = load_state_table()
        transformers = {"simulator": self.driver.transformer()}
        factory = ProcessorFactory(
            fresh=lambda: Processor(transformers, states),
            load=lambda document: Processor.load(document, transformers, states),
        )
        templates = TemplateService(TemplateStore(self.engine), publisher(self.bus))
        return GraphRole(
            self.settings, self.engine, self.bus, factory, self.collector, ["simulator"], ["simulator"], templates
        )

    async def close(self) -> None:
        if self.persistor is not None:
            await self.persistor.stop()
        await self.bus.close()
        await self.engine.dispose()


@pytest.fixture
async def cloud(tmp_path: Path) -> Any:
    shared = _Cloud(tmp_path)
    await shared.start()
    yield shared
    await shared.close()


async def test_one_leads_the_other_waits_and_takes_over_with_the_same_graph(cloud: _Cloud) -> None:
    first, second = cloud.role(), cloud.role()
    await first.start(wait_active=5)
    assert first.active.is_set() and first.takeover is not None and first.takeover.epoch == 1
    assert first.service is not None
    await asyncio.wait_for(first.service.ready.wait(), 10)
    await second.start(wait_active=0.5)
    assert not second.active.is_set()  # a standby: the lock is taken

    await _until(lambda: first.snapshotter is not None and first.snapshotter.taken >= 1)
    await cloud.collector.get_changes(["simulator"])  # changes after the snapshot: replayed from the log
    await cloud.collector.drain()
    service = first.service

    async def settled() -> bool:
        waiting = await cloud.bus.pending(BULK_EVENTS, GRAPH_GROUP) + await cloud.bus.pending(
            PRIORITY_EVENTS, GRAPH_GROUP
        )
        return waiting == 0 and service.unacked == 0 and service.stored_sequence == service.processor.sequence

    await _until(settled)
    lost = service.processor.graph_dump()

    # The leader dies: nothing is flushed, its lock goes with its connection.
    await first._step_down(clean=False)
    await first.lock.release()

    await asyncio.wait_for(second.active.wait(), 10)
    assert second.takeover is not None and second.takeover.epoch == 2
    assert second.takeover.snapshot_sequence is not None  # from a snapshot, not the whole log
    assert second.service is not None and second.service.processor.graph_dump() == lost
    assert not second.service.initial_get_all  # a recent state: no get_all at start (seed 001)
    await second.stop()
    await first.stop()


async def _until(check: Any, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await _holds(check):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def _holds(check: Any) -> bool:
    result = check()
    return bool(await result) if asyncio.iscoroutine(result) else bool(result)
