"""Alembic migrations, applied programmatically on every backend."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from vitrail.storage import create_engine, current_revision, database, downgrade, head_revision, metadata, upgrade
from vitrail.storage.migrations import MIGRATIONS_DIR, VERSION_TABLE


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


def test_head_is_the_latest_readable_revision() -> None:
    assert head_revision() == "0005"


def test_revision_ids_are_readable_and_named_after_their_file() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    scripts = list(ScriptDirectory.from_config(config).walk_revisions())
    assert scripts
    for script in scripts:
        assert re.fullmatch(r"\d{4}", script.revision), script.revision
        assert Path(script.path).name.startswith(f"{script.revision}_")


async def test_upgrade_from_empty_to_head(engine: AsyncEngine) -> None:
    assert await current_revision(engine) is None
    assert await upgrade(engine) == head_revision()
    assert await current_revision(engine) == head_revision()
    assert {"events", "templates", VERSION_TABLE} <= await _tables(engine)


async def test_second_upgrade_is_a_no_op_that_keeps_the_data(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO events (sequence, event_id, sample_time, datasource, action, payload)"
                " VALUES (1, 'e1', '2026-11-22 00:00:00', 'static', 'update', '{}')"
            )
        )
    assert await upgrade(engine) == head_revision()
    assert await current_revision(engine) == head_revision()
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM events")) == 1


async def test_concurrent_upgrades_in_one_process_both_succeed(engine: AsyncEngine) -> None:
    other = create_engine(engine.url.render_as_string(hide_password=False))
    try:
        results = await asyncio.gather(upgrade(engine), upgrade(other), upgrade(engine))
    finally:
        await other.dispose()
    assert list(results) == [head_revision()] * 3


async def test_upgrade_waits_for_a_migration_of_another_process(engine: AsyncEngine) -> None:
    """Several API servers may start at once: the database itself serialises their migrations."""
    other_process = create_engine(engine.url.render_as_string(hide_password=False))
    waiting: asyncio.Task[str | None] | None = None
    try:
        async with other_process.connect() as connection:
            backend = connection.dialect.name
            if backend == "sqlite":
                await connection.execution_options(**{database._SQLITE_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            async with connection.begin():
                if backend == "postgresql":
                    key = database._MIGRATION_LOCK_KEY
                    await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
                elif backend == "mysql":
                    name = database._MIGRATION_LOCK_NAME
                    await connection.execute(text("SELECT GET_LOCK(:name, 5)"), {"name": name})
                waiting = asyncio.create_task(upgrade(engine))
                await asyncio.sleep(0.3)
                assert not waiting.done()
                if backend == "mysql":
                    await connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
        assert await asyncio.wait_for(waiting, 10) == head_revision()
    finally:
        if waiting is not None and not waiting.done():
            waiting.cancel()
        await other_process.dispose()


async def test_downgrade_to_base_and_up_again(engine: AsyncEngine) -> None:
    await upgrade(engine)
    assert await downgrade(engine, "base") is None
    assert "events" not in await _tables(engine)
    assert await current_revision(engine) is None
    assert await upgrade(engine, "0001") == "0001"
    assert "events" in await _tables(engine)
    assert "templates" not in await _tables(engine)
    assert await upgrade(engine, "0002") == "0002"
    assert "templates" in await _tables(engine)
    assert "snapshots" not in await _tables(engine)
    assert await upgrade(engine) == "0005"
    assert {"leadership", "snapshots", "snapshot_chunks", "dead_letters"} <= await _tables(engine)
    assert await downgrade(engine, "0002") == "0002"
    assert "dead_letters" not in await _tables(engine)


async def test_migrated_schema_matches_the_models(engine: AsyncEngine) -> None:
    """The migration mirrors models.py: Alembic finds nothing to autogenerate."""
    await upgrade(engine)

    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE, "compare_type": True, "target_metadata": metadata}
        )
        return list(compare_metadata(context, metadata))

    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_event_columns_keep_their_portable_types(migrated: AsyncEngine) -> None:
    """The details the models rely on: exact keys, microsecond times, big JSON text."""
    async with migrated.connect() as connection:
        columns = await connection.run_sync(lambda sync: {c["name"]: c for c in inspect(sync).get_columns("events")})
        backend = migrated.dialect.name
        if backend == "mysql":
            assert str(columns["event_id"]["type"]).startswith("VARBINARY")
            assert "DATETIME(fsp=6)" in repr(columns["sample_time"]["type"])
            assert str(columns["payload"]["type"]) == "LONGTEXT"
        elif backend == "postgresql":
            assert getattr(columns["sample_time"]["type"], "timezone", None) is True
        else:
            # INTEGER, not BIGINT: the key is SQLite's rowid, no second B-tree.
            assert str(columns["sequence"]["type"]) == "INTEGER"
            plan = " ".join(
                str(row[-1])
                for row in await connection.execute(text("EXPLAIN QUERY PLAN SELECT * FROM events WHERE sequence > 5"))
            )
            assert "INTEGER PRIMARY KEY" in plan
        assert columns["received_at"]["nullable"] is True
        assert columns["round"]["nullable"] is True
        assert columns["sample_time"]["nullable"] is False
