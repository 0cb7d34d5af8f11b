"""The event log's answers for the graph at a time T, on every backend: the sequence of a time,
the reception times the history window is made of, and the fast batches a reconstruction reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from tests.storage.test_event_log import UNICODE_PAYLOAD, make_event
from vitrail.graph.events import EventAction, format_timestamp
from vitrail.storage import EventLog, events

BASE = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


def stamp(seconds: float | None) -> str | None:
    return None if seconds is None else format_timestamp(at(seconds))


async def test_sequence_at_is_the_prefix_received_by_then(event_log: EventLog) -> None:
    assert await event_log.sequence_at(at(0)) == 0  # an empty log
    # Reception times of events 1..8: disorder (5 before 4), a repeat, one without a time.
    received = [1, 2, 2, 5, 4, None, 7, 8]
    await event_log.append([make_event(n, received_at=stamp(r)) for n, r in enumerate(received, start=1)])
    expected = {
        0.5: 0,  # nothing received yet
        1: 1,
        1.5: 1,
        2: 3,
        4: 3,  # event 5 (received at 4) waits for event 4 (received at 5): the prefix ends at 3
        4.9: 3,
        5: 6,  # event 6 has no reception time: it never ends the prefix
        6.99: 6,
        7: 7,
        8: 8,
        100: 8,  # nothing received after: the whole log
    }
    for moment, sequence in expected.items():
        assert await event_log.sequence_at(at(moment)) == sequence, moment
    with pytest.raises(ValueError, match="naive"):
        await event_log.sequence_at(at(1).replace(tzinfo=None))


async def test_sequence_at_takes_the_shorter_walk_either_way(event_log: EventLog) -> None:
    # Late in a long log the received_at index walks few events, early the primary key does:
    # both give the definition's answer, including out-of-order events far from the answer.
    received: list[float] = [float(n) for n in range(1, 201)]
    received[10] = 150.5  # event 11 received very late
    received[180] = 20.5  # event 181 received early
    await event_log.append([make_event(n, received_at=stamp(r)) for n, r in enumerate(received, start=1)])
    for moment in (5, 20.5, 100, 150, 150.5, 190, 199.5, 300):
        first_later = next((n for n, r in enumerate(received, start=1) if r > moment), None)
        expected = 200 if first_later is None else first_later - 1
        assert await event_log.sequence_at(at(moment)) == expected, moment


async def test_reception_times_of_the_window(event_log: EventLog) -> None:
    assert await event_log.earliest_received() is None
    await event_log.append([make_event(n, received_at=stamp(r)) for n, r in ((1, None), (2, 9), (3, 4), (4, 6))])
    assert await event_log.earliest_received() == at(4)
    assert await event_log.latest_received_between(1, 3) == at(9)
    assert await event_log.latest_received_between(3, 4) == at(6)
    assert await event_log.latest_received_between(1, 1) is None
    assert await event_log.latest_received_between(7, 9) is None


async def test_replay_batches_give_exactly_what_read_gives(event_log: EventLog) -> None:
    batch = [
        make_event(1, payload=UNICODE_PAYLOAD, action=EventAction.SNAPSHOT, round=1),
        make_event(2, received_at=None, action=EventAction.DELETE),
        make_event(3, sample_time="1970-01-01 00:00:00.000001+00:00", received_at="2026-12-31 23:59:59.999999+00:00"),
        make_event(4, action=EventAction.ROUND_END, round=2**40, payload={}),
        make_event(5, payload={"float": 1e-7, "exp": 12345678.9, "list": [[], [{}]], "empty": ""}),
        *[make_event(n, received_at=stamp(n)) for n in range(6, 30)],
        make_event(31, received_at=stamp(0)),  # after a hole in the numbering
    ]
    await event_log.append(batch)
    for size in (1, 4, 100):
        read = [e async for b in event_log.iter_batches(batch_size=size) for e in b]
        fast = [e async for b in event_log.replay_batches(batch_size=size) for e in b]
        assert fast == read == batch, size
    bounded = [e async for b in event_log.replay_batches(after=3, until=9, batch_size=2) for e in b]
    assert [e.sequence for e in bounded] == [4, 5, 6, 7, 8, 9]
    assert [b async for b in event_log.replay_batches(after=31)] == []


async def test_a_batch_the_database_cannot_encode_is_read_the_usual_way(event_log: EventLog) -> None:
    await event_log.append([make_event(n) for n in range(1, 6)])
    async with event_log.engine.begin() as connection:  # a damaged row: the payload is not JSON
        await connection.execute(update(events).where(events.c.sequence == 3).values(payload="{not json"))
    with pytest.raises(ValueError, match="event log row 3 cannot be read"):
        [e async for b in event_log.replay_batches() for e in b]
    good: list[Any] = [e async for b in event_log.replay_batches(until=2) for e in b]
    assert [e.sequence for e in good] == [1, 2]
