"""The event log: every event the graph accepted, stored in sequence order.

The graph is a fold over this log: a standby that takes over (or a
reconstruction at time T) loads a snapshot and replays the events after it.
So the log must hold each accepted event exactly once, in order, and give it
back unchanged. Delivery is at-least-once, hence :meth:`EventLog.append` is
idempotent: a redelivered batch inserts nothing and does not fail.

The persistors write what the graph leader numbered: :meth:`EventLog.append`
checks the leader's epoch (:mod:`vitrail.storage.leadership`) in the same
transaction, so a deposed leader's events never land, and can refuse a batch
that would leave a hole after the stored end of the log (``contiguous``).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import Insert, delete, func, select, text
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vitrail.graph.events import Event, EventAction, format_timestamp
from vitrail.storage.leadership import GRAPH, check_epoch, writer_engine
from vitrail.storage.models import DATASOURCE_LENGTH, EVENT_ID_LENGTH, MYSQL_DIALECTS, events

_PAYLOAD_OPTIONS = orjson.OPT_SORT_KEYS
"""Canonical JSON: the same payload always gives the same text."""

_CONFLICT_CHECK_CHUNK = 500
"""Keys per IN (...) list when verifying duplicates; far below every backend's parameter limit."""

PRUNE_CHUNK = 10_000
"""Events deleted per transaction by :meth:`EventLog.prune`: no huge transaction, no long lock."""

_COLUMNS = (
    events.c.sequence,
    events.c.event_id,
    events.c.datasource,
    events.c.action,
    events.c.sample_time,
    events.c.payload,
    events.c.round,
    events.c.received_at,
)
_ACTIONS = {action.value: action for action in EventAction}


class EventLogConflict(ValueError):
    """A batch disagrees with the stored log: a sequence number already belongs to another
    event id, or an event id is stored under another sequence number. Nothing of the
    batch is stored. Ignoring it would leave the log unable to rebuild the live graph
    (two graph leaders, or an event accepted twice under two numbers)."""


class EventLogGap(ValueError):
    """A ``contiguous`` batch would leave a hole in the log: its new events do not start
    right after the stored end (an earlier batch is missing, e.g. still being written by
    another persistor), or they skip a number. Nothing of the batch is stored; once the
    missing events are stored it can be appended."""


class EventLog:
    """The ordered, append-only event log over an ``AsyncEngine`` (schema from the migrations)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer_engine(engine)
        self._dialect = engine.dialect.name
        self._insert = _insert_ignoring_duplicates(self._dialect)

    @property
    def engine(self) -> AsyncEngine:
        """The engine the log writes to (for callers that share its transactions or pool)."""
        return self._engine

    async def append(
        self,
        batch: Sequence[Event],
        *,
        epoch: int | None = None,
        contiguous: bool = False,
        replace_invalid: Callable[[Event, str], Event] | None = None,
    ) -> int:
        """Store ``batch`` in one transaction; return how many events were new.

        Events already stored (same event id under the same sequence number) are
        skipped, so redelivering a batch is harmless. Every event must carry its
        sequence number (:class:`ValueError` otherwise, and for any field the
        database could not hold exactly); a batch contradicting the log raises
        :class:`EventLogConflict`. Either way nothing of the batch is stored.

        ``epoch``: the epoch of the graph leader that numbered the events; the
        transaction checks it against the ``graph`` leadership row before writing
        and raises :class:`~vitrail.storage.leadership.Fenced` if a newer leader
        took over. ``contiguous``: the batch must continue the stored log without
        a hole: its events numbered above the stored maximum must be numbered
        maximum + 1, + 2... with none missing; otherwise :class:`EventLogGap`.
        Events at or below the maximum are a redelivered part (a persistor joins
        messages, so one may repeat within the batch) and are checked against the
        log as for any append; the order inside the batch does not matter. The
        maximum is read in the transaction: concurrent appenders can only see an
        older end than the one they commit after, which refuses a batch rather
        than letting one leave a hole.

        ``replace_invalid(event, reason)``: called for an event the database
        cannot hold (the :meth:`validate` reasons); the event it returns (a
        stand-in with the same sequence number) is stored instead, so one bad
        row does not refuse the batch. Without it such an event is a ValueError.
        """
        if not batch:
            return 0
        rows = [_checked_row(event, replace_invalid) for event in batch]
        async with self._writer.begin() as connection:
            if epoch is not None:
                await check_epoch(connection, GRAPH, epoch)
            if contiguous:
                stored = await connection.scalar(select(func.coalesce(func.max(events.c.sequence), 0)))
                _check_continues(rows, int(stored or 0))
            result = await connection.execute(self._insert, rows)
            inserted = len(result.all()) if result.returns_rows else result.rowcount
            if inserted < len(rows):
                await _check_duplicates_match(connection, rows)
        return inserted

    @staticmethod
    def validate(event: Event) -> str | None:
        """Why the log cannot store ``event`` exactly (missing sequence, field too long, payload
        not JSON...), or None when it can.

        The same checks as :meth:`append`, one event at a time (``append`` with
        ``replace_invalid`` applies them on its way, without converting twice).
        Whether the event agrees with the stored log is not checked here.
        """
        try:
            _to_row(event)
        except ValueError as exc:
            return str(exc)
        return None

    async def read(self, after: int = 0, limit: int | None = None, *, until: int | None = None) -> list[Event]:
        """Events with a sequence number greater than ``after`` (and at most ``until``), in sequence
        order, at most ``limit``."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if limit == 0:
            return []
        query = select(*_COLUMNS).where(events.c.sequence > after).order_by(events.c.sequence)
        if until is not None:
            query = query.where(events.c.sequence <= until)
        if limit is not None:
            query = query.limit(limit)
        async with self._engine.connect() as connection:
            result = await connection.execute(query)
            return [_to_event(row) for row in result]

    async def iter_batches(
        self, after: int = 0, batch_size: int = 10_000, *, until: int | None = None
    ) -> AsyncIterator[list[Event]]:
        """The events after ``after`` (up to ``until``) as lists of at most ``batch_size``, in sequence order.

        Each batch is one short query (keyset pagination on the sequence), so a long
        replay neither holds a transaction open nor loads the whole log in memory.
        Events appended meanwhile are included if they come after the last batch read.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        while True:
            batch = await self.read(after=after, limit=batch_size, until=until)
            if not batch:
                return
            yield batch
            if len(batch) < batch_size:
                return
            after = cast(int, batch[-1].sequence)  # read() always sets it

    async def replay_batches(
        self, after: int = 0, until: int | None = None, batch_size: int = 10_000
    ) -> AsyncIterator[list[Event]]:
        """:meth:`iter_batches`, faster: the events exactly as :meth:`read` gives them, for a replay.

        On SQLite and PostgreSQL the database encodes each batch as one JSON document
        (times already in Vitrail's format, payloads embedded as they are stored), so
        the rows are converted in C, by the database, not one Python object at a time:
        measured on 100k simulator events, 0.45 s instead of 0.75 s to read them from
        SQLite with the collector paused, most of it in the database driver's thread,
        which overlaps the replay. A batch the database cannot encode that way (a
        payload that is not valid JSON, a time stored in another shape) is read as
        :meth:`read` reads it, with its errors. Other databases read as :meth:`read`.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        query = _JSON_BATCH.get(self._dialect)
        until = _MAX_SEQUENCE if until is None else until
        while True:
            batch = None
            if query is not None:
                try:
                    async with self._engine.connect() as connection:
                        encoded = await connection.scalar(query, {"after": after, "until": until, "limit": batch_size})
                    batch = _json_batch(encoded)
                except DBAPIError:
                    batch = None
            if batch is None:
                batch = await self.read(after=after, limit=batch_size, until=until)
            if not batch:
                return
            yield batch
            if len(batch) < batch_size:
                return
            after = cast(int, batch[-1].sequence)

    async def max_sequence(self) -> int:
        """The highest stored sequence number, 0 for an empty log."""
        async with self._engine.connect() as connection:
            value = await connection.scalar(select(func.coalesce(func.max(events.c.sequence), 0)))
        return int(value or 0)

    async def count(self) -> int:
        """How many events the log holds."""
        async with self._engine.connect() as connection:
            value = await connection.scalar(select(func.count()).select_from(events))
        return int(value or 0)

    async def first_sequence(self) -> int:
        """The lowest stored sequence number (events before it were pruned), 0 for an empty log."""
        async with self._engine.connect() as connection:
            value = await connection.scalar(select(func.coalesce(func.min(events.c.sequence), 0)))
        return int(value or 0)

    # -- time -> sequence (reconstruction at a time T) ------------------------------------

    async def sequence_at(self, moment: datetime) -> int:
        """The last event of the graph as it was at ``moment``: ``(the smallest sequence received
        after moment) - 1``, or the last stored sequence when nothing was received after it.

        ``received_at`` is stamped at the edges (listeners, API, collectors), so it is not
        monotonic in sequence: a priority alarm can be applied before a bulk page stamped
        earlier. The state at ``moment`` is therefore the longest prefix of the log holding
        only events received by then: monotonic in ``moment``, and exact whatever the disorder.
        Events without ``received_at`` never end the prefix. 0 for an empty log.

        Two indexed queries: the earliest event received after ``moment`` (the ``received_at``
        index) bounds the answer; then the smallest sequence among the events received after
        ``moment`` is found by whichever walk is shorter, the ``received_at`` index over the
        events after ``moment``, or the primary key up to the answer (measured on 1M events:
        1-7 ms near either end of the log, 25-40 ms in the middle, SQLite and PostgreSQL alike).
        """
        if moment.tzinfo is None:
            raise ValueError(f"naive datetime {moment.isoformat()}: give a time zone (UTC)")
        later = events.c.received_at > moment
        async with self._engine.connect() as connection:
            bound = await connection.scalar(
                select(events.c.sequence).where(later).order_by(events.c.received_at).limit(1)
            )
            if bound is None:
                value = await connection.scalar(select(func.coalesce(func.max(events.c.sequence), 0)))
                return int(value or 0)
            first, last = (
                await connection.execute(select(func.min(events.c.sequence), func.max(events.c.sequence)))
            ).one()
            if int(last) - int(bound) <= int(bound) - int(first):
                # Few events after moment: walk them on the received_at index. "+ 0" keeps the
                # planner from walking the primary key in order instead (what it does for MIN).
                found = await connection.scalar(select(func.min(events.c.sequence + 0)).where(later))
            else:
                # Few events before the answer: walk the primary key in order, stop at the first.
                found = await connection.scalar(
                    select(events.c.sequence).where(later).order_by(events.c.sequence).limit(1)
                )
        return int(found if found is not None else bound) - 1

    async def earliest_received(self) -> datetime | None:
        """The earliest ``received_at`` in the log (None: empty, or nothing stamped). Indexed."""
        async with self._engine.connect() as connection:
            return await connection.scalar(select(func.min(events.c.received_at)))

    async def latest_received_between(self, first: int, last: int) -> datetime | None:
        """The latest ``received_at`` of the stored events numbered ``first`` to ``last`` (a key range).

        The earliest moment whose prefix (:meth:`sequence_at`) reaches ``last`` is this time: an
        event of the range received later would end the prefix before ``last``.
        """
        async with self._engine.connect() as connection:
            return await connection.scalar(
                select(func.max(events.c.received_at)).where(events.c.sequence >= first, events.c.sequence <= last)
            )

    async def prune(self, before_sequence: int, *, chunk_size: int = PRUNE_CHUNK) -> int:
        """Delete the events numbered below ``before_sequence``; return how many.

        For history that no kept snapshot needs any more. The newest event always
        stays, whatever ``before_sequence`` says: it is where contiguous appends
        continue, and an empty log would make them start again at 1. Deletes at
        most ``chunk_size`` events per transaction, oldest first, so pruning a long
        log neither builds a huge transaction nor blocks the persistors for long;
        an interrupted prune leaves a shorter log, never a hole.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        limit = min(before_sequence, await self.max_sequence())
        deleted = 0
        while True:
            async with self._writer.begin() as connection:
                # The chunk_size-th oldest event below the limit: the end of this chunk.
                edge = await connection.scalar(
                    select(events.c.sequence)
                    .where(events.c.sequence < limit)
                    .order_by(events.c.sequence)
                    .offset(chunk_size - 1)
                    .limit(1)
                )
                condition = events.c.sequence < limit if edge is None else events.c.sequence <= edge
                deleted += (await connection.execute(delete(events).where(condition))).rowcount
            if edge is None:
                return deleted


def _insert_ignoring_duplicates(dialect: str) -> Insert:
    """An INSERT that skips rows whose sequence or event id is already stored.

    PostgreSQL: ``ON CONFLICT DO NOTHING ... RETURNING`` (asyncpg reports no row count
    for executemany, so the returned keys are counted). SQLite: ``ON CONFLICT DO
    NOTHING``, which, unlike ``INSERT OR IGNORE``, skips only uniqueness conflicts and
    still fails on a NOT NULL violation. MySQL/MariaDB: ``INSERT IGNORE``, the only form
    whose affected-row count is the number of new rows; it also turns data errors into
    warnings, which is why :func:`_to_row` checks lengths first.
    """
    if dialect == "postgresql":
        return postgresql.insert(events).on_conflict_do_nothing().returning(events.c.sequence)
    if dialect == "sqlite":
        return sqlite.insert(events).on_conflict_do_nothing()
    if dialect in MYSQL_DIALECTS:
        return mysql.insert(events).prefix_with("IGNORE")
    raise ValueError(f"the event log does not support the {dialect!r} database")


async def _check_duplicates_match(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Raise :class:`EventLogConflict` unless every skipped row is stored as it is in the batch."""
    by_sequence: dict[int, str] = {}
    by_event_id: dict[str, int] = {}
    for start in range(0, len(rows), _CONFLICT_CHECK_CHUNK):
        chunk = rows[start : start + _CONFLICT_CHECK_CHUNK]
        for column, key in ((events.c.sequence, "sequence"), (events.c.event_id, "event_id")):
            query = select(events.c.sequence, events.c.event_id).where(column.in_([row[key] for row in chunk]))
            for sequence, event_id in await connection.execute(query):
                by_sequence[sequence] = event_id
                by_event_id[event_id] = sequence
    conflicts: list[str] = []
    for row in rows:
        sequence, event_id = row["sequence"], row["event_id"]
        stored_event_id = by_sequence.get(sequence)
        if stored_event_id is not None and stored_event_id != event_id:
            conflicts.append(f"sequence {sequence} is stored for event {stored_event_id!r}, not {event_id!r}")
        elif by_event_id.get(event_id) != sequence:
            conflicts.append(f"event {event_id!r} is stored with sequence {by_event_id.get(event_id)}, not {sequence}")
    if conflicts:
        more = f" (and {len(conflicts) - 3} more)" if len(conflicts) > 3 else ""
        raise EventLogConflict(f"batch contradicts the event log: {'; '.join(conflicts[:3])}{more}")


def _check_continues(rows: list[dict[str, Any]], stored: int) -> None:
    """Raise :class:`EventLogGap` unless the rows numbered above ``stored`` are numbered
    ``stored + 1``, ``stored + 2``... with none missing (in any order, repeats allowed)."""
    expected = stored + 1
    for sequence in sorted({row["sequence"] for row in rows if row["sequence"] > stored}):
        if sequence != expected:
            raise EventLogGap(
                f"gap in the event log: expected sequence {expected}, found {sequence} "
                f"(the log is stored up to {stored})"
            )
        expected += 1


# -- conversions ------------------------------------------------------------------------------


def _to_row(event: Event) -> dict[str, Any]:
    """The table row of ``event``, checked so that the database stores it exactly or not at all."""
    sequence = event.sequence
    if type(sequence) is not int or sequence < 1:
        raise ValueError(f"event {event.event_id!r}: sequence must be a positive integer, got {sequence!r}")
    _check_text(event, "event_id", event.event_id, EVENT_ID_LENGTH)
    _check_text(event, "datasource", event.datasource, DATASOURCE_LENGTH)
    action = event.action.value if isinstance(event.action, EventAction) else event.action
    if action not in _ACTIONS:
        raise ValueError(f"event {event.event_id!r}: unknown action {event.action!r}")
    if event.round is not None and type(event.round) is not int:
        raise ValueError(f"event {event.event_id!r}: round must be an integer or None, got {event.round!r}")
    try:
        payload = orjson.dumps(event.payload, option=_PAYLOAD_OPTIONS).decode()
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"event {event.event_id!r}: payload is not JSON data: {exc}") from None
    return {
        "sequence": sequence,
        "event_id": event.event_id,
        "datasource": event.datasource,
        "action": action,
        "sample_time": _parse_time(event, "sample_time", event.sample_time),
        "payload": payload,
        "round": event.round,
        "received_at": None if event.received_at is None else _parse_time(event, "received_at", event.received_at),
    }


def _checked_row(event: Event, replace_invalid: Callable[[Event, str], Event] | None) -> dict[str, Any]:
    try:
        return _to_row(event)
    except ValueError as exc:
        if replace_invalid is None:
            raise
        return _to_row(replace_invalid(event, str(exc)))


def _check_text(event: Event, field: str, value: object, length: int) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"event {event.event_id!r}: {field} must be a non-empty string, got {value!r}")
    if len(value) > length:
        raise ValueError(f"event {event.event_id!r}: {field} is longer than {length} characters")


def _parse_time(event: Event, field: str, value: object) -> datetime:
    """An aware datetime from Vitrail's timestamp format (naive means UTC, as everywhere)."""
    try:
        moment = datetime.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"event {event.event_id!r}: {field} {value!r} is not an ISO-8601 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=4096)
def _format_time(moment: datetime) -> str:
    """:func:`format_timestamp`, skipping the zone conversion for the UTC times the columns return.

    Cached: the events of a get_all round share their times, and formatting was a
    third of the time a replay spent reading the log.
    """
    if moment.tzinfo is UTC:
        return moment.isoformat(" ", "microseconds")
    return format_timestamp(moment)


_MAX_SEQUENCE = 2**63 - 1
_BATCH_ROWS = (
    "SELECT sequence, event_id, datasource, action, sample_time, payload, round, received_at FROM events "
    "WHERE sequence > :after AND sequence <= :until ORDER BY sequence LIMIT :limit"
)
#: One query per batch, answering one JSON array of [sequence, event_id, datasource, action,
#: sample_time, payload, round, received_at] in sequence order, times as ``_format_time`` gives them.
_JSON_BATCH = {
    # Stored as "YYYY-MM-DD HH:MM:SS.ffffff" in UTC (_SQLiteUTCDateTime): the zone is appended.
    "sqlite": text(
        "SELECT json_group_array(json_array(sequence, event_id, datasource, action, sample_time || '+00:00', "
        f"json(payload), round, received_at || '+00:00')) FROM ({_BATCH_ROWS})"
    ),
    "postgresql": text(
        "SELECT json_agg(json_build_array(sequence, event_id, datasource, action, "
        "to_char(sample_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00', payload::json, round, "
        "to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00') ORDER BY sequence)::text "
        f"FROM ({_BATCH_ROWS}) AS batch"
    ),
}
_TIME_SHAPE = len("2026-11-22 00:00:00.000000+00:00")


def _json_batch(encoded: str | None) -> list[Event] | None:
    """The events of a :data:`_JSON_BATCH` answer; None when it is not what :meth:`EventLog.read` gives."""
    if encoded is None:
        return []
    try:
        rows = orjson.loads(encoded)
    except orjson.JSONDecodeError:
        return None
    events: list[Event] = []
    previous = -1
    actions = _ACTIONS
    for sequence, event_id, datasource, action, sample_time, payload, round_, received_at in rows:
        if (
            sequence <= previous
            or action not in actions
            or not isinstance(payload, dict)
            or len(sample_time) != _TIME_SHAPE
            or (received_at is not None and len(received_at) != _TIME_SHAPE)
        ):
            return None
        previous = sequence
        events.append(Event(event_id, datasource, actions[action], sample_time, payload, round_, received_at, sequence))
    return events


def _to_event(row: Any) -> Event:
    sequence, event_id, datasource, action, sample_time, payload, round_, received_at = row
    try:
        return Event(
            event_id=event_id,
            datasource=datasource,
            action=_ACTIONS[action],
            sample_time=_format_time(sample_time),
            payload=orjson.loads(payload),
            round=round_,
            received_at=None if received_at is None else _format_time(received_at),
            sequence=sequence,
        )
    except (KeyError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"event log row {sequence} cannot be read: {exc!r}") from None


__all__ = ["PRUNE_CHUNK", "EventLog", "EventLogConflict", "EventLogGap"]
