"""Bytes columns keep every byte on every backend (aiomysql cannot bind bytes: hex on the wire)."""

from __future__ import annotations

import os

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from vitrail.storage.models import snapshot_chunks


async def test_bytes_of_any_value_and_size_come_back_exactly(migrated: AsyncEngine) -> None:
    values = [b"", b"\x00", b"'\\\"\x00\xff%s%%", os.urandom(4 * 1024 * 1024)]
    async with migrated.begin() as connection:
        await connection.execute(
            snapshot_chunks.insert(), [{"snapshot_id": 1, "chunk": i, "data": v} for i, v in enumerate(values)]
        )
    async with migrated.connect() as connection:
        rows = (await connection.execute(select(snapshot_chunks.c.data).order_by(snapshot_chunks.c.chunk))).all()
    assert [row.data for row in rows] == values
