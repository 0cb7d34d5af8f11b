"""The Alertmanager (``prometheus``) datasource against real webhook bodies and a real processor.

Every file in ``../shared/fixtures/alertmanager`` is used as it is stored. A
fake nova datasource loads the resources those alerts talk about, with ids that
differ from their names, so each test can tell "linked to the real vertex"
from "linked to a placeholder".
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.upstream import FIXTURES as UPSTREAM
from vitrail.datasources.alertmanager import (
    RESOURCE_RULES,
    AlertmanagerDriver,
    AlertmanagerTransformer,
    PayloadError,
    ResourceRule,
    alertmanager_fingerprint,
    host_of_address,
    parse_webhook,
    resolve_resource,
)
from vitrail.datasources.state_tables import load_state_table
from vitrail.graph.events import Event, EventAction
from vitrail.graph.identity import vitrage_id_for
from vitrail.graph.model import Vertex
from vitrail.graph.processor import EventRejected, Processor
from vitrail.graph.properties import Direction
from vitrail.graph.updates import EntityUpdate, NeighborRef

FIXTURES = UPSTREAM / "alertmanager"
FILES = sorted(FIXTURES.glob("*.json"))
RECEIVED = "2026-11-22T00:30:00Z"
RECEIVED_NORMALIZED = "2026-11-22 00:30:00.000000+00:00"
T_LOAD = "2026-11-22 00:00:00.000000+00:00"

FIRING_GROUP2 = "am025__firing_group2_HighCpuOnVmAlert.json"
FIRING_AVG_CPU = "am025__firing_single_AvgCPUTimeOnIdleMode.json"
FIRING_INODE = "am025__firing_single_HighInodeUsage.json"
FIRING_TRUNCATED = "am025__firing_truncated_max_alerts1_HighTrafficOnBridge.json"
RESOLVED_GROUP2 = "am025__resolved_group2_HighCpuOnVmAlert.json"
RESOLVED_ALL6 = "am025__resolved_group_all6_empty_groupLabels.json"
RESOLVED_INODE = "am025__resolved_single_HighInodeUsage.json"
VITRAGE_DOC = "vitrage-doc__firing_HighCpuOnVmAlert.json"
DETAILS_ONLY = "vitrage-testdata__alerts_only_details.json"

#: Fingerprints Alertmanager 0.25 gave the fixture alerts.
FP_CPU_VM4 = "627f0637e070b19e"
FP_CPU_VM5 = "63154ea0bb6499b5"
FP_BRIDGE_VM4 = "ca6d34547a98ef28"
FP_BRIDGE_VM5 = "53b20ad8ae1518ce"
FP_INODE = "9bb3d66a8aeae67f"
FP_AVG_CPU = "1a1b56a30bbfad3b"

#: host id -> name, as a nova datasource would report them (the exporter host is known by its address).
HOSTS = {"c0-uuid": "compute-0-0", "devstack-uuid": "my-devstack", "exporter-uuid": "135.248.18.109"}
#: instance id -> (libvirt name, host id).
INSTANCES = {"vm4-uuid": ("instance-00000004", "exporter-uuid"), "vm5-uuid": ("instance-00000005", "exporter-uuid")}


# -- helpers ---------------------------------------------------------------------------------


def load(name: str) -> Any:
    """A fixture, decoded, exactly as stored."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


class FakeNovaTransformer:
    """``{"kind": "host"|"instance", ...}`` → nova.host / nova.instance, as a nova datasource would."""

    def transform(self, event: Event) -> list[EntityUpdate]:
        p = event.payload
        if p["kind"] == "host":
            return [EntityUpdate("RESOURCE", "nova.host", p["id"], {"name": p["name"], "state": "available"}, [])]
        properties = {"name": p["instance_name"], "instance_name": p["instance_name"], "state": "ACTIVE"}
        host = NeighborRef("RESOURCE", "nova.host", p["host"], "contains", outgoing=False)
        return [EntityUpdate("RESOURCE", "nova.instance", p["id"], properties, [host])]


def nova_event(payload: dict[str, Any]) -> Event:
    return Event(f"fakenova/{payload['id']}", "fakenova", EventAction.UPDATE, T_LOAD, payload)


def make_processor(with_resources: bool = True) -> Processor:
    proc = Processor({"fakenova": FakeNovaTransformer(), "prometheus": AlertmanagerTransformer()}, load_state_table())
    if with_resources:
        for host_id, name in HOSTS.items():
            proc.process(nova_event({"kind": "host", "id": host_id, "name": name}))
        for vm_id, (libvirt, host) in INSTANCES.items():
            proc.process(nova_event({"kind": "instance", "id": vm_id, "instance_name": libvirt, "host": host}))
    return proc


def post(proc: Processor, body: Any, received: str = RECEIVED) -> list[Event | None]:
    """What the API does with a webhook body: parse it, then process every event."""
    return [proc.process(event) for event in parse_webhook(body, received)]


def alarm(proc: Processor, alarm_id: str) -> Vertex | None:
    return proc.graph.get_vertex(vitrage_id_for("ALARM", "prometheus", alarm_id))


def resource_of(proc: Processor, alarm_vertex: Vertex) -> Vertex:
    """The one vertex the alarm is ``on``; the edge must go alarm → resource."""
    targets = proc.graph.neighbors(alarm_vertex.vitrage_id, direction=Direction.OUT, labels=["on"])
    assert len(targets) == 1, targets
    assert not proc.graph.neighbors(alarm_vertex.vitrage_id, direction=Direction.IN)
    return targets[0]


def alarm_ids(proc: Processor) -> set[str]:
    return {v.id or "" for v in proc.graph.vertices() if v.vitrage_category == "ALARM"}


def placeholders(proc: Processor) -> list[Vertex]:
    return [v for v in proc.graph.vertices() if v.vitrage_is_placeholder]


def alerts_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body.get("alerts", body.get("details", {}).get("alerts"))


# -- every fixture -----------------------------------------------------------------------------


def test_every_fixture_is_used() -> None:
    assert len(FILES) == 9
    assert {f.name for f in FILES} == {
        FIRING_GROUP2,
        FIRING_AVG_CPU,
        FIRING_INODE,
        FIRING_TRUNCATED,
        RESOLVED_GROUP2,
        RESOLVED_ALL6,
        RESOLVED_INODE,
        VITRAGE_DOC,
        DETAILS_ONLY,
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_fixture_becomes_one_event_per_alert(path: Path) -> None:
    body = json.loads(path.read_text(encoding="utf-8"))
    events = parse_webhook(body, RECEIVED)
    alerts = alerts_of(body)
    assert len(events) == len(alerts)
    for event, raw in zip(events, alerts, strict=True):
        assert event.datasource == "prometheus"
        assert event.received_at == RECEIVED_NORMALIZED
        firing = raw["status"] == "firing"
        assert event.action is (EventAction.UPDATE if firing else EventAction.DELETE)
        expected_id = raw.get("fingerprint") or alertmanager_fingerprint(raw["labels"])
        assert event.payload["alarm_id"] == expected_id
        # The event survives the bus and the event log unchanged (plain JSON).
        again = Event.from_record(orjson.loads(orjson.dumps(event.to_record())))
        assert again.payload == event.payload


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_fixture_applies_to_a_real_processor(path: Path) -> None:
    """Fired alone on the loaded cloud: every firing alert is an alarm on a resource; nothing is rejected."""
    body = json.loads(path.read_text(encoding="utf-8"))
    proc = make_processor()
    results = post(proc, body)
    assert all(result is not None for result in results)
    for raw in alerts_of(body):
        identity = raw.get("fingerprint") or alertmanager_fingerprint(raw["labels"])
        vertex = alarm(proc, identity)
        if raw["status"] == "resolved":
            assert vertex is None  # nothing was firing, nothing to clear
            continue
        assert vertex is not None
        assert vertex.name == raw["labels"]["alertname"]
        assert vertex.get("severity") == raw["labels"]["severity"]
        assert vertex.get("vitrage_aggregated_severity") == raw["labels"]["severity"].upper()
        assert vertex.get("vitrage_operational_severity") == raw["labels"]["severity"].upper()
        assert vertex.state == "Active"
        assert vertex.vitrage_datasource_name == "prometheus"
        assert vertex.get("labels") == raw["labels"]
        target = resource_of(proc, vertex)
        assert target.vitrage_category == "RESOURCE"
        assert not target.vitrage_is_placeholder  # every fixture alert names a known host or instance


def test_alertmanager_fingerprint_is_alertmanagers_own() -> None:
    """Computed from the labels, it equals what Alertmanager sent, for every fixture alert that has one."""
    seen = 0
    for path in FILES:
        for raw in alerts_of(json.loads(path.read_text(encoding="utf-8"))):
            if "fingerprint" in raw:
                assert alertmanager_fingerprint(raw["labels"]) == raw["fingerprint"], (path.name, raw["labels"])
                seen += 1
    assert seen == 15
    assert alertmanager_fingerprint({}) == "cbf29ce484222325"  # FNV-1a offset basis: Prometheus' empty signature


# -- what the alarms look like and what they are on ----------------------------------------------


def test_firing_group_raises_one_alarm_per_alert_on_its_instance() -> None:
    proc = make_processor()
    post(proc, load(FIRING_GROUP2))
    assert alarm_ids(proc) == {FP_CPU_VM4, FP_CPU_VM5}
    vm4 = alarm(proc, FP_CPU_VM4)
    assert vm4 is not None
    props = vm4.properties()
    assert props["name"] == "HighCpuOnVmAlert"
    assert props["severity"] == "critical"
    assert props["vitrage_aggregated_severity"] == "CRITICAL"
    assert props["vitrage_operational_severity"] == "CRITICAL"
    assert props["vitrage_type"] == "prometheus"
    assert props["status"] == "firing"
    assert props["fingerprint"] == FP_CPU_VM4
    assert props["summary"] == "High cpu usage on vm"  # the fixtures use 'title'
    assert props["description"] == "Test alert to test libvirt exporter.\n"
    assert props["generator_url"].startswith("http://devstack-rocky-release-4:9090/graph?")
    assert props["external_url"] == "http://devstack-rocky-release-4:9093"
    assert props["receiver"] == "vitrage"
    assert props["start_timestamp"] == "2019-01-08 11:57:50.914462+00:00"  # nanoseconds cut to microseconds
    assert props["vitrage_sample_timestamp"] == "2019-01-08 11:57:50.914462+00:00"
    assert props["update_timestamp"] == "2019-01-08 11:57:50.914462+00:00"
    assert resource_of(proc, vm4).id == "vm4-uuid"  # by libvirt domain, not the placeholder 'instance-00000004'
    vm5 = alarm(proc, FP_CPU_VM5)
    assert vm5 is not None
    assert resource_of(proc, vm5).id == "vm5-uuid"
    assert not placeholders(proc)


def test_host_alert_is_on_the_host_named_by_the_exporter_address() -> None:
    proc = make_processor()
    post(proc, load(FIRING_AVG_CPU))
    vertex = alarm(proc, FP_AVG_CPU)
    assert vertex is not None
    assert vertex.get("severity") == "warning"
    assert vertex.get("vitrage_operational_severity") == "WARNING"
    host = resource_of(proc, vertex)
    assert (host.vitrage_type, host.id, host.name) == ("nova.host", "exporter-uuid", "135.248.18.109")


def test_an_unknown_host_becomes_a_placeholder_with_the_address_as_id() -> None:
    proc = make_processor(with_resources=False)
    post(proc, load(FIRING_INODE))
    vertex = alarm(proc, FP_INODE)
    assert vertex is not None
    host = resource_of(proc, vertex)
    assert (host.vitrage_type, host.id, host.vitrage_is_placeholder) == ("nova.host", "135.248.18.109", True)
    assert host.name is None  # Vitrage's placeholders have no name either; see the next test for why
    # A second alert on the same address reaches that placeholder by its id: one host, two alarms.
    post(proc, load(FIRING_AVG_CPU))
    other = alarm(proc, FP_AVG_CPU)
    assert other is not None
    assert resource_of(proc, other).vitrage_id == host.vitrage_id
    # Clearing both removes the placeholder with them.
    post(proc, load(RESOLVED_ALL6))
    assert proc.graph.num_vertices == 0


def test_alerts_after_the_real_host_appears_go_to_the_real_host() -> None:
    """The placeholder does not carry the matched name, so it never competes with the real host."""
    proc = make_processor(with_resources=False)
    post(proc, load(FIRING_INODE))
    proc.process(nova_event({"kind": "host", "id": "exporter-uuid", "name": "135.248.18.109"}))
    post(proc, load(FIRING_AVG_CPU))
    later = alarm(proc, FP_AVG_CPU)
    assert later is not None
    assert resource_of(proc, later).id == "exporter-uuid"
    # The earlier alarm stays where it was linked (the graph does not re-link), until it clears.
    earlier = alarm(proc, FP_INODE)
    assert earlier is not None
    assert resource_of(proc, earlier).vitrage_is_placeholder


def test_an_unknown_instance_becomes_a_placeholder_with_its_libvirt_name_as_id() -> None:
    proc = make_processor(with_resources=False)
    post(proc, load(FIRING_TRUNCATED))
    vertex = alarm(proc, FP_BRIDGE_VM4)
    assert vertex is not None
    target = resource_of(proc, vertex)
    assert (target.vitrage_type, target.id, target.vitrage_is_placeholder) == (
        "nova.instance",
        "instance-00000004",
        True,
    )
    assert target.get("instance_name") is None


def test_vitrage_doc_sample_without_fingerprint_maps_by_domain_first() -> None:
    """The doc sample's ``instance`` is 1.1.1.1:9999 (unknown); ``domain`` wins and finds the instance."""
    body = load(VITRAGE_DOC)
    proc = make_processor()
    post(proc, body)
    identity = alertmanager_fingerprint(body["alerts"][0]["labels"])
    vertex = alarm(proc, identity)
    assert vertex is not None
    assert vertex.get("fingerprint") == identity
    assert vertex.get("start_timestamp") == "2019-01-16 12:11:50.914462+00:00"
    assert resource_of(proc, vertex).id == "vm4-uuid"
    assert "receiver" in vertex.properties()


def test_details_nested_body_is_accepted_and_gets_the_same_identities() -> None:
    """Vitrage's {"details": {"alerts": [...]}}: 5 of 6 alerts lack a fingerprint, yet match the am025 ones."""
    proc = make_processor()
    post(proc, load(DETAILS_ONLY))
    assert alarm_ids(proc) == {FP_CPU_VM4, FP_CPU_VM5, FP_BRIDGE_VM4, FP_BRIDGE_VM5, FP_INODE, FP_AVG_CPU}
    targets = {
        alarm_id: resource_of(proc, vertex).id
        for alarm_id in alarm_ids(proc)
        if (vertex := alarm(proc, alarm_id)) is not None
    }
    assert targets == {
        FP_CPU_VM4: "vm4-uuid",
        FP_CPU_VM5: "vm5-uuid",
        FP_BRIDGE_VM4: "vm4-uuid",
        FP_BRIDGE_VM5: "vm5-uuid",
        FP_INODE: "exporter-uuid",
        FP_AVG_CPU: "exporter-uuid",
    }
    # ...so the am025 resolution of all six clears them.
    post(proc, load(RESOLVED_ALL6))
    assert alarm_ids(proc) == set()


def test_missing_severity_defaults_to_warning() -> None:
    body = load(FIRING_AVG_CPU)
    del body["alerts"][0]["labels"]["severity"]
    del body["alerts"][0]["fingerprint"]
    proc = make_processor()
    post(proc, body)
    (vertex,) = [v for v in proc.graph.vertices() if v.vitrage_category == "ALARM"]
    assert vertex.get("severity") == "warning"
    assert vertex.get("vitrage_operational_severity") == "WARNING"


# -- raise and clear -----------------------------------------------------------------------------


def test_resolved_alerts_remove_their_alarms_and_only_them() -> None:
    proc = make_processor()
    for name in (FIRING_GROUP2, FIRING_INODE, FIRING_AVG_CPU, FIRING_TRUNCATED):
        post(proc, load(name))
    assert alarm_ids(proc) == {FP_CPU_VM4, FP_CPU_VM5, FP_INODE, FP_AVG_CPU, FP_BRIDGE_VM4}
    before = proc.graph.num_vertices
    post(proc, load(RESOLVED_GROUP2))
    assert alarm_ids(proc) == {FP_INODE, FP_AVG_CPU, FP_BRIDGE_VM4}
    assert proc.graph.num_vertices == before - 2
    post(proc, load(RESOLVED_INODE))
    assert alarm_ids(proc) == {FP_AVG_CPU, FP_BRIDGE_VM4}
    post(proc, load(RESOLVED_ALL6))
    assert alarm_ids(proc) == set()
    assert {v.id for v in proc.graph.vertices()} == set(HOSTS) | set(INSTANCES)  # resources stay


def test_resolved_event_uses_ends_at() -> None:
    (event, _) = parse_webhook(load(RESOLVED_GROUP2), RECEIVED)
    assert event.sample_time == "2026-11-22 00:18:42.480362+00:00"
    assert event.payload["ends_at"] == "2026-11-22 00:18:42.480362+00:00"


@pytest.mark.parametrize("ends_at", [None, "0001-01-01T00:00:00Z"], ids=["absent", "go-zero-time"])
def test_resolved_without_end_time_uses_received_at(ends_at: str | None) -> None:
    body = load(RESOLVED_INODE)
    if ends_at is None:
        del body["alerts"][0]["endsAt"]
    else:
        body["alerts"][0]["endsAt"] = ends_at
    (event,) = parse_webhook(body, RECEIVED)
    assert event.action is EventAction.DELETE
    assert event.sample_time == RECEIVED_NORMALIZED
    assert "ends_at" not in event.payload


def test_firing_alert_ignores_its_go_zero_end_time() -> None:
    (event,) = parse_webhook(load(FIRING_INODE), RECEIVED)
    assert event.sample_time == "2019-01-08 11:57:07.589431+00:00"
    assert "ends_at" not in event.payload


def test_a_firing_group_holding_resolved_alerts_does_both() -> None:
    """Each alert's own status decides, whatever the group's status says."""
    proc = make_processor()
    post(proc, load(FIRING_GROUP2))
    post(proc, load(FIRING_INODE))
    mixed = load(FIRING_GROUP2)  # status "firing"
    mixed["alerts"][1] = load(RESOLVED_GROUP2)["alerts"][1]  # vm5's alert, resolved
    mixed["alerts"].append(load(FIRING_AVG_CPU)["alerts"][0])  # and a new firing one
    mixed["alerts"].append(load(RESOLVED_INODE)["alerts"][0])
    assert mixed["status"] == "firing"
    results = post(proc, mixed)
    assert results[0] is None  # vm4's firing alert: a redelivery
    assert all(result is not None for result in results[1:])
    assert alarm_ids(proc) == {FP_CPU_VM4, FP_AVG_CPU}


def test_truncated_alerts_do_not_matter() -> None:
    body = load(FIRING_TRUNCATED)
    assert body["truncatedAlerts"] == 1
    proc = make_processor()
    assert all(post(proc, body))
    assert alarm_ids(proc) == {FP_BRIDGE_VM4}
    vertex = alarm(proc, FP_BRIDGE_VM4)
    assert vertex is not None
    assert resource_of(proc, vertex).id == "vm4-uuid"


def test_empty_group_labels_do_not_matter() -> None:
    body = load(RESOLVED_ALL6)
    assert body["groupLabels"] == {} and body["commonLabels"] == {}
    assert len(parse_webhook(body, RECEIVED)) == 6


def test_redelivered_webhook_is_a_duplicate() -> None:
    proc = make_processor()
    assert all(post(proc, load(FIRING_GROUP2)))
    dump = proc.graph_dump()
    # Same body again, later (Alertmanager's repeat_interval, the HA peer, a retried POST).
    assert post(proc, load(FIRING_GROUP2), received="2026-11-22T04:30:00Z") == [None, None]
    assert proc.graph_dump() == dump
    assert all(post(proc, load(RESOLVED_GROUP2)))
    assert post(proc, load(RESOLVED_GROUP2), received="2026-11-22T04:30:00Z") == [None, None]
    assert alarm_ids(proc) == set()


def test_refiring_after_resolution_is_a_new_alarm() -> None:
    proc = make_processor()
    post(proc, load(FIRING_INODE))
    post(proc, load(RESOLVED_INODE))
    assert alarm(proc, FP_INODE) is None
    again = load(FIRING_INODE)
    again["alerts"][0]["startsAt"] = "2026-11-22T00:25:07.123456789Z"
    (result,) = post(proc, again)
    assert result is not None
    vertex = alarm(proc, FP_INODE)
    assert vertex is not None
    assert vertex.get("start_timestamp") == "2026-11-22 00:25:07.123456+00:00"


def test_one_host_many_alerts_one_edge_each() -> None:
    proc = make_processor()
    post(proc, load(DETAILS_ONLY))
    host = proc.graph.get_vertex(vitrage_id_for("RESOURCE", "nova.host", "exporter-uuid"))
    assert host is not None
    on_host = proc.graph.neighbors(host.vitrage_id, direction=Direction.IN, labels=["on"])
    assert sorted(v.name or "" for v in on_host) == ["AvgCPUTimeOnIdleMode", "HighInodeUsage"]


# -- resource rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("135.248.18.109:9100", "135.248.18.109"),
        ("compute-0-0:9100", "compute-0-0"),
        ("compute-0-0", "compute-0-0"),
        ("[::1]:9100", "::1"),
        ("[fe80::1]", "fe80::1"),
        ("fe80::1", "fe80::1"),
        ("https://example.com/health", None),
        ("example.com:https", None),
        (":9100", None),
        ("[::1", None),
        ("[::1]x", None),
        ("not:an:ip", None),
        ("", None),
    ],
)
def test_host_of_address(address: str, host: str | None) -> None:
    assert host_of_address(address) == host


def _resource(labels: dict[str, str]) -> dict[str, Any]:
    return resolve_resource({"alertname": "A", **labels}, "fp", RESOURCE_RULES)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (
            {"resource_type": "switch", "resource_id": "sw-1", "domain": "instance-00000004"},
            {"rule": "explicit", "type": "switch", "id": "sw-1", "match": None},
        ),
        (
            {"domain": "instance-00000004", "instance": "10.0.0.5:9177", "hostname": "compute-0-0"},
            {
                "rule": "domain",
                "type": "nova.instance",
                "id": "instance-00000004",
                "match": ["instance_name", "instance-00000004"],
            },
        ),
        (
            {"instance": "10.0.0.5:9100", "hostname": "compute-0-0"},
            {"rule": "hostname", "type": "nova.host", "id": "compute-0-0", "match": ["name", "compute-0-0"]},
        ),
        (
            {"instance": "10.0.0.5:9100", "node": "compute-0-1"},
            {"rule": "node", "type": "nova.host", "id": "compute-0-1", "match": ["name", "compute-0-1"]},
        ),
        (
            {"instance": "[2001:db8::5]:9100", "job": "node"},
            {"rule": "instance", "type": "nova.host", "id": "2001:db8::5", "match": ["name", "2001:db8::5"]},
        ),
        (
            {"resource_id": "sw-1", "instance": "compute-0-0:9100"},  # no resource_type: the rule does not apply
            {"rule": "instance", "type": "nova.host", "id": "compute-0-0", "match": ["name", "compute-0-0"]},
        ),
        (
            {"instance": "https://example.com/health", "job": "blackbox"},
            {"rule": "fallback", "type": "prometheus.target", "id": "https://example.com/health", "match": None},
        ),
        ({"job": "pushgateway"}, {"rule": "fallback", "type": "prometheus.target", "id": "pushgateway", "match": None}),
        ({"severity": "none"}, {"rule": "fallback", "type": "prometheus.target", "id": "fp", "match": None}),
    ],
    ids=[
        "explicit",
        "domain",
        "hostname-beats-instance",
        "node",
        "instance-ipv6",
        "half-explicit",
        "url",
        "job",
        "alert",
    ],
)
def test_resource_rules_in_order(labels: dict[str, str], expected: dict[str, Any]) -> None:
    assert _resource(labels) == expected


def test_alert_with_an_exporter_named_host_finds_the_host() -> None:
    body = load(FIRING_AVG_CPU)
    body["alerts"][0]["labels"]["instance"] = "compute-0-0:9100"
    del body["alerts"][0]["fingerprint"]
    proc = make_processor()
    post(proc, body)
    (vertex,) = [v for v in proc.graph.vertices() if v.vitrage_category == "ALARM"]
    assert resource_of(proc, vertex).id == "c0-uuid"


def test_alert_mapped_to_nothing_known_is_on_a_placeholder_target() -> None:
    """A Watchdog-style alert (no instance, no host, no job) is kept, on a placeholder of its own."""
    body = load(FIRING_AVG_CPU)
    body["alerts"][0]["labels"] = {"alertname": "Watchdog", "severity": "none"}
    del body["alerts"][0]["fingerprint"]
    proc = make_processor()
    post(proc, body)
    identity = alertmanager_fingerprint({"alertname": "Watchdog", "severity": "none"})
    vertex = alarm(proc, identity)
    assert vertex is not None
    assert vertex.get("vitrage_operational_severity") == "OK"
    target = resource_of(proc, vertex)
    assert (target.vitrage_type, target.id, target.vitrage_is_placeholder) == ("prometheus.target", identity, True)


def test_explicit_resource_labels_link_by_id() -> None:
    body = load(FIRING_AVG_CPU)
    body["alerts"][0]["labels"].update(resource_type="nova.host", resource_id="devstack-uuid")
    del body["alerts"][0]["fingerprint"]
    proc = make_processor()
    post(proc, body)
    (vertex,) = [v for v in proc.graph.vertices() if v.vitrage_category == "ALARM"]
    assert resource_of(proc, vertex).name == "my-devstack"


def test_custom_rules_are_applied_by_the_parser() -> None:
    """Rules are configuration: they act at parse time and the payload records the outcome."""
    rules = (ResourceRule("rack", "rack", vitrage_type="switch", match_property=None),)
    body = load(FIRING_AVG_CPU)
    body["alerts"][0]["labels"]["rack"] = "r12"
    (event,) = AlertmanagerDriver(rules).parse(body, RECEIVED)
    assert event.payload["resource"] == {"rule": "rack", "type": "switch", "id": "r12", "match": None}


def test_push_driver_has_nothing_to_poll() -> None:
    driver = AlertmanagerDriver()
    assert driver.name == "prometheus"
    assert driver.get_all() == ()
    assert driver.get_changes() == ()
    assert driver.has_changes is False
    assert isinstance(driver.transformer(), AlertmanagerTransformer)


# -- errors --------------------------------------------------------------------------------------


def _without(body: dict[str, Any], *path: str | int) -> dict[str, Any]:
    body = copy.deepcopy(body)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return body


def _with(body: dict[str, Any], value: Any, *path: str | int) -> dict[str, Any]:
    body = copy.deepcopy(body)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


GROUP = load(FIRING_GROUP2)
DETAILS = load(DETAILS_ONLY)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([GROUP], "body"),
        ("alerts", "body"),
        (None, "body"),
        (_without(GROUP, "alerts"), "alerts"),
        (_with(GROUP, {"0": {}}, "alerts"), "alerts"),
        (_with(GROUP, None, "alerts"), "alerts"),
        (_with(GROUP, "firing", "alerts", 1), "alerts[1]"),
        (_without(GROUP, "alerts", 1, "labels"), "alerts[1].labels"),
        (_with(GROUP, ["alertname"], "alerts", 1, "labels"), "alerts[1].labels"),
        (_without(GROUP, "alerts", 1, "labels", "alertname"), "alerts[1].labels.alertname"),
        (_with(GROUP, "", "alerts", 1, "labels", "alertname"), "alerts[1].labels.alertname"),
        (_with(GROUP, 9177, "alerts", 0, "labels", "instance"), "alerts[0].labels.instance"),
        (_with(GROUP, 1, "alerts", 0, "annotations", "title"), "alerts[0].annotations.title"),
        (_with(GROUP, "pending", "alerts", 1, "status"), "alerts[1].status"),
        (_without(GROUP, "alerts", 0, "status"), "alerts[0].status"),
        (_with(GROUP, "Firing", "alerts", 0, "status"), "alerts[0].status"),
        (_with(GROUP, "yesterday", "alerts", 1, "startsAt"), "alerts[1].startsAt"),
        (_with(GROUP, 1546948670, "alerts", 1, "startsAt"), "alerts[1].startsAt"),
        (_with(GROUP, "0001-01-01T00:00:00+01:00", "alerts", 1, "startsAt"), "alerts[1].startsAt"),
        (_with(GROUP, "2019-13-08T11:57:50Z", "alerts", 0, "endsAt"), "alerts[0].endsAt"),
        (_with(GROUP, 42, "alerts", 0, "fingerprint"), "alerts[0].fingerprint"),
        (_with(GROUP, ["x"], "alerts", 0, "generatorURL"), "alerts[0].generatorURL"),
        (_with(GROUP, 3, "externalURL"), "externalURL"),
        ({"details": "alerts"}, "details"),
        ({"details": {}}, "details.alerts"),
        (_without(DETAILS, "details", "alerts", 3, "labels", "alertname"), "details.alerts[3].labels.alertname"),
        (_with(DETAILS, "active", "details", "alerts", 5, "status"), "details.alerts[5].status"),
    ],
)
def test_errors_name_the_field_and_accept_nothing(body: Any, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_webhook(body, RECEIVED)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert isinstance(caught.value, ValueError)


def test_first_wrong_field_is_named() -> None:
    body = _with(GROUP, "pending", "alerts", 1, "status")
    body = _without(body, "alerts", 0, "labels", "alertname")
    with pytest.raises(PayloadError) as caught:
        parse_webhook(body, RECEIVED)
    assert caught.value.field == "alerts[0].labels.alertname"


def test_empty_alert_list_is_accepted() -> None:
    assert parse_webhook(_with(GROUP, [], "alerts"), RECEIVED) == []


def test_transformer_rejects_an_unusable_logged_payload() -> None:
    proc = make_processor()
    (event,) = parse_webhook(load(FIRING_INODE), RECEIVED)
    event.payload["resource"] = {"type": "nova.host"}  # no id
    with pytest.raises(EventRejected, match=r"payload\.resource\.id"):
        proc.process(event)
    del event.payload["alarm_id"]
    with pytest.raises(EventRejected, match=r"payload\.alarm_id"):
        proc.process(event)
