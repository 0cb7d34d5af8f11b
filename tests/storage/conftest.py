"""Storage tests run on every backend: SQLite, PostgreSQL and MariaDB, for real.

PostgreSQL and MariaDB get a fresh database per test session
(``vitrail_test_<hex>``), dropped at the end; each test starts from an empty
database. A server that is down makes its tests fail, naming the service and
the command that starts it: a storage suite that silently skips its servers
proves nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.servers import BACKENDS, MARIADB, POSTGRESQL, Server, fresh_database, require_server
from vitrail.storage import (
    EventLog,
    create_engine,
    current_revision,
    head_revision,
    metadata,
    upgrade,
)


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A PostgreSQL database of this test session."""
    with fresh_database(POSTGRESQL) as url:
        yield url


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """A MariaDB database of this test session."""
    with fresh_database(MARIADB) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: "sqlite", "postgresql", "mariadb"."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database of ``backend`` for this test (SQLite: a new file)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'vitrail.db'}"
    return str(request.getfixturevalue(f"{backend}_url"))


@pytest.fixture(scope="session")
def servers() -> dict[str, Server]:
    """The database servers the suite needs, by backend name."""
    return {"postgresql": POSTGRESQL, "mariadb": MARIADB}


@pytest.fixture(scope="session")
def server_check() -> Callable[[Server, str], None]:
    """:func:`require_server`, for the test of the down-server message."""
    return require_server


async def _drop_everything(engine: AsyncEngine) -> None:
    """Leave the database empty, whatever the previous test left in it."""

    def drop(connection: Any) -> None:
        existing = MetaData()
        existing.reflect(connection)
        existing.drop_all(connection)

    async with engine.begin() as connection:
        await connection.run_sync(drop)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database (no tables, not migrated)."""
    engine = create_engine(database_url)
    try:
        await _drop_everything(engine)
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def migrated(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database migrated to head, with empty tables.

    Emptying the tables of a database already at head is much faster than
    dropping and migrating it again for every test.
    """
    engine = create_engine(database_url)
    try:
        if await current_revision(engine) == head_revision():
            async with engine.begin() as connection:
                for table in reversed(metadata.sorted_tables):
                    await connection.execute(table.delete())
        else:
            await _drop_everything(engine)
            await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def event_log(migrated: AsyncEngine) -> EventLog:
    return EventLog(migrated)
