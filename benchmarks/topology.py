"""Topology build through the processor, memory per entity, dump and load time.

For each N, a fresh subprocess generates the simulator cloud (a zone, N hosts,
10 instances per host, plus the cluster vertex: 11N+2 entities) and feeds its
``get_all`` round through the processor in pages of 1,000 events, as the graph
service does. Timed: the processor only (event generation is excluded).
Memory: resident set growth from before the first page to after the last, with
the input pages freed, divided by the number of entities.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
from typing import Any

import psutil

from benchmarks.report import best_of, print_table, run_in_subprocesses, write_json

PAGE = 1000
TARGETS = {"events_per_s": ">= 50,000 at N=10,000", "rss_bytes_per_entity": "<= 1,024", "dump_plus_load_s": "<= 1.0"}


def measure(hosts: int) -> dict[str, Any]:
    from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
    from vitrail.datasources.state_tables import load_state_table
    from vitrail.graph.canonical import dump_graph, load_graph
    from vitrail.graph.gcpause import paused_gc
    from vitrail.graph.processor import Processor

    driver = SimulatorDriver(SimulatorShape(hosts=hosts, instances_per_host=10, seed=1))
    processor = Processor({"simulator": driver.transformer()}, load_state_table())
    sample_time = "2026-11-22 00:00:00.000000+00:00"
    gc.collect()
    process = psutil.Process()
    rss_before = process.memory_info().rss
    applied = 0
    elapsed = 0.0
    page: list[Any] = []
    entities = driver.entities()
    while True:
        page = [entity for _, entity in zip(range(PAGE), entities, strict=False)]
        if not page:
            break
        events = driver.snapshot_events(page, 1, sample_time)
        started = time.perf_counter()
        with paused_gc():  # as the graph service applies a chunk
            applied += len(processor.process_many(events))
        elapsed += time.perf_counter() - started
        del events, page
    end = driver.round_end_event(1, sample_time, applied)
    processor.process(end)
    gc.collect()
    rss_after = process.memory_info().rss
    graph = processor.graph
    count = graph.num_vertices

    started = time.perf_counter()
    dumped = dump_graph(graph)
    dump_s = time.perf_counter() - started
    started = time.perf_counter()
    loaded = load_graph(dumped)
    load_s = time.perf_counter() - started
    if loaded.num_vertices != count or loaded.num_edges != graph.num_edges:
        raise AssertionError("the loaded graph differs from the dumped one")
    return {
        "hosts": hosts,
        "entities": count,
        "edges": graph.num_edges,
        "events": applied,
        "build_s": round(elapsed, 3),
        "events_per_s": round(applied / elapsed),
        "rss_bytes_per_entity": round((rss_after - rss_before) / count),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "dump_bytes_per_entity": round(len(dumped) / count),
        "dump_s": round(dump_s, 3),
        "load_s": round(load_s, 3),
        "dump_plus_load_s": round(dump_s + load_s, 3),
    }


COLUMNS = [
    ("hosts", "hosts"),
    ("entities", "entities"),
    ("events_per_s", "events/s"),
    ("rss_bytes_per_entity", "RSS B/entity"),
    ("peak_rss_mib", "peak RSS MiB"),
    ("dump_bytes_per_entity", "dump B/entity"),
    ("dump_s", "dump s"),
    ("load_s", "load s"),
    ("dump_plus_load_s", "dump+load s"),
]


def run(hosts: list[int], repeat: int, json_path: Any) -> list[dict[str, Any]]:
    rows = []
    for n in hosts:
        samples = run_in_subprocesses("benchmarks.topology", [str(n)], repeat)
        best = best_of(samples, "events_per_s", ("dump_s", "load_s"), repeat)
        best["dump_plus_load_s"] = round(best["dump_s"] + best["load_s"], 3)
        rows.append(best)
    print_table("Topology build through the processor (simulator: 1 zone, N hosts x 10 instances)", rows, COLUMNS)
    write_json(json_path, "topology", rows, TARGETS)
    return rows


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]))))
