"""The template store on every backend: add, unique live names, lifecycle, listing."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from vitrail.storage import DuplicateTemplate, TemplateStore
from vitrail.storage.templates import ACTIVE, DELETED, DELETING, ERROR, LOADING

DOCUMENT = {"metadata": {"version": "3", "name": "host_down", "type": "standard"}, "entities": {}, "scenarios": []}


async def test_add_get_list_and_lifecycle(migrated: AsyncEngine) -> None:
    store = TemplateStore(migrated)
    added = await store.add("host_down", "standard", "3", DOCUMENT, {"p": "1"}, LOADING, "Template validation is OK")
    assert added.status == LOADING and added.document == DOCUMENT and added.params == {"p": "1"}
    assert (await store.get(added.uuid)) == added
    assert (await store.get("host_down")) == added
    summary = added.summary()
    assert set(summary) == {"uuid", "name", "status", "status details", "date", "type"}
    await store.set_status(added.uuid, ACTIVE)
    assert [t.status for t in await store.loadable()] == [ACTIVE]
    await store.set_status(added.uuid, DELETING)
    assert await store.loadable() == []
    await store.set_status(added.uuid, DELETED)
    assert await store.get("host_down") is None
    assert await store.list() == []
    assert [t.status for t in await store.list(include_deleted=True)] == [DELETED]


async def test_a_live_name_is_unique_but_can_be_reused_after_delete(migrated: AsyncEngine) -> None:
    store = TemplateStore(migrated)
    first = await store.add("t", "standard", "3", DOCUMENT, None, ERROR, "broken")
    with pytest.raises(DuplicateTemplate, match="'t'"):
        await store.add("t", "standard", "3", DOCUMENT, None, LOADING, None)
    with pytest.raises(DuplicateTemplate):
        await store.add("t", "definition", "2", DOCUMENT, None, LOADING, None)
    await store.set_status(first.uuid, DELETED)
    second = await store.add("t", "standard", "3", DOCUMENT, None, LOADING, None)
    assert second.uuid != first.uuid
    names = [t.name for t in await store.list()]
    assert names == ["t"]


async def test_names_differing_in_case_or_spaces_are_distinct(migrated: AsyncEngine) -> None:
    store = TemplateStore(migrated)
    await store.add("Host", "standard", "3", DOCUMENT, None, LOADING, None)
    await store.add("host", "standard", "3", DOCUMENT, None, LOADING, None)
    await store.add("host ", "standard", "3", DOCUMENT, None, LOADING, None)
    assert sorted(t.name for t in await store.list()) == ["Host", "host", "host "]


async def test_invalid_statuses_are_refused(migrated: AsyncEngine) -> None:
    store = TemplateStore(migrated)
    with pytest.raises(ValueError, match="cannot be 'DELETED'"):
        await store.add("x", "standard", "3", DOCUMENT, None, DELETED, None)
    added = await store.add("x", "standard", "3", DOCUMENT, None, LOADING, None)
    with pytest.raises(ValueError, match="unknown template status"):
        await store.set_status(added.uuid, "SLEEPING")
