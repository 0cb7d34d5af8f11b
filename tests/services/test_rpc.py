"""The collector's and the graph's RPC faces and their clients, on the in-process bus.

The same handlers and clients run on RabbitMQ in the distributed mode; the bus
contract tests show both buses carry calls alike. Here: what crosses the wire,
retries, and what the API answers when the graph is away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from vitrail.api.app import create_app
from vitrail.bus import InProcessBus
from vitrail.bus.base import RpcError
from vitrail.config import GraphSettings
from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
from vitrail.datasources.state_tables import load_state_table
from vitrail.graph.processor import Processor
from vitrail.services.collector import Collector, CollectSummary
from vitrail.services.graph import GraphService
from vitrail.services.local_backend import LocalGraphBackend
from vitrail.services.rpc import RemoteCollector, RemoteGraphBackend, collector_handler, graph_handler
from vitrail.services.topics import COLLECTOR_SERVICE, GRAPH_SERVICE

SHAPE = SimulatorShape(hosts=10, instances_per_host=3, seed=5)


def graph_over_rpc(bus: InProcessBus, **settings: float) -> GraphService:
    driver = SimulatorDriver(SHAPE)
    processor = Processor({"simulator": driver.transformer()}, load_state_table())
    return GraphService(
        processor,
        bus,
        RemoteCollector(bus, within=settings.pop("rpc_timeout", 5.0)),
        ["simulator"],
        ["simulator"],
        GraphSettings(batch_size=40, **settings),
    )


async def test_a_graph_loads_its_topology_from_a_collector_over_rpc() -> None:
    bus = InProcessBus()
    collector = Collector({"simulator": SimulatorDriver(SHAPE)}, bus, page_size=25)
    await bus.serve(COLLECTOR_SERVICE, collector_handler(collector))
    graph = graph_over_rpc(bus)
    await graph.start()
    try:
        await asyncio.wait_for(graph.ready.wait(), 10)
        assert graph.processor.graph.num_vertices == SHAPE.entity_count
        assert graph.progress.expected == SHAPE.entity_count
        remote = graph.collector
        assert isinstance(remote, RemoteCollector)
        [seen] = remote.seen.values()  # the collector that answered names itself
        assert seen["name"] == "vitrail-collector"
    finally:
        await graph.stop()


async def test_the_collector_rejects_bad_parameters_and_the_client_does_not_retry_them() -> None:
    bus = InProcessBus()
    collector = Collector({"simulator": SimulatorDriver(SHAPE)}, bus)
    calls = 0
    handler = collector_handler(collector)

    async def counting(method: str, params: dict[str, Any]) -> Any:
        nonlocal calls
        calls += 1
        return await handler(method, params)

    await bus.serve(COLLECTOR_SERVICE, counting)
    with pytest.raises(RpcError, match="round: expected an integer") as caught:
        await bus.call(COLLECTOR_SERVICE, "get_all", {"datasources": None, "round": "one"})
    assert caught.value.kind == "bad_request"
    with pytest.raises(RpcError, match="unknown method 'reload'"):
        await bus.call(COLLECTOR_SERVICE, "reload", {})
    calls = 0
    with pytest.raises(RpcError, match="nagios") as caught:
        await RemoteCollector(bus, within=5).get_all(["nagios"], 1)
    assert caught.value.kind == "bad_request"
    assert calls == 1  # a wrong request is wrong on every collector: asked once


async def test_a_failing_collector_call_is_retried_and_another_collector_answers() -> None:
    bus = InProcessBus()
    healthy = Collector({"simulator": SimulatorDriver(SHAPE)}, bus)
    failures = 0

    async def broken(method: str, params: dict[str, Any]) -> Any:
        nonlocal failures
        failures += 1
        raise ConnectionError("lost its database")

    await bus.serve(COLLECTOR_SERVICE, broken)
    await bus.serve(COLLECTOR_SERVICE, collector_handler(healthy))
    await bus.declare("events.bulk", "test")
    summary = await RemoteCollector(bus, within=5, attempts=3).get_all(["simulator"], 7)
    assert summary.round == 7
    assert summary.counts == {"simulator": SHAPE.entity_count}
    assert failures == 1  # the broken one was asked first, then the call went to the healthy one


class SilentCollector:
    """Answers the first get_all but never publishes it: a collector killed mid-round."""

    def __init__(self, real: Collector) -> None:
        self.real = real
        self.rounds: list[int] = []

    async def get_all(self, names: Sequence[str] | None, round_id: int) -> CollectSummary:
        self.rounds.append(round_id)
        if len(self.rounds) == 1:
            return CollectSummary(round_id, {"simulator": SHAPE.entity_count})
        return await self.real.get_all(names, round_id)

    async def get_changes(self, names: Sequence[str] | None) -> CollectSummary:
        return await self.real.get_changes(names)


async def test_a_round_whose_end_never_arrives_is_asked_again_after_round_timeout() -> None:
    bus = InProcessBus()
    silent = SilentCollector(Collector({"simulator": SimulatorDriver(SHAPE)}, bus))
    processor = Processor({"simulator": SimulatorDriver(SHAPE).transformer()}, load_state_table())
    graph = GraphService(processor, bus, silent, ["simulator"], [], GraphSettings(batch_size=40, round_timeout=0.3))
    await graph.start()
    try:
        await asyncio.wait_for(graph.ready.wait(), 10)
        assert len(silent.rounds) == 2 and silent.rounds[1] > silent.rounds[0]
        assert graph.processor.graph.num_vertices == SHAPE.entity_count
    finally:
        await graph.stop()


async def test_the_api_answers_503_naming_the_graph_when_it_does_not_answer() -> None:
    bus = InProcessBus()  # nobody serves the graph
    app = create_app(RemoteGraphBackend(bus, within=0.2))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://vitrail.test") as http:
        answer = await http.get("/v1/topology/")
        assert answer.status_code == 503
        assert "vitrail-graph did not answer within 0.2 s" in answer.json()["description"]
        status = await http.get("/v1/status")
        assert status.status_code == 503
        assert "vitrail-graph is not available" in status.text
        services = (await http.get("/v1/service/")).json()
        assert [s["name"] for s in services] == ["vitrail-api"]  # the API still says who it is


async def test_the_graph_rejects_unknown_methods_and_bad_parameters_clearly() -> None:
    bus = InProcessBus()
    processor = Processor({"simulator": SimulatorDriver(SHAPE).transformer()}, load_state_table())
    graph = GraphService(processor, bus, RemoteCollector(bus), [], [], GraphSettings())
    await bus.serve(GRAPH_SERVICE, graph_handler(LocalGraphBackend(graph, ["graph"])))
    with pytest.raises(RpcError, match="unknown method 'drop_graph'") as caught:
        await bus.call(GRAPH_SERVICE, "drop_graph", {})
    assert caught.value.kind == "bad_request"
    with pytest.raises(RpcError, match="bad parameters for resource") as caught:
        await bus.call(GRAPH_SERVICE, "resource", {"viewer": {}})
    assert caught.value.kind == "bad_request"
    with pytest.raises(RpcError, match="viewer: expected an object"):
        await bus.call(GRAPH_SERVICE, "alarm_count", {"viewer": "admin", "all_tenants": True})
    answer = await bus.call(GRAPH_SERVICE, "resource", {"vitrage_id": "nope", "viewer": {"is_admin": True}})
    assert "not_found" in answer  # a wrong id is an answer (the API's 404), not a failure
