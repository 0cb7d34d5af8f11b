"""The event log on every backend: exact round trips, idempotent appends, ordered reads,
epoch fencing, contiguity and pruning."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import select

from vitrail.graph.events import Event, EventAction
from vitrail.storage import EpochStore, EventLog, EventLogConflict, EventLogGap, Fenced, events
from vitrail.storage.leadership import GRAPH

UNICODE_PAYLOAD: dict[str, Any] = {
    "name": "hôte-çà-北京-🦉",
    "nested": {"list": [1, 2.5, True, None, "x"], "deeper": {"z": [], "a": {}}},
    "big": 2**62,
    "negative": -7,
    "ratio": 0.1,
    "quote": 'it\'s "quoted" \\ and \n newline\ttab \u0000nul',
}


def make_event(number: int, **changes: Any) -> Event:
    """Event number ``number`` (its sequence too, unless ``changes`` say otherwise)."""
    fields: dict[str, Any] = {
        "event_id": f"ev-{number}",
        "datasource": "static",
        "action": EventAction.UPDATE,
        "sample_time": f"2026-11-22 00:37:{number % 60:02d}.123456+00:00",
        "payload": {"id": f"host-{number}", "state": "ACTIVE"},
        "round": None,
        "received_at": "2026-11-22 00:37:07.654321+00:00",
        "sequence": number,
    }
    fields.update(changes)
    return Event(**fields)


def make_events(first: int, last: int) -> list[Event]:
    return [make_event(sequence) for sequence in range(first, last + 1)]


async def test_round_trip_is_exact(event_log: EventLog) -> None:
    batch = [
        make_event(1, payload=UNICODE_PAYLOAD, action=EventAction.SNAPSHOT, round=1),
        make_event(2, received_at=None, round=None, action=EventAction.DELETE),
        make_event(3, sample_time="1970-01-01 00:00:00.000001+00:00", received_at="2026-12-31 23:59:59.999999+00:00"),
        make_event(4, sample_time="2026-11-22 00:37:07.000000+00:00", action=EventAction.ROUND_END, round=2**40),
        make_event(5, datasource="alertmanager", payload={}, round=0),
    ]
    assert await event_log.append(batch) == 5
    assert await event_log.read() == batch


async def test_times_in_other_zones_come_back_in_utc(event_log: EventLog) -> None:
    await event_log.append(
        [make_event(1, sample_time="2026-11-22 02:37:07.123456+02:00", received_at="2026-11-21T19:07:07.5-05:30")]
    )
    (stored,) = await event_log.read()
    assert stored.sample_time == "2026-11-22 00:37:07.123456+00:00"
    assert stored.received_at == "2026-11-22 00:37:07.500000+00:00"


async def test_naive_times_are_taken_as_utc(event_log: EventLog) -> None:
    await event_log.append([make_event(1, sample_time="2026-11-22 00:37:07.123456")])
    assert (await event_log.read())[0].sample_time == "2026-11-22 00:37:07.123456+00:00"


async def test_payload_is_stored_as_canonical_json(event_log: EventLog) -> None:
    await event_log.append([make_event(1, payload={"b": 1, "a": {"d": 2, "c": 3}})])
    async with event_log.engine.connect() as connection:
        stored = await connection.scalar(select(events.c.payload))
    assert stored == '{"a":{"c":3,"d":2},"b":1}'


async def test_large_payload_is_not_truncated(event_log: EventLog) -> None:
    # More than MySQL's TEXT (64 KiB): the column must be LONGTEXT there.
    payload = {"blob": "é🦉" * 60_000}
    await event_log.append([make_event(1, payload=payload)])
    assert (await event_log.read())[0].payload == payload


async def test_redelivered_batch_changes_nothing(event_log: EventLog) -> None:
    batch = make_events(1, 20)
    assert await event_log.append(batch) == 20
    assert await event_log.append(batch) == 0
    assert await event_log.count() == 20
    assert await event_log.read() == batch


async def test_batch_mixing_stored_and_new_events_inserts_only_the_new(event_log: EventLog) -> None:
    await event_log.append(make_events(1, 10))
    assert await event_log.append(make_events(6, 15)) == 5
    assert await event_log.count() == 15
    assert [event.sequence for event in await event_log.read()] == list(range(1, 16))


async def test_duplicates_inside_one_batch_are_stored_once(event_log: EventLog) -> None:
    event = make_event(1)
    assert await event_log.append([event, make_event(2), event]) == 2
    assert await event_log.count() == 2


async def test_sequence_taken_by_another_event_is_a_conflict_and_stores_nothing(event_log: EventLog) -> None:
    await event_log.append(make_events(1, 3))
    with pytest.raises(EventLogConflict, match=r"sequence 2 is stored for event 'ev-2', not 'other'"):
        await event_log.append([make_event(4), make_event(2, event_id="other")])
    assert await event_log.max_sequence() == 3


async def test_event_id_stored_under_another_sequence_is_a_conflict(event_log: EventLog) -> None:
    await event_log.append(make_events(1, 3))
    with pytest.raises(EventLogConflict, match=r"event 'ev-3' is stored with sequence 3, not 7"):
        await event_log.append([make_event(7, event_id="ev-3")])
    assert await event_log.count() == 3


async def test_ids_differing_in_case_or_trailing_space_are_distinct(event_log: EventLog) -> None:
    # MySQL/MariaDB collations would call these equal and drop all but one.
    ids = ["host-a", "HOST-A", "host-a ", "hôst-a", "host-ä"]
    batch = [make_event(sequence, event_id=event_id) for sequence, event_id in enumerate(ids, start=1)]
    assert await event_log.append(batch) == len(ids)
    assert [event.event_id for event in await event_log.read()] == ids


async def test_longest_event_id_with_four_byte_characters(event_log: EventLog) -> None:
    event = make_event(1, event_id="🦉" * 255)
    assert await event_log.append([event]) == 1
    assert await event_log.read() == [event]


async def test_read_after_and_limit(event_log: EventLog) -> None:
    # Appended out of order: read in sequence order all the same.
    await event_log.append(make_events(11, 20))
    await event_log.append(make_events(1, 10))
    assert [e.sequence for e in await event_log.read(after=15)] == [16, 17, 18, 19, 20]
    assert [e.sequence for e in await event_log.read(after=3, limit=4)] == [4, 5, 6, 7]
    assert [e.sequence for e in await event_log.read(limit=2)] == [1, 2]
    assert await event_log.read(after=20) == []
    assert await event_log.read(limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        await event_log.read(limit=-1)


async def test_iter_batches(event_log: EventLog) -> None:
    await event_log.append(make_events(1, 25))
    sizes = [len(batch) async for batch in event_log.iter_batches(batch_size=10)]
    assert sizes == [10, 10, 5]
    sequences = [e.sequence async for batch in event_log.iter_batches(after=18, batch_size=7) for e in batch]
    assert sequences == list(range(19, 26))
    assert [len(b) async for b in event_log.iter_batches(after=5, batch_size=10)] == [10, 10]
    assert [b async for b in event_log.iter_batches(after=25)] == []
    with pytest.raises(ValueError, match="batch_size"):
        await anext(event_log.iter_batches(batch_size=0))


async def test_max_sequence_and_count(event_log: EventLog) -> None:
    assert await event_log.max_sequence() == 0
    assert await event_log.count() == 0
    await event_log.append([make_event(3), make_event(41), make_event(7)])
    assert await event_log.max_sequence() == 41
    assert await event_log.count() == 3


async def test_many_events_in_one_append(event_log: EventLog) -> None:
    # Several driver pages (PostgreSQL: 1000 rows per INSERT; MySQL: 1 MB statements).
    batch = [make_event(sequence, payload={"text": "x" * 500, "n": sequence}) for sequence in range(1, 2501)]
    assert await event_log.append(batch) == 2500
    assert await event_log.append(batch) == 0
    assert await event_log.max_sequence() == 2500
    assert await event_log.read(after=2498) == batch[-2:]


async def test_empty_append(event_log: EventLog) -> None:
    assert await event_log.append([]) == 0


async def test_event_without_a_valid_sequence_is_refused(event_log: EventLog) -> None:
    for sequence in (None, 0, -1, True, "7", 1.0):
        with pytest.raises(ValueError, match="sequence must be a positive integer"):
            await event_log.append([make_event(1), make_event(2, sequence=sequence)])
    assert await event_log.count() == 0


INVALID_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"event_id": "x" * 256}, "event_id is longer than 255"),
    ({"event_id": ""}, "event_id must be a non-empty string"),
    ({"datasource": "d" * 65}, "datasource is longer than 64"),
    ({"action": "explode"}, "unknown action"),
    ({"round": "1"}, "round must be an integer"),
    ({"sample_time": "yesterday"}, "sample_time 'yesterday' is not an ISO-8601 time"),
    ({"received_at": "2026-13-01 00:00:00+00:00"}, "received_at"),
    ({"payload": {"when": {1, 2}}}, "payload is not JSON data"),
]


async def test_events_the_database_could_not_hold_exactly_are_refused(event_log: EventLog) -> None:
    """Checked before the INSERT: INSERT IGNORE (MySQL) would truncate or drop them silently."""
    for changes, message in INVALID_FIELDS:
        with pytest.raises(ValueError, match=message):
            await event_log.append([make_event(1), make_event(2, **changes)])
    assert await event_log.count() == 0


async def test_stored_payload_is_never_unpickled(event_log: EventLog) -> None:
    """A payload is JSON data: bytes that look like a pickle stay an opaque string."""
    pickled = "\x80\x04\x95cos\nsystem\n(S'touch /tmp/pwned'\ntR."
    await event_log.append([make_event(1, payload={"data": pickled})])
    async with event_log.engine.connect() as connection:
        raw = await connection.scalar(select(events.c.payload))
    assert isinstance(raw, str)
    assert orjson.loads(raw) == {"data": pickled}
    assert (await event_log.read())[0].payload == {"data": pickled}


async def test_validate_names_what_the_log_cannot_hold(event_log: EventLog) -> None:
    assert EventLog.validate(make_event(1, payload=UNICODE_PAYLOAD)) is None
    assert event_log.validate(make_event(2, event_id="🦉" * 255)) is None
    for changes, message in INVALID_FIELDS:
        reason = event_log.validate(make_event(1, **changes))
        assert reason is not None and message in reason, (changes, reason)
    assert "sequence must be a positive integer" in (EventLog.validate(make_event(1, sequence=None)) or "")


# -- epoch fencing ------------------------------------------------------------------------------


async def test_an_append_of_a_former_leader_is_fenced_and_stores_nothing(event_log: EventLog) -> None:
    # No leader yet: no row, epoch 0, every epoch passes.
    assert await event_log.append(make_events(1, 2), epoch=1) == 2
    epochs = EpochStore(event_log.engine)
    assert await epochs.bump(GRAPH, "first") == 1
    assert await event_log.append(make_events(3, 4), epoch=1) == 2
    assert await epochs.bump(GRAPH, "second") == 2
    with pytest.raises(Fenced, match=r"epoch 1 of 'graph' is stale: the current epoch is 2"):
        await event_log.append(make_events(5, 9), epoch=1)
    assert await event_log.max_sequence() == 4
    with pytest.raises(Fenced):  # checked before contiguity: a deposed leader's batch is dropped, not awaited
        await event_log.append(make_events(7, 9), epoch=1, contiguous=True)
    assert await event_log.append(make_events(5, 9), epoch=2) == 5
    assert await event_log.count() == 9
    # Without an epoch nothing is checked (single-process mode).
    assert await event_log.append(make_events(10, 10)) == 1


# -- contiguity ---------------------------------------------------------------------------------


async def test_a_contiguous_batch_must_follow_the_stored_end(event_log: EventLog) -> None:
    with pytest.raises(EventLogGap, match=r"expected sequence 1, found 2 \(the log is stored up to 0\)"):
        await event_log.append(make_events(2, 4), contiguous=True)
    assert await event_log.count() == 0
    assert await event_log.append(make_events(1, 5), contiguous=True) == 5
    with pytest.raises(EventLogGap, match=r"expected sequence 6, found 8 \(the log is stored up to 5\)"):
        await event_log.append(make_events(8, 10), contiguous=True)
    assert await event_log.max_sequence() == 5
    # Without contiguous the same batch is taken (the historical behaviour).
    assert await event_log.append(make_events(8, 10)) == 3


async def test_a_contiguous_batch_must_not_skip_a_number(event_log: EventLog) -> None:
    await event_log.append(make_events(1, 5))
    for batch, message in [
        ([make_event(6), make_event(7), make_event(9)], "expected sequence 8, found 9"),
        ([make_event(3), make_event(4), make_event(7)], "expected sequence 6, found 7"),
    ]:
        with pytest.raises(EventLogGap, match=message):
            await event_log.append(batch, contiguous=True)
    assert await event_log.count() == 5
    # The order inside the batch does not matter, and repeats are stored once.
    assert await event_log.append([make_event(7), make_event(6), make_event(7)], contiguous=True) == 2
    assert [e.sequence for e in await event_log.read()] == [1, 2, 3, 4, 5, 6, 7]


async def test_a_redelivered_prefix_with_a_new_tail_is_accepted(event_log: EventLog) -> None:
    assert await event_log.append(make_events(1, 5), contiguous=True) == 5
    assert await event_log.append(make_events(1, 5), contiguous=True) == 0
    assert await event_log.append(make_events(3, 8), contiguous=True) == 3
    # Messages joined into one batch by a persistor: a redelivery, then an overlapping one.
    joined = make_events(6, 8) + make_events(6, 8) + make_events(7, 11)
    assert await event_log.append(joined, contiguous=True) == 3
    assert await event_log.read() == make_events(1, 11)
    # The stored part is still checked against the log.
    with pytest.raises(EventLogConflict, match="sequence 11 is stored for event 'ev-11', not 'other'"):
        await event_log.append([make_event(11, event_id="other"), make_event(12)], contiguous=True)
    assert await event_log.max_sequence() == 11


# -- pruning ------------------------------------------------------------------------------------


async def test_prune_deletes_the_oldest_events_in_chunks(event_log: EventLog) -> None:
    assert await event_log.first_sequence() == 0
    assert await event_log.prune(before_sequence=100) == 0
    await event_log.append(make_events(1, 25))
    assert await event_log.first_sequence() == 1
    assert await event_log.prune(before_sequence=11, chunk_size=4) == 10
    assert await event_log.first_sequence() == 11
    assert await event_log.count() == 15
    assert [e.sequence for e in await event_log.read(limit=2)] == [11, 12]
    assert await event_log.prune(before_sequence=11) == 0
    with pytest.raises(ValueError, match="chunk_size"):
        await event_log.prune(before_sequence=20, chunk_size=0)


async def test_prune_always_keeps_the_newest_event(event_log: EventLog) -> None:
    await event_log.append(make_events(1, 10))
    assert await event_log.prune(before_sequence=1_000, chunk_size=3) == 9
    assert await event_log.read() == [make_event(10)]
    assert await event_log.first_sequence() == await event_log.max_sequence() == 10
    # So contiguous appends go on after it.
    assert await event_log.append(make_events(11, 12), contiguous=True) == 2
