"""The monitor's conductor over the bus's RPC: fenced status writes, target pages, bad parameters.

Runs on the in-process bus and on RabbitMQ (two conductors behind one queue,
one of them stopped half-way: the other answers), with a real SQLite store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.bus.conftest import rabbit_namespace
from vitrail.bus import InProcessBus
from vitrail.bus.base import EventBus, RpcError
from vitrail.monitor.targets import TargetDraft
from vitrail.services.conductor import Conductor, RemoteConductor, conductor_handler
from vitrail.services.topics import CONDUCTOR_SERVICE
from vitrail.storage import TargetStore, create_engine, upgrade


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TargetStore]:
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    await upgrade(engine)
    yield TargetStore(engine)
    await engine.dispose()


@pytest.fixture(params=["memory", "rabbitmq"])
async def buses(request: pytest.FixtureRequest) -> AsyncIterator[tuple[EventBus, EventBus, EventBus]]:
    """(a worker's bus, conductor one's, conductor two's)."""
    if request.param == "memory":
        bus = InProcessBus()
        await bus.connect()
        yield bus, bus, bus
        await bus.close()
        return
    async with rabbit_namespace() as namespace:
        yield await namespace(), await namespace(), await namespace()


async def test_a_stale_assignment_is_told_bad_action_and_stores_nothing(
    store: TargetStore, buses: tuple[EventBus, EventBus, EventBus]
) -> None:
    worker_bus, one, two = buses
    servers = [await bus.serve(CONDUCTOR_SERVICE, conductor_handler(Conductor(store))) for bus in (one, two)]
    conductor = RemoteConductor(worker_bus, within=10.0)
    target = await store.add(TargetDraft(name="ssh", kind="tcp", address="127.0.0.1:22"))

    (assigned,) = await conductor.targets()
    assert (assigned["id"], assigned["action_id"], assigned["address"]) == (target.id, 1, "127.0.0.1:22")
    assert await conductor.update_target(target.id, "unreachable", 1, "connection refused") == "ok"
    stored = await store.get(target.id)
    assert stored is not None and (stored.status, stored.detail) == ("unreachable", "connection refused")

    await store.update(target.id, {"address": "127.0.0.1:2222"})  # the old probe is now stale
    await servers[0].stop()  # and one conductor goes away: the other answers
    assert await conductor.update_target(target.id, "reachable", 1) == "bad_action"
    stored = await store.get(target.id)
    assert stored is not None and stored.status == "unknown" and stored.action_id == 2
    assert await conductor.update_target(target.id, "reachable", 2) == "ok"

    await store.delete(target.id)
    assert await conductor.update_target(target.id, "unreachable", 2) == "bad_action"
    assert await conductor.update_target(target.id, "unreachable", 3) == "bad_action"  # deleted: never current
    assert await conductor.update_target("no-such-target", "reachable", 1) == "not_found"
    assert await conductor.targets() == []
    await servers[1].stop()


async def test_pages_and_bad_parameters_name_the_field(store: TargetStore) -> None:
    bus = InProcessBus()
    await bus.connect()
    await bus.serve(CONDUCTOR_SERVICE, conductor_handler(Conductor(store)))
    ids = [(await store.add(TargetDraft(name=f"t{n}", kind="tcp", address=f"127.0.0.1:{n + 1}"))).id for n in range(5)]
    conductor = RemoteConductor(bus)
    first = await conductor.targets(limit=2)
    rest = await conductor.targets(limit=10, marker=first[-1]["id"])
    assert [t["id"] for t in first + rest] == ids
    cases = [
        ("update_target", {"target_id": "", "status": "reachable", "action_id": 1}, "target_id"),
        ("update_target", {"target_id": ids[0], "status": "fine", "action_id": 1}, "status"),
        ("update_target", {"target_id": ids[0], "status": "reachable", "action_id": True}, "action_id"),
        ("update_target", {"target_id": ids[0], "status": "reachable", "action_id": 1, "at": "soon"}, "at"),
        ("targets", {"limit": 0}, "limit"),
        ("targets", {"marker": "nope"}, "marker"),
        ("reboot", {}, "unknown method"),
    ]
    for method, params, word in cases:
        with pytest.raises(RpcError) as raised:
            await bus.call(CONDUCTOR_SERVICE, method, params, within=5)
        assert raised.value.kind == "bad_request" and word in str(raised.value)
    assert (await bus.call(CONDUCTOR_SERVICE, "ping", {}))["name"] == "vitrail-conductor"
    await bus.close()


async def test_a_status_change_is_stored_then_published_for_the_graph(store: TargetStore) -> None:
    published: list = []

    async def publish(events: list) -> None:
        published.extend(events)

    conductor = Conductor(store, publish)
    target = await store.add(TargetDraft(name="web", kind="http", address="http://127.0.0.1:8080/"))
    assert await conductor.update_target(target.id, "unreachable", 1, "refused") == "ok"
    assert await conductor.update_target(target.id, "unreachable", 1, "refused again") == "ok"  # no change
    assert await conductor.update_target(target.id, "reachable", 7) == "bad_action"  # stale: nothing
    assert await conductor.update_target(target.id, "reachable", 1) == "ok"
    assert [(e.datasource, e.payload["status"], e.payload["target_id"]) for e in published] == [
        ("monitor", "unreachable", target.id),
        ("monitor", "reachable", target.id),
    ]
    assert published[0].payload["detail"] == "refused" and published[0].event_id != published[1].event_id
