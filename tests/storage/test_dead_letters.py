"""Dead letters on every backend: exact bodies, metadata never refused, paging, retries, purging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from vitrail.storage import DeadLetter, DeadLetterNotFound, DeadLetterStore, NewDeadLetter
from vitrail.storage.dead_letters import REASON_MAX_CHARS

WHEN = datetime(2026, 11, 22, 0, 37, 7, 123456, tzinfo=UTC)


@pytest.fixture
def store(migrated: AsyncEngine) -> DeadLetterStore:
    return DeadLetterStore(migrated)


async def test_bodies_of_every_byte_value_round_trip_exactly(store: DeadLetterStore) -> None:
    bodies = [bytes(range(256)), bytes(range(255, -1, -1)) * 3, b"", b"\x00", b"'\\\"%s%%\xff\xfe"]
    ids = [await store.add("queue/group", "unparsable", body, "application/octet-stream", WHEN) for body in bodies]
    assert len(set(ids)) == len(ids)
    for letter_id, body in zip(ids, bodies, strict=True):
        assert await store.get(letter_id) == DeadLetter(
            id=letter_id,
            created_at=WHEN,
            source="queue/group",
            reason="unparsable",
            content_type="application/octet-stream",
            body=body,
            retries=0,
            retried_at=None,
        )
    assert await store.get(max(ids) + 1) is None


async def test_add_many_in_order(store: DeadLetterStore) -> None:
    assert await store.add_many([]) == []
    letters = [NewDeadLetter(f"source-{n}", f"reason {n}", bytes([n]) * n, None, WHEN) for n in range(1, 5)]
    ids = await store.add_many(letters)
    assert ids == sorted(ids) and len(set(ids)) == 4
    stored = [await store.get(letter_id) for letter_id in ids]
    assert [(s.source, s.reason, s.body) for s in stored if s] == [(d.source, d.reason, d.body) for d in letters]
    assert await store.count() == 4


async def test_metadata_is_made_storable_not_refused(store: DeadLetterStore) -> None:
    long_source = "s" * 300 + "-tail"
    reason = "é🦉" * 50_000  # 100,000 characters, 300,000 bytes: beyond MySQL's TEXT
    letter_id = await store.add(long_source, reason, b"body", "t" * 400)
    letter = await store.get(letter_id)
    assert letter is not None
    assert letter.source == "s" * 255
    assert letter.content_type == "t" * 255
    assert len(letter.reason) == REASON_MAX_CHARS
    assert letter.reason.startswith("é🦉é🦉") and letter.reason.endswith("[cut: 100000 characters in all]")
    assert letter.body == b"body"
    assert datetime.now(UTC) - letter.created_at < timedelta(minutes=1)
    # Filtering by the full source finds it (matched as stored).
    assert [x.id for x in await store.list(source=long_source)] == [letter_id]
    assert await store.count(source=long_source) == 1


async def test_text_the_database_cannot_hold_is_escaped(store: DeadLetterStore) -> None:
    """PostgreSQL refuses NUL in text; no backend can encode a lone surrogate in UTF-8."""
    letter_id = await store.add("src\x00", "bad \x00 byte and \udcff surrogate", b"\x00", "text/\udcff")
    letter = await store.get(letter_id)
    assert letter is not None
    assert letter.source == "src\\x00"
    assert letter.reason == "bad \\x00 byte and \\udcff surrogate"
    assert letter.content_type == "text/\\udcff"
    assert letter.body == b"\x00"


async def test_a_naive_creation_time_is_taken_as_utc(store: DeadLetterStore) -> None:
    letter = await store.get(await store.add("s", "r", b"", created_at=WHEN.replace(tzinfo=None)))
    assert letter is not None and letter.created_at == WHEN


async def test_list_pages_newest_first(store: DeadLetterStore) -> None:
    ids = [await store.add("a" if n % 2 else "b", f"reason {n}", b"x") for n in range(7)]
    assert len(await store.list()) == 7
    first = await store.list(limit=3)
    assert [x.id for x in first] == ids[::-1][:3]
    second = await store.list(limit=3, marker=first[-1].id)
    assert [x.id for x in second] == ids[::-1][3:6]
    third = await store.list(limit=3, marker=second[-1].id)
    assert [x.id for x in third] == [ids[0]]
    assert await store.list(limit=3, marker=third[-1].id) == []
    assert [x.id for x in await store.list(source="a")] == [ids[5], ids[3], ids[1]]
    assert [x.id for x in await store.list(source="b", marker=ids[4], limit=1)] == [ids[2]]
    assert await store.list(source="nobody") == []
    assert await store.list(limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        await store.list(limit=-1)


async def test_mark_retried_counts_retries(store: DeadLetterStore) -> None:
    letter_id = await store.add("s", "r", b"x")
    other = await store.add("s", "r", b"y")
    before = datetime.now(UTC) - timedelta(seconds=1)
    await store.mark_retried(letter_id)
    await store.mark_retried(letter_id)
    letter = await store.get(letter_id)
    assert letter is not None and letter.retries == 2
    assert letter.retried_at is not None and before <= letter.retried_at <= datetime.now(UTC) + timedelta(seconds=1)
    untouched = await store.get(other)
    assert untouched is not None and (untouched.retries, untouched.retried_at) == (0, None)
    with pytest.raises(DeadLetterNotFound, match=f"no dead letter {other + 100}"):
        await store.mark_retried(other + 100)


async def test_delete_and_count(store: DeadLetterStore) -> None:
    ids = [await store.add("q" if n < 3 else "r", "why", b"x") for n in range(5)]
    assert (await store.count(), await store.count("q"), await store.count("r"), await store.count("z")) == (5, 3, 2, 0)
    assert await store.delete([ids[0], ids[0], ids[4], ids[4] + 1000]) == 2
    assert await store.delete([]) == 0
    assert await store.count() == 3
    assert await store.get(ids[0]) is None


async def test_purge_by_age_and_source(store: DeadLetterStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vitrail.storage.dead_letters._PURGE_CHUNK", 2)  # several rounds
    old, new = WHEN - timedelta(days=40), WHEN
    for n in range(5):
        await store.add("q", f"old {n}", b"x", created_at=old + timedelta(seconds=n))
    for n in range(3):
        await store.add("r" if n else "q", f"new {n}", b"x", created_at=new)
    assert await store.purge(before=old + timedelta(seconds=2), source="r") == 0
    assert await store.purge(before=old + timedelta(seconds=2)) == 2  # strictly before
    assert sorted(x.reason for x in await store.list()) == ["new 0", "new 1", "new 2", "old 2", "old 3", "old 4"]
    assert await store.purge(source="q") == 4
    assert await store.count() == 2
    assert await store.purge() == 2
    assert await store.count() == 0
