"""The graph leader is SIGKILLed under load: a standby takes over, and nothing is lost or doubled.

Real processes on this machine's RabbitMQ and PostgreSQL, as docs/ha.md
describes: two graph processes (one leader, one standby), a persistor, a
collector, an API and the notifications listener. Nova notifications flow
in while the leader dies; at the end the standby's graph must hold every
notified instance, the event log every notification exactly once with no gap,
and the graph the standby serves must be exactly the graph the log rebuilds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from tests.e2e.cluster import Cluster, RoleProcess, cluster, eventually
from tests.e2e.test_distributed import NovaPublisher, logged_nova_events, ready, resource_counts
from vitrail.config import Settings
from vitrail.datasources.state_tables import load_state_table
from vitrail.graph import queries
from vitrail.graph.processor import EventRejected, Processor, ProcessorConfig
from vitrail.graph.queries import TopologyRequest, Viewer
from vitrail.services.drivers import build_drivers
from vitrail.storage import EventLog, create_engine

SETTINGS = {
    "VITRAIL_DATASOURCES": "simulator,nova",
    "VITRAIL_SIMULATOR__HOSTS": "5",
    "VITRAIL_SIMULATOR__INSTANCES_PER_HOST": "2",
    "VITRAIL_GRAPH__LEADER_HEARTBEAT": "0.5",
    "VITRAIL_GRAPH__SNAPSHOT_INTERVAL": "1",
}


def topology(vitrail: Cluster, api: RoleProcess) -> dict[str, Any]:
    answer = vitrail.api(api, "/v1/topology/", all_tenants="true")
    assert answer.status_code == 200, answer.text
    return answer.json()


def shape_of(topology: dict[str, Any]) -> tuple[set[tuple[Any, ...]], set[tuple[str, str, str]]]:
    """Vertices (id, type, states, deleted) and edges (source, target, label) of a node-link topology."""
    nodes = topology["nodes"]
    vertices = {
        (
            n["vitrage_id"],
            n["vitrage_type"],
            n.get("state"),
            n.get("vitrage_aggregated_state"),
            n.get("vitrage_is_deleted"),
        )
        for n in nodes
    }
    edges = {
        (nodes[link["source"]]["vitrage_id"], nodes[link["target"]]["vitrage_id"], link["relationship_type"])
        for link in topology["links"]
    }
    return vertices, edges


async def rebuilt_from_the_log(database_url: str) -> dict[str, Any]:
    """The graph a fresh processor folds from the whole event log, as the API would show it."""
    settings = Settings(datasources=["simulator", "nova"], simulator={"hosts": 5, "instances_per_host": 2})
    drivers = build_drivers(settings, None)
    processor = Processor({n: d.transformer() for n, d in drivers.items()}, load_state_table(), ProcessorConfig())
    engine = create_engine(database_url)
    try:
        async for batch in EventLog(engine).iter_batches():
            for event in batch:  # as GraphService.restore replays
                processor.sequence = event.sequence - 1  # type: ignore[operator]
                with contextlib.suppress(EventRejected):
                    processor.process(event)
                processor.sequence = event.sequence  # type: ignore[assignment]
    finally:
        await engine.dispose()
    return queries.topology(processor.graph, TopologyRequest(all_tenants=True), Viewer())


def test_a_standby_takes_over_from_a_killed_leader_and_loses_nothing(tmp_path: Path) -> None:
    count = 300
    with cluster(tmp_path, **SETTINGS) as vitrail:
        vitrail.start("collector", "collector")
        vitrail.start("persistor", "persistor")
        leader = vitrail.start("graph-a", "graph")
        api = vitrail.start("api", "api")
        vitrail.start("listener", "listener")
        eventually(lambda: ready(vitrail, api), 60, "the graph ready")
        leader.wait_for("snapshot stored", 30)
        standby = vitrail.start("graph-b", "graph")
        standby.wait_for("waits as a standby", 10)

        publisher = NovaPublisher(vitrail.nova_exchange, count, rate=100)
        publisher.start()
        eventually(lambda: publisher.sent >= count // 3, 30, "a third of the notifications sent")
        leader.kill()
        killed = time.monotonic()
        standby.wait_for("this process is the graph leader", 15)
        eventually(lambda: ready(vitrail, api), 15, "the standby answering")
        took_over = time.monotonic() - killed
        assert took_over < 5.0, f"the standby answered {took_over:.2f} s after the kill"
        details = vitrail.api(api, "/v1/status/", detailed="true").json()["details"]
        assert details["leader"] and details["epoch"] == 2, details  # the standby, fenced in
        assert details["restored_from_snapshot"] is not None, details  # not a replay of the whole log

        publisher.join(60)
        assert publisher.error is None and publisher.sent == count

        def instances() -> int:
            return resource_counts(vitrail, api).get("nova.instance", 0)

        # Every notified instance, plus the simulator's ten: nothing lost in the leader's death.
        eventually(lambda: instances() == count + 10, 60, "every notified instance", lambda: standby.log()[-4000:])
        served = topology(vitrail, api)
        assert "waits as a standby" in standby.log()
        assert standby.terminate() == 0, standby.log()[-4000:]  # a clean stop stores what it applied

        nova, distinct, total, highest = asyncio.run(logged_nova_events(vitrail.database_url))
        assert (nova, distinct) == (count, count)  # each notification logged once: none lost, none twice
        assert highest == total  # one sequence, no gap, across the takeover
        rebuilt = asyncio.run(rebuilt_from_the_log(vitrail.database_url))
        assert shape_of(served) == shape_of(rebuilt)  # the standby served exactly what the log holds
        print(f"\nstandby answering {took_over:.2f} s after the leader was SIGKILLed")
