"""The monitor datasource: target status events become a monitor.target entity and an unreachable alarm,
and the example template makes an unreachable VIM the cause of its hosts' alarms."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitrail.config import Settings
from vitrail.datasources import doctor
from vitrail.datasources.monitor import MonitorTransformer, status_event
from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
from vitrail.evaluator import templates
from vitrail.evaluator.engine import TEMPLATES_DATASOURCE
from vitrail.graph.events import Event, EventAction
from vitrail.graph.identity import vitrage_id_for
from vitrail.graph.processor import Processor
from vitrail.graph.updates import TransformError
from vitrail.services.processors import processor_factory

T0 = "2026-11-22 01:00:00.000000+00:00"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "templates" / "vim_unreachable.yaml"
TARGET = {"id": "t-1", "name": "keystone", "kind": "vim", "address": "http://127.0.0.1:5000/v3"}


def at(second: int) -> str:
    return f"2026-11-22 01:00:{second:02d}.000000+00:00"


def test_statuses_become_a_target_entity_and_an_unreachable_alarm() -> None:
    transformer = MonitorTransformer()
    down = transformer.transform(status_event({**TARGET, "detail": "timed out"}, "unreachable", 1, at(1)))
    resource, alarm = down
    assert (resource.vitrage_type, resource.id, resource.properties["state"]) == (
        "monitor.target",
        "t-1",
        "UNREACHABLE",
    )
    assert resource.neighbors == []
    assert (alarm.category, alarm.vitrage_type, alarm.properties["name"]) == ("ALARM", "monitor", "unreachable")
    assert alarm.neighbors and alarm.neighbors[0].id == "t-1" and alarm.neighbors[0].label == "on"
    up = transformer.transform(status_event({**TARGET, "entity_id": "abc"}, "reachable", 1, at(2)))
    assert up[0].properties["state"] == "REACHABLE" and up[1].delete
    assert up[0].neighbors and up[0].neighbors[0].vitrage_id == "abc" and up[0].neighbors[0].label == "monitors"
    gone = transformer.transform(status_event(TARGET, "unknown", 2, at(3), deleted=True))
    assert all(update.delete for update in gone)
    with pytest.raises(ValueError, match="status"):
        status_event(TARGET, "sideways", 1, at(4))
    bad = Event("x", "monitor", EventAction.UPDATE, at(5), {"target_id": "t-1", "name": "k", "status": "loud"})
    with pytest.raises(TransformError, match=r"payload\.status"):
        transformer.transform(bad)
    with pytest.raises(TransformError, match=r"payload\.target_id"):
        transformer.transform(Event("y", "monitor", EventAction.UPDATE, at(5), {"status": "reachable"}))


def _processor() -> Processor:
    settings = Settings(
        datasources=["simulator", "doctor", "monitor"], simulator={"hosts": 2, "instances_per_host": 1, "seed": 2}
    )
    processor = processor_factory(settings).fresh()
    driver = SimulatorDriver(SimulatorShape(hosts=2, instances_per_host=1, seed=2))
    processor.process_many(driver.round_events(driver.get_all(), 1, T0))
    document = templates.load(EXAMPLE.read_text(encoding="utf-8")).document
    payload = {"name": "vim_unreachable", "document": document, "params": {}}
    processor.process(Event("tpl", TEMPLATES_DATASOURCE, EventAction.UPDATE, T0, payload))
    return processor


def test_an_unreachable_vim_causes_its_hosts_alarms_until_it_answers_again() -> None:
    processor = _processor()
    graph = processor.graph
    cluster = next(v for v in graph.vertices() if v.vitrage_type == "openstack.cluster")
    host = sorted(v.name for v in graph.vertices() if v.vitrage_type == "nova.host")[0]
    body = {"type": "compute.host.down", "time": "2026-11-22T01:00:01", "details": {"hostname": host, "status": "down"}}
    processor.process_many(doctor.parse_event(body, at(1)))
    host_alarm = next(v for v in graph.vertices() if v.vitrage_type == "doctor")

    target = {**TARGET, "entity_id": cluster.vitrage_id}
    processor.process(status_event(target, "unreachable", 1, at(2)))
    unreachable = graph.vertex(vitrage_id_for("ALARM", "monitor", "t-1:unreachable"))
    target_vertex = graph.vertex(vitrage_id_for("RESOURCE", "monitor.target", "t-1"))
    assert target_vertex.state == "UNREACHABLE" and target_vertex.vitrage_operational_state == "ERROR"
    assert graph.get_edge(target_vertex.vitrage_id, cluster.vitrage_id, "monitors") is not None
    vim_alarm = next(v for v in graph.vertices() if v.name == "VIM unreachable")
    assert graph.get_edge(unreachable.vitrage_id, vim_alarm.vitrage_id, "causes") is not None
    assert graph.get_edge(unreachable.vitrage_id, host_alarm.vitrage_id, "causes") is not None

    processor.process(status_event(target, "reachable", 1, at(3)))
    assert graph.get_vertex(unreachable.vitrage_id) is None
    assert not [v for v in graph.vertices() if v.name == "VIM unreachable"]
    assert not [e for e in host_alarm.in_edges if e.label == "causes"]
    assert graph.vertex(target_vertex.vitrage_id).state == "REACHABLE"
    processor.process(status_event(target, "unknown", 2, at(4), deleted=True))
    assert graph.get_vertex(target_vertex.vitrage_id) is None


def test_a_target_of_an_entity_the_graph_does_not_have_stands_alone() -> None:
    processor = _processor()
    processor.process(status_event({**TARGET, "entity_id": "no-such-vertex"}, "unreachable", 1, at(2)))
    target_vertex = processor.graph.vertex(vitrage_id_for("RESOURCE", "monitor.target", "t-1"))
    assert [e.label for e in target_vertex.out_edges] == []  # no placeholder for an id alone
    assert [e.label for e in target_vertex.in_edges] == ["on"]  # its alarm
