"""Alarm history and RCA history in the database: written by the graph leader, read by the API.

The graph leader writes what :class:`vitrail.graph.history.HistoryRecorder`
derives from the fold (:meth:`HistoryStore.write`), in one transaction with
``history_progress`` (how far the history is complete) and fenced by the
leader's epoch, like the event log. Every write is idempotent: a started
alarm is keyed by (vitrage_id, start sequence), a change by (vitrage_id,
sequence), a causal link by (source, target, start sequence), and an end
closes only the row that was open before it. A new leader that replays events
whose records were already written therefore changes nothing.

Reads follow Vitrage's ``GET /v1/alarm/history/`` (time frame, ``filter_by``
LIKE filters, sorting, ``limit``/``marker`` pages in both directions), with
keyset pagination so the thousandth page costs what the first does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vitrail.graph.events import EventError, normalize_timestamp
from vitrail.graph.history import AlarmRecord, CauseRecord, HistoryRecord
from vitrail.storage.leadership import GRAPH, check_epoch, writer_engine
from vitrail.storage.models import (
    MYSQL_DIALECTS,
    UTCDateTime,
    alarm_changes,
    alarm_history,
    cause_history,
    history_progress,
)

PROGRESS = "alarms"
"""The ``history_progress`` row of the alarm and RCA history."""

MAX_LIMIT = 10_000
"""Most rows one history page returns (Vitrage's limit too)."""

_FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)
"""How an active alarm's missing end sorts and compares: after every real time."""

SORT_COLUMNS: dict[str, Any] = {
    "start_timestamp": alarm_history.c.start_time,
    "end_timestamp": alarm_history.c.end_time,
    "vitrage_id": alarm_history.c.vitrage_id,
    "name": alarm_history.c.name,
    "vitrage_type": alarm_history.c.vitrage_type,
    "vitrage_operational_severity": alarm_history.c.severity,
    "vitrage_aggregated_severity": alarm_history.c.aggregated_severity,
    "state": alarm_history.c.state,
    "project_id": alarm_history.c.project_id,
    "vitrage_resource_id": alarm_history.c.resource_id,
    "vitrage_resource_type": alarm_history.c.resource_type,
    "vitrage_resource_name": alarm_history.c.resource_name,
    "vitrage_resource_project_id": alarm_history.c.resource_project_id,
}
"""API names (Vitrage's) of the columns history can be sorted and filtered by."""

FILTER_COLUMNS: dict[str, Any] = {**SORT_COLUMNS, "payload": alarm_history.c.payload}


class HistoryQueryError(ValueError):
    """A history query that cannot be answered; ``parameter`` names the culprit (the API answers 400)."""

    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """``GET /v1/alarm/history/``: which alarms, in which order, which page."""

    start: datetime | None = None
    """With ``end``: alarms active at some moment in [start, end]; alone: active at or after ``start``."""
    end: datetime | None = None
    limit: int = 1000
    sort_by: tuple[str, ...] = ("start_timestamp", "vitrage_id")
    sort_dirs: tuple[str, ...] = ()
    """One per ``sort_by`` key; empty: all ascending."""
    filter_by: tuple[str, ...] = ()
    filter_vals: tuple[str | tuple[str, ...], ...] = ()
    """Vitrage's filters: the column contains the value (SQL LIKE), any of a list."""
    resource_id: str | None = None
    vitrage_type: str | None = None
    severity: str | None = None
    name: str | None = None
    only_active: bool = False
    marker: str | None = None
    """A ``history_id`` from a previous page, or a vitrage_id (its latest occurrence)."""
    next_page: bool = True
    project_id: str | None = None
    """Only this project's alarms (own or their resource's); None: every project."""
    is_admin: bool = False
    """With ``project_id``: also alarms of no project."""


@dataclass(frozen=True, slots=True)
class CauseRow:
    id: int
    source_id: str
    target_id: str
    start_sequence: int
    end_sequence: int | None
    start_time: datetime
    end_time: datetime | None


@dataclass(slots=True)
class Purged:
    alarms: int = 0
    changes: int = 0
    causes: int = 0
    details: dict[str, int] = field(default_factory=dict)


class HistoryStore:
    """The alarm and RCA history tables over an ``AsyncEngine`` (schema from the migrations)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer_engine(engine)
        dialect = engine.dialect.name
        self._insert_alarm = _insert_ignoring(dialect, alarm_history)
        self._insert_change = _insert_ignoring(dialect, alarm_changes)
        self._insert_cause = _insert_ignoring(dialect, cause_history)

    # -- writing (the graph leader) ---------------------------------------------------------

    async def progress(self) -> int | None:
        """The sequence number up to which the history is complete; None before it ever started."""
        async with self._engine.connect() as connection:
            value = await connection.scalar(
                select(history_progress.c.sequence).where(history_progress.c.name == PROGRESS)
            )
        return None if value is None else int(value)

    async def write(self, records: Sequence[HistoryRecord], up_to: int, epoch: int | None = None) -> None:
        """Store ``records`` (in their order) and mark the history complete up to event ``up_to``.

        One transaction, fenced by ``epoch`` (raises
        :class:`~vitrail.storage.leadership.Fenced` when a newer leader took over).
        Records already stored change nothing.
        """
        async with self._writer.begin() as connection:
            if epoch is not None:
                await check_epoch(connection, GRAPH, epoch)
            longest = await self._apply(connection, records)
            await _set_progress(connection, up_to, longest)

    async def _apply(self, connection: AsyncConnection, records: Sequence[HistoryRecord]) -> float:
        """Apply ``records`` with few statements: one per kind and *round*.

        Only the order of the records of one alarm (or one link) matters: an
        alarm can start, end and start again within a batch. A record's round is
        how many records of the same alarm (link) come before it in the batch;
        the records of a round concern distinct alarms, so each kind of a round
        goes in one statement, rounds in order. A batch of 5,000 interleaved
        records then takes a handful of statements instead of thousands.
        """
        rounds: list[dict[str, list[HistoryRecord]]] = []
        seen: dict[tuple[str, ...], int] = {}
        for record in records:
            key = (
                ("a", record.vitrage_id)
                if isinstance(record, AlarmRecord)
                else ("c", record.source_id, record.target_id)
            )
            position = seen.get(key, 0)
            seen[key] = position + 1
            if position == len(rounds):
                rounds.append({})
            rounds[position].setdefault(_statement_of(record), []).append(record)
        longest = 0.0
        for kinds in rounds:
            for kind in _STATEMENT_ORDER:
                batch = kinds.get(kind)
                if batch:
                    longest = max(longest, await self._flush(connection, batch))
        return longest

    async def _flush(self, connection: AsyncConnection, batch: list[HistoryRecord]) -> float:
        kind = _statement_of(batch[0])
        longest = 0.0
        if kind == "alarm_started":
            await connection.execute(self._insert_alarm, [_alarm_row(r) for r in batch])  # type: ignore[arg-type]
        elif kind == "alarm_changed":
            changed: list[AlarmRecord] = batch  # type: ignore[assignment]
            # The row being changed is the open one of that alarm (started before this change).
            rows = [_change_row(r) for r in changed]
            open_starts = await _open_start_times(connection, [r.vitrage_id for r in changed])
            stored = []
            for row in rows:
                begin = open_starts.get(row["vitrage_id"])
                if begin is not None and begin[0] < row["sequence"]:
                    row["start_sequence"] = begin[0]
                    stored.append(row)
            if stored:
                await connection.execute(self._insert_change, stored)
                await connection.execute(
                    update(alarm_history)
                    .where(
                        alarm_history.c.vitrage_id == bindparam("b_vitrage_id"),
                        alarm_history.c.start_sequence == bindparam("b_start"),
                        alarm_history.c.end_sequence.is_(None),
                    )
                    .values(_latest_values()),
                    [_latest_params(r, row) for r, row in zip(changed, rows, strict=True) if row in stored],
                )
        elif kind == "alarm_ended":
            started = await _open_start_times(connection, [r.vitrage_id for r in batch])
            for record in batch:
                begin = started.get(record.vitrage_id)
                if begin is not None and begin[0] < record.sequence:
                    longest = max(longest, (_time(record.time) - begin[1]).total_seconds())
            await connection.execute(
                update(alarm_history)
                .where(
                    alarm_history.c.vitrage_id == bindparam("b_vitrage_id"),
                    alarm_history.c.end_sequence.is_(None),
                    alarm_history.c.start_sequence < bindparam("b_sequence"),
                )
                .values(end_sequence=bindparam("b_sequence"), end_time=bindparam("b_time", type_=UTCDateTime())),
                [{"b_vitrage_id": r.vitrage_id, "b_sequence": r.sequence, "b_time": _time(r.time)} for r in batch],
            )
        elif kind == "cause_started":
            await connection.execute(self._insert_cause, [_cause_row(r) for r in batch])  # type: ignore[arg-type]
        else:  # cause_ended
            await connection.execute(
                update(cause_history)
                .where(
                    cause_history.c.source_id == bindparam("b_source"),
                    cause_history.c.target_id == bindparam("b_target"),
                    cause_history.c.end_sequence.is_(None),
                    cause_history.c.start_sequence < bindparam("b_sequence"),
                )
                .values(end_sequence=bindparam("b_sequence"), end_time=bindparam("b_time", type_=UTCDateTime())),
                [_cause_end_params(r) for r in batch],  # type: ignore[arg-type]
            )
        return longest

    async def open_alarms(self) -> set[str]:
        """The alarms the history has as active (no end yet)."""
        async with self._engine.connect() as connection:
            rows = await connection.scalars(
                select(alarm_history.c.vitrage_id).where(alarm_history.c.end_sequence.is_(None))
            )
            return set(rows)

    async def open_causes(self) -> set[tuple[str, str]]:
        """The causal links the history has as current (no end yet)."""
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                select(cause_history.c.source_id, cause_history.c.target_id).where(
                    cause_history.c.end_sequence.is_(None)
                )
            )
            return {(source, target) for source, target in rows}

    # -- reading (the API) ---------------------------------------------------------------------

    async def query(self, request: HistoryQuery) -> list[dict[str, Any]]:
        """One page of alarm history, each alarm as the API shows it (see :func:`row_to_alarm`)."""
        statement, reverse = await self._page(request)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        alarms = [row_to_alarm(row) for row in rows]
        if reverse:
            alarms.reverse()
        return alarms

    async def _page(self, request: HistoryQuery) -> tuple[Select[Any], bool]:
        sort_by = list(request.sort_by) or ["start_timestamp", "vitrage_id"]
        dirs = list(request.sort_dirs) or ["asc"] * len(sort_by)
        if len(dirs) != len(sort_by):
            raise HistoryQueryError("sort_dirs: give one direction per sort_by key", "sort_dirs")
        for key in sort_by:
            if key not in SORT_COLUMNS:
                raise HistoryQueryError(f"sort_by: {key!r} is not one of {sorted(SORT_COLUMNS)}", "sort_by")
        for direction in dirs:
            if direction not in ("asc", "desc"):
                raise HistoryQueryError(f"sort_dirs: {direction!r} is not asc or desc", "sort_dirs")
        if request.limit < 0:
            raise HistoryQueryError("limit: must be 0 or more", "limit")
        keys: list[tuple[ColumnElement[Any], bool]] = [
            (_sortable(SORT_COLUMNS[key]), direction == "desc") for key, direction in zip(sort_by, dirs, strict=True)
        ]
        keys.append((alarm_history.c.id, keys[-1][1]))  # a unique tiebreaker, so pages never overlap
        reverse = request.marker is not None and not request.next_page
        if reverse:
            keys = [(column, not descending) for column, descending in keys]
        statement = select(*_READ_COLUMNS).where(*self._conditions(request, await self._longest_alarm()))
        if request.marker is not None:
            values = await self._marker_values(request.marker, [column for column, _ in keys])
            if values is None:
                raise HistoryQueryError(f"marker: no alarm history row {request.marker!r}", "marker")
            statement = statement.where(_after(keys, values))
        statement = statement.order_by(*(column.desc() if descending else column.asc() for column, descending in keys))
        limit = MAX_LIMIT if request.limit == 0 else min(request.limit, MAX_LIMIT)
        return statement.limit(limit), reverse

    async def _longest_alarm(self) -> timedelta:
        """The longest any stored occurrence lasted (an upper bound: purged ones may count)."""
        async with self._engine.connect() as connection:
            seconds = await connection.scalar(
                select(history_progress.c.longest_alarm_s).where(history_progress.c.name == PROGRESS)
            )
        return timedelta(seconds=float(seconds or 0.0) + 1.0)

    def _conditions(self, request: HistoryQuery, longest: timedelta) -> list[ColumnElement[bool]]:
        table = alarm_history.c
        conditions: list[ColumnElement[bool]] = []
        if request.end is not None and request.start is None:
            raise HistoryQueryError("end: cannot be used without start", "end")
        if request.only_active:
            if request.start is not None:
                raise HistoryQueryError("start: cannot be used with only active alarms", "start")
            conditions.append(table.end_time.is_(None))
        if request.start is not None:
            if request.end is not None:
                if request.end < request.start:
                    raise HistoryQueryError("end: must not be before start", "end")
                conditions.append(table.start_time <= request.end)
            # Ended alarms active after ``start`` began at most ``longest`` before it: a bound the
            # start-time index can use (otherwise every older row would be read and filtered).
            ended_then = and_(table.end_time >= request.start, table.start_time >= request.start - longest)
            conditions.append(or_(table.end_time.is_(None), ended_then))
        if len(request.filter_by) != len(request.filter_vals):
            raise HistoryQueryError("filter_vals: give one value per filter_by key", "filter_vals")
        for key, value in zip(request.filter_by, request.filter_vals, strict=True):
            column = FILTER_COLUMNS.get(key)
            if column is None:
                raise HistoryQueryError(f"filter_by: {key!r} is not one of {sorted(FILTER_COLUMNS)}", "filter_by")
            values = value if isinstance(value, tuple) else (value,)
            conditions.append(or_(*(column.like(f"%{_escape_like(v)}%", escape="\\") for v in values)))
        for column, value in (
            (table.resource_id, request.resource_id),
            (table.vitrage_type, request.vitrage_type),
            (table.severity, request.severity),
            (table.name, request.name),
        ):
            if value is not None:
                conditions.append(column == value)
        if request.project_id is not None:
            visible = or_(table.project_id == request.project_id, table.resource_project_id == request.project_id)
            if request.is_admin:
                visible = or_(visible, and_(table.project_id.is_(None), table.resource_project_id.is_(None)))
            conditions.append(visible)
        return conditions

    async def _marker_values(self, marker: str, keys: list[ColumnElement[Any]]) -> list[Any] | None:
        """The sort-key values of the marker row: a history_id, else the latest occurrence of a vitrage_id."""
        columns = [key.label(f"k{index}") for index, key in enumerate(keys)]
        async with self._engine.connect() as connection:
            row = None
            if marker.isdigit():
                row = (await connection.execute(select(*columns).where(alarm_history.c.id == int(marker)))).first()
            if row is None:
                row = (
                    await connection.execute(
                        select(*columns)
                        .where(alarm_history.c.vitrage_id == marker)
                        .order_by(alarm_history.c.start_sequence.desc())
                        .limit(1)
                    )
                ).first()
        return None if row is None else list(row)

    async def get(self, history_id: int) -> dict[str, Any] | None:
        """One history row with the changes of its alarm while it was active, oldest first."""
        async with self._engine.connect() as connection:
            row = (
                (await connection.execute(select(*_READ_COLUMNS).where(alarm_history.c.id == history_id)))
                .mappings()
                .first()
            )
            if row is None:
                return None
            changes = (
                (
                    await connection.execute(
                        select(alarm_changes)
                        .where(
                            alarm_changes.c.vitrage_id == row["vitrage_id"],
                            alarm_changes.c.start_sequence == row["start_sequence"],
                        )
                        .order_by(alarm_changes.c.sequence)
                    )
                )
                .mappings()
                .all()
            )
        alarm = row_to_alarm(row)
        alarm["changes"] = [
            {
                "time": _format(change["time"]),
                "sequence": change["sequence"],
                "vitrage_operational_severity": change["severity"],
                "vitrage_aggregated_severity": change["aggregated_severity"],
                "state": change["state"],
            }
            for change in changes
        ]
        return alarm

    async def occurrences(self, vitrage_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Every stored occurrence of these alarms (rows as :func:`row_to_alarm` gives them)."""
        if not vitrage_ids:
            return []
        found: list[dict[str, Any]] = []
        async with self._engine.connect() as connection:
            for start in range(0, len(vitrage_ids), 500):
                chunk = list(vitrage_ids[start : start + 500])
                rows = (
                    (
                        await connection.execute(
                            select(*_READ_COLUMNS)
                            .where(alarm_history.c.vitrage_id.in_(chunk))
                            .order_by(alarm_history.c.start_sequence)
                        )
                    )
                    .mappings()
                    .all()
                )
                found.extend(row_to_alarm(row) for row in rows)
        return found

    async def causal_links(self, vitrage_ids: Sequence[str], *, as_target: bool) -> list[CauseRow]:
        """The causal links (any time) whose target (``as_target``) or source is one of these alarms."""
        if not vitrage_ids:
            return []
        column = cause_history.c.target_id if as_target else cause_history.c.source_id
        found: list[CauseRow] = []
        async with self._engine.connect() as connection:
            for start in range(0, len(vitrage_ids), 500):
                chunk = list(vitrage_ids[start : start + 500])
                rows = await connection.execute(
                    select(cause_history).where(column.in_(chunk)).order_by(cause_history.c.start_sequence)
                )
                found.extend(CauseRow(**row) for row in rows.mappings())
        return found

    # -- retention --------------------------------------------------------------------------------

    async def purge(self, before: datetime, chunk: int = 10_000) -> Purged:
        """Remove alarms and causal links that ended before ``before`` (and the changes of those alarms).

        Active alarms and links stay whatever their age: they are still true.
        Deleted in chunks, each its own transaction, so a large purge never
        holds long locks.
        """
        purged = Purged()
        while True:
            async with self._engine.begin() as connection:
                ended = (
                    await connection.execute(
                        select(alarm_history.c.id, alarm_history.c.vitrage_id, alarm_history.c.start_sequence)
                        .where(alarm_history.c.end_time < before)
                        .limit(chunk)
                    )
                ).all()
                if not ended:
                    break
                for vitrage_id, start in {(r.vitrage_id, r.start_sequence) for r in ended}:
                    result = await connection.execute(
                        delete(alarm_changes).where(
                            alarm_changes.c.vitrage_id == vitrage_id, alarm_changes.c.start_sequence == start
                        )
                    )
                    purged.changes += result.rowcount or 0
                result = await connection.execute(
                    delete(alarm_history).where(alarm_history.c.id.in_([r.id for r in ended]))
                )
                purged.alarms += result.rowcount or 0
        while True:
            async with self._engine.begin() as connection:
                ids = (
                    await connection.scalars(
                        select(cause_history.c.id).where(cause_history.c.end_time < before).limit(chunk)
                    )
                ).all()
                if not ids:
                    break
                result = await connection.execute(delete(cause_history).where(cause_history.c.id.in_(ids)))
                purged.causes += result.rowcount or 0
        return purged


# -- rows ----------------------------------------------------------------------------------------

_READ_COLUMNS = tuple(alarm_history.c)


def row_to_alarm(row: Any) -> dict[str, Any]:
    """A history row as the API shows it: the alarm's properties when last seen active, plus
    ``history_id``, ``start_timestamp``/``end_timestamp`` and, for deduced alarms, ``templates``.

    As in Vitrage, an ended alarm reads ``state: Inactive`` and operational severity ``OK``
    (its last severity stays in ``vitrage_aggregated_severity`` and in the changes).
    """
    alarm: dict[str, Any] = _load_json(row["payload"])
    alarm["vitrage_id"] = row["vitrage_id"]
    for key, column in (("project_id", "project_id"), ("vitrage_resource_project_id", "resource_project_id")):
        if row[column] is not None:
            alarm.setdefault(key, row[column])  # who may see it, as the list filters by
    alarm["history_id"] = row["id"]
    alarm.setdefault("start_timestamp", _format(row["start_time"]))
    alarm["history_start"] = _format(row["start_time"])
    if row["end_time"] is not None:
        alarm["end_timestamp"] = _format(row["end_time"])
        alarm["vitrage_operational_severity"] = "OK"
        alarm["state"] = "Inactive"
    if row["templates"]:
        alarm["templates"] = _load_json(row["templates"])
    alarm["start_sequence"] = row["start_sequence"]
    alarm["end_sequence"] = row["end_sequence"]
    return alarm


_STATEMENT_ORDER = ("alarm_started", "alarm_changed", "cause_started", "cause_ended", "alarm_ended")


def _statement_of(record: HistoryRecord) -> str:
    prefix = "alarm" if isinstance(record, AlarmRecord) else "cause"
    return f"{prefix}_{record.kind.value}"


def _alarm_row(record: AlarmRecord) -> dict[str, Any]:
    alarm = record.alarm
    assert alarm is not None
    return {
        "vitrage_id": record.vitrage_id,
        "start_sequence": record.sequence,
        "end_sequence": None,
        "start_time": _time(record.time),
        "end_time": None,
        "name": _clip(alarm.name, 255),
        "vitrage_type": _clip(alarm.vitrage_type, 64),
        "severity": _clip(alarm.severity, 64),
        "aggregated_severity": _clip(alarm.aggregated_severity, 64),
        "state": _clip(alarm.state, 64),
        "project_id": _clip(alarm.project_id, 64),
        "resource_id": _clip(alarm.resource_id, 64),
        "resource_type": _clip(alarm.resource_type, 64),
        "resource_name": _clip(alarm.resource_name, 255),
        "resource_project_id": _clip(alarm.resource_project_id, 64),
        "deduced": alarm.deduced,
        "templates": orjson.dumps(list(alarm.templates)).decode() if alarm.templates else None,
        "payload": _json(alarm.payload),
    }


def _change_row(record: AlarmRecord) -> dict[str, Any]:
    alarm = record.alarm
    assert alarm is not None
    return {
        "vitrage_id": record.vitrage_id,
        "start_sequence": 0,
        "sequence": record.sequence,
        "time": _time(record.time),
        "severity": _clip(alarm.severity, 64),
        "aggregated_severity": _clip(alarm.aggregated_severity, 64),
        "state": _clip(alarm.state, 64),
        "payload": _json(alarm.payload),
    }


def _latest_values() -> dict[str, Any]:
    names = (
        "name",
        "severity",
        "aggregated_severity",
        "state",
        "project_id",
        "resource_id",
        "resource_type",
        "resource_name",
        "resource_project_id",
        "templates",
        "payload",
    )
    return {name: bindparam(f"v_{name}") for name in names}


def _latest_params(record: AlarmRecord, row: dict[str, Any]) -> dict[str, Any]:
    full = _alarm_row(record)
    params = {f"v_{name}": full[name] for name in _latest_values()}
    params["b_vitrage_id"] = record.vitrage_id
    params["b_start"] = row["start_sequence"]
    return params


def _cause_row(record: CauseRecord) -> dict[str, Any]:
    return {
        "source_id": record.source_id,
        "target_id": record.target_id,
        "start_sequence": record.sequence,
        "end_sequence": None,
        "start_time": _time(record.time),
        "end_time": None,
    }


def _cause_end_params(record: CauseRecord) -> dict[str, Any]:
    return {
        "b_source": record.source_id,
        "b_target": record.target_id,
        "b_sequence": record.sequence,
        "b_time": _time(record.time),
    }


async def _set_progress(connection: AsyncConnection, sequence: int, longest: float) -> None:
    """Raise the progress to ``sequence`` and the longest occurrence to ``longest`` (never lower either)."""
    now = datetime.now(UTC)
    table = history_progress.c
    result = await connection.execute(
        update(history_progress)
        .where(table.name == PROGRESS)
        .values(
            sequence=case((table.sequence < sequence, sequence), else_=table.sequence),
            longest_alarm_s=case((table.longest_alarm_s < longest, longest), else_=table.longest_alarm_s),
            updated_at=now,
        )
    )
    if not result.rowcount:
        await connection.execute(
            history_progress.insert().values(name=PROGRESS, sequence=sequence, longest_alarm_s=longest, updated_at=now)
        )


async def _open_start_times(connection: AsyncConnection, vitrage_ids: list[str]) -> dict[str, tuple[int, datetime]]:
    """(start sequence, start time) of the open occurrence of each alarm."""
    found: dict[str, tuple[int, datetime]] = {}
    unique = sorted(set(vitrage_ids))
    for start in range(0, len(unique), 500):
        rows = await connection.execute(
            select(alarm_history.c.vitrage_id, alarm_history.c.start_sequence, alarm_history.c.start_time).where(
                alarm_history.c.vitrage_id.in_(unique[start : start + 500]), alarm_history.c.end_sequence.is_(None)
            )
        )
        found.update({vitrage_id: (int(sequence), moment) for vitrage_id, sequence, moment in rows})
    return found


def _insert_ignoring(dialect: str, table: Any) -> Any:
    """An INSERT that skips rows whose unique key is already stored (the writes are replayable)."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if dialect in MYSQL_DIALECTS:
        return mysql.insert(table).prefix_with("IGNORE")
    raise ValueError(f"the history does not support the {dialect!r} database")


def _sortable(column: Any) -> ColumnElement[Any]:
    """The column as it sorts and compares: a missing end after every time, missing text first.

    Columns that are never NULL stay bare, so the default order (start time,
    vitrage id) is read from its index.
    """
    if not column.nullable:
        return column  # type: ignore[no-any-return]
    if column is alarm_history.c.end_time:
        return func.coalesce(column, literal(_FAR_FUTURE, UTCDateTime()))
    return func.coalesce(column, "")


def _after(keys: list[tuple[ColumnElement[Any], bool]], values: list[Any]) -> ColumnElement[bool]:
    """Rows strictly after the marker in the order ``keys`` gives (keyset pagination)."""
    clauses = []
    for index, (column, descending) in enumerate(keys):
        beyond = column < values[index] if descending else column > values[index]
        equal_before = [key == value for (key, _), value in zip(keys[:index], values, strict=False)]
        clauses.append(and_(*equal_before, beyond))
    return or_(*clauses)


def _escape_like(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _time(text: str) -> datetime:
    """A record's time (Vitrail's format, or any ISO-8601 form an event carried)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(normalize_timestamp(text))
        except EventError:
            # An event whose times are not times was accepted anyway (its datasource does
            # not read them); its history row must not block every later one.
            moment = datetime(1970, 1, 1, tzinfo=UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _format(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(sep=" ", timespec="microseconds")


def _clip(value: str | None, length: int) -> str | None:
    return None if value is None else str(value)[:length]


def _load_json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # an escaped lone surrogate (see _json)
        return json.loads(text)


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()
    except (orjson.JSONEncodeError, TypeError):
        # Text orjson refuses (a lone surrogate): escaped by the standard library instead.
        return json.dumps(value, sort_keys=True, default=str, ensure_ascii=True)


__all__ = [
    "MAX_LIMIT",
    "PROGRESS",
    "SORT_COLUMNS",
    "CauseRow",
    "HistoryQuery",
    "HistoryQueryError",
    "HistoryStore",
    "Purged",
    "row_to_alarm",
]
