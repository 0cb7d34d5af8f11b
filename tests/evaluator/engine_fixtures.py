"""Hand-built templates and a tiny alarm datasource, so the engine is tested without the parser."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
from vitrail.datasources.state_tables import load_state_table
from vitrail.evaluator.engine import TEMPLATES_DATASOURCE, Evaluator
from vitrail.evaluator.model import (
    Action,
    ActionKind,
    Clause,
    EntitySpec,
    Relationship,
    Scenario,
    Template,
    TemplateType,
)
from vitrail.graph.events import Event, EventAction
from vitrail.graph.processor import Processor
from vitrail.graph.updates import EntityUpdate, NeighborRef, TransformError

T0 = "2026-11-22 00:00:00.000000+00:00"


def ts(n: int) -> str:
    return f"2026-11-22 01:{n // 60 % 60:02d}:{n % 60:02d}.000000+00:00"


class AlarmTransformer:
    """payload: {"id", "name", "severity"?, "host"}: an ALARM of type "test.alarm" on a nova.host."""

    def transform(self, event: Event) -> list[EntityUpdate]:
        payload = event.payload
        if "id" not in payload:
            raise TransformError("payload.id is required")
        update = EntityUpdate(
            "ALARM",
            "test.alarm",
            payload["id"],
            {"name": payload.get("name"), "severity": payload.get("severity", "critical"), "state": "Active"},
            [NeighborRef("RESOURCE", "nova.host", payload.get("host", ""), "on", True)],
            delete=event.action is EventAction.DELETE,
        )
        return [update]


def spec(entity: str, **props: str) -> EntitySpec:
    renamed = {"category": "vitrage_category", "type": "vitrage_type"}
    return EntitySpec(entity, tuple(sorted((renamed.get(k, k), v) for k, v in props.items())))


HOST_ALARM = spec("host_alarm", category="ALARM", type="test.alarm", name="host.down")
HOST = spec("host", category="RESOURCE", type="nova.host")
INSTANCE = spec("instance", category="RESOURCE", type="nova.instance")


def host_down(name: str = "host_down", severity: str = "WARNING", state: str = "SUBOPTIMAL") -> Template:
    """host alarm on host and host contains instance => instance state, deduced alarm caused by the host alarm."""
    scenario = Scenario(
        f"{name}#0",
        (
            Clause(
                ("host_alarm", "host", "instance"),
                (Relationship("host_alarm", "on", "host"), Relationship("host", "contains", "instance")),
            ),
        ),
        (
            Action(ActionKind.SET_STATE, (("target", "instance"),), (("state", state),)),
            Action(
                ActionKind.RAISE_ALARM,
                (("target", "instance"), ("causing_alarm", "host_alarm")),
                (("alarm_name", "instance_down"), ("severity", severity)),
            ),
            Action(ActionKind.SET_STATE, (("target", "host"),), (("state", "ERROR"),)),
        ),
        {"host_alarm": HOST_ALARM, "host": HOST, "instance": INSTANCE},
    )
    return Template(name, 3, TemplateType.STANDARD, "", (scenario,), {"name": name})


def quiet_host(name: str = "quiet_host") -> Template:
    """host and not (host_alarm on host) => mark the host's instances down? No: raise 'host_quiet' on the host."""
    scenario = Scenario(
        f"{name}#0",
        (Clause(("host",), (), (Relationship("host_alarm", "on", "host", negated=True),)),),
        (Action(ActionKind.RAISE_ALARM, (("target", "host"),), (("alarm_name", "host_quiet"), ("severity", "OK"))),),
        {"host_alarm": HOST_ALARM, "host": HOST},
    )
    return Template(name, 3, TemplateType.STANDARD, "", (scenario,), {"name": name})


def escalate(name: str = "escalate") -> Template:
    """A deduced alarm on an instance => mark the instance down (a template on another template's output)."""
    deduced = spec("deduced", category="ALARM", type="vitrage", name="instance_down")
    scenario = Scenario(
        f"{name}#0",
        (Clause(("deduced", "instance"), (Relationship("deduced", "on", "instance"),)),),
        (Action(ActionKind.MARK_DOWN, (("target", "instance"),)),),
        {"deduced": deduced, "instance": INSTANCE},
    )
    return Template(name, 3, TemplateType.STANDARD, "", (scenario,), {"name": name})


REGISTRY: dict[str, Template] = {}


def register(*templates: Template) -> None:
    for template in templates:
        REGISTRY[template.name] = template


def parse(
    document: Mapping[str, Any],
    params: Mapping[str, Any],
    definitions: Mapping[str, Any],
    template_type: str | None = None,
) -> Template:
    try:
        return REGISTRY[document["name"]]
    except KeyError:
        raise ValueError(f"no test template named {document.get('name')!r}") from None


def make_processor(hosts: int = 3, instances: int = 2) -> tuple[Processor, SimulatorDriver]:
    driver = SimulatorDriver(SimulatorShape(hosts=hosts, instances_per_host=instances, seed=1))
    states = load_state_table()
    processor = Processor({"simulator": driver.transformer(), "alarms": AlarmTransformer()}, states)
    processor.attach(Evaluator(processor.graph, states, parse))
    processor.process_many(driver.round_events(driver.get_all(), 1, T0))
    return processor, driver


def add_template(eid: str, template: Template, t: int) -> Event:
    register(template)
    return Event(
        eid,
        TEMPLATES_DATASOURCE,
        EventAction.UPDATE,
        ts(t),
        {"name": template.name, "document": {"name": template.name}},
    )


def delete_template(eid: str, name: str, t: int) -> Event:
    return Event(eid, TEMPLATES_DATASOURCE, EventAction.DELETE, ts(t), {"name": name})


def raise_alarm(eid: str, alarm: str, host: str, t: int, name: str = "host.down", severity: str = "critical") -> Event:
    return Event(
        eid, "alarms", EventAction.UPDATE, ts(t), {"id": alarm, "name": name, "host": host, "severity": severity}
    )


def clear_alarm(eid: str, alarm: str, host: str, t: int) -> Event:
    return Event(eid, "alarms", EventAction.DELETE, ts(t), {"id": alarm, "host": host})
