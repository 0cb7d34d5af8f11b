"""Fencing epochs: one number per led role that makes a deposed leader's writes fail.

A leader can lose its lock without noticing (a long GC pause, a partition) and
keep writing for a while. So each takeover first *bumps* the role's epoch in
``leadership``, and every write of the leader's data checks, inside its own
transaction, that the stored epoch is not newer than the leader's. The check
and the bump serialise on the leadership row: the check takes a shared lock
(PostgreSQL ``FOR SHARE``, MariaDB ``LOCK IN SHARE MODE``; SQLite has a single
writer anyway), the bump updates the row, so it waits for the writes in flight
and every write that starts after it sees the new epoch. Once a bump has
committed, no write of an older epoch can commit any more.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import Insert, func, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vitrail.storage.database import _SQLITE_BEGIN_OPTION
from vitrail.storage.models import MYSQL_DIALECTS, events, leadership

GRAPH = "graph"
"""The led role whose epoch fences the event log and the snapshots."""

HOLDER_LENGTH = 255
"""Characters of ``leadership.holder``; a longer holder name is cut, never refused."""

_BUMP_ATTEMPTS = 5
"""A bump that loses a deadlock (MariaDB, two first bumps at once) is tried again."""
_DEADLOCK_SQLSTATES = frozenset({"40P01", "40001"})
"""PostgreSQL: deadlock detected, serialization failure."""
_MYSQL_DEADLOCK = 1213
"""MySQL/MariaDB ER_LOCK_DEADLOCK: the server rolled the transaction back."""


class Fenced(RuntimeError):
    """A write of a leader whose epoch is older than the stored one: another leader took
    over, and this one must stop writing (and step down). Nothing was written."""

    def __init__(
        self, message: str, *, name: str | None = None, epoch: int | None = None, current: int | None = None
    ) -> None:
        super().__init__(message)
        self.name = name
        self.epoch = epoch
        self.current = current


class EpochHolder(NamedTuple):
    """Who took the current epoch of a role, and when."""

    epoch: int
    holder: str
    acquired_at: datetime


def writer_engine(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` configured for transactions that read before they write (fenced writes).

    SQLite: the transaction begins ``IMMEDIATE``, so it waits for the write lock
    up front; a deferred one that read first fails at once (``database is
    locked``) when another writer committed in between. MySQL/MariaDB: READ
    COMMITTED, so a read after a locking read or an ``INSERT IGNORE`` sees what
    was committed meanwhile, as on PostgreSQL, instead of REPEATABLE READ's
    snapshot taken at the first read. The returned engine shares ``engine``'s pool.
    """
    dialect = engine.dialect.name
    if dialect == "sqlite":
        return engine.execution_options(**{_SQLITE_BEGIN_OPTION: "BEGIN IMMEDIATE"})
    if dialect in MYSQL_DIALECTS:
        return engine.execution_options(isolation_level="READ COMMITTED")
    return engine


async def check_epoch(connection: AsyncConnection, name: str, epoch: int) -> None:
    """Raise :class:`Fenced` if the stored epoch of ``name`` is newer than ``epoch``.

    Call it inside the write transaction, before writing: it locks the leadership
    row in share mode until the transaction ends, so a bump waits for this write,
    and this write cannot commit after a bump. A role without a row counts as
    epoch 0 (no leader ever took it), so any epoch passes. On SQLite, a
    transaction that did not begin IMMEDIATE takes the write lock here (a no-op
    UPDATE): call this first, before any read, or use :func:`writer_engine`.
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise TypeError(f"epoch must be an integer, got {epoch!r}")
    if connection.dialect.name == "sqlite" and not _began_immediate(connection):
        # A write statement takes SQLite's write lock even when it matches no row.
        await connection.execute(update(leadership).where(leadership.c.name == name).values(epoch=leadership.c.epoch))
    stored = await connection.scalar(
        select(leadership.c.epoch).where(leadership.c.name == name).with_for_update(read=True)
    )
    current = 0 if stored is None else int(stored)
    if current > epoch:
        raise Fenced(
            f"epoch {epoch} of {name!r} is stale: the current epoch is {current} (another leader took over)",
            name=name,
            epoch=epoch,
            current=current,
        )


async def read_watermark(engine: AsyncEngine, name: str) -> tuple[int | None, int]:
    """(current epoch of ``name`` or None, highest stored event sequence or 0), in ONE statement.

    One statement reads both from the same snapshot on every backend, so a
    leader cannot pair its own epoch with a log its successor already wrote to.
    """
    epoch = select(leadership.c.epoch).where(leadership.c.name == name).scalar_subquery()
    highest = select(func.coalesce(func.max(events.c.sequence), 0)).scalar_subquery()
    async with engine.connect() as connection:
        current, stored = (await connection.execute(select(epoch, highest))).one()
    return (None if current is None else int(current)), int(stored or 0)


class EpochStore:
    """The epochs of the led roles (table ``leadership``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = _insert_ignoring_duplicates(engine.dialect.name)

    async def bump(self, name: str, holder: str) -> int:
        """Take a new epoch of ``name`` for ``holder``; return it (the first one is 1).

        Waits for the writes holding the epoch check's share lock. Two processes
        bumping at once get distinct epochs: the UPDATE increments the stored
        value under the row lock, and a missing row is inserted by exactly one of
        them (the other finds it and increments it). A deadlock between two first
        bumps (MariaDB's gap locks) is retried.
        """
        for attempt in range(1, _BUMP_ATTEMPTS + 1):
            try:
                async with self._engine.begin() as connection:
                    return await self._bump(connection, name, holder[:HOLDER_LENGTH])
            except DBAPIError as exc:
                if attempt == _BUMP_ATTEMPTS or not _is_deadlock(exc):
                    raise
            await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _bump(self, connection: AsyncConnection, name: str, holder: str) -> int:
        values = {"holder": holder, "acquired_at": datetime.now(UTC)}
        increment = update(leadership).where(leadership.c.name == name).values(epoch=leadership.c.epoch + 1, **values)
        # The UPDATE comes first: on SQLite it takes the write lock before anything is read.
        if (await connection.execute(increment)).rowcount == 0:
            created = await connection.execute(self._insert.values(name=name, epoch=1, **values))
            if created.rowcount == 1:
                return 1
            await connection.execute(increment)  # another process created it meanwhile
        epoch = await connection.scalar(select(leadership.c.epoch).where(leadership.c.name == name))
        assert epoch is not None, "the leadership row was deleted during a bump"
        return int(epoch)

    async def current(self, name: str) -> int | None:
        """The current epoch of ``name``, None if no leader ever took it."""
        async with self._engine.connect() as connection:
            value = await connection.scalar(select(leadership.c.epoch).where(leadership.c.name == name))
        return None if value is None else int(value)

    async def holder(self, name: str) -> EpochHolder | None:
        """(epoch, holder, acquired_at) of ``name``'s current epoch, None if no leader ever took it."""
        query = select(leadership.c.epoch, leadership.c.holder, leadership.c.acquired_at).where(
            leadership.c.name == name
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
        return None if row is None else EpochHolder(int(row.epoch), row.holder, row.acquired_at)


def _insert_ignoring_duplicates(dialect: str) -> Insert:
    """INSERT into ``leadership`` that does nothing (row count 0) when the name exists."""
    if dialect == "postgresql":
        return postgresql.insert(leadership).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(leadership).on_conflict_do_nothing()
    if dialect in MYSQL_DIALECTS:
        # IGNORE also turns data errors into warnings: the values are checked (holder cut) first.
        return mysql.insert(leadership).prefix_with("IGNORE")
    raise ValueError(f"leadership does not support the {dialect!r} database")


def _began_immediate(connection: AsyncConnection) -> bool:
    """Whether a SQLite transaction holds the write lock from its start (see :func:`writer_engine`)."""
    sync = connection.sync_connection
    return sync is not None and sync.get_execution_options().get(_SQLITE_BEGIN_OPTION) == "BEGIN IMMEDIATE"


def _is_deadlock(exc: DBAPIError) -> bool:
    """Whether the server aborted the transaction to break a deadlock (safe to run it again)."""
    original = exc.orig
    if getattr(original, "sqlstate", None) in _DEADLOCK_SQLSTATES:
        return True
    args = getattr(original, "args", ())
    return bool(args) and args[0] == _MYSQL_DEADLOCK


__all__ = ["GRAPH", "EpochHolder", "EpochStore", "Fenced", "check_epoch", "read_watermark", "writer_engine"]
