"""An API over a real graph service (not started: the tests fill its graph directly).

Every API test runs twice: once with the graph in the API's process (the
embedded mode) and once with the API asking the graph over the bus's RPC, as
an ``api`` process does in the distributed mode. Both must answer alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.evaluator.engine_fixtures import parse
from vitrail.api.app import create_app
from vitrail.api.backend import GraphBackend
from vitrail.bus import InProcessBus
from vitrail.config import GraphSettings
from vitrail.datasources.alertmanager import AlertmanagerDriver
from vitrail.datasources.doctor import DoctorDriver
from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
from vitrail.datasources.state_tables import load_state_table
from vitrail.evaluator.engine import Evaluator
from vitrail.graph.events import Event
from vitrail.graph.processor import Processor
from vitrail.services.collector import Collector
from vitrail.services.graph import GraphService
from vitrail.services.local_backend import LocalGraphBackend
from vitrail.services.rpc import RemoteGraphBackend, graph_handler
from vitrail.services.topics import GRAPH_SERVICE

SHAPE = SimulatorShape(hosts=3, instances_per_host=2, projects=2, failed_hosts=1, seed=3)


def build_service() -> GraphService:
    driver = SimulatorDriver(SHAPE)
    states = load_state_table()
    processor = Processor(
        {
            "simulator": driver.transformer(),
            "doctor": DoctorDriver().transformer(),
            "prometheus": AlertmanagerDriver().transformer(),
        },
        states,
    )
    processor.attach(Evaluator(processor.graph, states, parse))
    processor.process_many(driver.round_events(driver.get_all(), 1, "2026-11-22 00:00:00.000000+00:00"))
    bus = InProcessBus()
    service = GraphService(processor, bus, Collector({"simulator": driver}, bus), [], [], GraphSettings())
    service.ready.set()
    return service


@pytest.fixture
def service() -> GraphService:
    return build_service()


@pytest.fixture(params=["embedded", "rpc"])
async def client(service: GraphService, request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    async def publish(events: list[Event]) -> None:  # what the bus would deliver, applied at once
        await service.apply(events)

    local = LocalGraphBackend(service, ["api", "collector", "graph"], publish=publish)
    backend: GraphBackend = local
    if request.param == "rpc":  # the graph's process runs graph and collector; the API is elsewhere
        local = LocalGraphBackend(service, ["collector", "graph"], publish=publish)
        bus = InProcessBus()
        await bus.serve(GRAPH_SERVICE, graph_handler(local))
        backend = RemoteGraphBackend(bus, publish=publish)
    app = create_app(backend)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://vitrail.test") as http:
        yield http
