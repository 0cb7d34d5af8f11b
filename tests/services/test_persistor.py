"""The persistor on a real database: batches, order, idempotence, fencing, dead letters, outages.

Most tests run on the embedded pieces (in-process bus, SQLite file), which are
a product mode; the outage test puts a TCP proxy in front of the real
PostgreSQL and cuts it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.proxy import TcpProxy
from tests.servers import POSTGRESQL, fresh_database
from vitrail.bus import InProcessBus
from vitrail.bus.base import Undecodable
from vitrail.config import PersistorSettings
from vitrail.graph.events import Event, EventAction
from vitrail.services.dead_letters import DeadLetterSender
from vitrail.services.persistor import TOMBSTONE_DATASOURCE, Persistor
from vitrail.services.topics import DEAD_LETTERS, PERSISTOR_GROUP, PROCESSED_EVENTS, encode
from vitrail.storage import DeadLetterStore, EpochStore, EventLog, create_engine, upgrade

T = "2026-11-22 00:00:00.000000+00:00"


def numbered(first: int, last: int, prefix: str = "e") -> list[Event]:
    return [
        Event(f"{prefix}-{n}", "simulator", EventAction.UPDATE, T, {"kind": "zone", "id": f"z{n}"}, sequence=n)
        for n in range(first, last + 1)
    ]


def message(epoch: int, events: list[Event]) -> dict[str, Any]:
    return {"epoch": epoch, "events": encode(events)}


async def eventually(check: Callable[[], Any], within: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'vitrail.db'}")
    await upgrade(engine)
    await EpochStore(engine).bump("graph", "test")  # epoch 1
    yield engine
    await engine.dispose()


@pytest.fixture
async def bus() -> AsyncIterator[InProcessBus]:
    bus = InProcessBus()
    yield bus
    await bus.close()


async def start(bus: InProcessBus, engine: AsyncEngine, **settings: Any) -> Persistor:
    persistor = Persistor(bus, EventLog(engine), DeadLetterStore(engine), PersistorSettings(**settings))
    await persistor.start()
    return persistor


async def test_events_are_written_in_batches_in_order_and_acked(bus: InProcessBus, engine: AsyncEngine) -> None:
    persistor = await start(bus, engine, batch_size=300, batch_timeout=0.2)
    for first in range(1, 1001, 100):
        await bus.publish(PROCESSED_EVENTS, message(1, numbered(first, first + 99)))
    log = EventLog(engine)
    await eventually(lambda: _equals(log.max_sequence(), 1000), what="1,000 events stored")
    stored = await log.read()
    assert [e.sequence for e in stored] == list(range(1, 1001))
    assert [e.event_id for e in stored[:3]] == ["e-1", "e-2", "e-3"]
    assert persistor.stats.stored == 1000
    assert persistor.stats.batches <= 5  # 300-event batches (a batch takes whole messages), not 10 writes
    assert await bus.pending(PROCESSED_EVENTS, PERSISTOR_GROUP) == 0
    await persistor.stop()


async def test_a_redelivered_batch_is_stored_once(bus: InProcessBus, engine: AsyncEngine) -> None:
    persistor = await start(bus, engine, batch_size=10, batch_timeout=0.01)
    await bus.publish(PROCESSED_EVENTS, message(1, numbered(1, 5)))
    await bus.publish(PROCESSED_EVENTS, message(1, numbered(1, 5)))  # the same again (redelivery)
    await bus.publish(PROCESSED_EVENTS, message(1, numbered(4, 8)))  # overlapping: a stored prefix and new ones
    log = EventLog(engine)
    await eventually(lambda: _equals(log.max_sequence(), 8), what="8 events stored")
    await asyncio.sleep(0.1)
    assert await log.count() == 8
    assert persistor.stats.dead_letters == 0
    await persistor.stop()


async def test_the_events_of_a_former_leader_are_discarded(bus: InProcessBus, engine: AsyncEngine) -> None:
    persistor = await start(bus, engine, batch_size=10, batch_timeout=0.01)
    await bus.publish(PROCESSED_EVENTS, message(1, numbered(1, 3)))
    log = EventLog(engine)
    await eventually(lambda: _equals(log.max_sequence(), 3), what="epoch 1 stored")
    assert await EpochStore(engine).bump("graph", "new leader") == 2
    await bus.publish(PROCESSED_EVENTS, message(1, numbered(4, 6, "old")))  # the former leader, late
    await bus.publish(PROCESSED_EVENTS, message(2, numbered(4, 6, "new")))
    await eventually(lambda: _equals(log.max_sequence(), 6), what="epoch 2 stored")
    assert [e.event_id for e in await log.read(after=3)] == ["new-4", "new-5", "new-6"]
    assert persistor.stats.fenced == 3
    assert await bus.pending(PROCESSED_EVENTS, PERSISTOR_GROUP) == 0
    await persistor.stop()


async def test_a_batch_ahead_of_the_log_waits_for_the_one_before_it(bus: InProcessBus, engine: AsyncEngine) -> None:
    persistor = await start(bus, engine, batch_size=10, batch_timeout=0.01)
    await bus.publish(PROCESSED_EVENTS, message(1, numbered(4, 6)))  # 1-3 are still with another persistor
    await asyncio.sleep(0.3)
    log = EventLog(engine)
    assert await log.max_sequence() == 0  # never stored with a hole before it
    other = Persistor(bus, EventLog(engine), DeadLetterStore(engine), PersistorSettings(batch_size=10))
    await other.event_log.append(numbered(1, 3), epoch=1, contiguous=True)  # the other one commits
    await eventually(lambda: _equals(log.max_sequence(), 6), what="the waiting batch stored")
    assert [e.sequence for e in await log.read()] == [1, 2, 3, 4, 5, 6]
    await persistor.stop()


async def test_malformed_messages_become_dead_letters_and_the_rest_is_stored(
    bus: InProcessBus, engine: AsyncEngine
) -> None:
    persistor = await start(bus, engine, batch_size=100, batch_timeout=0.05)
    await bus.publish(PROCESSED_EVENTS, message(1, numbered(1, 2)))
    await bus.publish(PROCESSED_EVENTS, "not processed events")
    await bus.publish(PROCESSED_EVENTS, {"epoch": 1, "events": [{"id": "x"}]})
    await bus.publish(PROCESSED_EVENTS, Undecodable(b"\x80\x81 not json", "text/plain", "not JSON: bad byte"))
    await bus.publish(PROCESSED_EVENTS, message(1, numbered(3, 4)))
    log = EventLog(engine)
    await eventually(lambda: _equals(log.max_sequence(), 4), what="good events stored")
    letters = DeadLetterStore(engine)
    await eventually(lambda: _equals(letters.count(), 3), what="3 dead letters")
    kept = await letters.list()
    assert {letter.body for letter in kept} >= {b'"not processed events"', b"\x80\x81 not json"}
    reasons = " | ".join(letter.reason for letter in kept)
    assert "expected an object" in reasons and "not JSON" in reasons and "datasource" in reasons
    assert all(letter.source == f"{PROCESSED_EVENTS}/{PERSISTOR_GROUP}" for letter in kept)
    assert await bus.pending(PROCESSED_EVENTS, PERSISTOR_GROUP) == 0  # acked, never requeued
    await persistor.stop()


async def test_an_event_the_database_cannot_hold_is_a_dead_letter_and_a_tombstone(
    bus: InProcessBus, engine: AsyncEngine
) -> None:
    persistor = await start(bus, engine, batch_size=100, batch_timeout=0.01)
    events = numbered(1, 3)
    events[1].event_id = "x" * 300  # longer than the column
    await bus.publish(PROCESSED_EVENTS, message(1, events))
    log = EventLog(engine)
    await eventually(lambda: _equals(log.max_sequence(), 3), what="the batch stored")
    stored = await log.read()
    assert [e.event_id for e in stored][::2] == ["e-1", "e-3"]
    assert stored[1].datasource == TOMBSTONE_DATASOURCE  # the sequence is kept: no hole
    assert "longer than" in stored[1].payload["reason"]
    (letter,) = await DeadLetterStore(engine).list()
    assert b"x" * 300 in letter.body
    await persistor.stop()


async def test_dead_letters_published_by_other_roles_are_stored(bus: InProcessBus, engine: AsyncEngine) -> None:
    persistor = await start(bus, engine)
    await DeadLetterSender(bus, "listener").send("vitrail.notifications", "not a notification", b"\x00\xff raw")
    await bus.publish(DEAD_LETTERS, {"nonsense": True})
    store = DeadLetterStore(engine)
    await eventually(lambda: _equals(store.count(), 2), what="2 dead letters")
    by_source = {letter.source: letter for letter in await store.list()}
    assert by_source["vitrail.notifications"].body == b"\x00\xff raw"
    assert by_source["vitrail.notifications"].reason == "not a notification"
    assert "a dead letter that is not one" in by_source[f"{DEAD_LETTERS}/{PERSISTOR_GROUP}"].reason
    await persistor.stop()


async def test_an_unreachable_database_pauses_consumption_and_nothing_is_lost(bus: InProcessBus) -> None:
    with fresh_database(POSTGRESQL) as url:
        direct = create_engine(url)
        await upgrade(direct)
        await EpochStore(direct).bump("graph", "test")
        proxy = await TcpProxy("127.0.0.1", 5432).start()
        through = create_engine(url.replace("127.0.0.1:5432/", f"127.0.0.1:{proxy.port}/"))
        persistor = await start(bus, through, batch_size=50, batch_timeout=0.01, retry_max=0.5)
        try:
            log = EventLog(direct)
            await bus.publish(PROCESSED_EVENTS, message(1, numbered(1, 50)))
            await eventually(lambda: _equals(log.max_sequence(), 50), what="first batch stored")
            proxy.cut()
            for first in range(51, 301, 50):
                await bus.publish(PROCESSED_EVENTS, message(1, numbered(first, first + 49)))
            await eventually(lambda: _true(persistor.paused), what="the persistor pausing")
            await asyncio.sleep(1.0)
            assert persistor.paused
            assert await log.max_sequence() == 50  # nothing written, nothing acked
            assert await bus.pending(PROCESSED_EVENTS, PERSISTOR_GROUP) + persistor._inbox.qsize() >= 1
            proxy.restore()
            await eventually(lambda: _equals(log.max_sequence(), 300), within=20, what="all stored after the outage")
            assert not persistor.paused
            assert [e.sequence for e in await log.read()] == list(range(1, 301))  # no loss, no duplicate
            assert persistor.stats.retries >= 1 and persistor.stats.paused_seconds >= 1.0
        finally:
            await persistor.stop()
            await through.dispose()
            await direct.dispose()
            await proxy.close()


async def _equals(awaitable: Any, expected: Any) -> bool:
    return bool(await awaitable == expected)


async def _true(value: bool) -> bool:
    return value
