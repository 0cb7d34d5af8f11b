"""``GET /v1/alarm/history/`` and the RCA of ended alarms: parameters, errors, tenancy, paging."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import build_service
from tests.api.test_api import ADMIN, MEMBER, assert_error
from tests.storage.test_history_store import BASE, at, ended, started, summary
from vitrail.api.app import create_app
from vitrail.graph.history import AlarmRecord, CauseRecord, RecordKind
from vitrail.services.alarm_history import AlarmHistory
from vitrail.services.local_backend import LocalGraphBackend
from vitrail.storage import create_engine, upgrade
from vitrail.storage.history import HistoryStore


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    engine = create_engine(f"sqlite:///{tmp_path / 'h.db'}")
    await upgrade(engine)
    store = HistoryStore(engine)
    await store.write(
        [
            started("host-alarm", 1, 0, project="project-0"),
            AlarmRecord(RecordKind.STARTED, 2, at(1), "app-alarm", summary("app-alarm", project="project-1")),
            CauseRecord(RecordKind.STARTED, 2, at(1), "host-alarm", "app-alarm"),
            CauseRecord(RecordKind.ENDED, 3, at(5), "host-alarm", "app-alarm"),
            ended("host-alarm", 3, 5),
            started("other", 4, 6, project="project-0"),
            ended("other", 5, 7),
        ],
        up_to=5,
    )
    app = create_app(LocalGraphBackend(build_service(), ["api", "graph"]))
    app.state.alarm_history = AlarmHistory(store)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://vitrail.test") as http:
        yield http
    await engine.dispose()


async def _ids(client: httpx.AsyncClient, headers: dict[str, str] | None = None, **params: Any) -> list[str]:
    response = await client.get("/v1/alarm/history/", params=params, headers=headers or {})
    assert response.status_code == 200, response.text
    return [row["vitrage_id"] for row in response.json()]


async def test_history_as_python_vitrageclient_asks_for_it(client: httpx.AsyncClient) -> None:
    # The exact query string the client sends (sequences become repeated keys, None is left out).
    params = [
        ("all_tenants", "True"),
        ("limit", "1000"),
        ("sort_by", "start_timestamp"),
        ("sort_by", "vitrage_id"),
        ("sort_dirs", "asc"),
        ("sort_dirs", "asc"),
        ("next_page", "True"),
    ]
    rows = (await client.get("/v1/alarm/history/", params=params, headers=ADMIN)).json()
    assert [r["vitrage_id"] for r in rows] == ["host-alarm", "app-alarm", "other"]
    assert rows[0]["end_timestamp"] == at(5) and rows[0]["state"] == "Inactive"
    assert "end_timestamp" not in rows[1]
    window = {"all_tenants": "True", "start": (BASE.isoformat()), "end": at(0.5).replace(" ", "T")}
    assert await _ids(client, ADMIN, **window) == ["host-alarm"]
    assert await _ids(client, ADMIN, all_tenants="True", limit=1, marker="host-alarm") == ["app-alarm"]
    assert await _ids(client, ADMIN, all_tenants="True", active="true") == ["app-alarm"]


async def test_each_project_sees_its_own_history(client: httpx.AsyncClient) -> None:
    assert await _ids(client, MEMBER) == ["app-alarm"]
    assert await _ids(client, ADMIN) == ["host-alarm", "other"]
    assert_error(await client.get("/v1/alarm/history/", params={"all_tenants": "True"}, headers=MEMBER), 403)
    host_row = (await client.get("/v1/alarm/history/", headers=ADMIN)).json()[0]
    assert_error(await client.get(f"/v1/alarm/history/{host_row['history_id']}", headers=MEMBER), 404)
    shown = (await client.get(f"/v1/alarm/history/{host_row['history_id']}", headers=ADMIN)).json()
    assert shown["vitrage_id"] == "host-alarm" and shown["changes"] == []


async def test_bad_history_requests_name_the_parameter(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/alarm/history/", params={"start": "yesterday"}), 422, "start")
    assert_error(await client.get("/v1/alarm/history/", params={"start": "2026-11-01", "end": "soon"}), 422, "end")
    assert_error(await client.get("/v1/alarm/history/", params={"end": "2026-11-01"}), 400, "end")
    assert_error(await client.get("/v1/alarm/history/", params={"sort_by": "colour"}), 400, "sort_by")
    assert_error(await client.get("/v1/alarm/history/", params={"sort_dirs": "up"}), 400, "sort_dirs")
    assert_error(await client.get("/v1/alarm/history/", params={"limit": "-1"}), 422, "limit")
    assert_error(await client.get("/v1/alarm/history/", params={"marker": "nope"}), 400, "marker")
    assert_error(
        await client.get("/v1/alarm/history/", params={"filter_by": "name", "filter_vals": ["a", "b"]}),
        400,
        "filter_vals",
    )
    assert_error(await client.get("/v1/alarm/history/0"), 422, "history_id")
    assert_error(await client.get("/v1/alarm/history/999"), 404, "999")


async def test_the_rca_of_ended_alarms_comes_from_the_history(client: httpx.AsyncClient) -> None:
    rca = (await client.get("/v1/rca/", params={"alarm_id": "app-alarm", "all_tenants": "True"}, headers=ADMIN)).json()
    assert [n["vitrage_id"] for n in rca["nodes"]] == ["app-alarm", "host-alarm"]
    assert rca["inspected_index"] == 0
    (link,) = rca["links"]
    assert (link["source"], link["target"], link["key"]) == (1, 0, "causes") and link["end_timestamp"] == at(5)
    # "other" was never linked: its RCA is itself; a tenant does not see another project's cause.
    other = (await client.get("/v1/rca/", params={"alarm_id": "other"})).json()
    assert [n["vitrage_id"] for n in other["nodes"]] == ["other"] and other["links"] == []
    mine = (await client.get("/v1/rca/", params={"alarm_id": "app-alarm"}, headers=MEMBER)).json()
    assert [n["vitrage_id"] for n in mine["nodes"]] == ["app-alarm"] and mine["links"] == []
    assert_error(await client.get("/v1/rca/", params={"alarm_id": "host-alarm"}, headers=MEMBER), 404)
    assert_error(await client.get("/v1/rca/", params={"alarm_id": "never"}), 404, "never")
