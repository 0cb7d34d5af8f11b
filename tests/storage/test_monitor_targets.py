"""The monitor target store on every backend: definitions, the action_id fence, statuses."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from vitrail.monitor.targets import TargetDraft
from vitrail.storage import DuplicateTarget, TargetNotFound, TargetStore, UnknownMarker
from vitrail.storage.monitor_targets import DETAIL_MAX_CHARS

T0 = datetime(2026, 11, 22, 3, 12, 0, 123456, tzinfo=UTC)


def draft(name: str = "keystone", **fields: object) -> TargetDraft:
    values: dict[str, object] = {"kind": "vim", "address": "http://127.0.0.1:5000/v3", **fields}
    return TargetDraft.model_validate({"name": name, **values})


async def test_add_get_list_update_delete(migrated: AsyncEngine) -> None:
    store = TargetStore(migrated)
    added = await store.add(draft(interval=30, timeout=5, failure_threshold=2, entity_id="host-vitrage-id"))
    assert (added.name, added.kind, added.address) == ("keystone", "vim", "http://127.0.0.1:5000/v3")
    assert (added.interval, added.timeout, added.failure_threshold) == (30.0, 5.0, 2)
    assert added.entity_id == "host-vitrage-id" and added.expected_status is None
    assert (added.action_id, added.status, added.detail) == (1, "unknown", None)
    assert added.status_changed_at is None and added.last_probe_at is None and added.deleted_at is None
    assert added.created_at == added.updated_at and added.created_at.tzinfo is not None
    assert await store.get(added.id) == added
    assert await store.get("keystone") == added
    assert await store.get("nothing") is None

    web = await store.add(draft("web", kind="http", address="https://[::1]:8443/health", timeout=0.25))
    assert web.expected_status == 200 and web.timeout == 0.25  # a double, not a 4-byte float on MariaDB
    ssh = await store.add(draft("ssh", kind="tcp", address="127.0.0.1:22"))
    assert [t.name for t in await store.list()] == ["keystone", "web", "ssh"]

    changed = await store.update(web.id, {"interval": 60.0, "name": "web-health", "failure_threshold": 5})
    assert (changed.name, changed.interval, changed.failure_threshold) == ("web-health", 60.0, 5)
    assert changed.action_id == 1 and changed.updated_at > web.updated_at
    assert await store.get("web") is None and await store.get("web-health") == changed

    deleted = await store.delete(ssh.id)
    assert deleted.deleted and deleted.action_id == 2
    assert await store.get(ssh.id) is None and await store.get("ssh") is None
    assert await store.get(ssh.id, include_deleted=True) == deleted
    assert [t.name for t in await store.list()] == ["keystone", "web-health"]
    assert [t.name for t in await store.list(include_deleted=True)] == ["keystone", "web-health", "ssh"]
    with pytest.raises(TargetNotFound):
        await store.delete(ssh.id)
    with pytest.raises(TargetNotFound):
        await store.update(ssh.id, {"interval": 20.0})
    with pytest.raises(TargetNotFound):
        await store.update("no-such-id", {"interval": 20.0})
    with pytest.raises(ValueError, match="action_id"):
        await store.update(web.id, {"action_id": 7})


async def test_action_id_grows_exactly_when_the_probed_endpoint_changes(migrated: AsyncEngine) -> None:
    store = TargetStore(migrated)
    target = await store.add(draft("web", kind="http", address="http://127.0.0.1:8080/"))
    await store.record_status(target.id, "reachable", 1, at=T0)
    for changes in (
        {"interval": 20.0, "timeout": 2.0},
        {"failure_threshold": 9},
        {"name": "web2"},
        {"entity_id": "some-entity"},
        {"entity_id": None},
        {"address": "http://127.0.0.1:8080/"},  # the same address: nothing changes
        {},
    ):
        target = await store.update(target.id, changes)
        assert target.action_id == 1, changes
    assert target.status == "reachable"

    expected = 1
    for changes in (
        {"address": "http://127.0.0.1:8081/"},
        {"expected_status": 204},
        {"kind": "vim", "expected_status": None},
        {"kind": "tcp", "address": "127.0.0.1:8081", "interval": 5.0},
    ):
        await store.record_status(target.id, "reachable", expected, at=T0)
        target = await store.update(target.id, changes)
        expected += 1
        assert target.action_id == expected, changes
        # The status described the old endpoint: unknown again, until a probe of the new one.
        assert (target.status, target.detail) == ("unknown", None)
    assert (target.kind, target.address, target.expected_status, target.interval) == ("tcp", "127.0.0.1:8081", None, 5)
    assert (await store.delete(target.id)).action_id == expected + 1


async def test_names_are_unique_among_live_targets_byte_for_byte(migrated: AsyncEngine) -> None:
    store = TargetStore(migrated)
    first = await store.add(draft("keystone"))
    with pytest.raises(DuplicateTarget, match="'keystone'"):
        await store.add(draft("keystone", kind="tcp", address="127.0.0.1:5000"))
    # MariaDB's collations fold case and ignore trailing spaces: not here.
    for name in ("Keystone", "keystone ", "KEYSTONE", "keystoné"):
        assert (await store.add(draft(name))).name == name
    assert (await store.get("keystone ")).name == "keystone "  # type: ignore[union-attr]
    assert (await store.get("Keystone")).name == "Keystone"  # type: ignore[union-attr]
    other = await store.add(draft("other"))
    with pytest.raises(DuplicateTarget, match="'keystone'"):
        await store.update(other.id, {"name": "keystone"})
    assert (await store.get(other.id)).name == "other"  # type: ignore[union-attr]
    # Deleting frees the name; the id is never reused.
    await store.delete(first.id)
    again = await store.add(draft("keystone"))
    assert again.id != first.id
    assert (await store.get("keystone")) == again


async def test_record_status_is_fenced_by_the_action_id(migrated: AsyncEngine) -> None:
    store = TargetStore(migrated)
    target = await store.add(draft("ssh", kind="tcp", address="127.0.0.1:22"))
    assert await store.record_status(target.id, "unreachable", 1, "connection refused", at=T0) == "ok"
    stored = await store.get(target.id)
    assert stored is not None
    assert (stored.status, stored.detail, stored.status_changed_at, stored.last_probe_at) == (
        "unreachable",
        "connection refused",
        T0,
        T0,
    )
    later = T0 + timedelta(seconds=10)
    # The same status again, identical values: still "ok" (rows matched, not rows changed, on MySQL too).
    assert await store.record_status(target.id, "unreachable", 1, "connection refused", at=T0) == "ok"
    assert await store.record_status(target.id, "unreachable", 1, "connection refused", at=later) == "ok"
    stored = await store.get(target.id)
    assert stored is not None and (stored.status_changed_at, stored.last_probe_at) == (T0, later)

    moved = await store.update(target.id, {"address": "127.0.0.1:2222"})
    assert moved.action_id == 2
    assert await store.record_status(target.id, "reachable", 1, at=later) == "bad_action"
    assert (await store.get(target.id)).status == "unknown"  # type: ignore[union-attr]
    assert await store.record_status(target.id, "reachable", 3, at=later) == "bad_action"  # from the future
    assert await store.record_status(target.id, "reachable", 2, None, at=later) == "ok"

    await store.delete(target.id)
    assert await store.record_status(target.id, "reachable", 2, at=later) == "bad_action"
    assert await store.record_status(target.id, "reachable", 3, at=later) == "bad_action"  # deleted: fenced too
    assert await store.record_status("no-such-target", "reachable", 1) == "not_found"
    with pytest.raises(ValueError, match="unknown target status"):
        await store.record_status(target.id, "sleepy", 1)


async def test_a_stale_report_racing_a_change_never_overwrites_it(migrated: AsyncEngine) -> None:
    store = TargetStore(migrated)
    target = await store.add(draft("ssh", kind="tcp", address="127.0.0.1:22"))
    results = await asyncio.gather(
        store.update(target.id, {"address": "127.0.0.1:23"}),
        *(store.record_status(target.id, "unreachable", 1, "refused", at=T0) for _ in range(5)),
    )
    after = await store.get(target.id)
    assert after is not None and after.action_id == 2 and after.address == "127.0.0.1:23"
    # Reports that came before the change were stored and then reset; none after it.
    assert after.status == "unknown" and after.detail is None
    assert set(results[1:]) <= {"ok", "bad_action"}


async def test_long_or_odd_details_are_stored_as_text(migrated: AsyncEngine) -> None:
    store = TargetStore(migrated)
    target = await store.add(draft("ssh", kind="tcp", address="127.0.0.1:22"))
    assert await store.record_status(target.id, "unreachable", 1, "nul\x00 and é" + "x" * 100_000) == "ok"
    stored = await store.get(target.id)
    assert stored is not None and stored.detail is not None
    assert stored.detail.startswith("nul\\x00 and é") and len(stored.detail) == DETAIL_MAX_CHARS


async def test_pages_follow_the_order_of_addition(migrated: AsyncEngine) -> None:
    store = TargetStore(migrated)
    added = [await store.add(draft(f"t{i}", kind="tcp", address=f"127.0.0.1:{1000 + i}")) for i in range(5)]
    first = await store.list(limit=2)
    assert [t.name for t in first] == ["t0", "t1"]
    second = await store.list(limit=2, marker=first[-1].id)
    assert [t.name for t in second] == ["t2", "t3"]
    await store.delete(second[-1].id)  # a marker deleted meanwhile still marks the place
    assert [t.name for t in await store.list(limit=2, marker=second[-1].id)] == ["t4"]
    assert [t.id for t in await store.list(include_deleted=True)] == [t.id for t in added]
    assert await store.list(limit=0) == []
    with pytest.raises(UnknownMarker, match="marker"):
        await store.list(marker="no-such-id")
