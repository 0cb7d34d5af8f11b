"""Templates through the API, on a real SQLite template store and a real graph service."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import SHAPE
from tests.api.test_api import assert_error
from vitrail.api.app import create_app
from vitrail.bus import InProcessBus
from vitrail.config import GraphSettings
from vitrail.datasources.doctor import DoctorDriver
from vitrail.datasources.simulator import SimulatorDriver
from vitrail.datasources.state_tables import load_state_table
from vitrail.evaluator import templates as language
from vitrail.evaluator.engine import Evaluator
from vitrail.graph.events import Event
from vitrail.graph.processor import Processor
from vitrail.services.collector import Collector
from vitrail.services.graph import GraphService
from vitrail.services.local_backend import LocalGraphBackend
from vitrail.services.templates import TemplateService
from vitrail.storage import TemplateStore, create_engine, upgrade

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "templates"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    engine = create_engine(f"sqlite:///{tmp_path / 'vitrail.db'}")
    await upgrade(engine)
    simulator = SimulatorDriver(SHAPE)
    states = load_state_table()
    processor = Processor({"simulator": simulator.transformer(), "doctor": DoctorDriver().transformer()}, states)
    processor.attach(Evaluator(processor.graph, states, language.parse_for_evaluator))
    processor.process_many(simulator.round_events(simulator.get_all(), 1, "2026-11-22 00:00:00.000000+00:00"))
    bus = InProcessBus()
    holder: dict[str, Any] = {}

    async def publish(events: list[Event]) -> None:
        await holder["service"].apply(events)

    templates = TemplateService(TemplateStore(engine), publish)
    service = GraphService(processor, bus, Collector({}, bus), [], [], GraphSettings(), None, templates.applied)
    service.ready.set()
    holder["service"] = service
    app = create_app(LocalGraphBackend(service, ["api", "graph"], publish=publish))
    app.state.templates = templates
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://vitrail.test") as http:
        yield http
    await engine.dispose()


def body(*names: str, **extra: Any) -> dict[str, Any]:
    """Templates as python-vitrageclient sends them: [path, document with string scalars]."""
    templates = []
    for name in names:
        path = EXAMPLES / name
        templates.append([str(path), language.validate(path.read_text()).document])
    return {"templates": templates, "template_type": None, "params": {}, **extra}


async def test_validate_reports_vitrage_codes_and_every_problem(client: httpx.AsyncClient) -> None:
    good = (await client.post("/v1/template/", json=body("host_down.yaml", "switch_down.yaml"))).json()["results"]
    assert [r["status code"] for r in good] == [0, 0]
    assert {r["status"] for r in good} == {"validation OK"}
    broken = (EXAMPLES / "host_down.yaml").read_text().replace("host_down_alarm [on] host AND", "ghost [on] host AND")
    broken = broken.replace("severity: CRITICAL", "")
    response = await client.post("/v1/template/", json={"templates": [["bad.yaml", broken]], "params": {}})
    (result,) = response.json()["results"]
    assert result["status"] == "validation failed"
    assert isinstance(result["status code"], int) and result["status code"] != 0
    assert len(result["problems"]) >= 2  # every problem, not only the first
    assert all(p["line"] for p in result["problems"])  # sent as text: lines are known


async def test_add_activate_evaluate_and_delete(client: httpx.AsyncClient) -> None:
    added = (await client.put("/v1/template/", json=body("host_down.yaml"))).json()
    (row,) = added
    assert row["name"] == "host_down" and row["status"] == "LOADING"
    listed = (await client.get("/v1/template/")).json()
    assert [(t["name"], t["status"]) for t in listed] == [("host_down", "ACTIVE")]
    shown = (await client.get(f"/v1/template/{row['uuid']}")).json()
    assert shown["metadata"]["name"] == "host_down"
    assert (await client.get("/v1/template/host_down")).json() == shown
    event = {"type": "compute.host.down", "details": {"hostname": "host-00001", "status": "down"}}
    await client.post("/v1/event/", json=event)
    alarms = (await client.get("/v1/alarm/")).json()
    counts = Counter(a["name"] for a in alarms)
    # 2 instances on the failed-over host; SHAPE's failed host (state ERROR) has 2 more
    assert counts == {"compute.host.down": 1, "Instance down": 2, "Host in error": 2}
    assert (await client.request("DELETE", "/v1/template/", json={"id": ["host_down"]})).json() is None
    assert (await client.get("/v1/template/")).json() == []
    assert [a["name"] for a in (await client.get("/v1/alarm/")).json()] == ["compute.host.down"]
    assert_error(await client.get("/v1/template/host_down"), 404, "host_down")
    # the name is free again
    assert (await client.put("/v1/template/", json=body("host_down.yaml"))).status_code == 200


async def test_add_refuses_invalid_duplicate_and_unknown(client: httpx.AsyncClient) -> None:
    broken = (EXAMPLES / "switch_down.yaml").read_text().replace("condition:", "kondition:", 1)
    response = await client.put("/v1/template/", json={"templates": [["bad.yaml", broken]], "params": {}})
    assert_error(response, 400, "bad.yaml")
    assert (await client.get("/v1/template/")).json() == []
    assert (await client.put("/v1/template/", json=body("switch_down.yaml"))).status_code == 200
    assert_error(await client.put("/v1/template/", json=body("switch_down.yaml")), 409, "switch_down")
    replaced = await client.put("/v1/template/", json=body("switch_down.yaml", overwrite=True))
    assert replaced.status_code == 200
    assert [t["name"] for t in (await client.get("/v1/template/")).json()] == ["switch_down"]
    assert_error(await client.request("DELETE", "/v1/template/", json={"id": ["nope"]}), 404, "nope")
    assert_error(await client.request("DELETE", "/v1/template/", json={}), 422, "id")


async def test_versions(client: httpx.AsyncClient) -> None:
    versions = (await client.get("/v1/template/versions")).json()
    assert {"version": "v3", "status": "CURRENT"} in versions
