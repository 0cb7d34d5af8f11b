"""Snapshots: the graph leader's whole processor state at one sequence number.

A standby that takes over loads the latest snapshot and replays the event log
after it; the graph at a past time T is the snapshot before T plus the events
up to T. The bytes are opaque here (the format column says how to decode them)
and stored in chunks, because MySQL/MariaDB refuse any packet beyond
``max_allowed_packet`` (16 MiB by default, and the bytes travel hex-encoded
there, so twice their size). A snapshot and all its chunks are written in one
transaction fenced by the leader's epoch: a reader never meets half a snapshot,
and a deposed leader cannot store one.

Thinning (:func:`thinning_plan`) bounds how many are kept: dense recently,
sparse further back, none beyond the retention (except the newest few), and
never so sparse that a reconstruction replays more than ``max_replay_events``.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vitrail.graph.snapshot import EncodedState
from vitrail.storage.leadership import GRAPH, check_epoch, writer_engine
from vitrail.storage.models import SNAPSHOT_FORMAT_LENGTH, snapshot_chunks, snapshots

DEFAULT_CHUNK_SIZE = 1024 * 1024
"""Bytes per chunk: 2 MiB of hex text per statement on MySQL/MariaDB, far below 16 MiB."""
MAX_CHUNK_SIZE = 4 * 1024 * 1024
"""The largest chunk accepted: 8 MiB hex-encoded still fits MariaDB's default 16 MiB packet."""

_LOAD_BATCH = 8
"""Chunks read per query when loading: bounded result sets, few round trips."""
HOURLY_WINDOW = timedelta(hours=24)
"""Thinning keeps one snapshot per hour within this age, one per day beyond it."""


class SnapshotNotFound(LookupError):
    """No snapshot has this id (never stored, or deleted, possibly while it was being loaded)."""


class SnapshotCorrupt(ValueError):
    """A snapshot's stored chunks do not match its metadata (missing, extra or resized
    chunks): the bytes cannot be trusted, take the snapshot before it."""


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A stored snapshot's metadata (a ``snapshots`` row); the bytes come from :meth:`SnapshotStore.load`."""

    id: int
    sequence: int
    """The last event the snapshot includes: replay continues after it."""
    epoch: int
    taken_at: datetime
    format: str
    entities: int
    relationships: int
    raw_bytes: int
    stored_bytes: int
    chunks: int


def _info(row: Any) -> SnapshotInfo:
    return SnapshotInfo(
        id=int(row.id),
        sequence=int(row.sequence),
        epoch=int(row.epoch),
        taken_at=row.taken_at,
        format=row.format,
        entities=int(row.entities),
        relationships=int(row.relationships),
        raw_bytes=int(row.raw_bytes),
        stored_bytes=int(row.stored_bytes),
        chunks=int(row.chunks),
    )


def thinning_plan(
    taken: Iterable[tuple[int, datetime, int]],
    now: datetime,
    retention: timedelta,
    keep_latest: int = 3,
    *,
    max_replay_events: int | None = None,
    log_end: int | None = None,
) -> list[int]:
    """The ids to delete among ``taken`` ((id, taken_at, sequence) triples), oldest first.

    The policy:

    1. the ``keep_latest`` newest snapshots are always kept, even beyond the
       retention: recovery starts from the newest, and the log before it may be
       pruned, so deleting it would lose the graph;
    2. every other snapshot taken before ``now - retention`` is deleted;
    3. of the rest, one per UTC clock hour is kept among those taken within the
       last 24 hours (after ``now - 24 h``, or later than ``now``), one per UTC
       calendar day among the older ones; each bucket keeps its *oldest*;
    4. with ``max_replay_events``: a snapshot rule 3 gives up is kept all the same
       when, without it, more than ``max_replay_events`` events would separate
       two kept snapshots (or the newest kept one and ``log_end``, the last
       logged sequence). Greedy, in sequence order: a snapshot is kept only if
       the next candidate is beyond the bound from the last kept one. So a
       reconstruction at any time of the retention replays at most that many
       events, wherever the snapshots taken allow it (two snapshots taken
       further apart cannot be helped).

    Oldest, and buckets aligned on the clock rather than on ``now``: the
    snapshot a bucket keeps stays its oldest as newer ones arrive, and the one
    kept for a day is the one kept for that day's earliest hour, so a kept
    snapshot is only deleted by the retention, and repeated runs agree (rule 4
    too: the next candidate of a snapshot it kept can only be further away in a
    later run).
    """
    if keep_latest < 1:
        raise ValueError(f"keep_latest must be >= 1 (the newest snapshot is never deleted), got {keep_latest}")
    if retention <= timedelta(0):
        raise ValueError(f"retention must be positive, got {retention}")
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now.isoformat()}: give a time zone (UTC)")
    if max_replay_events is not None and max_replay_events < 1:
        raise ValueError(f"max_replay_events must be >= 1, got {max_replay_events}")
    oldest_first = sorted(taken, key=lambda item: (item[1], item[0]))
    latest = {snapshot_id for snapshot_id, _, _ in oldest_first[-keep_latest:]}
    horizon = now - retention
    hourly_since = now - HOURLY_WINDOW
    buckets: set[tuple[str, datetime]] = set()
    doomed: list[int] = []
    expired: set[int] = set()
    for snapshot_id, taken_at, _ in oldest_first:
        if snapshot_id in latest:
            continue
        if taken_at < horizon:
            doomed.append(snapshot_id)
            expired.add(snapshot_id)
            continue
        moment = taken_at.astimezone(UTC)
        if taken_at > hourly_since:
            bucket = ("hour", moment.replace(minute=0, second=0, microsecond=0))
        else:
            bucket = ("day", moment.replace(hour=0, minute=0, second=0, microsecond=0))
        if bucket in buckets:
            doomed.append(snapshot_id)
        else:
            buckets.add(bucket)
    if max_replay_events is None or not doomed:
        return doomed
    thinned = set(doomed)
    candidates = sorted(
        (item for item in oldest_first if item[0] not in expired), key=lambda item: (item[2], item[1], item[0])
    )
    rescued: set[int] = set()
    last_kept: int | None = None
    for index, (snapshot_id, _, sequence) in enumerate(candidates):
        if snapshot_id in thinned:
            following = candidates[index + 1][2] if index + 1 < len(candidates) else log_end
            if last_kept is None or following is None or following - last_kept <= max_replay_events:
                continue
            rescued.add(snapshot_id)
        last_kept = sequence
    return [snapshot_id for snapshot_id in doomed if snapshot_id not in rescued]


class SnapshotStore:
    """Snapshots and their chunks (tables ``snapshots`` and ``snapshot_chunks``)."""

    def __init__(self, engine: AsyncEngine, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE} bytes, got {chunk_size}")
        self._engine = engine
        self._writer = writer_engine(engine)
        self.chunk_size = chunk_size

    async def save_state(self, state: EncodedState, epoch: int, taken_at: datetime | None = None) -> SnapshotInfo:
        """:meth:`save` an encoded processor state with the metadata it carries."""
        return await self.save(
            state.data,
            sequence=state.sequence,
            epoch=epoch,
            format=state.format,
            entities=state.entities,
            relationships=state.relationships,
            raw_bytes=state.raw_bytes,
            taken_at=taken_at,
        )

    async def save(
        self,
        data: bytes,
        *,
        sequence: int,
        epoch: int,
        format: str,
        entities: int,
        relationships: int,
        raw_bytes: int,
        taken_at: datetime | None = None,
    ) -> SnapshotInfo:
        """Store ``data`` as the snapshot at ``sequence``, taken by the leader of ``epoch``.

        One transaction: the metadata row and every chunk, or nothing. Raises
        :class:`~vitrail.storage.leadership.Fenced` when a newer graph leader
        took over, :class:`ValueError` for metadata the columns cannot hold.
        """
        _check_metadata(format, sequence=sequence, entities=entities, relationships=relationships, raw_bytes=raw_bytes)
        if taken_at is not None and taken_at.tzinfo is None:
            raise ValueError(f"naive datetime {taken_at.isoformat()}: give a time zone (UTC)")
        view = memoryview(data).cast("B")
        count = -(-len(view) // self.chunk_size)
        values = {
            "sequence": sequence,
            "epoch": epoch,
            "taken_at": taken_at or datetime.now(UTC),
            "format": format,
            "entities": entities,
            "relationships": relationships,
            "raw_bytes": raw_bytes,
            "stored_bytes": len(view),
            "chunks": count,
        }
        async with self._writer.begin() as connection:
            await check_epoch(connection, GRAPH, epoch)
            result = await connection.execute(snapshots.insert().values(**values))
            snapshot_id = int(result.inserted_primary_key[0])
            # One statement per chunk: a single multi-row INSERT would exceed max_allowed_packet.
            for index in range(count):
                piece = bytes(view[index * self.chunk_size : (index + 1) * self.chunk_size])
                await connection.execute(
                    snapshot_chunks.insert().values(snapshot_id=snapshot_id, chunk=index, data=piece)
                )
            row = (await connection.execute(select(snapshots).where(snapshots.c.id == snapshot_id))).one()
        return _info(row)

    async def get(self, snapshot_id: int) -> SnapshotInfo | None:
        """The metadata of one snapshot, None if there is none with this id."""
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(snapshots).where(snapshots.c.id == snapshot_id))).first()
        return None if row is None else _info(row)

    async def latest(
        self, at_or_before: datetime | None = None, max_sequence: int | None = None
    ) -> SnapshotInfo | None:
        """The snapshot covering the most events among those taken at or before ``at_or_before``
        and ending at or before ``max_sequence`` (each filter only when given), or None.

        "Most events": the highest sequence, then the latest taken, then the last
        stored; that is the least to replay after it.
        """
        query = select(snapshots)
        if at_or_before is not None:
            query = query.where(snapshots.c.taken_at <= at_or_before)
        if max_sequence is not None:
            query = query.where(snapshots.c.sequence <= max_sequence)
        query = query.order_by(snapshots.c.sequence.desc(), snapshots.c.taken_at.desc(), snapshots.c.id.desc())
        async with self._engine.connect() as connection:
            row = (await connection.execute(query.limit(1))).first()
        return None if row is None else _info(row)

    async def earliest(self, min_sequence: int = 0) -> SnapshotInfo | None:
        """The snapshot covering the fewest events among those ending at or after ``min_sequence``
        (the lowest sequence, then the earliest taken), or None: where the history begins."""
        query = (
            select(snapshots)
            .where(snapshots.c.sequence >= min_sequence)
            .order_by(snapshots.c.sequence, snapshots.c.taken_at, snapshots.c.id)
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(query.limit(1))).first()
        return None if row is None else _info(row)

    async def load(self, snapshot_id: int) -> bytes:
        """The bytes of a snapshot, its chunks joined in order.

        Raises :class:`SnapshotNotFound` for an unknown id and
        :class:`SnapshotCorrupt`, naming what is wrong, when the chunks do not
        match the metadata: their number, a missing or extra chunk, the total size.
        """
        async with self._engine.connect() as connection:
            info = await self._info_or_raise(connection, snapshot_id)
            count, total = (
                await connection.execute(
                    select(func.count(), func.coalesce(func.sum(func.length(snapshot_chunks.c.data)), 0)).where(
                        snapshot_chunks.c.snapshot_id == snapshot_id
                    )
                )
            ).one()
            count, total = int(count), int(total)
            if count != info.chunks or total != info.stored_bytes:
                await self._info_or_raise(connection, snapshot_id)  # deleted meanwhile?
                raise SnapshotCorrupt(
                    f"snapshot {snapshot_id} is corrupt: {count} chunks of {total} bytes in all are stored, "
                    f"its metadata says {info.chunks} chunks of {info.stored_bytes} bytes"
                )
            parts = await self._read_chunks(connection, info)
        return b"".join(parts)

    async def _read_chunks(self, connection: AsyncConnection, info: SnapshotInfo) -> builtins.list[bytes]:
        parts: list[bytes] = []
        for start in range(0, info.chunks, _LOAD_BATCH):
            query = (
                select(snapshot_chunks.c.chunk, snapshot_chunks.c.data)
                .where(
                    snapshot_chunks.c.snapshot_id == info.id,
                    snapshot_chunks.c.chunk >= start,
                    snapshot_chunks.c.chunk < start + _LOAD_BATCH,
                )
                .order_by(snapshot_chunks.c.chunk)
            )
            expected = start
            for chunk, data in await connection.execute(query):
                if chunk != expected:
                    break
                parts.append(data)
                expected += 1
            if expected != min(start + _LOAD_BATCH, info.chunks):
                await self._info_or_raise(connection, info.id)  # deleted meanwhile?
                raise SnapshotCorrupt(
                    f"snapshot {info.id} is corrupt: chunk {expected} of {info.chunks} (numbered from 0) is missing"
                )
        return parts

    @staticmethod
    async def _info_or_raise(connection: AsyncConnection, snapshot_id: int) -> SnapshotInfo:
        row = (await connection.execute(select(snapshots).where(snapshots.c.id == snapshot_id))).first()
        if row is None:
            raise SnapshotNotFound(f"no snapshot {snapshot_id} (never stored, or deleted)")
        return _info(row)

    async def list(self, limit: int = 100) -> builtins.list[SnapshotInfo]:
        """The ``limit`` most recently taken snapshots, newest first."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        query = select(snapshots).order_by(snapshots.c.taken_at.desc(), snapshots.c.id.desc()).limit(limit)
        async with self._engine.connect() as connection:
            return [_info(row) for row in await connection.execute(query)]

    async def delete(self, ids: Iterable[int]) -> int:
        """Delete snapshots and their chunks; return how many existed.

        One transaction per snapshot: each goes entirely or not at all, and
        deleting many large ones never builds one huge transaction.
        """
        deleted = 0
        for snapshot_id in dict.fromkeys(ids):
            async with self._writer.begin() as connection:
                await connection.execute(delete(snapshot_chunks).where(snapshot_chunks.c.snapshot_id == snapshot_id))
                deleted += (await connection.execute(delete(snapshots).where(snapshots.c.id == snapshot_id))).rowcount
        return deleted

    async def thin(
        self,
        now: datetime,
        retention: timedelta,
        keep_latest: int = 3,
        *,
        max_replay_events: int | None = None,
        log_end: int | None = None,
    ) -> builtins.list[int]:
        """Delete the snapshots :func:`thinning_plan` gives up; return their ids, oldest first."""
        async with self._engine.connect() as connection:
            rows = await connection.execute(select(snapshots.c.id, snapshots.c.taken_at, snapshots.c.sequence))
            taken = [(int(row.id), row.taken_at, int(row.sequence)) for row in rows]
        doomed = thinning_plan(taken, now, retention, keep_latest, max_replay_events=max_replay_events, log_end=log_end)
        await self.delete(doomed)
        return doomed


def _check_metadata(format: str, **counts: int) -> None:
    """Refuse metadata a column would truncate or reject, before anything is written."""
    if not isinstance(format, str) or not format or len(format) > SNAPSHOT_FORMAT_LENGTH:
        raise ValueError(
            f"format must be a non-empty string of at most {SNAPSHOT_FORMAT_LENGTH} characters, got {format!r}"
        )
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CHUNK_SIZE",
    "SnapshotCorrupt",
    "SnapshotInfo",
    "SnapshotNotFound",
    "SnapshotStore",
    "thinning_plan",
]
