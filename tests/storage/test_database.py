"""URLs, engines and availability checks of vitrail.storage.database."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from vitrail.storage import (
    DatabaseConfigError,
    DatabaseUnavailable,
    check_connection,
    create_engine,
    mask_url,
    normalize_url,
)

PASSWORD = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////var/lib/vitrail/vitrail.db", "sqlite+aiosqlite:////var/lib/vitrail/vitrail.db"),
        ("sqlite:///relative.db", "sqlite+aiosqlite:///relative.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:p@db:5432/vitrail", "postgresql+asyncpg://u:p@db:5432/vitrail"),
        ("postgres://u:p@db/vitrail", "postgresql+asyncpg://u:p@db/vitrail"),
        ("postgresql+asyncpg://u@db/vitrail", "postgresql+asyncpg://u@db/vitrail"),
        ("mysql://root@db:3306/vitrail", "mysql+aiomysql://root@db:3306/vitrail"),
        ("mariadb://root@db/vitrail", "mysql+aiomysql://root@db/vitrail"),
        ("mysql+aiomysql://root@db/vitrail", "mysql+aiomysql://root@db/vitrail"),
        ("mariadb+aiomysql://root@db/vitrail", "mysql+aiomysql://root@db/vitrail"),
        ("PostgreSQL://u@db/vitrail", "postgresql+asyncpg://u@db/vitrail"),
    ],
)
def test_normalize_url_gives_the_asyncio_driver(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


def test_normalize_url_keeps_escaped_credentials_and_query() -> None:
    url = "postgres://vitrail:p%40ss%2Fw0rd@db.example:6432/vitrail?sslmode=require"
    assert normalize_url(url) == "postgresql+asyncpg://vitrail:p%40ss%2Fw0rd@db.example:6432/vitrail?sslmode=require"


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        (f"oracle://scott:{PASSWORD}@db:1521/orcl", "'oracle'"),
        (f"mysql+mysqldb://root:{PASSWORD}@db/vitrail", "'mysql+mysqldb'"),
        (f"postgresql+psycopg2://u:{PASSWORD}@db/vitrail", "'postgresql+psycopg2'"),
        (f"u:{PASSWORD}@db/vitrail", "missing"),
    ],
)
def test_unknown_scheme_is_named_with_the_supported_ones_and_no_password(url: str, scheme: str) -> None:
    with pytest.raises(DatabaseConfigError) as caught:
        normalize_url(url)
    message = str(caught.value)
    assert scheme in message
    for supported in ("sqlite", "postgresql", "postgres", "mysql", "mariadb"):
        assert supported in message
    assert PASSWORD not in message
    assert "***" in message


def test_unknown_scheme_error_is_raised_by_create_engine_too() -> None:
    with pytest.raises(DatabaseConfigError, match="'mssql'"):
        create_engine(f"mssql://sa:{PASSWORD}@db/vitrail")


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://vitrail:{PASSWORD}@db/vitrail",
        f"mysql://root:p@ss:{PASSWORD}@db/vitrail",  # an unescaped '@' in the password
        f"vitrail:{PASSWORD}@db/vitrail",
    ],
)
def test_mask_url_hides_the_password(url: str) -> None:
    masked = mask_url(url)
    assert PASSWORD not in masked
    assert masked.endswith("@db/vitrail")


def test_mask_url_leaves_urls_without_password_alone() -> None:
    assert mask_url("sqlite:////data/a@b.db") == "sqlite:////data/a@b.db"
    assert mask_url("postgresql://postgres@127.0.0.1/x") == "postgresql://postgres@127.0.0.1/x"


async def test_engine_answers(engine: AsyncEngine) -> None:
    await check_connection(engine)
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT 1")) == 1


async def test_sqlite_engine_creates_its_directory_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "vitrail.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        assert path.parent.is_dir()
        async with engine.connect() as connection:
            pragmas = {
                name: await connection.scalar(text(f"PRAGMA {name}"))
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        await engine.dispose()
    # synchronous: 1 is NORMAL.
    assert pragmas == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1, "busy_timeout": 10_000}


@pytest.mark.mariadb
async def test_mariadb_engine_talks_utf8mb4(mariadb_url: str) -> None:
    engine = create_engine(mariadb_url)
    try:
        async with engine.connect() as connection:
            charset = await connection.scalar(text("SELECT @@character_set_connection"))
            emoji = await connection.scalar(text("SELECT CONVERT(:value USING utf8mb4)"), {"value": "🦉"})
    finally:
        await engine.dispose()
    assert charset == "utf8mb4"
    assert emoji == "🦉"


async def _let_aiosqlite_threads_finish() -> None:
    """aiosqlite stops the worker thread of a connection that failed to open without
    awaiting it; the thread then reports to the event loop, which must still be running."""
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            await asyncio.to_thread(thread.join, 5)


def _closed_url(backend: str, tmp_path: Path) -> tuple[str, str]:
    """A URL of ``backend`` nobody answers at, and what the error must name."""
    if backend == "postgresql":
        return f"postgresql://vitrail:{PASSWORD}@127.0.0.1:1/vitrail", "127.0.0.1:1"
    if backend == "mariadb":
        return f"mysql://root:{PASSWORD}@127.0.0.1:1/vitrail", "127.0.0.1:1"
    # A directory cannot be opened as a database file.
    return f"sqlite:///{tmp_path}", str(tmp_path)


async def test_check_connection_raises_database_unavailable(backend: str, tmp_path: Path) -> None:
    url, target = _closed_url(backend, tmp_path)
    engine = create_engine(url)
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await check_connection(engine, within=5)
    finally:
        await engine.dispose()
        await _let_aiosqlite_threads_finish()
    message = str(caught.value)
    assert target in message
    assert PASSWORD not in message
    assert PASSWORD not in repr(caught.value.__cause__)
    if backend != "sqlite":
        assert "connection refused" in message


async def test_check_connection_gives_up_after_its_deadline() -> None:
    # 192.0.2.0/24 (TEST-NET-1) is never routed: connecting hangs or fails fast, never answers.
    engine = create_engine(f"postgresql://vitrail:{PASSWORD}@192.0.2.1:5432/vitrail")
    try:
        with pytest.raises(DatabaseUnavailable, match=r"192\.0\.2\.1:5432") as caught:
            await check_connection(engine, within=0.2)
    finally:
        await engine.dispose()
    assert PASSWORD not in str(caught.value)


def test_a_server_that_is_down_fails_the_test_with_its_start_command(
    servers: dict[str, Any], server_check: Callable[[Any, str], None]
) -> None:
    postgresql = servers["postgresql"]
    down = replace(postgresql, port=1, admin_url="postgresql://postgres@127.0.0.1:1/postgres")
    with pytest.raises(pytest.fail.Exception) as caught:
        server_check(down, "SELECT 1")
    message = str(caught.value)
    assert "PostgreSQL is not reachable on 127.0.0.1:1" in message
    assert postgresql.start_command in message
