"""Dead letters: messages and rows no one could process, kept for a human.

A message that cannot be parsed, or an event the log cannot hold, is stored
here with its raw bytes and the reason, then acknowledged: requeueing it would
bring it back forever. Storing one is the last resort, so it must not fail
because of its metadata: a source or content type longer than its column is
cut, a reason longer than MySQL's TEXT (64 KiB) is shortened, and text the
database cannot hold (NUL characters for PostgreSQL, lone surrogates for UTF-8)
is escaped. The body is kept byte for byte.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, delete, func, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vitrail.storage.leadership import writer_engine
from vitrail.storage.models import DEAD_LETTER_SOURCE_LENGTH, dead_letters

CONTENT_TYPE_LENGTH = 255
"""Characters of ``dead_letters.content_type``."""
REASON_MAX_CHARS = 16_000
"""At 4 UTF-8 bytes per character at most, 64,000 bytes: within MySQL's TEXT (65,535 bytes)."""

_PURGE_CHUNK = 1_000
"""Dead letters deleted per transaction by :meth:`DeadLetterStore.purge` (their bodies can be large)."""
_IN_CHUNK = 500
"""Ids per IN (...) list; far below every backend's parameter limit."""


class DeadLetterNotFound(LookupError):
    """No dead letter has this id."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A stored dead letter (a ``dead_letters`` row)."""

    id: int
    created_at: datetime
    source: str
    """Where it came from: a queue (``topic/group``) or a role."""
    reason: str
    content_type: str | None
    body: bytes
    """The raw bytes as received."""
    retries: int
    retried_at: datetime | None


class DeadLetterDraft(Protocol):
    """What :meth:`DeadLetterStore.add_many` stores: any object with these attributes."""

    @property
    def source(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def body(self) -> bytes: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def created_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class NewDeadLetter:
    """A dead letter to store (a :class:`DeadLetterDraft`)."""

    source: str
    reason: str
    body: bytes
    content_type: str | None = None
    created_at: datetime | None = None


def _storable_text(value: object) -> str:
    """``value`` as text every backend stores as is: NUL escaped (PostgreSQL refuses it in
    text), lone surrogates escaped (they have no UTF-8 encoding)."""
    text = value if isinstance(value, str) else str(value)
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _cut(value: object, length: int) -> str:
    return _storable_text(value)[:length]


def _shorten_reason(value: object) -> str:
    text = _storable_text(value)
    if len(text) <= REASON_MAX_CHARS:
        return text
    marker = f"... [cut: {len(text)} characters in all]"
    return text[: REASON_MAX_CHARS - len(marker)] + marker


def _row(
    source: str, reason: str, body: bytes, content_type: str | None, created_at: datetime | None
) -> dict[str, Any]:
    """The table row of a dead letter, its metadata made storable rather than refused."""
    if created_at is None:
        created_at = datetime.now(UTC)
    elif created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)  # naive: taken as UTC, as everywhere in Vitrail
    return {
        "created_at": created_at,
        "source": _cut(source, DEAD_LETTER_SOURCE_LENGTH),
        "reason": _shorten_reason(reason),
        "content_type": None if content_type is None else _cut(content_type, CONTENT_TYPE_LENGTH),
        "body": bytes(body),
        "retries": 0,
        "retried_at": None,
    }


def _letter(row: Any) -> DeadLetter:
    return DeadLetter(
        id=int(row.id),
        created_at=row.created_at,
        source=row.source,
        reason=row.reason,
        content_type=row.content_type,
        body=bytes(row.body),
        retries=int(row.retries),
        retried_at=row.retried_at,
    )


class DeadLetterStore:
    """Dead letters (table ``dead_letters``), newest first."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer_engine(engine)  # purge reads, then deletes

    async def add(
        self,
        source: str,
        reason: str,
        body: bytes,
        content_type: str | None = None,
        created_at: datetime | None = None,
    ) -> int:
        """Store one dead letter; return its id."""
        async with self._engine.begin() as connection:
            return await _insert(connection, _row(source, reason, body, content_type, created_at))

    async def add_many(self, letters: Iterable[DeadLetterDraft]) -> builtins.list[int]:
        """Store dead letters in one transaction (all or none); return their ids, in order."""
        rows = [_row(d.source, d.reason, d.body, d.content_type, d.created_at) for d in letters]
        if not rows:
            return []
        async with self._engine.begin() as connection:
            # One INSERT per row: the id of each comes back on every backend, and a few large
            # bodies never add up to one statement beyond MySQL's max_allowed_packet.
            return [await _insert(connection, row) for row in rows]

    async def get(self, letter_id: int) -> DeadLetter | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(dead_letters).where(dead_letters.c.id == letter_id))).first()
        return None if row is None else _letter(row)

    async def list(
        self, limit: int = 50, marker: int | None = None, source: str | None = None
    ) -> builtins.list[DeadLetter]:
        """At most ``limit`` dead letters, newest first; the next page starts after ``marker``
        (the id of the last one of the previous page), so paging stays right while new
        ones arrive. ``source`` keeps only those from it."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        query = select(dead_letters).where(_matching(source))
        if marker is not None:
            query = query.where(dead_letters.c.id < marker)
        query = query.order_by(dead_letters.c.id.desc()).limit(limit)
        async with self._engine.connect() as connection:
            return [_letter(row) for row in await connection.execute(query)]

    async def mark_retried(self, letter_id: int) -> None:
        """Count one more retry of a dead letter, now; :class:`DeadLetterNotFound` for an unknown id."""
        statement = (
            update(dead_letters)
            .where(dead_letters.c.id == letter_id)
            .values(retries=dead_letters.c.retries + 1, retried_at=datetime.now(UTC))
        )
        async with self._engine.begin() as connection:
            if (await connection.execute(statement)).rowcount == 0:
                raise DeadLetterNotFound(f"no dead letter {letter_id}")

    async def delete(self, ids: Iterable[int]) -> int:
        """Delete dead letters by id; return how many existed."""
        unique = builtins.list(dict.fromkeys(ids))
        deleted = 0
        async with self._engine.begin() as connection:
            for start in range(0, len(unique), _IN_CHUNK):
                chunk = unique[start : start + _IN_CHUNK]
                deleted += (await connection.execute(delete(dead_letters).where(dead_letters.c.id.in_(chunk)))).rowcount
        return deleted

    async def purge(self, before: datetime | None = None, source: str | None = None) -> int:
        """Delete the dead letters created before ``before`` and from ``source`` (every one
        when neither is given); return how many. A transaction per thousand."""
        condition = _matching(source)
        if before is not None:
            condition = condition & (dead_letters.c.created_at < before)
        deleted = 0
        while True:
            async with self._writer.begin() as connection:
                ids = (
                    await connection.scalars(
                        select(dead_letters.c.id).where(condition).order_by(dead_letters.c.id).limit(_PURGE_CHUNK)
                    )
                ).all()
                if ids:
                    statement = delete(dead_letters).where(dead_letters.c.id.in_(ids))
                    deleted += (await connection.execute(statement)).rowcount
            if len(ids) < _PURGE_CHUNK:
                return deleted

    async def count(self, source: str | None = None) -> int:
        """How many dead letters are stored (from ``source`` only, when given)."""
        query = select(func.count()).select_from(dead_letters).where(_matching(source))
        async with self._engine.connect() as connection:
            return int(await connection.scalar(query) or 0)


async def _insert(connection: AsyncConnection, row: dict[str, Any]) -> int:
    result = await connection.execute(dead_letters.insert().values(**row))
    return int(result.inserted_primary_key[0])


def _matching(source: str | None) -> ColumnElement[bool]:
    """The filter on ``source``; a source too long to be stored is matched as it was stored (cut)."""
    if source is None:
        return true()
    return dead_letters.c.source == _cut(source, DEAD_LETTER_SOURCE_LENGTH)


__all__ = [
    "CONTENT_TYPE_LENGTH",
    "REASON_MAX_CHARS",
    "DeadLetter",
    "DeadLetterDraft",
    "DeadLetterNotFound",
    "DeadLetterStore",
    "NewDeadLetter",
]
