"""The evaluator at scale: build with templates live, a full pass, alarm latency, RCA latency.

For each N, in a fresh subprocess: the simulator cloud (a zone, N hosts, 10
instances per host) and a host-down template (a doctor ``compute.host.down``
alarm on a host makes its instances SUBOPTIMAL, raises a deduced alarm on each
caused by the host alarm, and sets the host in ERROR):

(a) the topology build through the processor with the evaluator live;
(b) one full evaluation pass over the whole graph (what loading a template does);
(c) M host-down alarms injected at once, until every deduced alarm and causal
    edge exists; then one at a time, the latency of each (p50/p95);
(d) RCA queries on the deduced alarms, latency p50/p99.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

from benchmarks.report import best_of, print_table, run_in_subprocesses, write_json

TEMPLATE = """
metadata:
  version: 3
  name: host_down_bench
  type: standard
entities:
  host_alarm:
    category: ALARM
    type: doctor
    name: compute.host.down
  host:
    category: RESOURCE
    type: nova.host
  instance:
    category: RESOURCE
    type: nova.instance
scenarios:
  - condition: host_alarm [on] host AND host [contains] instance
    actions:
      - set_state:
          target: instance
          state: SUBOPTIMAL
      - raise_alarm:
          target: instance
          alarm_name: instance_host_down
          severity: WARNING
          causing_alarm: host_alarm
      - set_state:
          target: host
          state: ERROR
"""
TARGETS = {
    "build_events_per_s": ">= 30,000 at N=10,000",
    "full_pass_s": "<= 2",
    "alarm_p95_ms": "<= 2, independent of N",
    "rca_p99_ms": "<= 1",
}
PAGE = 1000


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(hosts: int, alarms: int) -> dict[str, Any]:
    from vitrail.datasources.doctor import DoctorDriver, parse_event
    from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
    from vitrail.datasources.state_tables import load_state_table
    from vitrail.evaluator import templates
    from vitrail.evaluator.engine import DEDUCED_TYPE, TEMPLATES_DATASOURCE, Evaluator
    from vitrail.graph import queries
    from vitrail.graph.events import Event, EventAction
    from vitrail.graph.gcpause import paused_gc
    from vitrail.graph.processor import Processor

    simulator = SimulatorDriver(SimulatorShape(hosts=hosts, instances_per_host=10, seed=1))
    states = load_state_table()
    processor = Processor({"simulator": simulator.transformer(), "doctor": DoctorDriver().transformer()}, states)
    evaluator = Evaluator(processor.graph, states, templates.parse_for_evaluator)
    processor.attach(evaluator)
    document = templates.load(TEMPLATE).document
    processor.process(
        Event(
            "tpl",
            TEMPLATES_DATASOURCE,
            EventAction.UPDATE,
            "2026-11-22 00:00:00.000000+00:00",
            {"name": "host_down_bench", "document": document, "params": {}},
        )
    )

    # (a) build with the evaluator live
    sample_time = "2026-11-22 00:00:01.000000+00:00"
    entities = simulator.entities()
    applied, build = 0, 0.0
    while True:
        page = [entity for _, entity in zip(range(PAGE), entities, strict=False)]
        if not page:
            break
        events = simulator.snapshot_events(page, 1, sample_time)
        started = time.perf_counter()
        with paused_gc():
            applied += len(processor.process_many(events))
        build += time.perf_counter() - started
    processor.process(simulator.round_end_event(1, sample_time, applied))

    def down(index: int, host: str, minute: int) -> list[Event]:
        body = {
            "type": "compute.host.down",
            "time": f"2026-11-22T02:{minute // 60:02d}:{minute % 60:02d}",
            "details": {"hostname": host, "status": "down", "severity": "critical"},
        }
        return parse_event(body, "2026-11-22 02:00:00.000000+00:00")

    step = max(1, hosts // alarms)
    victims = [f"host-{(i * step) % hosts:05d}" for i in range(alarms)]

    # (c1) all at once
    started = time.perf_counter()
    with paused_gc():
        for i, host in enumerate(victims):
            processor.process_many(down(i, host, i))
    burst = time.perf_counter() - started
    deduced = [v for v in processor.graph.vertices() if v.vitrage_type == DEDUCED_TYPE]
    causes = sum(1 for v in deduced for e in v.in_edges if e.label == "causes")
    if len(deduced) != alarms * 10 or causes != alarms * 10:
        raise AssertionError(f"expected {alarms * 10} deduced alarms and causal edges, got {len(deduced)}, {causes}")

    # (b) a full pass over the whole graph, as when a template is added
    started = time.perf_counter()
    evaluator._full_pass([s for t in evaluator.templates.values() for s in t.scenarios])
    full_pass = time.perf_counter() - started

    # (d) RCA latency on the deduced alarms
    viewer = queries.Viewer()
    rca_samples = []
    for n in range(1000):
        alarm = deduced[n % len(deduced)]
        started = time.perf_counter()
        queries.rca(processor.graph, alarm.vitrage_id, viewer)
        rca_samples.append(time.perf_counter() - started)

    # (c2) one at a time, each on a fresh host: latency per alarm (clear, then raise again)
    latencies = []
    for i, host in enumerate(victims):
        body = {
            "type": "compute.host.down",
            "time": f"2026-11-22T03:{i // 60:02d}:{i % 60:02d}",
            "details": {"hostname": host, "status": "up"},
        }
        processor.process_many(parse_event(body, "2026-11-22 03:00:00.000000+00:00"))
    for i, host in enumerate(victims):
        events = down(i, host, 600 + i)
        started = time.perf_counter()
        processor.process_many(events)
        latencies.append(time.perf_counter() - started)

    return {
        "hosts": hosts,
        "entities": 11 * hosts + 2,
        "build_events_per_s": round(applied / build),
        "full_pass_s": round(full_pass, 3),
        "alarms": alarms,
        "burst_s": round(burst, 3),
        "alarm_p50_ms": round(statistics.median(latencies) * 1e3, 3),
        "alarm_p95_ms": round(_percentile(latencies, 0.95) * 1e3, 3),
        "rca_p50_ms": round(statistics.median(rca_samples) * 1e3, 3),
        "rca_p99_ms": round(_percentile(rca_samples, 0.99) * 1e3, 3),
    }


COLUMNS = [
    ("hosts", "hosts"),
    ("entities", "entities"),
    ("build_events_per_s", "build ev/s (evaluator live)"),
    ("full_pass_s", "full pass s"),
    ("burst_s", "100 alarms s"),
    ("alarm_p50_ms", "alarm p50 ms"),
    ("alarm_p95_ms", "alarm p95 ms"),
    ("rca_p50_ms", "RCA p50 ms"),
    ("rca_p99_ms", "RCA p99 ms"),
]


def run(hosts: list[int], alarms: int, repeat: int, json_path: Any) -> list[dict[str, Any]]:
    times = ("full_pass_s", "burst_s", "alarm_p50_ms", "alarm_p95_ms", "rca_p50_ms", "rca_p99_ms")
    rows = [
        best_of(
            run_in_subprocesses("benchmarks.evaluator", [str(n), str(alarms)], repeat),
            "build_events_per_s",
            times,
            repeat,
        )
        for n in hosts
    ]
    print_table("Evaluator (simulator cloud, host-down template, doctor host alarms)", rows, COLUMNS)
    write_json(json_path, "evaluator", rows, TARGETS)
    return rows


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]), int(sys.argv[2]))))
