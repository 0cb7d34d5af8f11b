"""Seed 002's story end to end: a host fails, its instances degrade, the host is fixed, the application
alarm remains, and its cause is still known.

Real parts: the graph role (leader election on the SQLite database), the
persistor writing the event log, the history writer, the in-process bus, the
real template language, and the REST API the operator asks. Half-way the
leader dies without flushing and a second one takes over: the history it
finishes must be the one the first would have written, with nothing twice.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.services.test_graph_role import _until
from vitrail.api.app import create_app
from vitrail.bus import InProcessBus
from vitrail.config import Settings
from vitrail.graph.identity import vitrage_id_for
from vitrail.services.alarm_history import AlarmHistory
from vitrail.services.collector import Collector
from vitrail.services.drivers import build_drivers
from vitrail.services.graph_role import GraphRole
from vitrail.services.local_backend import LocalGraphBackend
from vitrail.services.persistor import Persistor
from vitrail.services.processors import processor_factory
from vitrail.services.templates import TemplateService
from vitrail.services.topics import publisher
from vitrail.storage import DeadLetterStore, EventLog, TemplateStore, create_engine, upgrade
from vitrail.storage.history import HistoryStore

TEMPLATE = """
metadata: {version: "3", name: app_on_failed_host, type: standard}
entities:
  host_alarm: {category: ALARM, type: doctor, name: compute.host.down}
  app_alarm: {category: ALARM, type: prometheus, name: AppDown}
  host: {category: RESOURCE, type: nova.host}
  instance: {category: RESOURCE, type: nova.instance}
scenarios:
  - condition: host_alarm [on] host AND host [contains] instance
    actions:
      - set_state: {target: instance, state: SUBOPTIMAL}
      - raise_alarm: {target: instance, alarm_name: Instance down, severity: CRITICAL, causing_alarm: host_alarm}
  - condition: host_alarm [on] host AND host [contains] instance AND app_alarm [on] instance
    actions:
      - add_causal_relationship: {source: host_alarm, target: app_alarm}
"""


def doctor(host: str, status: str, time: str) -> dict[str, Any]:
    return {
        "type": "compute.host.down",
        "time": time,
        "details": {"hostname": host, "source": "monitor", "severity": "critical", "status": status},
    }


def app_alert(instance_id: str) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "AppDown", "resource_id": instance_id, "resource_type": "nova.instance"},
                "annotations": {"summary": "the application on this instance does not answer"},
                "startsAt": "2026-11-22T01:00:30Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }


class Cluster:
    def __init__(self, tmp_path: Path) -> None:
        self.settings = Settings(
            data_dir=tmp_path,
            datasources=["simulator", "doctor", "prometheus"],
            simulator={"hosts": 2, "instances_per_host": 2, "seed": 5},
            graph={"leader_heartbeat": 0.2, "snapshot_interval": 0.3, "ack_poll_interval": 0.02},
            persistor={"batch_timeout": 0.01},
        )
        self.engine = create_engine(self.settings.database_url())
        self.bus = InProcessBus()
        self.drivers = build_drivers(self.settings)
        self.collector = Collector({"simulator": self.drivers["simulator"]}, self.bus, page_size=50)
        self.roles: list[GraphRole] = []

    async def start(self) -> None:
        await upgrade(self.engine)
        self.persistor = Persistor(
            self.bus, EventLog(self.engine), DeadLetterStore(self.engine), self.settings.persistor
        )
        await self.persistor.start()
        self.templates = TemplateService(TemplateStore(self.engine), publisher(self.bus))

    def role(self) -> GraphRole:
        role = GraphRole(
            self.settings,
            self.engine,
            self.bus,
            processor_factory(self.settings, self.drivers),
            self.collector,
            ["simulator"],
            ["simulator"],
            self.templates,
        )
        self.roles.append(role)
        return role

    def client(self) -> httpx.AsyncClient:
        def leader() -> Any:
            active = [r for r in self.roles if r.active.is_set()]
            return active[0].service if active else None

        backend = LocalGraphBackend(leader, ["api", "graph"], publish=publisher(self.bus))
        app = create_app(backend)
        app.state.templates = self.templates
        app.state.alarm_history = AlarmHistory(HistoryStore(self.engine))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        return httpx.AsyncClient(transport=transport, base_url="http://vitrail.test")

    async def settled(self) -> bool:
        role = next((r for r in self.roles if r.active.is_set()), None)
        if role is None or role.service is None or role.service.history_writer is None:
            return False
        service = role.service
        writer = service.history_writer
        assert writer is not None
        return (
            service.unacked == 0
            and service.stored_sequence == service.processor.sequence
            and writer.written >= service.processor.sequence
        )

    async def close(self) -> None:
        for role in self.roles:
            await role.stop()
        await self.persistor.stop()
        await self.bus.close()
        await self.engine.dispose()


@pytest.fixture
async def cluster(tmp_path: Path) -> Any:
    shared = Cluster(tmp_path)
    await shared.start()
    yield shared
    await shared.close()


async def _alarms(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    return (await api.get("/v1/alarm/", params={"all_tenants": "True"})).json()  # type: ignore[no-any-return]


async def _history(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await api.get("/v1/alarm/history/", params={"all_tenants": "True", **params})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_the_cause_of_an_application_alarm_outlives_the_host_alarm(cluster: Cluster) -> None:
    first = cluster.role()
    await first.start(wait_active=5)
    assert first.service is not None
    await asyncio.wait_for(first.service.ready.wait(), 10)
    api = cluster.client()
    await cluster.templates.add([("app.yaml", yaml.safe_load(TEMPLATE))], None, {})
    await _until(lambda: "app_on_failed_host" in first.service.processor.reactor.templates)  # type: ignore[union-attr]

    graph = first.service.processor.graph
    host = sorted(v.id for v in graph.vertices() if v.vitrage_type == "nova.host")[0]
    host_id = vitrage_id_for("RESOURCE", "nova.host", host)
    instances = sorted(e.target for e in graph.vertex(host_id).out_edges if e.label == "contains")
    app_instance = graph.vertex(instances[0]).id
    assert app_instance is not None

    # 1. The host fails: its two instances get "Instance down", caused by the host alarm.
    assert (await api.post("/v1/event/", json=doctor(host, "down", "2026-11-22T01:00:00"))).status_code == 200
    await _until(lambda: len([v for v in graph.vertices() if v.name == "Instance down"]) == 2)
    # 2. The application on one of them fails too; the template links it to the host alarm.
    assert (await api.post("/v1/webhooks/alertmanager", json=app_alert(app_instance))).status_code == 200
    await _until(lambda: any(e.label == "causes" for v in graph.vertices() if v.name == "AppDown" for e in v.in_edges))
    await _until(cluster.settled)
    alarms = {a["name"]: a for a in await _alarms(api)}
    host_alarm, app_alarm = alarms["compute.host.down"], alarms["AppDown"]

    # The leader dies here, without flushing; a standby takes over and finishes the story.
    second = cluster.role()
    await second.start(wait_active=0.3)
    await first._step_down(clean=False)
    await first.lock.release()
    await asyncio.wait_for(second.active.wait(), 10)
    assert second.service is not None
    graph = second.service.processor.graph

    # 3. The host is fixed: the host alarm and the deduced alarms end; the application alarm stays.
    assert (await api.post("/v1/event/", json=doctor(host, "up", "2026-11-22T01:10:00"))).status_code == 200
    await _until(lambda: not [v for v in graph.vertices() if v.name in ("Instance down", "compute.host.down")])
    await _until(cluster.settled)
    assert [a["name"] for a in await _alarms(api)] == ["AppDown"]

    # History: every occurrence once, with its end; the app alarm still open.
    history = await _history(api)
    names = sorted((h["name"], "end_timestamp" in h) for h in history)
    assert names == [("AppDown", False), ("Instance down", True), ("Instance down", True), ("compute.host.down", True)]
    ended_host = next(h for h in history if h["name"] == "compute.host.down")
    assert ended_host["state"] == "Inactive" and ended_host["vitrage_resource_id"] == host_id
    deduced = [h for h in history if h["name"] == "Instance down"]
    assert all(h["templates"] == ["app_on_failed_host"] for h in deduced)
    assert [h["name"] for h in await _history(api, active="True")] == ["AppDown"]
    assert [h["name"] for h in await _history(api, resource=host_id)] == ["compute.host.down"]
    assert {h["name"] for h in await _history(api, type="vitrage")} == {"Instance down"}

    # RCA history: the live app alarm still shows its (ended) cause, and so do the ended alarms.
    rca = (await api.get("/v1/rca/", params={"alarm_id": app_alarm["vitrage_id"], "all_tenants": "True"})).json()
    by_id = {n["vitrage_id"]: n for n in rca["nodes"]}
    assert rca["nodes"][rca["inspected_index"]]["vitrage_id"] == app_alarm["vitrage_id"]
    assert host_alarm["vitrage_id"] in by_id and by_id[host_alarm["vitrage_id"]]["state"] == "Inactive"
    (link,) = [link for link in rca["links"] if rca["nodes"][link["target"]]["vitrage_id"] == app_alarm["vitrage_id"]]
    assert rca["nodes"][link["source"]]["vitrage_id"] == host_alarm["vitrage_id"] and "end_timestamp" in link
    ended_rca = (await api.get("/v1/rca/", params={"alarm_id": host_alarm["vitrage_id"], "all_tenants": "True"})).json()
    assert sorted(n["name"] for n in ended_rca["nodes"]) == [
        "AppDown",
        "Instance down",
        "Instance down",
        "compute.host.down",
    ]
    assert len(ended_rca["links"]) == 3
    missing = await api.get("/v1/rca/", params={"alarm_id": "no-such-alarm"})
    assert missing.status_code == 404

    # One occurrence with its changes; the store holds no duplicate from the takeover.
    shown = (await api.get(f"/v1/alarm/history/{ended_host['history_id']}")).json()
    assert shown["changes"] == [] and shown["end_timestamp"] == ended_host["end_timestamp"]
    store = HistoryStore(cluster.engine)
    assert await store.open_alarms() == {app_alarm["vitrage_id"]}
    assert await store.open_causes() == set()
    await api.aclose()
