"""Snapshots on every backend: chunked round trips, finding the latest, fencing, thinning, corruption."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vitrail.storage import (
    EpochStore,
    Fenced,
    SnapshotCorrupt,
    SnapshotInfo,
    SnapshotNotFound,
    SnapshotStore,
    thinning_plan,
)
from vitrail.storage.leadership import GRAPH
from vitrail.storage.models import snapshot_chunks, snapshots

FORMAT = "vitrail.state+json+zlib/1"
T0 = datetime(2026, 11, 22, 12, 30, tzinfo=UTC)


def metadata(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "sequence": 10,
        "epoch": 1,
        "format": FORMAT,
        "entities": 3,
        "relationships": 2,
        "raw_bytes": 1000,
    }
    fields.update(changes)
    return fields


async def chunk_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(snapshot_chunks)) or 0)


async def test_round_trip_of_several_chunks_is_exact(migrated: AsyncEngine) -> None:
    store = SnapshotStore(migrated)
    data = os.urandom(3_500_000)
    info = await store.save(data, **metadata(sequence=42, epoch=0, taken_at=T0))
    assert info == SnapshotInfo(
        id=info.id,
        sequence=42,
        epoch=0,
        taken_at=T0,
        format=FORMAT,
        entities=3,
        relationships=2,
        raw_bytes=1000,
        stored_bytes=3_500_000,
        chunks=4,
    )
    assert await chunk_rows(migrated) == 4
    assert await store.load(info.id) == data
    assert await store.get(info.id) == info


async def test_small_chunks_and_empty_data(migrated: AsyncEngine) -> None:
    store = SnapshotStore(migrated, chunk_size=7)
    data = bytes(range(256)) * 3
    info = await store.save(data, **metadata())
    assert (info.chunks, info.stored_bytes) == (-(-768 // 7), 768)
    assert await store.load(info.id) == data
    exact = await store.save(b"x" * 21, **metadata())
    assert exact.chunks == 3 and await store.load(exact.id) == b"x" * 21
    empty = await store.save(b"", **metadata())
    assert (empty.chunks, empty.stored_bytes) == (0, 0)
    assert await store.load(empty.id) == b""
    with pytest.raises(ValueError, match="chunk_size"):
        SnapshotStore(migrated, chunk_size=0)


async def test_metadata_the_columns_cannot_hold_is_refused(migrated: AsyncEngine) -> None:
    store = SnapshotStore(migrated)
    for changes, message in [
        ({"format": "f" * 65}, "format must be"),
        ({"format": ""}, "format must be"),
        ({"sequence": -1}, "sequence must be an integer >= 0"),
        ({"entities": 1.5}, "entities must be"),
        ({"taken_at": datetime(2026, 1, 1)}, "naive datetime"),
    ]:
        with pytest.raises(ValueError, match=message):
            await store.save(b"data", **metadata(**changes))
    assert await store.list() == []
    assert await chunk_rows(migrated) == 0


async def test_latest_by_time_and_by_sequence(migrated: AsyncEngine) -> None:
    store = SnapshotStore(migrated, chunk_size=4)
    assert await store.latest() is None
    times = [T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)]
    first, second, third = [
        await store.save(f"state {n}".encode(), **metadata(sequence=10 * n, taken_at=times[n - 1])) for n in (1, 2, 3)
    ]
    assert await store.latest() == third
    assert await store.latest(at_or_before=times[1]) == second
    assert await store.latest(at_or_before=times[1] - timedelta(microseconds=1)) == first
    assert await store.latest(at_or_before=T0 - timedelta(seconds=1)) is None
    assert await store.latest(max_sequence=29) == second
    assert await store.latest(max_sequence=30) == third
    assert await store.latest(max_sequence=9) is None
    assert await store.latest(at_or_before=times[2], max_sequence=15) == first
    assert await store.load(second.id) == b"state 2"
    assert [info.id for info in await store.list()] == [third.id, second.id, first.id]
    assert [info.id for info in await store.list(limit=2)] == [third.id, second.id]


async def test_a_former_leader_cannot_save(migrated: AsyncEngine) -> None:
    store = SnapshotStore(migrated, chunk_size=4)
    epochs = EpochStore(migrated)
    await epochs.bump(GRAPH, "a")
    await epochs.bump(GRAPH, "b")
    with pytest.raises(Fenced, match="epoch 1 of 'graph' is stale: the current epoch is 2"):
        await store.save(b"0123456789", **metadata(epoch=1))
    assert await store.list() == []
    assert await chunk_rows(migrated) == 0
    info = await store.save(b"0123456789", **metadata(epoch=2))
    assert info.epoch == 2 and await store.load(info.id) == b"0123456789"


async def test_delete_removes_the_chunks_too(migrated: AsyncEngine) -> None:
    store = SnapshotStore(migrated, chunk_size=4)
    kept = await store.save(b"keep me please", **metadata())
    gone = await store.save(b"delete me", **metadata())
    assert await store.delete([gone.id, gone.id, 999_999]) == 1
    assert [info.id for info in await store.list()] == [kept.id]
    assert await chunk_rows(migrated) == kept.chunks
    with pytest.raises(SnapshotNotFound, match=f"no snapshot {gone.id}"):
        await store.load(gone.id)
    assert await store.get(gone.id) is None


# -- corruption ---------------------------------------------------------------------------------


@pytest.fixture
async def damaged(migrated: AsyncEngine) -> tuple[SnapshotStore, SnapshotInfo]:
    store = SnapshotStore(migrated, chunk_size=4)
    info = await store.save(b"0123456789", **metadata())  # chunks 0, 1, 2
    assert info.chunks == 3
    return store, info


async def test_a_missing_chunk_is_reported(migrated: AsyncEngine, damaged: tuple[SnapshotStore, SnapshotInfo]) -> None:
    store, info = damaged
    async with migrated.begin() as connection:
        await connection.execute(delete(snapshot_chunks).where(snapshot_chunks.c.chunk == 1))
    with pytest.raises(
        SnapshotCorrupt, match=r"2 chunks of 6 bytes in all are stored, its metadata says 3 chunks of 10"
    ):
        await store.load(info.id)


async def test_a_misnumbered_chunk_is_reported(
    migrated: AsyncEngine, damaged: tuple[SnapshotStore, SnapshotInfo]
) -> None:
    store, info = damaged
    async with migrated.begin() as connection:
        await connection.execute(update(snapshot_chunks).where(snapshot_chunks.c.chunk == 1).values(chunk=7))
    with pytest.raises(SnapshotCorrupt, match=r"chunk 1 of 3 \(numbered from 0\) is missing"):
        await store.load(info.id)


async def test_a_resized_chunk_is_reported(migrated: AsyncEngine, damaged: tuple[SnapshotStore, SnapshotInfo]) -> None:
    store, info = damaged
    async with migrated.begin() as connection:
        await connection.execute(update(snapshot_chunks).where(snapshot_chunks.c.chunk == 2).values(data=b"8"))
    with pytest.raises(
        SnapshotCorrupt, match="3 chunks of 9 bytes in all are stored, its metadata says 3 chunks of 10"
    ):
        await store.load(info.id)


async def test_metadata_without_chunks_is_reported(
    migrated: AsyncEngine, damaged: tuple[SnapshotStore, SnapshotInfo]
) -> None:
    store, info = damaged
    async with migrated.begin() as connection:
        await connection.execute(delete(snapshot_chunks))
    with pytest.raises(SnapshotCorrupt, match=f"snapshot {info.id} is corrupt: 0 chunks"):
        await store.load(info.id)


# -- thinning -----------------------------------------------------------------------------------

NOW = datetime(2026, 11, 22, 12, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
RETENTION = timedelta(days=30)

# (name, taken_at, kept?) under NOW and RETENTION, keep_latest=3.
CASES: list[tuple[str, datetime, bool]] = [
    ("beyond retention", NOW - RETENTION - timedelta(seconds=1), False),
    ("at the retention edge", NOW - RETENTION, True),  # alone on its day
    ("day 11-10, first", datetime(2026, 11, 10, 1, 0, tzinfo=UTC), True),
    ("day 11-10, second", datetime(2026, 11, 10, 23, 0, tzinfo=UTC), False),
    ("day 11-20, first", datetime(2026, 11, 20, 3, 0, tzinfo=UTC), True),
    ("day 11-20, second", datetime(2026, 11, 20, 18, 0, tzinfo=UTC), False),
    ("day 11-21, first", datetime(2026, 11, 21, 12, 20, tzinfo=UTC), True),
    ("exactly 24 h ago: daily, so second of 11-21", NOW - DAY, False),  # hourly, it would be alone in 12:00
    ("hour 11-21 12:00, within 24 h", datetime(2026, 11, 21, 12, 45, tzinfo=UTC), True),
    ("hour 11-21 13:00, first", datetime(2026, 11, 21, 13, 5, tzinfo=UTC), True),
    ("hour 11-21 13:00, second", datetime(2026, 11, 21, 13, 55, tzinfo=UTC), False),
    ("hour 10:00", datetime(2026, 11, 22, 10, 10, tzinfo=UTC), True),
    ("hour 11:00, first", datetime(2026, 11, 22, 11, 5, tzinfo=UTC), True),
    ("hour 11:00, second", datetime(2026, 11, 22, 11, 45, tzinfo=UTC), False),
    ("latest 3", datetime(2026, 11, 22, 12, 0, tzinfo=UTC), True),
    ("latest 2", datetime(2026, 11, 22, 12, 10, tzinfo=UTC), True),
    ("latest 1", datetime(2026, 11, 22, 12, 20, tzinfo=UTC), True),
]
NAMES = {number: name for number, (name, _, _) in enumerate(CASES, start=1)}
OLDEST_FIRST = [name for name, _, _ in sorted(CASES, key=lambda case: case[1])]


def test_thinning_plan() -> None:
    taken = [(number, when, _sequence(when)) for number, (_, when, _) in enumerate(CASES, start=1)]
    doomed = thinning_plan(reversed(taken), NOW, RETENTION, keep_latest=3)
    kept_by_name = {name: kept for name, _, kept in CASES}
    assert [NAMES[n] for n in doomed] == [name for name in OLDEST_FIRST if not kept_by_name[name]]
    kept = [item for item in taken if item[0] not in doomed]
    # Stable: thinning what was kept at the same time deletes nothing more.
    assert thinning_plan(kept, NOW, RETENTION, keep_latest=3) == []
    # An hour and a new snapshot later: the retention edge expires, the hours of 11-21 that
    # left the last 24 h lose to that day's oldest, and "latest 3" stays as hour 12:00's oldest.
    newer = (99, NOW + timedelta(minutes=40), _sequence(NOW + timedelta(minutes=40)))
    later = thinning_plan([*kept, newer], NOW + HOUR, RETENTION, keep_latest=3)
    assert [NAMES[n] for n in later] == [
        "at the retention edge",
        "hour 11-21 12:00, within 24 h",
        "hour 11-21 13:00, first",
    ]


def _sequence(moment: datetime) -> int:
    """A sequence number growing with time: one event a second."""
    return int((moment - (NOW - 2 * RETENTION)).total_seconds())


def test_thinning_keeps_snapshots_that_bound_the_replay() -> None:
    # One snapshot every 10 minutes for 3 hours, 10,000 events apart, all within the hourly window:
    # the hourly buckets keep one in six (60,000 events apart).
    start = NOW - timedelta(hours=3)
    taken = [(n, start + timedelta(minutes=10 * n), 10_000 * n) for n in range(18)]
    log_end = 10_000 * 17 + 500
    by_time = thinning_plan(taken, NOW, RETENTION, keep_latest=1)
    kept = [n for n, _, _ in taken if n not in by_time]
    assert max(b - a for a, b in itertools.pairwise(10_000 * n for n in kept)) > 25_000
    doomed = thinning_plan(taken, NOW, RETENTION, keep_latest=1, max_replay_events=25_000, log_end=log_end)
    assert set(doomed) < set(by_time)  # only ever fewer deletions, oldest first as always
    assert doomed == sorted(doomed)
    kept = [sequence for n, _, sequence in taken if n not in doomed]
    assert max(b - a for a, b in itertools.pairwise([*kept, log_end])) <= 25_000
    # Greedy: every snapshot kept for the bound is needed (without it, a gap would exceed the bound).
    for sequence in set(kept) - {10_000 * n for n, _, _ in taken if n not in by_time}:
        without = [s for s in kept if s != sequence]
        assert max(b - a for a, b in itertools.pairwise([*without, log_end])) > 25_000
    # Stable: a second run deletes nothing more.
    survivors = [item for item in taken if item[0] not in doomed]
    assert thinning_plan(survivors, NOW, RETENTION, keep_latest=1, max_replay_events=25_000, log_end=log_end) == []
    # Snapshots beyond the retention are not kept for the bound, and gaps the snapshots taken
    # cannot close stay as they are.
    sparse = [(1, NOW - RETENTION - DAY, 0), (2, NOW - DAY, 100_000), (3, NOW - HOUR, 200_000)]
    assert thinning_plan(sparse, NOW, RETENTION, keep_latest=1, max_replay_events=10, log_end=300_000) == [1]


def test_the_newest_snapshots_survive_the_retention() -> None:
    taken = [(n, NOW - timedelta(days=100 + n), 10 - n) for n in range(1, 6)]  # all far beyond retention
    assert thinning_plan(taken, NOW, RETENTION, keep_latest=2) == [5, 4, 3]
    assert thinning_plan(taken, NOW, RETENTION, keep_latest=1) == [5, 4, 3, 2]


def test_thinning_plan_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="keep_latest"):
        thinning_plan([], NOW, RETENTION, keep_latest=0)
    with pytest.raises(ValueError, match="retention"):
        thinning_plan([], NOW, timedelta(0))
    with pytest.raises(ValueError, match="naive"):
        thinning_plan([], NOW.replace(tzinfo=None), RETENTION)
    with pytest.raises(ValueError, match="max_replay_events"):
        thinning_plan([], NOW, RETENTION, max_replay_events=0)


async def test_thin_deletes_what_the_plan_gives_up(migrated: AsyncEngine) -> None:
    store = SnapshotStore(migrated, chunk_size=4)
    ids: dict[str, int] = {}
    for name, when, _ in CASES:
        ids[name] = (await store.save(name.encode(), **metadata(taken_at=when))).id
    removed = await store.thin(NOW, RETENTION, keep_latest=3)
    kept_by_name = {name: kept for name, _, kept in CASES}
    assert removed == [ids[name] for name in OLDEST_FIRST if not kept_by_name[name]]
    remaining = {info.id for info in await store.list()}
    assert remaining == {ids[name] for name, _, kept in CASES if kept}
    async with migrated.connect() as connection:
        chunk_owners = set((await connection.scalars(select(snapshot_chunks.c.snapshot_id).distinct())).all())
        rows = await connection.scalar(select(func.count()).select_from(snapshots))
    assert chunk_owners == remaining and rows == len(remaining)
    assert await store.thin(NOW, RETENTION, keep_latest=3) == []
