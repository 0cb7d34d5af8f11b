"""Vitrail split into processes on the real RabbitMQ and PostgreSQL of this machine.

Each test starts ``vitrail serve --role ...`` subprocesses as docs/deploy.md
describes and checks what an operator would: the topology is complete although
a collector was SIGKILLed mid-round, every notification published while the
graph was down is applied exactly once, and nova notifications become instances.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from sqlalchemy import text

from tests.e2e.cluster import Cluster, RoleProcess, cluster, eventually
from tests.servers import RABBITMQ_URL, rabbitmq_stopped
from tests.upstream import FIXTURES
from vitrail.datasources.simulator import SimulatorShape
from vitrail.storage import create_engine

INSTANCE_CREATE = FIXTURES / "openstack" / "versioned" / "nova__instance-create-end.json"
#: nova-compute on host1 reports itself (enabled, not forced down), in oslo.messaging's envelope, as captured.
SERVICE_UPDATE = FIXTURES / "openstack" / "envelope" / "nova__versioned_notifications.info__service.update.json"
HOST = "host1"


def resource_counts(vitrail: Cluster, api: RoleProcess) -> dict[str, int]:
    answer = vitrail.api(api, "/v1/resources/count/", all_tenants="true", group_by="vitrage_type")
    return answer.json() if answer.status_code == 200 else {}


def ready(vitrail: Cluster, api: RoleProcess) -> bool:
    return vitrail.api(api, "/v1/status/").status_code == 200


# -- a collector dies mid-round ---------------------------------------------------------------


def test_a_collector_killed_mid_round_does_not_cost_a_single_entity(tmp_path: Path) -> None:
    shape = SimulatorShape(hosts=1000, instances_per_host=10, seed=7)
    settings = {
        "VITRAIL_DATASOURCES": "simulator",
        "VITRAIL_SIMULATOR__HOSTS": str(shape.hosts),
        "VITRAIL_SIMULATOR__INSTANCES_PER_HOST": str(shape.instances_per_host),
        "VITRAIL_SIMULATOR__SEED": str(shape.seed),
        # Small pages: the round takes long enough to be interrupted for sure.
        "VITRAIL_COLLECTOR__PAGE_SIZE": "20",
        "VITRAIL_GRAPH__ROUND_TIMEOUT": "4",
        "VITRAIL_GRAPH__RPC_TIMEOUT": "10",
    }
    with cluster(tmp_path, **settings) as vitrail:
        collectors = [vitrail.start("collector-1", "collector"), vitrail.start("collector-2", "collector")]
        api = vitrail.start("api", "api")  # answers 503 until the graph is there
        # Whichever collector the graph's first get_all reaches is killed as it starts publishing.
        kill_first_to_publish = KillFirstToPublish(collectors)
        vitrail.start("persistor", "persistor")
        graph = vitrail.start("graph", "graph")
        victim = kill_first_to_publish.wait()
        survivor = next(c for c in collectors if c is not victim)
        assert '"published"' not in victim.log()  # it died mid-round

        expected = {
            "openstack.cluster": 1,
            "nova.zone": shape.zones,
            "nova.host": shape.hosts,
            "nova.instance": shape.hosts * shape.instances_per_host,
        }
        eventually(
            lambda: ready(vitrail, api) and resource_counts(vitrail, api) == expected,
            90,
            "the complete topology",
            lambda: f"counts {resource_counts(vitrail, api)}\n--- graph\n{graph.log()[-4000:]}",
        )
        published = json.loads(survivor.wait_for(r'^\{.*"event": "published".*"call": "get_all".*$', 5).group(0))
        interrupted = json.loads(victim.wait_for(r'^\{.*"event": "publishing".*$', 1).group(0))
        if published["round"] == interrupted["round"]:
            pass  # the victim died before its answer left: RabbitMQ gave the call to the survivor
        else:  # the victim had answered: the graph saw the round never end and asked again
            assert "a get_all round never ended; asking again" in graph.log()
        services = vitrail.api(api, "/v1/service/").json()
        # Every process that answered: the API, the graph, and the collector(s) whose answer the graph took.
        assert {s["name"] for s in services} == {"vitrail-api", "vitrail-graph", "vitrail-collector"}
        collector_pids = {s["process"] for s in services if s["name"] == "vitrail-collector"}
        assert collector_pids <= {c.process.pid for c in collectors}


class KillFirstToPublish:
    """Watches collectors; SIGKILLs the first that starts publishing a round, at once."""

    def __init__(self, collectors: list[RoleProcess], timeout: float = 60.0) -> None:
        self.collectors = collectors
        self.timeout = timeout
        self.victim: RoleProcess | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        for role in collectors:
            threading.Thread(target=self._watch, args=(role,), daemon=True).start()

    def _watch(self, role: RoleProcess) -> None:
        try:
            role.wait_for(r'"publishing"', self.timeout)
        except AssertionError:
            return
        with self._lock:
            if self.victim is None:
                role.kill()
                self.victim = role
        self._done.set()

    def wait(self) -> RoleProcess:
        assert self._done.wait(self.timeout), "no collector published:\n" + "\n".join(c.log() for c in self.collectors)
        assert self.victim is not None
        return self.victim


# -- the graph stops while notifications keep coming ------------------------------------------


def nova_notification(index: int) -> bytes:
    """nova's real instance.create.end, for instance number ``index``, in oslo.messaging's envelope."""
    message = json.loads(INSTANCE_CREATE.read_text(encoding="utf-8"))
    data = message["payload"]["nova_object.data"]
    data["uuid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"vitrail-e2e/{index}"))
    data["display_name"] = f"vm-{index:04d}"
    data["host"] = HOST
    message.update(message_id=str(uuid.uuid4()), timestamp="2026-11-22 02:00:00.000000", _unique_id=uuid.uuid4().hex)
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(message)}).encode()


class NovaPublisher(threading.Thread):
    """Publishes ``count`` notifications to nova's exchange, ``rate`` per second, as nova would."""

    def __init__(self, exchange: str, count: int, rate: float, first: bytes | None = None) -> None:
        super().__init__(daemon=True, name="nova-publisher")
        self.exchange_name = exchange
        self.first = first
        self.count = count
        self.rate = rate
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as exc:  # reported by the test
            self.error = exc

    async def _publish(self) -> None:
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.TOPIC)
            if self.first is not None:
                message = aio_pika.Message(self.first, content_type="application/json")
                await exchange.publish(message, routing_key="versioned_notifications.info")
            for index in range(self.count):
                message = aio_pika.Message(nova_notification(index), content_type="application/json")
                await exchange.publish(message, routing_key="versioned_notifications.info")
                self.sent += 1
                await asyncio.sleep(1 / self.rate)


async def logged_nova_events(database_url: str) -> tuple[int, int, int, int]:
    """(nova events, distinct nova event ids, all events, highest sequence) in the event log."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            nova, distinct = (
                await connection.execute(
                    text("select count(*), count(distinct event_id) from events where datasource = 'nova'")
                )
            ).one()
            total, highest = (
                await connection.execute(text("select count(*), coalesce(max(sequence), 0) from events"))
            ).one()
    finally:
        await engine.dispose()
    return int(nova), int(distinct), int(total), int(highest)


def test_notifications_sent_while_the_graph_restarts_are_applied_exactly_once(tmp_path: Path) -> None:
    settings = {
        "VITRAIL_DATASOURCES": "simulator,nova",
        "VITRAIL_SIMULATOR__HOSTS": "5",
        "VITRAIL_SIMULATOR__INSTANCES_PER_HOST": "2",
    }
    count = 240
    with cluster(tmp_path, **settings) as vitrail:
        vitrail.start("collector", "collector")
        vitrail.start("persistor", "persistor")
        graph = vitrail.start("graph", "graph")
        api = vitrail.start("api", "api")
        vitrail.start("listener", "listener")
        eventually(lambda: ready(vitrail, api), 60, "the graph ready")

        publisher = NovaPublisher(vitrail.nova_exchange, count, rate=80)
        publisher.start()
        eventually(lambda: publisher.sent >= count // 4, 30, "a quarter of the notifications sent")
        assert graph.terminate() == 0, graph.log()[-4000:]
        stopped_at = publisher.sent
        eventually(lambda: publisher.sent >= stopped_at + count // 4, 30, "notifications sent while the graph is down")
        graph = vitrail.start("graph-again", "graph")
        publisher.join(60)
        assert publisher.error is None and publisher.sent == count

        def instances() -> int:
            return resource_counts(vitrail, api).get("nova.instance", 0)

        # Every notified instance, plus the simulator's ten.
        eventually(lambda: instances() == count + 10, 60, "every notified instance", lambda: graph.log()[-4000:])
        assert "graph restored from the event log" in graph.log()
        graph.terminate()  # flush the event log before reading it
        nova, distinct, total, highest = asyncio.run(logged_nova_events(vitrail.database_url))
        assert (nova, distinct) == (count, count)  # each notification applied once: none lost, none twice
        assert highest == total  # one sequence, no gap, across the restart


def test_nova_notifications_become_instances_on_their_host(tmp_path: Path) -> None:
    with cluster(tmp_path, VITRAIL_DATASOURCES="nova") as vitrail:
        vitrail.start("persistor", "persistor")
        graph = vitrail.start("graph", "graph")
        api = vitrail.start("api", "api")
        vitrail.start("listener", "listener")
        eventually(lambda: ready(vitrail, api), 60, "the graph ready")
        publisher = NovaPublisher(vitrail.nova_exchange, 3, rate=100, first=SERVICE_UPDATE.read_bytes())
        publisher.run()
        assert publisher.error is None

        def instances() -> list[dict[str, Any]]:
            answer = vitrail.api(api, "/v1/resources/", all_tenants="true", resource_type="nova.instance")
            return answer.json() if answer.status_code == 200 else []

        eventually(lambda: len(instances()) == 3, 30, "three instances", lambda: graph.log()[-4000:])
        found = instances()
        assert sorted(i["name"] for i in found) == ["vm-0000", "vm-0001", "vm-0002"]
        assert {i["state"] for i in found} == {"ACTIVE"}
        assert {i["vitrage_datasource_name"] for i in found} == {"nova"}
        topology = vitrail.api(api, "/v1/topology/", all_tenants="true").json()
        host = next(n for n in topology["nodes"] if n["vitrage_type"] == "nova.host")
        assert (host["id"], host["state"], host["vitrage_datasource_name"]) == (HOST, "available", "nova")
        nodes = topology["nodes"]
        contained = {
            nodes[link["target"]]["name"]
            for link in topology["links"]
            if link["relationship_type"] == "contains" and nodes[link["source"]] is host
        }
        assert contained == {"vm-0000", "vm-0001", "vm-0002"}


# -- RabbitMQ restarts under a running deployment ----------------------------------------------


def test_every_role_reconnects_after_a_broker_restart(tmp_path: Path) -> None:
    settings = {
        "VITRAIL_DATASOURCES": "simulator,doctor,nova",
        "VITRAIL_SIMULATOR__HOSTS": "3",
        "VITRAIL_SIMULATOR__INSTANCES_PER_HOST": "2",
        "VITRAIL_GRAPH__GET_ALL_INTERVAL": "2",  # rounds keep asking the collector
    }
    with cluster(tmp_path, **settings) as vitrail:
        collector = vitrail.start("collector", "collector")
        vitrail.start("persistor", "persistor")
        graph = vitrail.start("graph", "graph")
        api = vitrail.start("api", "api")
        listener = vitrail.start("listener", "listener")
        eventually(lambda: ready(vitrail, api), 60, "the graph ready")
        marks = {role.name: len(role.lines) for role in (collector, graph, api, listener)}

        with rabbitmq_stopped():
            eventually(lambda: not ready(vitrail, api), 20, "the API noticing the graph is unreachable")
        # Every role is back without a restart of its own:
        # the collector answers the graph's next rounds,
        rounds_before = collector.log().count('"event": "published"')
        eventually(
            lambda: collector.log().count('"event": "published"') > rounds_before,
            60,
            "a get_all round after the restart",
            lambda: collector.log()[-3000:] + graph.log()[-3000:],
        )
        # the API asks the graph again and publishes what is posted to it,
        eventually(lambda: ready(vitrail, api), 60, "the API answering again", lambda: api.log()[-3000:])
        posted = httpx.post(
            f"{api.url}/v1/event",
            json={
                "type": "compute.host.down",
                "time": "2026-11-22T03:00:00Z",
                "details": {"hostname": "host-00001", "source": "e2e", "status": "down", "severity": "critical"},
            },
            timeout=30,
        )
        assert posted.status_code in (200, 204), posted.text

        def host_alarms() -> list[str]:
            answer = vitrail.api(api, "/v1/alarm/", vitrage_id="all", all_tenants="true")
            found = answer.json() if answer.status_code == 200 else []
            return [a["vitrage_resource_name"] for a in found if a.get("vitrage_resource_type") == "nova.host"]

        eventually(lambda: host_alarms() == ["host-00001"], 30, "the posted alarm in the graph")
        # and the listener takes nova's notifications again (its queue rebound to nova's exchange,
        # which the restart removed: oslo.messaging declares it non-durable).
        eventually(
            lambda: "".join(listener.lines[marks["listener"] :]).count('"reconnected to RabbitMQ"') >= 3,
            60,
            "the listener's three connections back (two to the bus, one to nova's broker)",
            lambda: listener.log()[-3000:],
        )
        publisher = NovaPublisher(vitrail.nova_exchange, 1, rate=100)
        publisher.run()
        assert publisher.error is None
        eventually(
            lambda: resource_counts(vitrail, api).get("nova.instance", 0) == 3 * 2 + 1,
            30,
            "the notified instance",
            lambda: listener.log()[-3000:],
        )
        for role in (collector, graph, api, listener):
            assert role.process.poll() is None, f"{role.name} exited:\n{role.log()[-3000:]}"
            # aio-pika logs its reconnection attempts as errors; Vitrail itself has nothing to complain of.
            complaints = [line for line in _log_records(role.lines[marks[role.name] :]) if _vitrail_error(line)]
            assert complaints == [], f"{role.name}: {complaints}"


def _log_records(lines: list[str]) -> list[dict[str, Any]]:
    records = []
    for line in lines:
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def _vitrail_error(record: dict[str, Any]) -> bool:
    return str(record.get("logger", "")).startswith("vitrail") and record.get("level") in ("error", "critical")
