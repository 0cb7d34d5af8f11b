"""The simulator datasource: shape, determinism, faults, changes, and its transformer."""

from __future__ import annotations

import pytest

from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
from vitrail.datasources.state_tables import load_state_table
from vitrail.graph.events import Event, EventAction
from vitrail.graph.identity import vitrage_id_for
from vitrail.graph.processor import EventRejected, Processor

T0 = "2026-11-22 00:00:00.000000+00:00"
T1 = "2026-11-22 00:00:01.000000+00:00"


def build(shape: SimulatorShape) -> tuple[SimulatorDriver, Processor]:
    driver = SimulatorDriver(shape)
    processor = Processor({"simulator": driver.transformer()}, load_state_table())
    processor.process_many(driver.round_events(driver.get_all(), 1, T0))
    return driver, processor


def count_types(processor: Processor) -> dict[str, int]:
    counts: dict[str, int] = {}
    for vertex in processor.graph.vertices():
        counts[vertex.vitrage_type or ""] = counts.get(vertex.vitrage_type or "", 0) + 1
    return counts


def test_the_cloud_has_the_asked_shape() -> None:
    shape = SimulatorShape(hosts=6, instances_per_host=3, zones=2, switches=2, networks=2)
    _driver, processor = build(shape)
    assert count_types(processor) == {
        "openstack.cluster": 1,
        "nova.zone": 2,
        "switch": 2,
        "neutron.network": 2,
        "nova.host": 6,
        "nova.instance": 18,
        "neutron.port": 18,
    }
    assert processor.graph.num_vertices == shape.entity_count
    graph = processor.graph
    cluster = vitrage_id_for("RESOURCE", "openstack.cluster", "OpenStack Cluster")
    assert {v.vitrage_type for v in graph.neighbors(cluster)} == {"nova.zone"}
    host = vitrage_id_for("RESOURCE", "nova.host", "host-00004")
    assert [v.id for v in graph.neighbors(host, labels=["contains"]) if v.vitrage_type == "nova.zone"] == ["zone-0"]
    assert len([v for v in graph.neighbors(host) if v.vitrage_type == "nova.instance"]) == 3
    assert [v.id for v in graph.neighbors(host) if v.vitrage_type == "switch"] == ["switch-1"]
    assert not any(v.vitrage_is_placeholder for v in graph.vertices())
    instance = next(v for v in graph.vertices() if v.vitrage_type == "nova.instance")
    port = next(v for v in graph.neighbors(instance.vitrage_id) if v.vitrage_type == "neutron.port")
    assert graph.get_edge(port.vitrage_id, instance.vitrage_id, "attached") is not None
    assert instance.get("host_id", "").startswith("host-")
    assert instance.project_id in {f"project-{i}" for i in range(shape.projects)}


def test_same_seed_same_cloud_other_seed_other_ids() -> None:
    shape = SimulatorShape(hosts=4, instances_per_host=2, seed=11)
    _, one = build(shape)
    _, two = build(shape)
    assert one.graph_dump() == two.graph_dump()
    _, other = build(SimulatorShape(hosts=4, instances_per_host=2, seed=12))
    assert one.graph_dump() != other.graph_dump()


def test_failed_hosts_are_in_error() -> None:
    _, processor = build(SimulatorShape(hosts=10, instances_per_host=1, failed_hosts=3, seed=5))
    states = [v.vitrage_operational_state for v in processor.graph.vertices() if v.vitrage_type == "nova.host"]
    assert states.count("ERROR") == 3
    assert states.count("OK") == 7


def test_changes_are_deterministic_and_show_in_the_next_round() -> None:
    shape = SimulatorShape(hosts=5, instances_per_host=4, changes_per_poll=3, seed=2)
    a, pa = build(shape)
    b, _pb = build(shape)
    changes_a, changes_b = a.get_changes(), b.get_changes()
    assert [c.payload for c in changes_a] == [c.payload for c in changes_b]
    assert len(changes_a) == 3
    pa.process_many(a.change_events(changes_a, "c1", T1))
    for change in changes_a:
        vertex = pa.graph.vertex(vitrage_id_for("RESOURCE", "nova.instance", change.payload["id"]))
        assert vertex.state == change.payload["state"]
    # get_all reports the changed states too, so the next round does not undo them
    again = {e.payload["id"]: e.payload["state"] for e in a.get_all() if e.payload["kind"] == "instance"}
    assert all(again[c.payload["id"]] == c.payload["state"] for c in changes_a)


def test_no_changes_when_not_asked() -> None:
    assert SimulatorDriver(SimulatorShape(hosts=2)).get_changes() == ()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("hosts", -1, "hosts"), ("zones", 0, "zones"), ("failed_hosts", 5, "failed_hosts")],
)
def test_invalid_shapes_are_named(field: str, value: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulatorShape(**{"hosts": 2, field: value})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"kind": "router"}, "payload.kind"),
        ({"kind": "host", "id": "h"}, "payload.zone"),
        ({"kind": "instance"}, "payload.host"),
    ],
)
def test_bad_payloads_are_rejected_with_the_field(payload: dict[str, str], message: str) -> None:
    processor = Processor({"simulator": SimulatorDriver().transformer()}, load_state_table())
    with pytest.raises(EventRejected, match=message):
        processor.process(Event("bad", "simulator", EventAction.UPDATE, T0, payload))
    assert processor.sequence == 0
