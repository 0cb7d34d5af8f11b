"""The evaluator with real templates (the language), real alarm datasources and the simulator."""

from __future__ import annotations

from pathlib import Path

from vitrail.datasources import alertmanager, doctor
from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
from vitrail.datasources.state_tables import load_state_table
from vitrail.evaluator import templates as language
from vitrail.evaluator.engine import DEDUCED_TYPE, TEMPLATES_DATASOURCE, Evaluator
from vitrail.graph.events import Event, EventAction
from vitrail.graph.processor import Processor

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "templates"
T0 = "2026-11-22 00:00:00.000000+00:00"

EQUIVALENCE = """
metadata:
  version: 2
  name: host_down_everywhere
  type: equivalence
equivalences:
  - equivalence:
      - entity:
          category: ALARM
          type: doctor
          name: compute.host.down
      - entity:
          category: ALARM
          type: prometheus
          name: HostDown
"""


def processor() -> Processor:
    simulator = SimulatorDriver(SimulatorShape(hosts=3, instances_per_host=2, seed=4))
    states = load_state_table()
    p = Processor(
        {
            "simulator": simulator.transformer(),
            "doctor": doctor.DoctorDriver().transformer(),
            "prometheus": alertmanager.AlertmanagerDriver().transformer(),
        },
        states,
    )
    p.attach(Evaluator(p.graph, states, language.parse_for_evaluator))
    p.process_many(simulator.round_events(simulator.get_all(), 1, T0))
    return p


def add(p: Processor, text: str, eid: str) -> None:
    template = language.load(text)
    p.process(
        Event(eid, TEMPLATES_DATASOURCE, EventAction.UPDATE, T0,
              {"name": template.name, "document": template.document, "template_type": template.template_type})
    )  # fmt: skip


def deduced_names(p: Processor) -> list[str]:
    return sorted(v.name or "" for v in p.graph.vertices() if v.vitrage_type == DEDUCED_TYPE)


def host_down_alert(status: str, ends: str = "0001-01-01T00:00:00Z") -> dict[str, object]:
    return {
        "version": "4",
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "HostDown", "hostname": "host-00001", "severity": "critical"},
                "startsAt": "2026-11-22T01:00:00Z",
                "endsAt": ends,
                "fingerprint": "00000000000000aa",
            }
        ],
    }


def test_the_example_host_down_template_on_a_doctor_event() -> None:
    p = processor()
    add(p, (EXAMPLES / "host_down.yaml").read_text(), "t1")
    body = {
        "type": "compute.host.down",
        "time": "2026-11-22T01:00:00",
        "details": {"hostname": "host-00001", "status": "down"},
    }
    p.process_many(doctor.parse_event(body, T0))
    assert deduced_names(p).count("Instance down") == 2
    body["details"]["status"] = "up"
    body["time"] = "2026-11-22T01:05:00"
    p.process_many(doctor.parse_event(body, T0))
    assert "Instance down" not in deduced_names(p)


def test_an_equivalence_makes_another_datasource_s_alarm_count_as_the_same() -> None:
    p = processor()
    add(p, (EXAMPLES / "host_down.yaml").read_text(), "t1")
    p.process_many(alertmanager.parse_webhook(host_down_alert("firing"), T0))
    assert "Instance down" not in deduced_names(p)  # a prometheus HostDown is not Doctor's alarm...
    add(p, EQUIVALENCE, "t2")
    assert deduced_names(p).count("Instance down") == 2  # ...until the equivalence says it is
    p.process(Event("d2", TEMPLATES_DATASOURCE, EventAction.DELETE, T0, {"name": "host_down_everywhere"}))
    assert "Instance down" not in deduced_names(p)
    add(p, EQUIVALENCE, "t3")
    assert deduced_names(p).count("Instance down") == 2
    p.process_many(alertmanager.parse_webhook(host_down_alert("resolved", "2026-11-22T01:10:00Z"), T0))
    assert "Instance down" not in deduced_names(p)
