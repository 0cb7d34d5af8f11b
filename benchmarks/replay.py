"""A graph restarting on its event log: how fast the log is replayed.

For each N, a fresh subprocess writes the simulator cloud's ``get_all`` round
(11N+2 entities, plus the round end) to an event log in a new SQLite file,
as a running graph would have logged it, then times ``GraphService.restore``
on an empty processor: reading the log in batches and folding every event
again with its sequence number. This is what a restart costs until snapshots
bound the replay (the durability work).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import best_of, print_table, run_in_subprocesses, write_json


async def measure(hosts: int) -> dict[str, Any]:
    from vitrail.bus import InProcessBus
    from vitrail.config import GraphSettings
    from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
    from vitrail.datasources.state_tables import load_state_table
    from vitrail.graph.processor import Processor
    from vitrail.services.collector import Collector
    from vitrail.services.graph import GraphService
    from vitrail.storage import EventLog, create_engine, upgrade

    shape = SimulatorShape(hosts=hosts, instances_per_host=10, seed=1)

    def graph_service(event_log: EventLog) -> GraphService:
        bus = InProcessBus()
        driver = SimulatorDriver(shape)
        processor = Processor({"simulator": driver.transformer()}, load_state_table())
        return GraphService(processor, bus, Collector({"simulator": driver}, bus), [], [], GraphSettings(), event_log)

    with tempfile.TemporaryDirectory() as directory:
        engine = create_engine(f"sqlite:///{Path(directory) / 'vitrail.db'}")
        try:
            await upgrade(engine)
            event_log = EventLog(engine)
            # The log a running graph would have written for one get_all round.
            writer = graph_service(event_log)
            driver = SimulatorDriver(shape)
            events = driver.round_events(driver.get_all(), 1, "2026-11-22 00:00:00.000000+00:00")
            accepted = writer.processor.process_many(events)
            for start in range(0, len(accepted), 10_000):
                await event_log.append(accepted[start : start + 10_000])
            reader = graph_service(event_log)
            started = time.perf_counter()
            replayed = await reader.restore(event_log.iter_batches())
            elapsed = time.perf_counter() - started
            if reader.processor.dump() != writer.processor.dump():
                raise AssertionError("the replayed graph differs from the one that wrote the log")
        finally:
            await engine.dispose()
    return {
        "hosts": hosts,
        "entities": shape.entity_count,
        "events": replayed,
        "replay_s": round(elapsed, 3),
        "events_per_s": round(replayed / elapsed),
        "s_per_million_events": round(elapsed / replayed * 1_000_000, 1),
    }


COLUMNS = [
    ("hosts", "hosts"),
    ("entities", "entities"),
    ("events", "events"),
    ("replay_s", "replay s"),
    ("events_per_s", "events/s"),
    ("s_per_million_events", "s per million"),
]


def run(hosts: list[int], repeat: int, json_path: Path | None) -> list[dict[str, Any]]:
    rows = []
    for n in hosts:
        samples = run_in_subprocesses("benchmarks.replay", [str(n)], repeat)
        best = best_of(samples, "events_per_s", ("replay_s",), repeat)
        rows.append(best)
    print_table("Restart: the event log replayed into an empty graph (SQLite)", rows, COLUMNS)
    write_json(json_path, "replay", rows)
    return rows


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(int(sys.argv[1])))))
