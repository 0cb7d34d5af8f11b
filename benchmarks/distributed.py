"""End to end through RabbitMQ: a collector process → the broker → the graph.

For each N: a ``vitrail serve --role collector`` subprocess (the simulator:
a zone, N hosts, 10 instances each) and, in this process, the graph service on
the RabbitMQ bus exactly as ``vitrail serve --role graph`` builds it (processor,
event coordinator, RPC client of the collectors), without the event log, whose
writes belong to the durability work. Timed:

* **end to end**: from ``graph.start()`` (which sends the first ``get_all`` RPC)
  until the round end has been applied: every event of the round, read by the
  collector, published in pages, confirmed by the broker, consumed, decoded and
  folded into the graph. events/s = events applied / that time.
* **get_all RPC**: the round trip of that call (the collector reads the
  datasource and answers with the counts; it publishes in the background).

The broker's own ceiling is measured in the same run for comparison: the same
pages (same bytes) published persistent with confirms by one process and
consumed with manual acks by another, with nothing else done to them.
Everything runs on this machine (the broker too), in a fresh namespace deleted
afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.report import print_table, write_json

AMQP_URL = os.environ.get("VITRAIL_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PAGE = 1000
TARGETS = {"end_to_end_events_per_s": ">= 20,000 through RabbitMQ"}


def _bus_url(prefix: str) -> str:
    separator = "&" if "?" in AMQP_URL else "?"
    return f"{AMQP_URL}{separator}prefix={prefix}"


def _start_collector(prefix: str, hosts: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "VITRAIL_TRANSPORT_URL": _bus_url(prefix),
        "VITRAIL_DATASOURCES": "simulator",
        "VITRAIL_SIMULATOR__HOSTS": str(hosts),
        "VITRAIL_SIMULATOR__INSTANCES_PER_HOST": "10",
        "VITRAIL_SIMULATOR__SEED": "1",
        "VITRAIL_COLLECTOR__PAGE_SIZE": str(PAGE),
        "VITRAIL_LOGGING__FORMAT": "json",
        "VITRAIL_LOGGING__LEVEL": "WARNING",
    }
    env.pop("VITRAIL_CONFIG", None)
    command = [sys.executable, "-m", "vitrail.cli.main", "serve", "--role", "collector"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert process.stdout is not None
    for line in process.stdout:
        if "is running" in line:
            return process
    raise RuntimeError(f"the collector did not start (exit {process.wait()})")


async def end_to_end(hosts: int) -> dict[str, Any]:
    from vitrail.bus import open_bus
    from vitrail.config import GraphSettings
    from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
    from vitrail.datasources.state_tables import load_state_table
    from vitrail.graph.processor import Processor
    from vitrail.services.graph import GraphService
    from vitrail.services.rpc import RemoteCollector

    prefix = f"vt-bench-{uuid.uuid4().hex[:8]}"
    collector = _start_collector(prefix, hosts)
    bus = open_bus(_bus_url(prefix))
    try:
        await bus.connect()
        shape = SimulatorShape(hosts=hosts, instances_per_host=10, seed=1)
        processor = Processor({"simulator": SimulatorDriver(shape).transformer()}, load_state_table())
        remote = _TimedCollector(RemoteCollector(bus, within=300))
        graph = GraphService(processor, bus, remote, ["simulator"], [], GraphSettings(get_all_interval=3600))
        started = time.perf_counter()
        await graph.start()
        await graph.ready.wait()
        elapsed = time.perf_counter() - started
        await graph.stop()
        if processor.graph.num_vertices != shape.entity_count:
            raise AssertionError(f"{processor.graph.num_vertices} entities, expected {shape.entity_count}")
        events = graph.progress.applied + 1  # and the round end
        return {
            "hosts": hosts,
            "entities": shape.entity_count,
            "events": events,
            "end_to_end_s": round(elapsed, 3),
            "end_to_end_events_per_s": round(events / elapsed),
            "get_all_rpc_s": round(remote.seconds, 3),
        }
    finally:
        collector.terminate()
        collector.wait(30)
        declared = getattr(bus, "declared_queues", frozenset())
        await bus.close()
        await _delete(prefix, set(declared) | {f"{prefix}.rpc.collector"})


class _TimedCollector:
    """The graph's RPC client of the collectors, timing the get_all round trip."""

    def __init__(self, remote: Any) -> None:
        self.remote = remote
        self.seconds = 0.0

    async def get_all(self, names: Any, round_id: int) -> Any:
        started = time.perf_counter()
        summary = await self.remote.get_all(names, round_id)
        self.seconds = time.perf_counter() - started
        return summary

    async def get_changes(self, names: Any) -> Any:
        return await self.remote.get_changes(names)


async def _delete(prefix: str, queues: set[str]) -> None:
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for name in sorted(queues):
            await channel.queue_delete(name)
        await channel.exchange_delete(prefix)


# -- the broker's ceiling -------------------------------------------------------------------


def _pages(entities: int) -> tuple[list[bytes], int]:
    """The collector's pages for ``entities`` simulator entities, as the bytes it publishes; and the events."""
    import orjson

    from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
    from vitrail.services.topics import encode

    driver = SimulatorDriver(SimulatorShape(hosts=max(1, entities // 11), instances_per_host=10, seed=1))
    events = driver.round_events(driver.get_all(), 1, "2026-11-22 00:00:00.000000+00:00")
    return [orjson.dumps(encode(events[i : i + PAGE])) for i in range(0, len(events), PAGE)], len(events)


async def _consume(queue_name: str, count: int) -> None:
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=8)
        queue = await channel.get_queue(queue_name)
        received = 0
        async with queue.iterator() as messages:
            print("ready", flush=True)
            async for message in messages:
                await message.ack()
                received += 1
                if received == count:
                    return


async def broker_ceiling(entities: int) -> dict[str, Any]:
    """Pages published persistent with confirms, consumed by another process with acks."""
    import aio_pika

    pages, records = _pages(entities)
    queue_name = f"vt-bench-ceiling-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue_name, durable=True)
        consumer = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.distributed",
            "consume",
            queue_name,
            str(len(pages)),
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert consumer.stdout is not None
            await consumer.stdout.readline()  # "ready": connected and consuming
            started = time.perf_counter()
            for page in pages:
                message = aio_pika.Message(
                    page, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                )
                await channel.default_exchange.publish(message, routing_key=queue_name)
            published = time.perf_counter() - started
            if await asyncio.wait_for(consumer.wait(), 300) != 0:
                raise RuntimeError("the consumer failed")
            elapsed = time.perf_counter() - started
        finally:
            if consumer.returncode is None:
                consumer.kill()
                await consumer.wait()
            await channel.queue_delete(queue_name)
    return {
        "entities": entities,
        "pages": len(pages),
        "page_kib": round(sum(map(len, pages)) / len(pages) / 1024, 1),
        "publish_s": round(published, 3),
        "ceiling_s": round(elapsed, 3),
        "ceiling_messages_per_s": round(len(pages) / elapsed),
        "ceiling_events_per_s": round(records / elapsed),
        "ceiling_publish_only_events_per_s": round(records / published),
    }


COLUMNS = [
    ("hosts", "hosts"),
    ("entities", "entities"),
    ("end_to_end_s", "end-to-end s"),
    ("end_to_end_events_per_s", "events/s"),
    ("get_all_rpc_s", "get_all RPC s"),
    ("ceiling_messages_per_s", "broker msg/s"),
    ("ceiling_events_per_s", "broker events/s"),
    ("page_kib", "page KiB"),
]


def run(hosts: list[int], repeat: int, json_path: Path | None) -> list[dict[str, Any]]:
    rows = []
    for n in hosts:
        samples = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-m", "benchmarks.distributed", "measure", str(n)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            for _ in range(repeat)
        ]
        best = dict(max(samples, key=lambda r: r["end_to_end_events_per_s"]))
        best["get_all_rpc_s"] = min(r["get_all_rpc_s"] for r in samples)
        ceilings = [asyncio.run(broker_ceiling(best["entities"])) for _ in range(repeat)]
        best.update(max(ceilings, key=lambda r: r["ceiling_events_per_s"]))
        best["runs"] = repeat
        rows.append(best)
    print_table(
        "End to end through RabbitMQ: collector process -> broker -> graph (pages of 1,000 events)", rows, COLUMNS
    )
    write_json(json_path, "distributed", rows, TARGETS)
    return rows


if __name__ == "__main__":
    if sys.argv[1] == "measure":
        print(json.dumps(asyncio.run(end_to_end(int(sys.argv[2])))))
    elif sys.argv[1] == "consume":
        asyncio.run(_consume(sys.argv[2], int(sys.argv[3])))
