"""Alarm and RCA history on every backend: idempotent writes, Vitrage's query semantics, paging, purge."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from vitrail.graph.history import AlarmRecord, AlarmSummary, CauseRecord, RecordKind
from vitrail.storage import EpochStore, Fenced
from vitrail.storage.history import HistoryQuery, HistoryQueryError, HistoryStore

BASE = datetime(2026, 11, 1, tzinfo=UTC)


def at(minutes: float) -> str:
    return (BASE + timedelta(minutes=minutes)).isoformat(sep=" ", timespec="microseconds")


def summary(
    name: str, severity: str = "CRITICAL", resource: str = "host-1", project: str | None = None
) -> AlarmSummary:
    return AlarmSummary(
        name=name,
        vitrage_type="prometheus",
        severity=severity,
        aggregated_severity=severity,
        state="Active",
        project_id=project,
        resource_id=resource,
        resource_type="nova.host",
        resource_name=f"name-of-{resource}",
        resource_project_id=None,
        deduced=False,
        templates=(),
        payload={"name": name, "vitrage_id": name, "severity": severity.lower()},
    )


def started(vid: str, seq: int, minute: float, **kw: object) -> AlarmRecord:
    return AlarmRecord(RecordKind.STARTED, seq, at(minute), vid, summary(vid, **kw))  # type: ignore[arg-type]


def changed(vid: str, seq: int, minute: float, **kw: object) -> AlarmRecord:
    return AlarmRecord(RecordKind.CHANGED, seq, at(minute), vid, summary(vid, **kw))  # type: ignore[arg-type]


def ended(vid: str, seq: int, minute: float) -> AlarmRecord:
    return AlarmRecord(RecordKind.ENDED, seq, at(minute), vid, None)


@pytest.fixture
def store(migrated: AsyncEngine) -> HistoryStore:
    return HistoryStore(migrated)


async def test_an_alarm_lives_changes_ends_and_recurs_and_rewrites_change_nothing(store: HistoryStore) -> None:
    assert await store.progress() is None
    records = [
        started("a", 1, 1, severity="WARNING"),
        changed("a", 3, 3, severity="CRITICAL"),
        ended("a", 5, 5),
        started("a", 8, 8),  # the same alarm again: a second occurrence
        started("b", 8, 8),
        CauseRecord(RecordKind.STARTED, 8, at(8), "a", "b"),
    ]
    await store.write(records, up_to=9)
    await store.write(records, up_to=9)  # a new leader replaying the same events
    assert await store.progress() == 9
    rows = await store.query(HistoryQuery())
    assert [(r["vitrage_id"], r["start_sequence"], r["end_sequence"]) for r in rows] == [
        ("a", 1, 5),
        ("a", 8, None),
        ("b", 8, None),
    ]
    first = rows[0]
    assert first["state"] == "Inactive" and first["vitrage_operational_severity"] == "OK"
    assert first["end_timestamp"] == at(5) and first["history_start"] == at(1)
    detail = await store.get(first["history_id"])
    assert detail is not None
    assert [c["vitrage_operational_severity"] for c in detail["changes"]] == ["CRITICAL"]
    assert await store.open_alarms() == {"a", "b"}
    assert await store.open_causes() == {("a", "b")}
    # An end older than the open occurrence does not close it.
    await store.write([ended("a", 6, 6)], up_to=9)
    assert await store.open_alarms() == {"a", "b"}
    await store.write([CauseRecord(RecordKind.ENDED, 10, at(10), "a", "b"), ended("a", 10, 10)], up_to=10)
    assert await store.open_alarms() == {"b"} and await store.open_causes() == set()
    links = await store.causal_links(["b"], as_target=True)
    assert [(link.source_id, link.start_sequence, link.end_sequence) for link in links] == [("a", 8, 10)]


async def test_time_frames_filters_and_tenancy(store: HistoryStore) -> None:
    await store.write(
        [
            started("early", 1, 0, resource="host-1"),
            ended("early", 2, 10),
            started("middle", 3, 20, severity="WARNING", resource="host-2", project="p1"),
            ended("middle", 4, 30),
            started("open", 5, 40, resource="host-2"),
        ],
        up_to=5,
    )

    async def names(**kw: object) -> list[str]:
        return [r["vitrage_id"] for r in await store.query(HistoryQuery(**kw))]  # type: ignore[arg-type]

    assert await names(start=BASE + timedelta(minutes=5), end=BASE + timedelta(minutes=25)) == ["early", "middle"]
    assert await names(start=BASE + timedelta(minutes=31)) == ["open"]
    assert await names(start=BASE + timedelta(minutes=35), end=BASE + timedelta(minutes=36)) == []
    assert await names(only_active=True) == ["open"]
    assert await names(resource_id="host-2") == ["middle", "open"]
    assert await names(severity="WARNING") == ["middle"]
    assert await names(filter_by=("vitrage_resource_id",), filter_vals=(("host-1", "host-2"),)) == [
        "early",
        "middle",
        "open",
    ]
    assert await names(filter_by=("name",), filter_vals=("idd",)) == ["middle"]
    assert await names(filter_by=("name",), filter_vals=("%",)) == []  # LIKE wildcards are literal
    assert await names(project_id="p1") == ["middle"]
    assert await names(project_id="p1", is_admin=True) == ["early", "middle", "open"]
    assert await names(sort_by=("end_timestamp",), sort_dirs=("desc",)) == ["open", "middle", "early"]
    for bad, parameter in (
        (HistoryQuery(end=BASE), "end"),
        (HistoryQuery(sort_by=("nope",)), "sort_by"),
        (HistoryQuery(sort_dirs=("up", "up")), "sort_dirs"),
        (HistoryQuery(filter_by=("nope",), filter_vals=("x",)), "filter_by"),
        (HistoryQuery(marker="missing"), "marker"),
        (HistoryQuery(start=BASE + timedelta(1), end=BASE), "end"),
    ):
        with pytest.raises(HistoryQueryError) as caught:
            await store.query(bad)
        assert caught.value.parameter == parameter


async def test_pages_forward_and_back_never_overlap(store: HistoryStore) -> None:
    records = [started(f"alarm-{n:02d}", n + 1, n // 3) for n in range(20)]  # equal start times: ties
    await store.write(records, up_to=20)
    everything = [r["vitrage_id"] for r in await store.query(HistoryQuery(limit=0))]
    assert len(everything) == 20
    pages, marker = [], None
    while True:
        page = await store.query(HistoryQuery(limit=6, marker=marker))
        if not page:
            break
        pages.append([r["vitrage_id"] for r in page])
        marker = str(page[-1]["history_id"])
    assert [v for page in pages for v in page] == everything
    # Back from the last page's first row: the page before it.
    last_first = (await store.query(HistoryQuery(limit=6, marker=pages[2][-1])))[0]
    previous = await store.query(HistoryQuery(limit=6, marker=str(last_first["history_id"]), next_page=False))
    assert [r["vitrage_id"] for r in previous] == pages[2]
    descending = [r["vitrage_id"] for r in await store.query(HistoryQuery(sort_dirs=("desc", "desc"), limit=0))]
    assert descending == everything[::-1]


async def test_purge_removes_exactly_what_ended_before_the_cut(store: HistoryStore) -> None:
    await store.write(
        [
            started("old", 1, 0),
            changed("old", 2, 1, severity="WARNING"),
            started("edge", 3, 2),
            started("young", 4, 3),
            started("active", 5, 4),
            CauseRecord(RecordKind.STARTED, 5, at(4), "old", "active"),
            CauseRecord(RecordKind.ENDED, 6, at(9), "old", "active"),
            CauseRecord(RecordKind.STARTED, 6, at(9), "young", "active"),
            ended("old", 6, 9),
            ended("edge", 7, 10),
            ended("young", 8, 11),
        ],
        up_to=8,
    )
    purged = await store.purge(BASE + timedelta(minutes=10))
    assert (purged.alarms, purged.changes, purged.causes) == (1, 1, 1)
    remaining = sorted(r["vitrage_id"] for r in await store.query(HistoryQuery(limit=0)))
    assert remaining == ["active", "edge", "young"]  # ended at the cut, after it, or never
    assert await store.open_causes() == {("young", "active")}
    again = await store.purge(BASE + timedelta(minutes=10))
    assert (again.alarms, again.changes, again.causes) == (0, 0, 0)


async def test_a_deposed_leader_cannot_write_history(store: HistoryStore, migrated: AsyncEngine) -> None:
    epochs = EpochStore(migrated)
    first = await epochs.bump("graph", "one")
    await store.write([started("a", 1, 1)], up_to=1, epoch=first)
    await epochs.bump("graph", "two")
    with pytest.raises(Fenced):
        await store.write([ended("a", 2, 2)], up_to=2, epoch=first)
    assert await store.open_alarms() == {"a"} and await store.progress() == 1


async def test_a_long_alarm_is_found_in_a_window_far_from_its_start(store: HistoryStore) -> None:
    """Time frames bound the start-time scan by the longest occurrence: that bound must hold."""
    await store.write([started("long", 1, 0), started("short", 2, 499), ended("short", 3, 499.5)], up_to=3)
    await store.write([ended("long", 4, 1000)], up_to=4)

    async def names(start: float, end: float) -> list[str]:
        query = HistoryQuery(start=BASE + timedelta(minutes=start), end=BASE + timedelta(minutes=end))
        return [r["vitrage_id"] for r in await store.query(query)]

    assert await names(500, 501) == ["long"]
    assert await names(499.2, 499.3) == ["long", "short"]
    assert await names(1000.5, 2000) == []
    open_since = HistoryQuery(start=BASE + timedelta(minutes=999))
    assert [r["vitrage_id"] for r in await store.query(open_since)] == ["long"]


async def test_odd_records_are_stored_rather_than_blocking_the_history(store: HistoryStore) -> None:
    """A payload orjson refuses and a time that is not one: stored (escaped, epoch), never retried forever."""
    odd = dataclasses.replace(summary("odd"), payload={"name": "bad \udcff text"}, name="n" * 400)
    await store.write([AlarmRecord(RecordKind.STARTED, 1, "not a time", "odd", odd)], up_to=1)
    (row,) = await store.query(HistoryQuery())
    assert row["name"] == "bad \udcff text"
    assert row["history_start"].startswith("1970-01-01")
