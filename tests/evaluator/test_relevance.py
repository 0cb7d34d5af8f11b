"""The evaluator looks again at a changed vertex only when a template could care about that change.

A property change matters to a vertex when an entity spec that could stand for it (same
category and type, or unspecified) names the property. The equivalence test folds the same
stream with that filter and with the former, global one (any property some template names, on
any vertex) and requires byte-identical states.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.time_travel_scenario import HOST_DOWN
from vitrail.config import Settings
from vitrail.datasources import doctor
from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
from vitrail.evaluator import templates
from vitrail.evaluator.engine import DEDUCED_TYPE, TEMPLATES_DATASOURCE, Evaluator
from vitrail.graph.events import Event, EventAction
from vitrail.graph.processor import Processor
from vitrail.services.processors import processor_factory

SHAPE = {"hosts": 6, "instances_per_host": 3, "changes_per_poll": 6, "failed_hosts": 1, "seed": 11}
ANY_RESOURCE_IN_ERROR = """
metadata: {version: 3, name: any_resource_in_error, type: standard}
entities:
  broken: {category: RESOURCE, state: ERROR}
scenarios:
  - condition: broken
    actions:
      - raise_alarm: {target: broken, alarm_name: Resource in error, severity: WARNING}
"""


def _time(n: int) -> str:
    return f"2026-11-22 02:{n // 60:02d}:{n % 60:02d}.000000+00:00"


def _template(name: str, text: str) -> Event:
    document = templates.load(text).document
    payload = {"name": name, "document": document}
    return Event(f"template/{name}", TEMPLATES_DATASOURCE, EventAction.UPDATE, _time(0), payload)


def _stream(polls: int, any_resource: bool = True) -> list[Event]:
    driver = SimulatorDriver(SimulatorShape(**SHAPE))
    events = [_template("host_down", HOST_DOWN.read_text(encoding="utf-8"))]
    if any_resource:
        events.append(_template("any_resource_in_error", ANY_RESOURCE_IN_ERROR))
    events += driver.round_events(driver.get_all(), 1, _time(1))
    for poll in range(polls):
        events += driver.change_events(driver.get_changes(), f"c{poll}", _time(2 + poll))
        host = f"host-{poll % SHAPE['hosts']:05d}"
        status = "down" if poll % 3 != 2 else "up"
        body = {"type": "compute.host.down", "time": _time(2 + poll), "details": {"hostname": host, "status": status}}
        events += doctor.parse_event(body, _time(2 + poll))
    return events


def _fold(events: list[Event], everything_relevant: bool, monkeypatch: pytest.MonkeyPatch) -> Processor:
    settings = Settings(datasources=["simulator", "doctor"], simulator=SHAPE)
    if everything_relevant:  # the former filter: any property a template names, whatever the vertex
        monkeypatch.setattr(Evaluator, "_relevant_to", lambda self, vertex: self._relevant)
    processor = processor_factory(settings).fresh()
    copies = [Event(e.event_id, e.datasource, e.action, e.sample_time, e.payload, e.round) for e in events]
    processor.process_many(copies)
    monkeypatch.undo()
    return processor


@pytest.mark.parametrize("any_resource", [False, True], ids=["instance-states-skipped", "instance-states-relevant"])
def test_the_filter_changes_nothing_but_the_work(any_resource: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    events = _stream(polls=30, any_resource=any_resource)
    filtered = _fold(events, False, monkeypatch)
    former = _fold(events, True, monkeypatch)
    assert filtered.dump() == former.dump()
    names = {v.name for v in filtered.graph.vertices() if v.vitrage_type == DEDUCED_TYPE}
    assert "Instance down" in names
    assert ("Resource in error" in names) is any_resource
    instance = next(v for v in filtered.graph.vertices() if v.vitrage_type == "nova.instance")
    assert ("state" in filtered.reactor._relevant_to(instance)) is any_resource  # type: ignore[union-attr]


def test_a_spec_without_a_type_sees_every_resource_of_its_category(monkeypatch: pytest.MonkeyPatch) -> None:
    processor = _fold(_stream(polls=0), False, monkeypatch)
    evaluator: Any = processor.reactor
    instance = next(v for v in processor.graph.vertices() if v.vitrage_type == "nova.instance")
    host = next(v for v in processor.graph.vertices() if v.vitrage_type == "nova.host")
    assert "state" in evaluator._relevant_to(instance)  # any_resource_in_error names it for any resource
    assert "state" in evaluator._relevant_to(host)
    assert "name" not in evaluator._relevant_to(instance)  # only the doctor alarm's spec names "name"
    alarm = next(v for v in processor.graph.vertices() if v.vitrage_type == DEDUCED_TYPE)
    assert "state" not in evaluator._relevant_to(alarm)  # no template names an alarm's state
