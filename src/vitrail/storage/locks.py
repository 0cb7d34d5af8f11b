"""Leader election on the database the deployment already has.

Exactly one graph process may be the leader; the others are standbys that take
over when it dies. The leadership is a *session lock* of the database, held by
one dedicated connection for as long as the leadership lasts:

* PostgreSQL: ``pg_try_advisory_lock(key)`` (locks are scoped to the database);
* MariaDB/MySQL: ``GET_LOCK(name, 0)`` (locks are server-wide, so the name
  includes the database name);
* SQLite: an exclusive ``flock`` on ``<database file>.leader.lock``; for an
  in-memory database, a lock inside this process.

When the process dies, even by SIGKILL, the kernel closes its sockets and
files: the server ends the session and frees the lock, or the kernel frees the
flock, and a standby polling with a try-lock takes over at its next poll. No
other service (ZooKeeper, etcd, Redis) is needed, and no lease has to expire.

A lock can also be lost while the process lives (an operator or a failover
ended the session, the network was cut, the lock file was removed): a heartbeat
checks the lock every ``heartbeat_interval`` and sets :attr:`LeaderLock.lost`;
the leader must then step down. The lock alone cannot stop a leader that does
not notice in time from writing: the fencing epoch does (``docs/ha.md``).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import fcntl
import hashlib
import logging
import math
import os
import re
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiomysql
import asyncpg
import pymysql
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from vitrail.storage.database import CONNECT_TIMEOUT_S, DatabaseConfigError, describe_target, mask_url, normalize_url

log = logging.getLogger(__name__)

DEFAULT_NAME = "graph"
"""What is led unless said otherwise: the graph role."""
MAX_RETRY_DELAY_S = 5.0
"""Longest pause between two attempts while the database is unreachable."""
RELEASE_TIMEOUT_S = 5.0
"""A release that takes longer drops the connection instead (which frees the lock too)."""
HOLDER_QUERY_TIMEOUT_S = 2.0
"""Who holds the lock is only logged: never wait long for it."""
MIN_SERVER_TIMEOUT_S = 10.0
"""Default floor of how long the server waits for a silent leader before ending its session."""

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MYSQL_LOCK_NAME_MAX = 64  # MySQL refuses longer names (MariaDB does not, but must not be relied on)
_APPLICATION_NAME_MAX = 63  # PostgreSQL truncates application_name to NAMEDATALEN - 1 bytes
_RETRYABLE: tuple[type[BaseException], ...] = (
    OSError,  # includes TimeoutError and ConnectionRefusedError
    asyncpg.PostgresError,  # the server refused or ended the session (restart, failover, too many clients)
    asyncpg.InterfaceError,  # the connection is closed
    pymysql.err.Error,  # aiomysql raises PyMySQL's errors
)
"""What an attempt to take the lock may raise while the database is down or restarting."""


class _NotHeld(Exception):
    """The heartbeat found the lock no longer held by this process (the message says why)."""


def advisory_key(name: str) -> int:
    """The PostgreSQL advisory lock key of ``name``: a signed 64-bit integer (``bigint``).

    Derived with a cryptographic hash rather than :func:`hash`, which is salted per
    process: every process, version and machine must compute the same key.
    """
    digest = hashlib.blake2b(f"vitrail.leader.{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def mysql_lock_name(database: str | None, name: str) -> str:
    """The ``GET_LOCK`` name of ``name`` in ``database``.

    MySQL/MariaDB user locks are server-wide, unlike PostgreSQL's advisory locks:
    without the database name, two Vitrail installations sharing a server (or two
    test databases) would elect one leader between them.
    """
    lock_name = f"vitrail.leader.{database}.{name}" if database else f"vitrail.leader.{name}"
    if len(lock_name) <= _MYSQL_LOCK_NAME_MAX:
        return lock_name
    digest = hashlib.blake2b(f"{database}\0{name}".encode(), digest_size=16).hexdigest()
    return f"vitrail.leader.{digest}"


def lock_file_path(database: Path, name: str = DEFAULT_NAME) -> Path:
    """The file whose ``flock`` is the leadership ``name`` of the SQLite ``database``.

    A separate file, not the database itself: SQLite locks the database with POSIX
    record locks, which closing *any* descriptor of the file drops, so mixing our
    own lock into them would break SQLite's.
    """
    suffix = ".leader.lock" if name == DEFAULT_NAME else f".leader.{name}.lock"
    return database.with_name(database.name + suffix)


def _identity() -> str:
    """Who this process is, for the holder information others log (``host:pid``)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _reason(exc: BaseException, password: str | None = None) -> str:
    """A one-line explanation of ``exc`` for a log, without the password."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return "no answer in time"
    lines = str(exc).strip().splitlines()
    detail = lines[0] if lines else ""
    if password:
        detail = detail.replace(password, "***")
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _connect_kwargs(url: URL) -> dict[str, Any]:
    """The driver's connect arguments for ``url``, translated by SQLAlchemy's dialect.

    The same translation as Vitrail's engines (query options included), so a URL
    that works for the event log works for its lock.
    """
    args, kwargs = url.get_dialect()().create_connect_args(url)
    if args:
        raise DatabaseConfigError(f"unsupported database URL {mask_url(url)!r} for the leader lock")
    for option in ("async_creator_fn", "prepared_statement_cache_size", "prepared_statement_name_func"):
        kwargs.pop(option, None)  # SQLAlchemy's own options, not the driver's
    return dict(kwargs)


# -- backends -----------------------------------------------------------------------------


class _Backend(abc.ABC):
    """One way of holding the lock. Not safe for concurrent use: :class:`LeaderLock`
    serialises the calls (acquire's polls, then the heartbeat, then the release)."""

    target: str
    """What the lock is on, for people (never a password)."""
    password: str | None = None
    """Masked out of every error message this backend logs."""

    def describe_error(self, exc: BaseException) -> str:
        """``exc`` in one line, for a log."""
        return _reason(exc, self.password)

    @property
    def session_id(self) -> int | None:
        """The server session of the lock's connection, while there is one."""
        return None

    @abc.abstractmethod
    async def try_lock(self) -> bool:
        """Take the lock if it is free, without waiting. Raises what :data:`_RETRYABLE`
        lists when the database cannot be reached; anything raised leaves nothing open."""

    async def holder(self) -> str | None:
        """Who holds the lock, if the backend can tell."""
        return None

    @abc.abstractmethod
    async def verify(self) -> None:
        """Raise unless this process still holds the lock (the heartbeat)."""

    @abc.abstractmethod
    async def unlock(self) -> None:
        """Release the lock and close what held it."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Drop the connection (or file) at once, without a word to the server.

        Synchronous, so it also runs in a cancelled task; dropping the session is
        what frees the lock, so this is always a safe way out.
        """


class _PostgresLock(_Backend):
    """``pg_try_advisory_lock`` on a dedicated asyncpg connection (no pool, no transaction)."""

    def __init__(self, url: URL, name: str, server_timeout: float) -> None:
        self.target = describe_target(url)
        self.password = url.password
        self._kwargs = _connect_kwargs(url)
        self._kwargs["timeout"] = float(self._kwargs.get("timeout", CONNECT_TIMEOUT_S))
        self._settings = {
            **self._kwargs.pop("server_settings", {}),
            "application_name": f"vitrail-leader {name} {_identity()}"[:_APPLICATION_NAME_MAX],
        }
        self._key = advisory_key(name)
        # pg_locks shows a bigint key as two oids: its high and its low 32 bits.
        self._classid = (self._key >> 32) & 0xFFFFFFFF
        self._objid = self._key & 0xFFFFFFFF
        self._idle_timeout_ms = math.ceil(server_timeout * 1000)
        self._connection: asyncpg.Connection | None = None

    @property
    def session_id(self) -> int | None:
        connection = self._connection
        return None if connection is None or connection.is_closed() else connection.get_server_pid()

    async def _connect(self) -> asyncpg.Connection:
        connection = await asyncpg.connect(**self._kwargs, server_settings=self._settings)
        try:
            if connection.get_server_version().major >= 14:
                # Ends the session of a leader whose host died or whose network was cut
                # (no FIN ever reaches the server): without it the lock would stay held
                # until TCP keepalive gives up, two hours by default. The heartbeat keeps
                # a live leader's session busy well within it.
                await connection.execute(f"SET idle_session_timeout = {self._idle_timeout_ms}")
        except BaseException:
            connection.terminate()
            raise
        return connection

    async def try_lock(self) -> bool:
        try:
            if self._connection is None or self._connection.is_closed():
                self._connection = None
                self._connection = await self._connect()
            # Re-entrant per session: calling this on a session that holds the lock
            # would count it twice. LeaderLock never does (acquire returns at once
            # while held), so one unlock or the end of the session frees it.
            return bool(await self._connection.fetchval("SELECT pg_try_advisory_lock($1)", self._key))
        except BaseException:
            # Cancelled mid-query, the lock may have been granted without our knowing:
            # ending the session is the only way to be sure it is not held.
            self.abort()
            raise

    async def holder(self) -> str | None:
        if self._connection is None:
            return None
        row = await self._connection.fetchrow(
            """
            SELECT l.pid, a.application_name, host(a.client_addr) AS address
            FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
              AND l.classid = $1 AND l.objid = $2
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """,
            self._classid,
            self._objid,
        )
        if row is None:
            return None
        described = f"PostgreSQL backend pid {row['pid']}"
        if row["application_name"]:
            described += f" ({row['application_name']!r})"
        if row["address"]:
            described += f" from {row['address']}"
        return described

    async def verify(self) -> None:
        if self._connection is None or self._connection.is_closed():
            raise _NotHeld("the lock's connection is closed")
        held = await self._connection.fetchval(
            """
            SELECT count(*) FROM pg_locks
            WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
              AND classid = $1 AND objid = $2 AND objsubid = 1
            """,
            self._classid,
            self._objid,
        )
        if not held:
            raise _NotHeld("the server no longer lists this session as holding the advisory lock")

    async def unlock(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None or connection.is_closed():
            return
        try:
            # Closing the session frees the lock anyway; unlocking first also frees it
            # behind a session pooler (PgBouncer), which keeps the server session open.
            await connection.fetchval("SELECT pg_advisory_unlock($1)", self._key)
            await connection.close(timeout=RELEASE_TIMEOUT_S)
        finally:
            if not connection.is_closed():
                connection.terminate()

    def abort(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            connection.terminate()


class _MySQLLock(_Backend):
    """``GET_LOCK(name, 0)`` on a dedicated aiomysql connection in autocommit mode."""

    def __init__(self, url: URL, name: str, server_timeout: float) -> None:
        self.target = describe_target(url)
        self.password = url.password
        self._kwargs = {"connect_timeout": CONNECT_TIMEOUT_S, "program_name": f"vitrail-leader {name}"}
        self._kwargs.update(_connect_kwargs(url))
        self._lock_name = mysql_lock_name(url.database, name)
        self._wait_timeout = max(1, math.ceil(server_timeout))
        self._connection: aiomysql.Connection | None = None

    @property
    def session_id(self) -> int | None:
        connection = self._connection
        return None if connection is None or connection.closed else int(connection.thread_id())

    async def _connect(self) -> aiomysql.Connection:
        connection = await aiomysql.connect(
            **self._kwargs,
            autocommit=True,  # no open transaction: GET_LOCK is not transactional anyway
        )
        try:
            # The server ends the session of a leader silent for that long (host dead,
            # network cut) and frees its lock; the heartbeat keeps a live one busy.
            await self._scalar(connection, f"SET SESSION wait_timeout = {self._wait_timeout}")
        except BaseException:
            connection.close()
            raise
        return connection

    @staticmethod
    async def _scalar(connection: aiomysql.Connection, query: str, *args: Any) -> Any:
        async with connection.cursor() as cursor:
            await cursor.execute(query, args or None)
            row = await cursor.fetchone()
        return None if row is None else row[0]

    async def try_lock(self) -> bool:
        try:
            if self._connection is None or self._connection.closed:
                self._connection = None
                self._connection = await self._connect()
            # Re-entrant and counted per connection, like PostgreSQL's: see _PostgresLock.
            return await self._scalar(self._connection, "SELECT GET_LOCK(%s, 0)", self._lock_name) == 1
        except BaseException:
            self.abort()
            raise

    async def holder(self) -> str | None:
        if self._connection is None:
            return None
        holder = await self._scalar(self._connection, "SELECT IS_USED_LOCK(%s)", self._lock_name)
        if holder is None:
            return None
        # Only visible with the PROCESS privilege; the connection id is enough without it.
        host = await self._scalar(
            self._connection, "SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = %s", holder
        )
        return f"MariaDB/MySQL connection {holder}" + (f" from {host}" if host else "")

    async def verify(self) -> None:
        if self._connection is None or self._connection.closed:
            raise _NotHeld("the lock's connection is closed")
        held = await self._scalar(self._connection, "SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", self._lock_name)
        if held != 1:
            raise _NotHeld("the server no longer lists this connection as holding the lock")

    async def unlock(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None or connection.closed:
            return
        try:
            await self._scalar(connection, "SELECT RELEASE_LOCK(%s)", self._lock_name)
            await connection.ensure_closed()
        finally:
            connection.close()

    def abort(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


class _FileLock(_Backend):
    """An exclusive ``flock`` on a lock file next to the SQLite database.

    ``flock`` locks belong to the open file description: two opens in one process
    conflict like two processes do, and the kernel frees the lock when the process
    dies. The descriptor is not inherited by programs the leader starts (Python
    opens files non-inheritable), but a bare ``fork()`` would share the lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.target = f"lock file {path}"
        self._fd: int | None = None

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def _is_current(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at :attr:`path` (not removed or replaced)."""
        try:
            at_path = os.stat(self.path)
        except FileNotFoundError:
            return False
        opened = os.fstat(fd)
        return (at_path.st_dev, at_path.st_ino) == (opened.st_dev, opened.st_ino)

    async def try_lock(self) -> bool:
        # Non-blocking: a flock that waits would block the event loop (or a thread that
        # cannot be cancelled); polling keeps cancellation immediate.
        try:
            if self._fd is None:
                self._fd = self._open()
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if not self._is_current(self._fd):
                    self.abort()  # held, but removed or replaced: open the file now at the path
                return False
            if not self._is_current(self._fd):
                # The file was removed or replaced since we opened it: that lock guards
                # nothing any more. Open the file now at the path at the next poll.
                self.abort()
                return False
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{_identity()}\n".encode(), 0)
            return True
        except BaseException:
            self.abort()
            raise

    async def holder(self) -> str | None:
        try:
            content = self.path.read_text(errors="replace").strip()
        except OSError:
            return None
        return f"process {content}" if content else None

    async def verify(self) -> None:
        if self._fd is None:
            raise _NotHeld("the lock file is closed")
        if not self._is_current(self._fd):
            # Someone else could now lock a new file at the path: step down.
            raise _NotHeld(f"the lock file {self.path} was removed or replaced")

    async def unlock(self) -> None:
        # The file stays: removing it would let a standby that opened it before the
        # removal lock the orphan while another process locks a new file.
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def abort(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


_memory_holders: dict[tuple[str, str], object] = {}
_memory_guard = threading.Lock()


class _MemoryLock(_Backend):
    """For an in-memory SQLite database: only this process can see it, so only this
    process can compete for its leadership."""

    def __init__(self, database: str, name: str) -> None:
        self.target = f"in-memory SQLite database {database} (this process)"
        self._key = (database, name)

    async def try_lock(self) -> bool:
        with _memory_guard:
            owner = _memory_holders.setdefault(self._key, self)
        return owner is self

    async def holder(self) -> str | None:
        return "another LeaderLock of this process"

    async def verify(self) -> None:
        if _memory_holders.get(self._key) is not self:
            raise _NotHeld("the in-process lock is held by someone else")

    async def unlock(self) -> None:
        self.abort()

    def abort(self) -> None:
        with _memory_guard:
            if _memory_holders.get(self._key) is self:
                del _memory_holders[self._key]


def _sqlite_location(url: URL) -> tuple[Path | None, str]:
    """(database file, or None for an in-memory database; the database string)."""
    database = url.database or ""
    if database.startswith("file:"):
        # A URI filename (``?uri=true``): its path, without the URI's own query.
        location, _, options = database[len("file:") :].partition("?")
        memory = "mode=memory" in options.split("&") or url.query.get("mode") == "memory"
        if not location or location == ":memory:" or memory:
            return None, database
        return Path(location).expanduser().absolute(), database
    if not database or database == ":memory:":
        return None, ":memory:"
    return Path(database).expanduser().absolute(), database


def _backend_for(url: str, name: str, server_timeout: float) -> _Backend:
    try:
        parsed = make_url(normalize_url(url))
    except sa_exc.ArgumentError:
        raise DatabaseConfigError(f"malformed database URL {mask_url(url)!r}") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return _PostgresLock(parsed, name, server_timeout)
    if backend in ("mysql", "mariadb"):
        return _MySQLLock(parsed, name, server_timeout)
    path, database = _sqlite_location(parsed)
    if path is None:
        return _MemoryLock(database, name)
    return _FileLock(lock_file_path(path, name))


# -- the lock -----------------------------------------------------------------------------


class LeaderLock:
    """The leadership ``name`` of the database at ``url``: held by at most one process.

    ``await lock.acquire()`` waits as a standby until this process holds it; from then
    on a heartbeat checks it every ``heartbeat_interval`` seconds and sets
    :attr:`lost` if it is gone, and the holder must stop acting as the leader.
    :meth:`release` (or the end of ``async with lock:``) gives it up. One dedicated
    connection holds the lock, opened for it and closed with it, never shared and
    never pooled: the lock lives exactly as long as that session.

    ``server_timeout`` is how long the database server lets the lock's session stay
    silent before ending it (PostgreSQL 14+ ``idle_session_timeout``, MySQL
    ``wait_timeout``): the hand-over time when the leader's host dies or its network
    is cut, rather than TCP keepalive's two hours. A leader whose event loop stalls
    that long loses the lock too. Default: ``max(10 s, 10 heartbeats, 3 polls)``.
    """

    def __init__(
        self,
        url: str,
        name: str = DEFAULT_NAME,
        poll_interval: float = 0.2,
        heartbeat_interval: float = 1.0,
        *,
        server_timeout: float | None = None,
    ) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid leadership name {name!r}: 1 to 64 letters, digits, '.', '_' or '-'")
        if poll_interval <= 0 or heartbeat_interval <= 0:
            raise ValueError("poll_interval and heartbeat_interval must be positive")
        if server_timeout is None:
            server_timeout = max(MIN_SERVER_TIMEOUT_S, 10 * heartbeat_interval, 3 * poll_interval)
        if server_timeout <= max(heartbeat_interval, poll_interval):
            raise ValueError("server_timeout must be longer than heartbeat_interval and poll_interval")
        self.name = name
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.server_timeout = server_timeout
        self._backend = _backend_for(url, name, server_timeout)
        self._held = False
        self._lost = asyncio.Event()
        self._acquiring = asyncio.Lock()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._fields = {"lock": name, "target": self._backend.target}
        """The fields of every log record about this lock."""

    def __repr__(self) -> str:
        state = "held" if self._held else "not held"
        return f"<LeaderLock {self.name!r} on {self.target}, {state}>"

    @property
    def target(self) -> str:
        """What the lock is taken on, for logs (``PostgreSQL at db:5432``, a lock file)."""
        return self._backend.target

    @property
    def held(self) -> bool:
        """True from a successful :meth:`acquire` until :meth:`release` or the loss of the lock."""
        return self._held

    @property
    def lost(self) -> asyncio.Event:
        """Set when the heartbeat finds the lock lost while held: step down.

        Not set by :meth:`release` (giving the lock up is not losing it); cleared when
        :meth:`acquire` takes the lock again.
        """
        return self._lost

    @property
    def session_id(self) -> int | None:
        """The server session of the connection that holds the lock (or that a waiting
        standby polls on): PostgreSQL backend pid, MySQL connection id; what an operator
        would terminate. None while there is no connection, and always for SQLite."""
        return self._backend.session_id

    async def acquire(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109 - the message names the wait
        """Wait until this process holds the lock; return at once if it already does.

        Polls with a try-lock every ``poll_interval`` seconds rather than waiting on
        the server, so that cancelling is immediate and leaves nothing behind. While
        the database is unreachable it logs and keeps trying, backing off up to
        :data:`MAX_RETRY_DELAY_S`. Raises :class:`TimeoutError` after ``timeout`` seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                async with self._acquiring:
                    if not self._held:
                        await self._wait_for_lock()
        except TimeoutError:
            if timeout is None:
                raise
            raise TimeoutError(
                f"the leader lock {self.name!r} on {self.target} was not free within {timeout:g} s"
            ) from None

    async def _wait_for_lock(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        announced = False
        down_since: float | None = None
        delay = self.poll_interval
        try:
            while True:
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT_S + self.poll_interval):
                        taken = await self._backend.try_lock()
                except _RETRYABLE as exc:
                    fields = {**self._fields, "error": self._backend.describe_error(exc), "retry_in_s": delay}
                    if down_since is None:
                        # Once per outage: a standby can wait through a long one.
                        down_since = loop.time()
                        log.warning("cannot reach the database of the leader lock; retrying", extra=fields)
                    else:
                        log.debug("the database of the leader lock is still unreachable", extra=fields)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_RETRY_DELAY_S)
                    continue
                if down_since is not None:
                    outage = {"outage_s": round(loop.time() - down_since, 3)}
                    log.info("the database of the leader lock answers again", extra={**self._fields, **outage})
                    down_since = None
                    delay = self.poll_interval
                if taken:
                    break
                if not announced:
                    announced = True
                    log.info(
                        "another process holds the leader lock: waiting as a standby",
                        extra={**self._fields, "holder": await self._holder(), "poll_s": self.poll_interval},
                    )
                await asyncio.sleep(self.poll_interval)
        except BaseException:
            self._backend.abort()  # a standby's connection, or one that may hold the lock unknowingly
            raise
        self._held = True
        self._lost.clear()
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name=f"leader-lock-heartbeat-{self.name}")
        waited = round(loop.time() - started, 3)
        log.info("took the leader lock: this process is the leader", extra={**self._fields, "waited_s": waited})

    async def _holder(self) -> str | None:
        """Who holds the lock, for the standby's log line; None if that cannot be told quickly."""
        try:
            async with asyncio.timeout(HOLDER_QUERY_TIMEOUT_S):
                return await self._backend.holder()
        except _RETRYABLE:
            self._backend.abort()  # the next poll reconnects, and logs if the database is down
            return None

    async def _heartbeat(self) -> None:
        """Check the lock every ``heartbeat_interval``; on any doubt, declare it lost."""
        check_timeout = 2 * self.heartbeat_interval
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                async with asyncio.timeout(check_timeout):
                    await self._backend.verify()
            except _NotHeld as exc:
                reason = str(exc)
            except TimeoutError:
                reason = f"the database did not answer the heartbeat within {check_timeout:g} s"
            except Exception as exc:  # whatever it is, the lock can no longer be vouched for
                reason = self._backend.describe_error(exc)
            else:
                continue
            self._mark_lost(reason)
            return

    def _mark_lost(self, reason: str) -> None:
        self._held = False
        # Make sure the server ends the session: a lock we cannot vouch for must be
        # free for the successor, not held by a half-dead connection.
        self._backend.abort()
        self._lost.set()
        log.error(
            "lost the leader lock: this process is no longer the leader and must step down",
            extra={**self._fields, "reason": reason},
        )

    async def release(self) -> None:
        """Give the lock up and close its connection. Harmless when not held (also after a loss)."""
        task, self._heartbeat_task = self._heartbeat_task, None
        held, self._held = self._held, False
        try:
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                await asyncio.wait({task})
            if held:
                async with asyncio.timeout(RELEASE_TIMEOUT_S):
                    await self._backend.unlock()
                log.info("released the leader lock", extra=self._fields)
        except Exception as exc:
            log.warning(
                "no clean release of the leader lock; its connection is closed, which frees it",
                extra={**self._fields, "error": self._backend.describe_error(exc)},
            )
        finally:
            self._backend.abort()

    async def __aenter__(self) -> Self:
        await self.acquire()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.release()


__all__ = ["DEFAULT_NAME", "LeaderLock", "advisory_key", "lock_file_path", "mysql_lock_name"]
