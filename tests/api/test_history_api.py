"""``at=<time>`` on the queries, ``/v1/history/window`` and ``/v1/history/diff``, over the real worker process.

The API's live graph is the scenario's final one; asked ``at`` a past moment it
must answer what the live API answered then. "What it answered then" is asked of
a second API whose graph is the one the live processor dumped at that moment.
Both answers come from the same query code but from graphs built differently
(the rebuilt one from a snapshot and the log), so their lists can be in another
order: node-link answers are compared by vitrage_id.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from tests.time_travel_scenario import HistoryScenario, recent_start, scenario_settings
from vitrail.api.app import create_app
from vitrail.bus import InProcessBus
from vitrail.config import GraphSettings
from vitrail.graph.events import format_timestamp
from vitrail.graph.processor import Processor
from vitrail.services.collector import Collector
from vitrail.services.graph import GraphService
from vitrail.services.local_backend import LocalGraphBackend
from vitrail.services.processors import processor_factory
from vitrail.services.time_travel import TimeTravel
from vitrail.storage import create_engine


def _app(processor: Processor, history: TimeTravel | None = None) -> httpx.AsyncClient:
    bus = InProcessBus()
    service = GraphService(processor, bus, Collector({}, bus), [], [], GraphSettings())
    service.ready.set()
    app = create_app(LocalGraphBackend(service, ["api", "graph"]))
    if history is not None:
        app.state.time_travel = history
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://vitrail.test")


class Clients:
    def __init__(self, scenario: HistoryScenario, api: httpx.AsyncClient) -> None:
        self.scenario = scenario
        self.api = api

    def then(self, label: str) -> httpx.AsyncClient:
        """An API over the graph as the live one was at ``label`` (loaded from its dump)."""
        document = orjson.loads(self.scenario.moments[label].dump)
        return _app(processor_factory(self.scenario.settings).load(document))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> HistoryScenario:
    built = HistoryScenario(scenario_settings(tmp_path_factory.mktemp("history-api")), recent_start())
    asyncio.run(built.build())
    return built


@pytest.fixture
async def clients(scenario: HistoryScenario) -> AsyncIterator[Clients]:
    engine = create_engine(scenario.settings.database_url())
    history = TimeTravel(scenario.settings, engine)
    async with _app(scenario.live, history) as api:
        yield Clients(scenario, api)
    await history.close()
    await engine.dispose()


def _nodes(answer: dict[str, Any]) -> tuple[dict[str, Any], set[tuple[str, str, str]]]:
    """A node-link answer by vitrage_id: the nodes (without their index) and the links between them."""
    nodes = answer["nodes"]
    ids = [node.get("vitrage_id", node.get("id")) for node in nodes]
    by_id = {vid: {k: v for k, v in node.items() if k != "graph_index"} for vid, node in zip(ids, nodes, strict=True)}
    links = {(ids[link["source"]], ids[link["target"]], link["relationship_type"]) for link in answer["links"]}
    return by_id, links


def _by_id(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {row["vitrage_id"]: row for row in rows}


async def test_every_query_at_t_answers_as_the_live_api_did_then(clients: Clients) -> None:
    scenario, api = clients.scenario, clients.api
    down = scenario.moments["host_down"]
    at = {"at": format_timestamp(down.at)}
    deduced = scenario.deduced_alarm("host_down")
    host = next(r for r in down.resources if r["name"] == "host-00001")
    async with clients.then("host_down") as then:
        for path, params in [
            ("/v1/topology/", {}),
            ("/v1/topology/", {"graph_type": "tree", "all_tenants": "true"}),
            ("/v1/topology/", {"root": host["vitrage_id"], "depth": "1"}),
        ]:
            past = await api.get(path, params={**params, **at})
            assert past.status_code == 200, past.text
            assert past.json() and past.json() != (await api.get(path, params=params)).json()  # it changed since
            expected = (await then.get(path, params=params)).json()
            if params.get("graph_type") == "tree":
                assert past.json()["vitrage_id"] == expected["vitrage_id"]
                assert len(past.json()["children"]) == len(expected["children"])
            else:
                assert _nodes(past.json()) == _nodes(expected)
        for path, params, as_set in [
            ("/v1/resources/", {"resource_type": "nova.instance"}, True),
            ("/v1/resources/count/", {"group_by": "vitrage_aggregated_state"}, False),
            (f"/v1/resources/{host['vitrage_id']}", {}, False),
            ("/v1/alarm/", {}, False),
            ("/v1/alarm/", {"vitrage_id": host["vitrage_id"]}, False),
            ("/v1/alarm/count/", {}, False),
            (f"/v1/alarm/{deduced['vitrage_id']}", {}, False),
        ]:
            past = await api.get(path, params={**params, **at})
            assert past.status_code == 200, (path, past.text)
            expected = (await then.get(path, params=params)).json()
            assert (_by_id(past.json()) if as_set else past.json()) == (_by_id(expected) if as_set else expected)
        assert (await api.get("/v1/alarm/", params=at)).json() == down.alarms
        for path, params in [
            ("/v1/rca/", {"alarm_id": deduced["vitrage_id"]}),
            (f"/v1/rca/{deduced['vitrage_id']}/", {}),
        ]:
            past = (await api.get(path, params={**params, **at})).json()
            expected = (await then.get(path, params=params)).json()
            assert _nodes(past) == _nodes(expected)
            assert past["nodes"][past["inspected_index"]]["vitrage_id"] == deduced["vitrage_id"]
    # Now the host is up again: the live answer has no such alarm; at T it had.
    assert (await api.get(f"/v1/alarm/{deduced['vitrage_id']}")).status_code == 404
    # POST forms take at= in the query string too.
    posted = await api.post("/v1/resources/count/", params=at, json={"resource_type": "nova.host"})
    assert posted.status_code == 200 and posted.json() == {"nova.host": 4}


async def test_at_errors(clients: Clients) -> None:
    api, scenario = clients.api, clients.scenario
    future = format_timestamp(datetime.now(UTC) + timedelta(hours=1))
    for path in ("/v1/topology/", "/v1/resources/", "/v1/alarm/", "/v1/alarm/count/", "/v1/resources/count/"):
        answer = await api.get(path, params={"at": future})
        assert answer.status_code == 400, (path, answer.text)
        body = answer.json()
        assert body["code"] == 400 and body["title"] == "Bad Request"
        assert re.fullmatch(
            r"at: \S+ \S+ is in the future; the graph can be rebuilt from \S+ \S+ to \S+ \S+ \(now\)",
            body["description"],
        ), body["description"]
    too_old = format_timestamp(scenario.start - timedelta(days=1))
    answer = await api.get("/v1/alarm/", params={"at": too_old})
    assert answer.status_code == 400
    window = (await api.get("/v1/history/window")).json()
    expected = f"outside the history window; the graph can be rebuilt from {window['start']}"
    assert expected in answer.json()["description"]
    for bad in ("yesterday", "2026-13-40T00:00:00", ""):
        answer = await api.get("/v1/alarm/count/", params={"at": bad})
        assert answer.status_code == 422, bad
        assert answer.json()["description"].startswith("at: "), answer.json()
    answer = await api.get("/v1/rca/some-alarm", params={"at": "not a time"})
    assert answer.status_code == 422 and answer.json()["description"].startswith("at: ")
    answer = await api.get("/v1/resources/missing", params={"at": format_timestamp(scenario.moments["changes"].at)})
    assert answer.status_code == 404
    answer = await api.get("/v1/topology/", params={"at": format_timestamp(scenario.moments["changes"].at), "depth": 2})
    assert answer.status_code == 422 and "root" in answer.json()["description"]  # the query's own checks


async def test_history_window(clients: Clients) -> None:
    window = (await clients.api.get("/v1/history/window")).json()
    assert window["start"] == format_timestamp(clients.scenario.start + timedelta(minutes=1))
    assert datetime.fromisoformat(window["end"]) <= datetime.now(UTC)


async def test_history_diff(clients: Clients) -> None:
    api, moments = clients.api, clients.scenario.moments
    params = {"from": format_timestamp(moments["host_up"].at), "to": format_timestamp(moments["other_host_down"].at)}
    answer = await api.get("/v1/history/diff", params=params)
    assert answer.status_code == 200, answer.text
    diff = answer.json()
    assert list(diff) == ["from", "to", "summary", "resources", "alarms"]
    assert diff["from"]["sequence"] == moments["host_up"].sequence
    assert diff["to"] == {"time": params["to"], "sequence": moments["other_host_down"].sequence}
    assert diff["summary"] == {
        "resources": {"added": 0, "removed": 0, "changed": 3},
        "alarms": {"added": 3, "removed": 0, "changed": 0},
    }
    assert {a["vitrage_resource_name"] for a in diff["alarms"]["added"]} >= {"host-00002"}
    host = next(c for c in diff["resources"]["changed"] if c["name"] == "host-00002")
    assert host["changes"]["vitrage_aggregated_state"] == {"from": "AVAILABLE", "to": "ERROR"}
    assert set(diff["resources"]) == set(diff["alarms"]) == {"added", "removed", "changed"}
    limited = (await api.get("/v1/history/diff", params={**params, "limit": 1})).json()
    assert len(limited["alarms"]["added"]) == 1 and limited["summary"] == diff["summary"]


async def test_history_diff_errors(clients: Clients) -> None:
    api, moments = clients.api, clients.scenario.moments
    later, earlier = format_timestamp(moments["host_up"].at), format_timestamp(moments["get_all"].at)
    answer = await api.get("/v1/history/diff", params={"from": later, "to": earlier})
    assert answer.status_code == 400 and answer.json()["description"].startswith("from: ")
    answer = await api.get("/v1/history/diff", params={"from": "soon", "to": earlier})
    assert answer.status_code == 422 and answer.json()["description"].startswith("from: ")
    answer = await api.get("/v1/history/diff", params={"from": earlier, "to": "2026-02-30"})
    assert answer.status_code == 422 and answer.json()["description"].startswith("to: ")
    answer = await api.get("/v1/history/diff", params={"from": earlier})
    assert answer.status_code == 422 and "to" in answer.json()["description"]
    future = format_timestamp(datetime.now(UTC) + timedelta(days=1))
    answer = await api.get("/v1/history/diff", params={"from": earlier, "to": future})
    assert answer.status_code == 400 and answer.json()["description"].startswith("to: ")
    answer = await api.get("/v1/history/diff", params={"from": earlier, "to": later}, headers={"x-roles": "member"})
    assert answer.status_code == 200  # a member sees its project's part
    forbidden = await api.get(
        "/v1/history/diff", params={"from": earlier, "to": later, "all_tenants": "true"}, headers={"x-roles": "member"}
    )
    assert forbidden.status_code == 403


async def test_without_a_database_at_is_unavailable(scenario: HistoryScenario) -> None:
    async with _app(scenario.live) as api:
        answer = await api.get("/v1/alarm/", params={"at": format_timestamp(scenario.moments["changes"].at)})
        assert answer.status_code == 503 and "past time" in answer.json()["description"]
        assert (await api.get("/v1/alarm/")).status_code == 200  # the live graph still answers
        assert (await api.get("/v1/history/window")).status_code == 503
