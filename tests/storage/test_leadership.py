"""Fencing epochs on every backend: bumps, concurrent takeovers, the share lock, the watermark."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.storage.test_event_log import make_events
from vitrail.storage import EpochStore, EventLog, Fenced, check_epoch, create_engine, read_watermark
from vitrail.storage.leadership import GRAPH, writer_engine


async def test_bumps_count_from_one_and_record_the_holder(migrated: AsyncEngine) -> None:
    store = EpochStore(migrated)
    assert await store.current(GRAPH) is None
    assert await store.holder(GRAPH) is None
    before = datetime.now(UTC)
    assert [await store.bump(GRAPH, f"host:{n}") for n in range(3)] == [1, 2, 3]
    assert await store.current(GRAPH) == 3
    held = await store.holder(GRAPH)
    assert held is not None
    epoch, holder, acquired_at = held
    assert (epoch, holder) == (3, "host:2")
    assert before - timedelta(seconds=1) <= acquired_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert acquired_at.tzinfo is not None
    # Roles are independent.
    assert await store.bump("other", "h") == 1
    assert await store.current(GRAPH) == 3


async def test_a_long_holder_name_is_cut_not_refused(migrated: AsyncEngine) -> None:
    store = EpochStore(migrated)
    assert await store.bump(GRAPH, "h" * 300) == 1
    held = await store.holder(GRAPH)
    assert held is not None and held.holder == "h" * 255


async def test_concurrent_bumps_from_two_engines_get_distinct_epochs(migrated: AsyncEngine, database_url: str) -> None:
    """Both engines race to create the missing row, then to increment it."""
    other = create_engine(database_url)
    try:
        stores = [EpochStore(migrated), EpochStore(other)]
        epochs = await asyncio.gather(*(stores[n % 2].bump(GRAPH, f"holder-{n}") for n in range(6)))
    finally:
        await other.dispose()
    assert sorted(epochs) == [1, 2, 3, 4, 5, 6]
    assert await EpochStore(migrated).current(GRAPH) == 6


class _DriverError(Exception):
    """Stands for a driver's exception: MySQL's carry the error number first, PostgreSQL's a sqlstate."""

    def __init__(self, *args: object, sqlstate: str | None = None) -> None:
        super().__init__(*args)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (_DriverError(1213, "Deadlock found when trying to get lock"), True),
        (_DriverError("deadlock detected", sqlstate="40P01"), True),
        (_DriverError(1205, "Lock wait timeout exceeded"), False),
    ],
    ids=["mysql-deadlock", "postgresql-deadlock", "lock-wait-timeout"],
)
async def test_a_bump_that_loses_a_deadlock_is_retried(
    migrated: AsyncEngine, monkeypatch: pytest.MonkeyPatch, error: _DriverError, retried: bool
) -> None:
    """MariaDB deadlocks two first bumps on its gap locks; the server rolls one back, which runs again."""
    store = EpochStore(migrated)
    real_bump = EpochStore._bump
    calls = 0

    async def losing_once(self: EpochStore, connection: AsyncConnection, name: str, holder: str) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            await real_bump(self, connection, name, holder)  # rolled back with the transaction
            raise OperationalError("UPDATE leadership ...", {}, error)
        return await real_bump(self, connection, name, holder)

    monkeypatch.setattr(EpochStore, "_bump", losing_once)
    if retried:
        assert await store.bump(GRAPH, "h") == 1
        assert calls == 2
    else:
        with pytest.raises(OperationalError, match="Lock wait timeout"):
            await store.bump(GRAPH, "h")
        assert calls == 1
        assert await store.current(GRAPH) is None


async def test_check_epoch_refuses_a_stale_epoch(migrated: AsyncEngine) -> None:
    store = EpochStore(migrated)
    async with migrated.begin() as connection:
        await check_epoch(connection, GRAPH, 0)  # no row yet: epoch 0, anything passes
    await store.bump(GRAPH, "a")
    await store.bump(GRAPH, "b")
    with pytest.raises(Fenced, match=r"epoch 1 of 'graph' is stale: the current epoch is 2") as caught:
        async with migrated.begin() as connection:
            await check_epoch(connection, GRAPH, 1)
    assert (caught.value.name, caught.value.epoch, caught.value.current) == (GRAPH, 1, 2)
    for epoch in (2, 3):
        async with migrated.begin() as connection:
            await check_epoch(connection, GRAPH, epoch)
    with pytest.raises(TypeError, match="epoch must be an integer"):
        async with migrated.begin() as connection:
            await check_epoch(connection, GRAPH, True)


@pytest.mark.parametrize("immediate", [False, True], ids=["plain", "writer-engine"])
async def test_a_bump_waits_for_a_writer_holding_the_share_lock(
    migrated: AsyncEngine, database_url: str, immediate: bool
) -> None:
    store = EpochStore(migrated)
    assert await store.bump(GRAPH, "first") == 1
    other = create_engine(database_url)
    writer = writer_engine(migrated) if immediate else migrated
    try:
        async with writer.begin() as connection:
            await check_epoch(connection, GRAPH, 1)
            bump = asyncio.create_task(EpochStore(other).bump(GRAPH, "second"))
            await asyncio.sleep(0.3)
            assert not bump.done(), "the bump did not wait for the writer's transaction"
        # The writer committed: the bump goes through.
        assert await asyncio.wait_for(bump, timeout=10) == 2
    finally:
        await other.dispose()
    # And a writer that starts now sees the new epoch.
    with pytest.raises(Fenced):
        async with migrated.begin() as connection:
            await check_epoch(connection, GRAPH, 1)


async def test_read_watermark(migrated: AsyncEngine) -> None:
    assert await read_watermark(migrated, GRAPH) == (None, 0)
    epoch = await EpochStore(migrated).bump(GRAPH, "h")
    assert await read_watermark(migrated, GRAPH) == (1, 0)
    await EventLog(migrated).append(make_events(1, 7), epoch=epoch)
    assert await read_watermark(migrated, GRAPH) == (1, 7)
    await EpochStore(migrated).bump(GRAPH, "h2")
    assert await read_watermark(migrated, GRAPH) == (2, 7)
    assert await read_watermark(migrated, "nobody") == (None, 7)
