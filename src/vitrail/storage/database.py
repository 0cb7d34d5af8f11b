"""Database URLs, engines, schema migrations and availability checks.

Vitrail runs on SQLite (embedded), PostgreSQL or MariaDB/MySQL, always through
an asyncio driver. This module is the one place that knows how each backend
must be connected to and tuned; everything above it gets an ``AsyncEngine`` and
writes portable SQLAlchemy Core.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from vitrail import urls
from vitrail.storage.migrations import MIGRATIONS_DIR, VERSION_TABLE

ASYNC_DRIVERS: dict[str, str] = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "mysql": "mysql+aiomysql",
    "mariadb": "mysql+aiomysql",
    "mysql+aiomysql": "mysql+aiomysql",
    "mariadb+aiomysql": "mysql+aiomysql",
}
"""Accepted URL schemes and the asyncio driver each one gets."""

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite writer waits for another one instead of failing at once."""
CONNECT_TIMEOUT_S = 10
"""A server that does not accept a connection by then counts as unavailable."""
MIGRATION_LOCK_TIMEOUT_S = 300
"""How long a process waits for another one that is migrating the same database."""
_MIGRATION_LOCK_KEY = 0x5649545241494C  # "VITRAIL": PostgreSQL advisory locks take a bigint
_MIGRATION_LOCK_NAME = "vitrail.migrations"
_SQLITE_BEGIN_OPTION = "vitrail_sqlite_begin"
"""Execution option naming the statement that starts a SQLite transaction."""

_BACKEND_LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB"}
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}

# The user info of "user:password@host...": everything from its first ':' to the *last*
# '@' is masked, so an unescaped '@' in a password cannot leak its tail (masking part
# of a path by mistake is harmless).


class DatabaseConfigError(ValueError):
    """The database URL cannot be used; the message names the problem (never the password)."""


class DatabaseUnavailable(RuntimeError):
    """The database server does not answer. Callers pause and retry (back-pressure);
    the message names the server's host:port, never the password."""


# -- URLs -------------------------------------------------------------------------------


def mask_url(url: str | URL) -> str:
    """``url`` with its password replaced by ``***``, safe for logs and error messages."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    return urls.mask_url(url)


def normalize_url(url: str) -> str:
    """The URL with the asyncio driver of its backend (``postgres://`` → ``postgresql+asyncpg://``).

    Only the scheme is rewritten; the rest of the URL (credentials, host, query)
    is kept byte for byte, so percent-escapes in a password survive.
    """
    scheme, separator, rest = url.partition("://")
    driver = ASYNC_DRIVERS.get(scheme.strip().lower()) if separator else None
    if driver is None:
        shown = repr(scheme) if separator else "missing (no '://')"
        raise DatabaseConfigError(
            f"unsupported database URL {mask_url(url)!r}: scheme {shown}; supported schemes: {', '.join(ASYNC_DRIVERS)}"
        )
    return f"{driver}://{rest}"


def _parse(url: str) -> URL:
    normalized = normalize_url(url)
    try:
        return make_url(normalized)
    except sa_exc.ArgumentError:
        raise DatabaseConfigError(f"malformed database URL {mask_url(normalized)!r}") from None


def describe_target(url: URL) -> str:
    """Which server (or file) ``url`` points to, for people: ``PostgreSQL at 127.0.0.1:5432``."""
    backend = url.get_backend_name()
    label = _BACKEND_LABELS.get(backend, backend)
    if backend == "sqlite":
        return f"{label} database {url.database or ':memory:'}"
    host = url.host or url.query.get("host") or "localhost"
    if ":" in str(host):
        host = f"[{host}]"
    return f"{label} at {host}:{url.port or _DEFAULT_PORTS.get(backend, '?')}"


# -- engines ------------------------------------------------------------------------------


def create_engine(url: str, echo: bool = False) -> AsyncEngine:
    """An ``AsyncEngine`` for ``url`` (any accepted scheme), tuned for its backend."""
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, echo)
    if backend == "postgresql":
        return create_async_engine(
            parsed,
            echo=echo,
            pool_size=5,
            max_overflow=10,
            pool_timeout=30,
            pool_recycle=1800,
            # A failover or restart of the server leaves dead connections in the pool.
            pool_pre_ping=True,
            connect_args={"timeout": CONNECT_TIMEOUT_S, "server_settings": {"application_name": "vitrail"}},
        )
    return create_async_engine(
        # utf8mb4: MySQL's "utf8" holds only 3 bytes per character (no emoji, no rare CJK).
        parsed.update_query_dict({"charset": "utf8mb4"}),
        echo=echo,
        pool_size=5,
        max_overflow=10,
        pool_timeout=30,
        # The server closes idle connections after wait_timeout (8 h by default).
        pool_recycle=3600,
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:") or url.query.get("uri"):
        return None
    return Path(database).expanduser()


def _sqlite_engine(url: URL, echo: bool) -> AsyncEngine:
    path = _sqlite_file(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseConfigError(
                f"cannot create the directory of the SQLite database {path}: {exc.strerror}"
            ) from None
        url = url.set(database=str(path))
    engine = create_async_engine(url, echo=echo)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions start
        # ("begin" below): otherwise DDL runs outside transactions and a crashed
        # migration leaves tables without their version row.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # WAL: readers never block the writer; NORMAL is durable across process
            # crashes (only a power cut can lose the last commits) and much faster.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock at once (waiting up to the busy timeout): a
        # deferred transaction that reads and then writes fails at once if another
        # writer got in between, which two processes migrating one file would do.
        connection.exec_driver_sql(connection.get_execution_options().get(_SQLITE_BEGIN_OPTION, "BEGIN"))

    return engine


# -- availability ---------------------------------------------------------------------------


async def check_connection(engine: AsyncEngine, within: float = float(CONNECT_TIMEOUT_S)) -> None:
    """Raise :class:`DatabaseUnavailable` unless the database answers ``SELECT 1`` within ``within`` seconds.

    Used to decide between "the batch is bad" and "storage is down: requeue and
    pause consumption until it is back".
    """
    try:
        async with asyncio.timeout(within), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (OSError, TimeoutError, sa_exc.DBAPIError) as exc:
        reason = _unavailable_reason(exc, within, engine.url)
        raise DatabaseUnavailable(
            f"{describe_target(engine.url)} is unavailable: {reason} (url {mask_url(engine.url)})"
        ) from exc


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (SQLAlchemy keeps the driver's error in ``orig``)."""
    chain = [exc]
    while True:
        current = chain[-1]
        cause = getattr(current, "orig", None) or current.__cause__ or current.__context__
        if not isinstance(cause, BaseException) or any(cause is seen for seen in chain):
            return chain
        chain.append(cause)


def _unavailable_reason(exc: BaseException, timeout: float, url: URL) -> str:
    chain = _causes(exc)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    if any(isinstance(e, TimeoutError) for e in chain):
        return f"no answer within {timeout:g} s"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "unknown host name"
    root = chain[-1]
    lines = str(root).strip().splitlines()
    detail = lines[0] if lines else ""
    # Drivers do not echo passwords today; make sure one never reaches a log.
    if url.password:
        detail = detail.replace(str(url.password), "***")
    return f"{type(root).__name__}: {detail}" if detail else type(root).__name__


# -- migrations ---------------------------------------------------------------------------


def _alembic_config() -> Config:
    config = Config()
    # ConfigParser interpolates '%': a path containing one must be escaped.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision this version of Vitrail knows (what :func:`upgrade` reaches)."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def _revision_of(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _run_command(connection: Connection, name: str, revision: str) -> str | None:
    config = _alembic_config()
    config.attributes["connection"] = connection
    getattr(command, name)(config, revision)
    return _revision_of(connection)


@asynccontextmanager
async def _migration_lock(connection: AsyncConnection) -> AsyncIterator[None]:
    """Serialise migrations of one database across processes (several API servers may
    start at once). SQLite needs none: its migration transaction begins IMMEDIATE."""
    backend = connection.dialect.name
    if backend == "postgresql":
        # Transaction-scoped: released by the commit or rollback that ends upgrade().
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        yield
    elif backend in ("mysql", "mariadb"):
        # Session-scoped: MySQL commits DDL implicitly, a transaction cannot hold it.
        acquired = await connection.scalar(
            text("SELECT GET_LOCK(:name, :timeout)"),
            {"name": _MIGRATION_LOCK_NAME, "timeout": MIGRATION_LOCK_TIMEOUT_S},
        )
        if acquired != 1:
            raise TimeoutError(f"another process held the migration lock for {MIGRATION_LOCK_TIMEOUT_S} s")
        try:
            yield
        finally:
            # A broken connection has lost the lock with its session: nothing to release.
            with suppress(sa_exc.DBAPIError):
                await connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _MIGRATION_LOCK_NAME})
    else:
        yield


_alembic_locks: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = WeakKeyDictionary()


def _alembic_lock() -> asyncio.Lock:
    """One migration at a time in this process: Alembic keeps the running one in a module
    global (``alembic.context``), which two interleaved runs would overwrite."""
    loop = asyncio.get_running_loop()
    lock = _alembic_locks.get(loop)
    if lock is None:
        lock = _alembic_locks[loop] = asyncio.Lock()
    return lock


async def _migrate(engine: AsyncEngine, name: str, revision: str) -> str | None:
    async with _alembic_lock(), engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            await connection.execution_options(**{_SQLITE_BEGIN_OPTION: "BEGIN IMMEDIATE"})
        async with connection.begin(), _migration_lock(connection):
            return await connection.run_sync(_run_command, name, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> str | None:
    """Apply the migrations up to ``revision``; return the revision the database is at.

    Idempotent: at ``revision`` already, nothing is done. Runs on the engine's own
    connection (Alembic's connection-sharing recipe), so no alembic.ini is needed.
    """
    return await _migrate(engine, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str) -> str | None:
    """Undo migrations down to ``revision`` (``"base"``: no tables); return the revision left."""
    return await _migrate(engine, "downgrade", revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, None for a database never migrated."""
    async with engine.connect() as connection:
        return await connection.run_sync(_revision_of)


__all__ = [
    "ASYNC_DRIVERS",
    "DatabaseConfigError",
    "DatabaseUnavailable",
    "check_connection",
    "create_engine",
    "current_revision",
    "describe_target",
    "downgrade",
    "head_revision",
    "mask_url",
    "normalize_url",
    "upgrade",
]
