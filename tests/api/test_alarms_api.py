"""Alarms in and out of the API: the event API, the Alertmanager receiver, alarm lists, counts and RCA."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.api.test_api import ADMIN, MEMBER, assert_error
from tests.evaluator.engine_fixtures import EntitySpec, host_down, register
from tests.upstream import FIXTURES
from vitrail.evaluator.engine import TEMPLATES_DATASOURCE
from vitrail.graph.events import Event, EventAction
from vitrail.graph.identity import vitrage_id_for
from vitrail.services.graph import GraphService

AM_UA = {"user-agent": "Alertmanager/0.25.0"}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def doctor_down(host: str, time: str = "2026-11-22T01:00:00") -> dict[str, Any]:
    return {
        "type": "compute.host.down",
        "time": time,
        "details": {"hostname": host, "source": "sample_monitor", "severity": "critical", "status": "down"},
    }


async def load_host_down_template(service: GraphService) -> None:
    """The evaluator's host-down scenario, keyed on the doctor alarm."""
    template = host_down("doctor_host_down", "WARNING")
    scenario = template.scenarios[0]
    entities = dict(scenario.entities)
    entities["host_alarm"] = EntitySpec(
        "host_alarm", (("name", "compute.host.down"), ("vitrage_category", "ALARM"), ("vitrage_type", "doctor"))
    )
    object.__setattr__(scenario, "entities", entities)
    register(template)
    event = Event(
        "tpl",
        TEMPLATES_DATASOURCE,
        EventAction.UPDATE,
        "2026-11-22 00:00:01.000000+00:00",
        {"name": template.name, "document": {"name": template.name}},
    )
    await service.apply([event])


async def test_a_doctor_event_raises_an_alarm_on_the_host(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/event/", json=doctor_down("host-00001"))
    assert response.status_code == 200 and response.json() is None
    alarms = (await client.get("/v1/alarm/", params={"vitrage_id": "all", "all_tenants": "True"}, headers=ADMIN)).json()
    (alarm,) = alarms
    assert alarm["name"] == "compute.host.down"
    assert alarm["vitrage_type"] == "doctor"
    assert alarm["vitrage_resource_type"] == "nova.host"
    assert alarm["vitrage_resource_id"] == vitrage_id_for("RESOURCE", "nova.host", "host-00001")
    assert alarm["vitrage_operational_severity"] == "CRITICAL"
    assert alarm["start_timestamp"].startswith("2026-11-22 01:00:00")
    shown = (await client.get(f"/v1/alarm/{alarm['vitrage_id']}")).json()
    assert shown["vitrage_id"] == alarm["vitrage_id"]
    counts = (await client.get("/v1/alarm/count/", params={"all_tenants": "False"})).json()
    assert counts == {"CRITICAL": 1, "SEVERE": 0, "WARNING": 0, "OK": 0, "N/A": 0}
    cleared = doctor_down("host-00001", "2026-11-22T01:05:00")
    cleared["details"]["status"] = "up"
    await client.post("/v1/event", json=cleared)
    assert (await client.get("/v1/alarm/")).json() == []


async def test_the_fixtures_go_through_both_entry_points(client: httpx.AsyncClient) -> None:
    assert (
        await client.post("/v1/event/", json=fixture("vitrage-events/vitrage-api-doc__compute.host.down.json"))
    ).status_code == 200
    body = fixture("alertmanager/am025__firing_single_HighInodeUsage.json")
    assert (await client.post("/v1/event/", json=body, headers=AM_UA)).status_code == 200
    group = fixture("alertmanager/am025__firing_group2_HighCpuOnVmAlert.json")
    response = await client.post("/v1/webhooks/alertmanager", json=group)
    assert response.json() == {"accepted": len(group["alerts"])}
    names = sorted(a["name"] for a in (await client.get("/v1/alarm/")).json())
    assert names == sorted(["compute.host.down", "HighInodeUsage"] + ["HighCpuOnVmAlert"] * len(group["alerts"]))
    resolved = fixture("alertmanager/am025__resolved_group2_HighCpuOnVmAlert.json")
    await client.post("/v1/webhooks/alertmanager", json=resolved)
    names = sorted(a["name"] for a in (await client.get("/v1/alarm/")).json())
    assert names == ["HighInodeUsage", "compute.host.down"]


async def test_bad_event_bodies_are_400_naming_the_field_and_change_nothing(client: httpx.AsyncClient) -> None:
    cases = [
        ({"type": "compute.host.down", "details": {"status": "down"}}, {}, "hostname"),
        ({"type": "compute.host.down", "details": {"hostname": "h", "status": "sideways"}}, {}, "status"),
        ({"alerts": "nope"}, AM_UA, "alerts"),
        ({"alerts": [{"status": "firing", "labels": {}}]}, AM_UA, "alertname"),
    ]
    for body, headers, field in cases:
        assert_error(await client.post("/v1/event/", json=body, headers=headers), 400, field)
    assert_error(await client.post("/v1/webhooks/alertmanager", json={"version": "4"}), 400, "alerts")
    assert_error(
        await client.post("/v1/event/", content=b"{oops", headers={"content-type": "application/json"}), 400, "JSON"
    )
    assert (await client.get("/v1/alarm/")).json() == []


async def test_deduced_alarms_and_rca(client: httpx.AsyncClient, service: GraphService) -> None:
    await load_host_down_template(service)
    await client.post("/v1/event/", json=doctor_down("host-00001"))
    alarms = (await client.get("/v1/alarm/")).json()
    deduced = [a for a in alarms if a["vitrage_type"] == "vitrage"]
    root = next(a for a in alarms if a["vitrage_type"] == "doctor")
    assert len(deduced) == 2 and {a["vitrage_resource_type"] for a in deduced} == {"nova.instance"}
    rca = (await client.get("/v1/rca/", params={"alarm_id": deduced[0]["vitrage_id"], "all_tenants": "False"})).json()
    assert {"nodes", "links", "inspected_index"} <= set(rca)
    names = [n["name"] for n in rca["nodes"]]
    assert rca["nodes"][rca["inspected_index"]]["vitrage_id"] == deduced[0]["vitrage_id"]
    assert "compute.host.down" in names
    (link,) = [link for link in rca["links"] if rca["nodes"][link["source"]]["vitrage_id"] == root["vitrage_id"]][:1]
    assert link["relationship_type"] == "causes"
    from_root = (await client.get(f"/v1/rca/{root['vitrage_id']}/")).json()
    assert len(from_root["nodes"]) == 3  # the host alarm causes both instance alarms
    assert_error(await client.get("/v1/rca/", params={"alarm_id": "nope"}), 404, "nope")


async def test_alarm_lists_sort_and_page(client: httpx.AsyncClient) -> None:
    for n, host in enumerate(("host-00000", "host-00001", "host-00002")):
        await client.post("/v1/event/", json=doctor_down(host, f"2026-11-22T01:0{n}:00"))
    everything = (await client.get("/v1/alarm/")).json()
    assert [a["start_timestamp"][:19] for a in everything] == [
        "2026-11-22 01:00:00",
        "2026-11-22 01:01:00",
        "2026-11-22 01:02:00",
    ]
    newest_first = (await client.get("/v1/alarm/", params={"sort_by": "start_timestamp", "sort_dirs": "desc"})).json()
    assert newest_first == list(reversed(everything))
    page1 = (await client.get("/v1/alarm/", params={"limit": 2})).json()
    page2 = (await client.get("/v1/alarm/", params={"limit": 2, "marker": page1[-1]["vitrage_id"]})).json()
    assert page1 + page2 == everything
    back = (
        await client.get("/v1/alarm/", params={"limit": 2, "marker": page2[0]["vitrage_id"], "next_page": "False"})
    ).json()
    assert back == page1
    on_host = (await client.get("/v1/alarm/", params={"vitrage_id": everything[0]["vitrage_resource_id"]})).json()
    assert on_host == [everything[0]]
    assert_error(await client.get("/v1/alarm/", params={"sort_dirs": "sideways"}), 422, "sort_dirs")
    assert_error(await client.get("/v1/alarm/", params={"marker": "nope"}), 422, "marker")
    assert_error(await client.get("/v1/alarm/", params={"limit": -1}), 422, "limit")
    assert_error(await client.get("/v1/alarm/nope"), 404, "nope")
    assert_error(await client.get("/v1/alarm/", params={"all_tenants": "True"}, headers=MEMBER), 403, "admin")


async def test_an_alert_on_nothing_known_is_kept_and_counted(client: httpx.AsyncClient) -> None:
    body = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Mystery", "job": "blackbox"},
                "startsAt": "2026-11-22T01:00:00Z",
            }
        ],
    }
    metrics = (await client.get("/metrics")).text
    before = _metric(metrics, "vitrail_alerts_unmapped_total")
    assert (await client.post("/v1/webhooks/alertmanager", json=body)).json() == {"accepted": 1}
    (alarm,) = (await client.get("/v1/alarm/")).json()
    assert alarm["name"] == "Mystery" and alarm["vitrage_resource_type"] == "prometheus.target"
    assert _metric((await client.get("/metrics")).text, "vitrail_alerts_unmapped_total") == before + 1
    details = (await client.get("/v1/status/", params={"detailed": "true"})).json()["details"]
    assert details["alarms_on_unknown_resources"] == 1


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0
