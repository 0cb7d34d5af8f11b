"""``/v1/monitor/targets/``: register, list, show, change and delete targets; errors name the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import build_service
from tests.api.test_api import ADMIN, MEMBER, assert_error
from vitrail.api.app import create_app
from vitrail.services.local_backend import LocalGraphBackend
from vitrail.storage import TargetStore, create_engine, upgrade

URL = "/v1/monitor/targets/"
SSH = {"name": "ssh", "kind": "tcp", "address": "127.0.0.1:22"}
KEYSTONE = {
    "name": "keystone",
    "kind": "vim",
    "address": "http://127.0.0.1:5000/v3",
    "interval": 30,
    "timeout": 5,
    "failure_threshold": 2,
    "entity_id": "b5d2b1f1-0000-4000-8000-000000000001",
}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TargetStore]:
    engine = create_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    await upgrade(engine)
    yield TargetStore(engine)
    await engine.dispose()


@pytest.fixture
async def client(store: TargetStore) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(LocalGraphBackend(build_service(), ["api", "graph"]))
    app.state.monitor_targets = store
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://vitrail.test") as http:
        yield http


async def _add(client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    response = await client.post(URL, json=body, headers=headers or {})
    assert response.status_code == 201, response.text
    return response.json()


async def test_register_list_show_update_and_delete(client: httpx.AsyncClient, store: TargetStore) -> None:
    ssh = await _add(client, SSH)
    assert ssh == {
        "id": ssh["id"],
        "name": "ssh",
        "kind": "tcp",
        "address": "127.0.0.1:22",
        "expected_status": None,
        "interval": 10.0,
        "timeout": 3.0,
        "failure_threshold": 3,
        "entity_id": None,
        "action_id": 1,
        "status": "unknown",
        "status_changed_at": None,
        "last_probe_at": None,
        "detail": None,
        "created_at": ssh["created_at"],
        "updated_at": ssh["created_at"],
    }
    keystone = await _add(client, KEYSTONE, ADMIN)
    web = await _add(client, {"name": "web", "kind": "http", "address": "https://[::1]:8443/health"})
    assert web["expected_status"] == 200
    listed = (await client.get(URL)).json()
    assert [t["name"] for t in listed] == ["ssh", "keystone", "web"]
    assert [t["name"] for t in (await client.get(URL.rstrip("/"), params={"limit": 1})).json()] == ["ssh"]
    page = await client.get(URL, params={"limit": 5, "marker": ssh["id"]}, headers=MEMBER)
    assert [t["name"] for t in page.json()] == ["keystone", "web"]

    assert (await client.get(f"{URL}{keystone['id']}", headers=MEMBER)).json() == keystone
    assert (await client.get(f"{URL}keystone")).json() == keystone

    # Interval, timeout, threshold, name, entity: the same endpoint, the same action_id.
    response = await client.patch(f"{URL}ssh", json={"interval": 60, "timeout": 10, "name": "ssh-0"}, headers=ADMIN)
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["interval"], changed["timeout"], changed["name"], changed["action_id"]) == (60, 10, "ssh-0", 1)
    # The address: a new endpoint, so a new action_id and an unknown status.
    await store.record_status(ssh["id"], "reachable", 1)
    changed = (await client.patch(f"{URL}{ssh['id']}", json={"address": "127.0.0.1:2222"})).json()
    assert (changed["address"], changed["action_id"], changed["status"]) == ("127.0.0.1:2222", 2, "unknown")
    # A change of kind drops the old expected_status; back to http, the default.
    changed = (await client.patch(f"{URL}web", json={"kind": "tcp", "address": "[::1]:8443"})).json()
    assert (changed["kind"], changed["expected_status"], changed["action_id"]) == ("tcp", None, 2)
    changed = (await client.patch(f"{URL}web/", json={"kind": "http", "address": "http://[::1]:8443/"})).json()
    assert (changed["expected_status"], changed["action_id"]) == (200, 3)
    # entity_id null: the target gets an entity of its own.
    assert (await client.patch(f"{URL}keystone", json={"entity_id": None})).json()["entity_id"] is None

    replaced = await client.put(f"{URL}keystone", json={**KEYSTONE, "address": "https://127.0.0.1:5001/v3"})
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert (body["address"], body["action_id"], body["entity_id"]) == (
        "https://127.0.0.1:5001/v3",
        2,
        KEYSTONE["entity_id"],
    )

    deleted = await client.delete(f"{URL}{ssh['id']}", headers=ADMIN)
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(await client.get(f"{URL}{ssh['id']}"), 404, ssh["id"])
    assert [t["name"] for t in (await client.get(URL)).json()] == ["keystone", "web"]
    assert (await store.get(ssh["id"], include_deleted=True)).action_id == 3  # type: ignore[union-attr]
    # The name is free again.
    assert (await _add(client, SSH))["id"] != ssh["id"]


async def test_unknown_targets_are_404(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get(f"{URL}missing"),
        await client.patch(f"{URL}missing", json={"interval": 20}),
        await client.put(f"{URL}missing", json=SSH),
        await client.delete(f"{URL}missing"),
    ):
        assert_error(response, 404, "'missing'")


async def test_duplicate_names_are_409(client: httpx.AsyncClient) -> None:
    await _add(client, SSH)
    other = await _add(client, {**SSH, "name": "SSH"})  # names are case sensitive
    assert_error(await client.post(URL, json={**SSH, "address": "127.0.0.1:23"}), 409, "name", "'ssh'")
    assert_error(await client.patch(f"{URL}{other['id']}", json={"name": "ssh"}), 409, "name")
    assert_error(await client.put(f"{URL}SSH", json=SSH), 409, "name")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({**SSH, "name": ""}, ("name:",)),
        ({**SSH, "name": "a/b"}, ("name:", "'/'")),
        ({**SSH, "name": "x" * 256}, ("name:", "255")),
        ({**SSH, "kind": "icmp"}, ("kind:", "'tcp', 'http' or 'vim'")),
        ({**SSH, "address": "127.0.0.1"}, ("address:", "host:port")),
        ({**SSH, "address": "127.0.0.1:70000"}, ("address:", "65535")),
        ({**SSH, "address": "::1:22"}, ("address:", "brackets")),
        ({**SSH, "kind": "http"}, ("address:", "http://")),
        ({**SSH, "kind": "vim", "address": "http://:5000/"}, ("address:", "no host")),
        ({**SSH, "expected_status": 200}, ("expected_status:", "only http")),
        ({**SSH, "kind": "http", "address": "http://x/", "expected_status": 600}, ("expected_status:", "599")),
        ({**SSH, "interval": 0.5}, ("interval:", "greater than or equal to 1")),
        ({**SSH, "interval": 86401}, ("interval:",)),
        ({**SSH, "interval": "10"}, ("interval:", "number")),
        ({**SSH, "timeout": 0}, ("timeout:",)),
        ({**SSH, "interval": 5, "timeout": 5}, ("timeout:", "shorter than the interval")),
        ({**SSH, "failure_threshold": 0}, ("failure_threshold:",)),
        ({**SSH, "failure_threshold": 101}, ("failure_threshold:", "100")),
        ({**SSH, "entity_id": "e" * 65}, ("entity_id:", "64")),
        ({**SSH, "intervall": 20}, ("intervall:", "not permitted")),
        ({"kind": "tcp", "address": "127.0.0.1:22"}, ("name:", "required")),
        ({"name": "x", "address": "127.0.0.1:22"}, ("kind:", "required")),
    ],
)
async def test_invalid_definitions_are_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], words: tuple[str, ...]
) -> None:
    assert_error(await client.post(URL, json=body), 422, *words)


async def test_invalid_changes_are_422_naming_the_field(client: httpx.AsyncClient) -> None:
    await _add(client, SSH)
    for body, words in (
        ({"interval": 2}, ("timeout:", "shorter than the interval (2 s)")),  # checked with the target's timeout
        ({"kind": "http"}, ("address:", "http://")),
        ({"expected_status": 204}, ("expected_status:", "only http")),
        ({"interval": None}, ("interval:", "cannot be null")),
        ({"name": None}, ("name:", "cannot be null")),
        ({"address": ""}, ("address:",)),
        ({"colour": "red"}, ("colour:",)),
    ):
        assert_error(await client.patch(f"{URL}ssh", json=body), 422, *words)
    assert_error(await client.put(f"{URL}ssh", json={"name": "ssh"}), 422, "kind:", "address:")
    assert_error(await client.post(URL, content=b"{not json", headers={"content-type": "application/json"}), 422)
    assert_error(await client.get(URL, params={"marker": "nobody"}), 422, "marker")
    assert_error(await client.get(URL, params={"limit": 0}), 422, "limit")
    unchanged = (await client.get(f"{URL}ssh")).json()
    assert (unchanged["interval"], unchanged["kind"], unchanged["action_id"]) == (10, "tcp", 1)


async def test_writing_needs_the_admin_role_when_identity_headers_are_sent(client: httpx.AsyncClient) -> None:
    ssh = await _add(client, SSH, ADMIN)
    assert_error(await client.post(URL, json={**SSH, "name": "other"}, headers=MEMBER), 403, "admin")
    assert_error(await client.patch(f"{URL}ssh", json={"interval": 20}, headers=MEMBER), 403, "admin")
    assert_error(await client.put(f"{URL}ssh", json=SSH, headers=MEMBER), 403, "admin")
    assert_error(await client.delete(f"{URL}ssh", headers=MEMBER), 403, "admin")
    assert (await client.get(f"{URL}ssh", headers=MEMBER)).json() == ssh
    assert [t["name"] for t in (await client.get(URL, headers=MEMBER)).json()] == ["ssh"]


async def test_a_process_without_a_database_answers_503() -> None:
    app = create_app(LocalGraphBackend(build_service(), ["api", "graph"]))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://vitrail.test") as http:
        assert_error(await http.get(URL), 503, "monitor targets")
        assert_error(await http.post(URL, json=SSH), 503, "monitor targets")
