"""When the leader takes snapshots, and how the history is pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.graph.fake import FAKE, FakeTransformer, round_end, update
from vitrail.config import GraphSettings, HistorySettings
from vitrail.datasources.state_tables import load_state_table
from vitrail.graph.processor import Processor
from vitrail.services.snapshots import Snapshotter, prune_history
from vitrail.storage import EpochStore, EventLog, SnapshotStore, create_engine, upgrade


def _processor() -> Processor:
    return Processor({FAKE: FakeTransformer()}, load_state_table())


async def _never_stored() -> int:
    return 0


def test_a_round_end_or_many_events_ask_for_a_snapshot_and_the_interval_needs_new_events() -> None:
    processor = _processor()
    policy = Snapshotter(processor, None, 1, GraphSettings(snapshot_max_events=3, snapshot_interval=600), _never_stored)  # type: ignore[arg-type]
    processor.process(update("u1", {"id": "a"}, 1))
    policy.applied([])
    assert not policy._wanted.is_set()
    processor.process(round_end("r1", 1, 0))
    policy.applied([round_end("r1", 1, 0)])
    assert policy._wanted.is_set()  # after every get_all round
    policy._wanted.clear()
    for n in range(2, 6):
        processor.process(update(f"u{n}", {"id": f"n{n}"}, n))
    policy.applied([])
    assert policy._wanted.is_set()  # snapshot_max_events reached
    assert not policy.due()  # the interval has not passed
    policy.last_taken -= 601
    assert policy.due()
    policy.last_sequence = processor.sequence
    assert not policy.due()  # nothing new since the last one


async def test_pruning_keeps_the_retention_and_the_events_the_oldest_kept_snapshot_needs(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'v.db'}")
    await upgrade(engine)
    try:
        epoch = await EpochStore(engine).bump("graph", "test")
        processor = _processor()
        accepted = [e for e in (processor.process(update(f"u{n}", {"id": f"n{n}"}, n)) for n in range(1, 41)) if e]
        log = EventLog(engine)
        await log.append(accepted, epoch=epoch, contiguous=True)
        store = SnapshotStore(engine)
        now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
        for sequence, age in (
            (5, timedelta(days=40)),
            (10, timedelta(days=20)),
            (20, timedelta(hours=5)),
            (30, timedelta(minutes=20)),
            (35, timedelta(minutes=10)),
            (40, timedelta(minutes=1)),
        ):
            await store.save(
                b"x",
                sequence=sequence,
                epoch=epoch,
                format="test",
                entities=1,
                relationships=0,
                raw_bytes=1,
                taken_at=now - age,
            )
        removed, pruned = await prune_history(store, log, HistorySettings(retention_days=30), now=now)
        kept = sorted(info.sequence for info in await store.list())
        assert removed == 1 and kept == [10, 20, 30, 35, 40]  # the one beyond 30 days is gone
        assert pruned == 10 and await log.first_sequence() == 11  # events up to the oldest kept snapshot
        assert await log.max_sequence() == 40
    finally:
        await engine.dispose()
