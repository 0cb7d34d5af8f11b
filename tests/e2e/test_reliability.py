"""Vitrail under faults: the database stops, the broker restarts, garbage arrives, a persistor dies.

Items (b) to (e) of the durability issue. Each test runs real ``vitrail serve --role ...``
processes on this machine's RabbitMQ and a fresh PostgreSQL database, drives a steady load
of nova notifications, injects one fault while the load runs, and then checks against the
ground truth: every notification carries its own ``message_id`` and becomes the event
``nova/<message_id>``, so

* the event log holds each of those events exactly once, numbered 1..N without a gap;
* the graph shows every notified instance;
* consumption resumed: every queue of the deployment drained to 0 (nothing lost on the
  bus, nothing unacked, nothing requeued forever);
* the fault left log lines that say what happened and what Vitrail did about it.

Two tests pin bugs found while writing them: persistors running active-active used to
livelock when their batches interleaved, and a graph leader that stepped down kept the
inputs its RabbitMQ consumers had prefetched, so a successor in another process never
got them.

(b) stops the PostgreSQL server of this machine for 20 s: run it while no other suite
uses that server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import re
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import orjson
import pytest
from sqlalchemy import text

from tests.e2e.cluster import Cluster, RoleProcess, cluster, eventually
from tests.servers import POSTGRESQL, RABBITMQ_URL, rabbitmq_stopped
from tests.upstream import FIXTURES
from vitrail.datasources.nova import read_notification
from vitrail.services.topics import PRIORITY_EVENTS, PROCESSED_EVENTS, encode
from vitrail.storage import create_engine

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

INSTANCE_CREATE = FIXTURES / "openstack" / "versioned" / "nova__instance-create-end.json"
ROUTING_KEY = "versioned_notifications.info"
HOST = "host1"
NOVA_ONLY = {"VITRAIL_DATASOURCES": "nova"}


# -- the load: nova notifications, each with its own message id -------------------------------


def message_id(tag: str, index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"vitrail-reliability/{tag}/message/{index}"))


@functools.cache
def _instance_create() -> dict[str, Any]:
    return json.loads(INSTANCE_CREATE.read_text(encoding="utf-8"))


def notification(tag: str, index: int) -> bytes:
    """nova's real instance.create.end for instance ``<tag>-<index>``, in oslo.messaging's envelope."""
    message = json.loads(json.dumps(_instance_create()))
    data = message["payload"]["nova_object.data"]
    data["uuid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"vitrail-reliability/{tag}/instance/{index}"))
    data["display_name"] = f"{tag}-{index:04d}"
    data["host"] = HOST
    message.update(
        message_id=message_id(tag, index), timestamp="2026-11-22 02:00:00.000000", _unique_id=uuid.uuid4().hex
    )
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(message)}).encode()


class Notifier(threading.Thread):
    """nova publishing ``count`` instance.create.end notifications, ``rate`` per second.

    As oslo.messaging with durable notifications would: persistent messages, sent
    ``mandatory`` on a channel with publisher confirms. One the broker did not confirm, or
    could not route to a queue (it is down, or the listener's binding is not back yet after a
    restart), is sent again with the same message id, so that each notification reaches the
    listener's queue at least once: that is the ground truth the tests check Vitrail against.
    """

    def __init__(self, exchange: str, count: int, rate: float, tag: str = "vm", within: float = 180.0) -> None:
        super().__init__(daemon=True, name=f"notifier-{tag}")
        self.exchange_name = exchange
        self.count = count
        self.rate = rate
        self.tag = tag
        self.within = within
        self.sent = 0
        """Notifications the broker confirmed (and routed), in order."""
        self.failures: list[str] = []
        """Attempts that failed and were made again (a broker outage)."""
        self.error: BaseException | None = None

    @property
    def event_ids(self) -> set[str]:
        return {f"nova/{message_id(self.tag, index)}" for index in range(self.count)}

    @property
    def instance_names(self) -> set[str]:
        return {f"{self.tag}-{index:04d}" for index in range(self.count)}

    def run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as exc:  # reported by the test
            self.error = exc

    async def _publish(self) -> None:
        deadline = time.monotonic() + self.within
        while self.sent < self.count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.sent} of {self.count} notifications confirmed in {self.within} s")
            try:
                async with asyncio.timeout(10):
                    connection = await aio_pika.connect(RABBITMQ_URL, timeout=5)
            except Exception as exc:
                self.failures.append(f"connect: {exc!r}")
                await asyncio.sleep(0.5)
                continue
            try:
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                # Declared as oslo.messaging does (not durable): a broker restart removes it.
                exchange = await channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.TOPIC)
                while self.sent < self.count:
                    message = aio_pika.Message(
                        notification(self.tag, self.sent),
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=message_id(self.tag, self.sent),
                    )
                    await exchange.publish(message, routing_key=ROUTING_KEY, mandatory=True, timeout=10)
                    self.sent += 1
                    await asyncio.sleep(1 / self.rate)
            except Exception as exc:
                self.failures.append(f"publish #{self.sent}: {exc!r}")
                await asyncio.sleep(0.3)
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        await connection.close()

    def finish(self, timeout: float = 120.0) -> None:
        """Wait until every notification is confirmed; fail with the reason otherwise."""
        self.join(timeout)
        assert not self.is_alive(), f"the notifier is still publishing: {self.sent} of {self.count} sent"
        assert self.error is None, f"the notifier failed: {self.error!r} (failures: {self.failures[-5:]})"
        assert self.sent == self.count


async def _publish_raw(exchange_name: str, routing_key: str, bodies: list[tuple[bytes, str | None]]) -> None:
    """Publish ``bodies`` (bytes, content type) as they are, confirmed, to an existing exchange."""
    connection = await aio_pika.connect(RABBITMQ_URL, timeout=5)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(exchange_name, ensure=False)
        for body, content_type in bodies:
            message = aio_pika.Message(body, content_type=content_type, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await exchange.publish(message, routing_key=routing_key, mandatory=True, timeout=10)


def publish_raw(exchange_name: str, routing_key: str, *bodies: tuple[bytes, str | None]) -> None:
    asyncio.run(_publish_raw(exchange_name, routing_key, list(bodies)))


# -- the ground truth: the event log, the graph and the queues ---------------------------------


@dataclass(frozen=True)
class Stored:
    """What the database holds at the end of a test."""

    rows: list[tuple[int, str, str]]
    """(sequence, event id, datasource) of every logged event, by sequence."""
    dead_letters: list[tuple[int, str, str, str | None, bytes]]
    """(id, source, reason, content type, body) of every dead letter, by id."""
    epoch: int | None
    """The graph's leadership epoch: how many takeovers there were."""


async def _read_database(database_url: str) -> Stored:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(text("select sequence, event_id, datasource from events order by sequence"))
            ).all()
            letters = (
                await connection.execute(
                    text("select id, source, reason, content_type, body from dead_letters order by id")
                )
            ).all()
            epoch = await connection.scalar(text("select epoch from leadership where name = 'graph'"))
    finally:
        await engine.dispose()
    return Stored(
        [(int(s), str(e), str(d)) for s, e, d in rows],
        [(int(i), str(s), str(r), c, bytes(b)) for i, s, r, c, b in letters],
        None if epoch is None else int(epoch),
    )


def read_database(vitrail: Cluster) -> Stored:
    return asyncio.run(_read_database(vitrail.database_url))


def logged_events(vitrail: Cluster) -> int:
    async def count() -> int:
        engine = create_engine(vitrail.database_url)
        try:
            async with engine.connect() as connection:
                return int(await connection.scalar(text("select count(*) from events")) or 0)
        finally:
            await engine.dispose()

    return asyncio.run(count())


def assert_exactly_once(stored: Stored, expected_ids: set[str]) -> None:
    """Each expected event once in the log, nothing else from nova, and sequences 1..N without a gap."""
    sequences = [sequence for sequence, _, _ in stored.rows]
    if sequences != list(range(1, len(sequences) + 1)):
        holes = sorted(set(range(1, max(sequences, default=0) + 1)) - set(sequences))
        raise AssertionError(f"the event log has holes at {holes[:20]} ({len(holes)} in all)")
    nova = Counter(event_id for _, event_id, datasource in stored.rows if datasource == "nova")
    twice = {event_id: n for event_id, n in nova.items() if n > 1}
    missing = expected_ids - set(nova)
    unexpected = set(nova) - expected_ids
    assert not twice, f"events logged more than once: {list(twice.items())[:5]}"
    assert not missing, f"{len(missing)} of {len(expected_ids)} events lost, e.g. {sorted(missing)[:5]}"
    assert not unexpected, f"events nobody sent: {sorted(unexpected)[:5]}"
    others = Counter(datasource for _, _, datasource in stored.rows if datasource != "nova")
    assert not others, f"events of other datasources (tombstones?): {dict(others)}"
    # As logged_nova_events of test_distributed counts it: count, distinct ids, highest sequence.
    assert len(nova) == sum(nova.values()) == len(expected_ids) == len(stored.rows) == max(sequences)


def instance_names(vitrail: Cluster, api: RoleProcess) -> set[str]:
    try:
        answer = vitrail.api(api, "/v1/resources/", all_tenants="true", resource_type="nova.instance")
    except httpx.HTTPError:
        return set()
    return {r["name"] for r in answer.json()} if answer.status_code == 200 else set()


def ready(vitrail: Cluster, api: RoleProcess) -> bool:
    try:
        return vitrail.api(api, "/v1/status/").status_code == 200
    except httpx.HTTPError:
        return False


def queue_depths(vitrail: Cluster) -> dict[str, tuple[int, int]]:
    """(ready, unacked) messages of every queue of this deployment, on the broker."""
    done = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    depths = {}
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) != 3:
            continue
        name, ready_count, unacked = fields
        if name.startswith(f"{vitrail.prefix}.") or name == vitrail.listener_queue:
            depths[name] = (int(ready_count), int(unacked))
    return depths


def drained(vitrail: Cluster) -> bool:
    depths = queue_depths(vitrail)
    return bool(depths) and all(depth == (0, 0) for depth in depths.values())


def wait_until_drained(vitrail: Cluster, timeout: float, *roles: RoleProcess) -> None:
    eventually(
        lambda: drained(vitrail),
        timeout,
        "every queue drained (all inputs applied, stored and acked)",
        lambda: f"queues {queue_depths(vitrail)}\n" + "\n".join(f"--- {r.name}\n{r.log()[-2500:]}" for r in roles),
    )


# -- logs and metrics of the processes ----------------------------------------------------------


def records(role: RoleProcess, after: int = 0) -> list[dict[str, Any]]:
    found = []
    for line in role.lines[after:]:
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


def said(role: RoleProcess, message: str, after: int = 0, timeout: float = 30.0) -> dict[str, Any]:
    """The first record from line ``after`` on whose message starts with ``message`` (waits for it)."""
    line = role.wait_for(r'"event": "' + re.escape(message), timeout, after).string
    return json.loads(line)


def metric(role: RoleProcess, name: str) -> float | None:
    """A sample of ``name`` on the process's own metrics server (``metrics_port`` 0: a free port)."""
    url = json.loads(role.wait_for(r'"event": "metrics served"', 5).string)["url"]
    try:
        exposition = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return None
    match = re.search(rf"^{re.escape(name)} (\S+)$", exposition, re.MULTILINE)
    return None if match is None else float(match.group(1))


@contextlib.contextmanager
def killed_on_failure(vitrail: Cluster) -> Any:
    """SIGKILL every process when the block fails: a graph whose events are never stored would
    spend 15 s trying to flush them on its way out (for the tests that fail on a known bug)."""
    try:
        yield
    except AssertionError:
        for role in vitrail.processes:
            role.kill()
        raise


def alive(*roles: RoleProcess) -> None:
    for role in roles:
        assert role.process.poll() is None, f"{role.name} exited:\n{role.log()[-4000:]}"


def start_nova_deployment(vitrail: Cluster) -> tuple[RoleProcess, RoleProcess, RoleProcess, RoleProcess]:
    """A persistor, the graph, the API and the listener; returns once the graph answers."""
    persistor = vitrail.start("persistor", "persistor")
    graph = vitrail.start("graph", "graph")
    api = vitrail.start("api", "api")
    listener = vitrail.start("listener", "listener")
    eventually(lambda: ready(vitrail, api), 60, "the graph ready", lambda: graph.log()[-3000:])
    return persistor, graph, api, listener


# -- (b) PostgreSQL stops for 20 s ----------------------------------------------------------------


def _pg_ctlcluster(action: str) -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action]
    if action == "stop":
        command += ["-m", "fast"]  # as a server shutdown or failover does: sessions are ended
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")


def postgresql_accepts() -> bool:
    done = subprocess.run(
        ["pg_isready", "-q", "-h", POSTGRESQL.host, "-p", str(POSTGRESQL.port)], timeout=30, check=False
    )
    return done.returncode == 0


@contextlib.contextmanager
def postgresql_stopped() -> Any:
    """PostgreSQL really stopped for the block; started again whatever happens, and accepting
    connections before the block is left (the rest of the suite needs it)."""
    try:
        _pg_ctlcluster("stop")
        yield
    finally:
        for attempt in range(3):
            try:
                _pg_ctlcluster("start")
                break
            except (RuntimeError, subprocess.TimeoutExpired):
                if postgresql_accepts():
                    break
                if attempt == 2:
                    pytest.fail(f"PostgreSQL did not start again; run: {POSTGRESQL.start_command}")
                time.sleep(1)
        deadline = time.monotonic() + 60
        while not postgresql_accepts():
            if time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL does not accept connections again; run: {POSTGRESQL.start_command}")
            time.sleep(0.2)


def test_postgresql_stopped_for_20_s_under_load(tmp_path: Path) -> None:
    outage = 20.0
    settings = {
        **NOVA_ONLY,
        "VITRAIL_METRICS_PORT": "0",
        # Under this load the persistor is always gathering a batch (it writes every 0.3 s), so
        # one is sure to meet the outage: with the default 0.05 s the graph could step down
        # before any write reached the stopped database, and nothing would pause.
        "VITRAIL_PERSISTOR__BATCH_TIMEOUT": "0.3",
    }
    with cluster(tmp_path, **settings) as vitrail:
        persistor, graph, api, listener = start_nova_deployment(vitrail)
        notifier = Notifier(vitrail.nova_exchange, count=900, rate=25)  # 36 s of load
        notifier.start()
        eventually(lambda: logged_events(vitrail) >= 50, 30, "the load reaching the event log")
        marks = {role.name: len(role.lines) for role in (persistor, graph)}

        with postgresql_stopped():
            stopped_at = time.monotonic()
            sent_at_stop = notifier.sent
            # The persistor: the batch goes back to the bus, consumption pauses.
            refused = said(
                persistor,
                "the database did not take a batch; it goes back to the bus and consumption pauses",
                marks["persistor"],
                timeout=15,
            )
            assert refused["events"] >= 1 and refused["error"], refused
            eventually(lambda: metric(persistor, "vitrail_persistor_paused") == 1, 10, "vitrail_persistor_paused 1")
            # The graph leader: its lock's session ended with the server, it steps down and waits.
            lost = said(graph, "lost the leader lock: this process is no longer the leader", marks["graph"], 15)
            steps_down = said(graph, "the graph leader steps down", marks["graph"], 15)
            assert steps_down["reason"] == "its database lock was lost" and steps_down["epoch"] == 1, steps_down
            said(graph, "cannot reach the database of the leader lock; retrying", marks["graph"], 15)
            eventually(lambda: metric(graph, "vitrail_graph_leader") == 0, 10, "vitrail_graph_leader 0")
            time.sleep(max(0.0, outage - 2 - (time.monotonic() - stopped_at)))
            # Back-pressure: what nova sent meanwhile waits on the bus, unacked or not taken.
            depths = queue_depths(vitrail)
            waiting = sum(sum(depths.get(q, (0, 0))) for q in (f"{vitrail.prefix}.{PRIORITY_EVENTS}.graph",))
            assert notifier.sent > sent_at_stop + 100, "the load went on during the outage"
            assert waiting > 0, f"inputs wait on the bus while the database is down: {depths}"
            time.sleep(max(0.0, outage - (time.monotonic() - stopped_at)))
        restarted_after = time.monotonic() - stopped_at

        resumed = said(persistor, "the database answers again; consumption resumed", marks["persistor"], 30)
        said(graph, "the database of the leader lock answers again", marks["graph"], 30)
        leader = said(graph, "this process is the graph leader", marks["graph"], 30)
        assert leader["epoch"] == 2, leader  # a takeover: the epoch fences what the first one left behind
        notifier.finish()
        eventually(
            lambda: instance_names(vitrail, api) == notifier.instance_names,
            60,
            "every notified instance in the graph",
            lambda: f"{len(instance_names(vitrail, api))} instances\n{graph.log()[-3000:]}",
        )
        wait_until_drained(vitrail, 60, graph, persistor)
        stored = read_database(vitrail)
        assert_exactly_once(stored, notifier.event_ids)
        assert stored.dead_letters == []
        assert stored.epoch == 2
        assert metric(persistor, "vitrail_persistor_paused") == 0
        assert metric(graph, "vitrail_graph_leader") == 1
        alive(persistor, graph, api, listener)
        print(
            f"\nPostgreSQL down {restarted_after:.1f} s; persistor paused {resumed['paused_s']} s; "
            f"lock lost: {lost['reason']}; takeover in {leader['seconds']} s (replayed {leader['replayed']}); "
            f"{len(stored.rows)} events logged"
        )


# -- (b, with a standby) the database ends the leader's session; another process takes over ----------


async def _end_lock_sessions(database_url: str, role: RoleProcess) -> int:
    """End the leader-lock session of ``role`` (held or polling), as ``docs/ha.md`` tells an
    operator to move the leadership; returns how many sessions were ended."""
    name = f"vitrail-leader graph {socket.gethostname()}:{role.process.pid}"[:63]
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            ended = await connection.execute(
                text(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where application_name = :name and datname = current_database()"
                ),
                {"name": name},
            )
            return len(ended.all())
    finally:
        await engine.dispose()


def test_a_leader_that_steps_down_leaves_every_input_to_its_successor(tmp_path: Path) -> None:
    """The database ends the leader's lock session (an outage, a failover, an operator) while a
    standby runs: the standby takes over, and gets every input the former leader did not store."""
    with cluster(tmp_path, **NOVA_ONLY, VITRAIL_METRICS_PORT="0") as vitrail, killed_on_failure(vitrail):
        persistor, first, api, listener = start_nova_deployment(vitrail)
        second = vitrail.start("graph-2", "graph")
        said(second, "another process holds the leader lock: waiting as a standby", timeout=10)
        notifier = Notifier(vitrail.nova_exchange, count=450, rate=30)  # 15 s of load
        notifier.start()
        eventually(lambda: logged_events(vitrail) >= 50, 30, "the load reaching the event log")
        mark = len(first.lines)

        def handed_over() -> bool:
            if metric(second, "vitrail_graph_leader") == 1:
                return True
            asyncio.run(_end_lock_sessions(vitrail.database_url, first))  # until the standby wins the race
            time.sleep(0.5)
            return False

        eventually(handed_over, 30, "the standby taking over", lambda: second.log()[-3000:])
        said(first, "the graph leader steps down", mark, timeout=10)
        assert said(second, "this process is the graph leader")["epoch"] >= 2
        notifier.finish()
        eventually(
            lambda: instance_names(vitrail, api) == notifier.instance_names,
            20,
            "every notified instance in the new leader's graph",
            lambda: (
                f"{len(instance_names(vitrail, api))} of {notifier.count} instances; queues {queue_depths(vitrail)}"
            ),
        )
        wait_until_drained(vitrail, 30, first, second)
        stored = read_database(vitrail)
        assert_exactly_once(stored, notifier.event_ids)
        assert stored.dead_letters == []
        alive(persistor, first, second, api, listener)


# -- (c) RabbitMQ restarts ---------------------------------------------------------------------------


def test_a_rabbitmq_restart_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    with cluster(tmp_path, **NOVA_ONLY) as vitrail:
        persistor, graph, api, listener = start_nova_deployment(vitrail)
        notifier = Notifier(vitrail.nova_exchange, count=600, rate=30)  # 20 s of load
        notifier.start()
        eventually(lambda: logged_events(vitrail) >= 50, 30, "the load reaching the event log")
        marks = {role.name: len(role.lines) for role in (persistor, graph, api, listener)}
        sent_before = notifier.sent

        with rabbitmq_stopped():
            eventually(lambda: bool(notifier.failures), 15, "nova noticing the broker is down")
            time.sleep(2)
        notifier.finish()
        assert notifier.sent > sent_before + 100  # the load went on after the restart

        eventually(
            lambda: instance_names(vitrail, api) == notifier.instance_names,
            60,
            "every notified instance in the graph",
            lambda: f"{len(instance_names(vitrail, api))} instances\n{graph.log()[-3000:]}",
        )
        wait_until_drained(vitrail, 60, graph, persistor, listener)
        stored = read_database(vitrail)
        assert_exactly_once(stored, notifier.event_ids)
        assert stored.dead_letters == []
        assert stored.epoch == 1  # the graph kept its leadership: the database never went away
        # Each role said it lost the broker and got it back, on every connection it has (the
        # listener: two to the bus and one to nova's broker).
        for role, connections in ((persistor, 2), (graph, 2), (api, 2), (listener, 3)):
            after = records(role, marks[role.name])
            lost = sum(r.get("event") == "connection to RabbitMQ lost; reconnecting" for r in after)
            back = sum(r.get("event") == "reconnected to RabbitMQ" for r in after)
            assert lost >= connections and back >= connections, (role.name, lost, back, role.log()[-3000:])
        alive(persistor, graph, api, listener)
        print(f"\n{len(notifier.failures)} publishes made again by nova; {len(stored.rows)} events logged")


# -- (d) malformed messages in the stream ---------------------------------------------------------


def _events_of(tag: str, index: int) -> list[dict[str, Any]]:
    """The records the listener would publish for notification ``<tag>-<index>``."""
    parsed = read_notification(notification(tag, index), "2026-11-22 02:00:01.000000")
    return encode(parsed.events)


def test_malformed_messages_become_dead_letters_and_the_rest_flows(tmp_path: Path) -> None:
    with cluster(tmp_path, **NOVA_ONLY) as vitrail:
        persistor, graph, api, listener = start_nova_deployment(vitrail)
        notifier = Notifier(vitrail.nova_exchange, count=200, rate=40)
        notifier.start()
        eventually(lambda: notifier.sent >= 40, 30, "the load flowing")

        # On the graph's input topic: bytes that are not JSON, JSON that is not a list of events,
        # and a list where one bad record sits between two good events.
        not_json = b"\xff\xfe{ this is not JSON"
        not_a_list = orjson.dumps({"events": "should have been a list"})
        bad_record = {"id": "no-datasource", "payload": {}}
        good = [*_events_of("extra", 0), *_events_of("extra", 1)]
        mixed = orjson.dumps([good[0], bad_record, good[1]])
        publish_raw(
            vitrail.prefix,
            PRIORITY_EVENTS,
            (not_json, "application/octet-stream"),
            (not_a_list, "application/json"),
            (mixed, "application/json"),
        )
        # On the persistors' topic: bytes that are not JSON.
        not_processed = b"garbage for the persistor \x00\x01"
        publish_raw(vitrail.prefix, PROCESSED_EVENTS, (not_processed, None))
        # On nova's exchange: a notification that is not JSON, one whose oslo.message is not JSON,
        # and an instance.create.end without the instance's uuid.
        broken = json.loads(json.dumps(_instance_create()))
        del broken["payload"]["nova_object.data"]["uuid"]
        broken["message_id"] = "broken-notification"
        garbage_notifications = [
            b"<not a notification>",
            json.dumps({"oslo.version": "2.0", "oslo.message": "{not json"}).encode(),
            json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(broken)}).encode(),
        ]
        publish_raw(vitrail.nova_exchange, ROUTING_KEY, *((body, "application/json") for body in garbage_notifications))
        notifier.finish()

        graph_source = f"{PRIORITY_EVENTS}/graph"
        expected = [  # (source, body, words of the reason)
            (graph_source, not_json, "not JSON"),
            (graph_source, not_a_list, "expected a list of events, got dict"),
            (graph_source, orjson.dumps(bad_record), "not an event"),
            (f"{PROCESSED_EVENTS}/persistor", not_processed, "not JSON"),
            (vitrail.listener_queue, garbage_notifications[0], "body: not valid JSON"),
            (vitrail.listener_queue, garbage_notifications[1], "oslo.message: not valid JSON"),
            (vitrail.listener_queue, garbage_notifications[2], "nova_object.data.uuid: required"),
        ]

        eventually(
            lambda: len(read_database(vitrail).dead_letters) >= len(expected),
            30,
            "every malformed message kept as a dead letter",
            lambda: f"{read_database(vitrail).dead_letters}\n{graph.log()[-3000:]}",
        )
        names = notifier.instance_names | {"extra-0000", "extra-0001"}
        eventually(
            lambda: instance_names(vitrail, api) == names,
            60,
            "every good event applied",
            lambda: f"{len(instance_names(vitrail, api))} instances\n{graph.log()[-3000:]}",
        )
        wait_until_drained(vitrail, 60, graph, persistor, listener)
        time.sleep(2)  # nothing comes back: a requeued poison message would be kept again and again
        assert drained(vitrail)
        stored = read_database(vitrail)
        kept = {(source, body): (reason, content_type) for _, source, reason, content_type, body in stored.dead_letters}
        assert len(stored.dead_letters) == len(expected), stored.dead_letters
        for source, body, words in expected:
            assert (source, body) in kept, f"no dead letter from {source} with {body!r}: {stored.dead_letters}"
            assert words in kept[(source, body)][0], (words, kept[(source, body)])
        assert kept[(graph_source, not_json)][1] == "application/octet-stream"
        assert_exactly_once(stored, notifier.event_ids | {"nova/" + message_id("extra", i) for i in (0, 1)})

        # The API lists them (newest first, without bodies) and shows each with its raw bytes.
        listed = vitrail.api(api, "/v1/dead_letters/").json()
        assert sorted(letter["id"] for letter in listed) == [letter[0] for letter in stored.dead_letters]
        for letter_id, source, reason, _, body in stored.dead_letters:
            summary = next(letter for letter in listed if letter["id"] == letter_id)
            assert (summary["source"], summary["reason"], summary["size"]) == (source, reason, len(body))
            shown = vitrail.api(api, f"/v1/dead_letters/{letter_id}").json()
            assert base64.b64decode(shown["body_base64"]) == body, shown

        # And each role said what it did with them.
        said(graph, "received a message that is not JSON (kept as a dead letter, not requeued)")
        said(graph, "a message that is not a list of events goes to the dead letters")
        said(graph, "an unparsable event goes to the dead letters")
        said(persistor, "received a message that is not JSON (kept as a dead letter, not requeued)")
        said(persistor, "kept a dead letter")
        rejected = [r for r in records(listener) if str(r.get("event", "")).startswith("unparsable notification kept")]
        assert len(rejected) == len(garbage_notifications), rejected
        alive(persistor, graph, api, listener)


# -- (e) a persistor dies mid-batch -------------------------------------------------------------------

#: Large batches gathered for a second: a persistor nearly always holds delivered, unacked
#: processed events (its prefetch of 8 fills long before 500 events), so a kill lands mid-batch.
MID_BATCH = {
    **NOVA_ONLY,
    "VITRAIL_METRICS_PORT": "0",
    "VITRAIL_PERSISTOR__BATCH_SIZE": "500",
    "VITRAIL_PERSISTOR__BATCH_TIMEOUT": "1.0",
}


def _unacked_processed(vitrail: Cluster) -> int:
    return queue_depths(vitrail).get(f"{vitrail.prefix}.{PROCESSED_EVENTS}.persistor", (0, 0))[1]


def _kill_mid_batch(vitrail: Cluster, victim: RoleProcess) -> int:
    """SIGKILL ``victim`` once it writes batches and while processed events are delivered and
    not acked (a batch being gathered or written); returns how many were unacked just before."""
    batches = metric(victim, "vitrail_persistor_batches_total") or 0.0
    eventually(
        lambda: (metric(victim, "vitrail_persistor_batches_total") or 0.0) > batches,
        20,
        f"{victim.name} writing batches",
        lambda: "\n".join(f"--- {r.name}\n{r.log()[-1500:]}" for r in vitrail.processes if "persistor" in r.name),
    )
    unacked = 0

    def holding() -> bool:
        nonlocal unacked
        unacked = _unacked_processed(vitrail)
        return unacked > 0

    eventually(holding, 20, "processed events delivered and not acked yet")
    victim.kill()
    return unacked


def _check_persisted_exactly_once(
    vitrail: Cluster, notifier: Notifier, api: RoleProcess, graph: RoleProcess, *persistors: RoleProcess
) -> Stored:
    notifier.finish()
    eventually(
        lambda: instance_names(vitrail, api) == notifier.instance_names,
        60,
        "every notified instance in the graph",
        lambda: f"{len(instance_names(vitrail, api))} instances\n{graph.log()[-3000:]}",
    )
    wait_until_drained(vitrail, 60, graph, *persistors)
    stored = read_database(vitrail)
    assert_exactly_once(stored, notifier.event_ids)
    assert stored.dead_letters == []
    assert stored.epoch == 1  # the graph never lost its leadership
    return stored


def test_a_persistor_killed_mid_batch_and_restarted_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    with cluster(tmp_path, **MID_BATCH) as vitrail:
        persistor, graph, api, listener = start_nova_deployment(vitrail)
        notifier = Notifier(vitrail.nova_exchange, count=600, rate=40)  # 15 s of load
        notifier.start()
        unacked, sent = [], []
        for kill in range(3):
            # The only persistor dies holding a batch; started again, it finds the batch on the bus.
            unacked.append(_kill_mid_batch(vitrail, persistor))
            sent.append(notifier.sent)
            persistor = vitrail.start(f"persistor-{kill + 2}", "persistor")
        assert sent[0] < notifier.count, "killed under load"
        stored = _check_persisted_exactly_once(vitrail, notifier, api, graph, persistor)
        alive(persistor, graph, api, listener)
        print(
            f"\nkilled holding {unacked} unacked processed-events messages, after {sent} of {notifier.count} "
            f"notifications; {len(stored.rows)} events logged"
        )


def test_active_active_persistors_one_killed_mid_batch_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    with cluster(tmp_path, **MID_BATCH) as vitrail, killed_on_failure(vitrail):
        first, graph, api, listener = start_nova_deployment(vitrail)
        second = vitrail.start("persistor-2", "persistor")
        notifier = Notifier(vitrail.nova_exchange, count=600, rate=40)  # 15 s of load
        notifier.start()
        eventually(
            lambda: logged_events(vitrail) >= 100,
            20,
            "two persistors storing the load",
            lambda: (
                f"{logged_events(vitrail)} events logged; queues {queue_depths(vitrail)}\n"
                + "\n".join(f"--- {r.name}\n{r.log()[-1500:]}" for r in (first, second))
            ),
        )
        unacked = []
        for kill in range(3):
            # One of the two dies holding a batch; the other goes on, and a replacement joins.
            victim = first if kill % 2 == 0 else second
            unacked.append(_kill_mid_batch(vitrail, victim))
            replacement = vitrail.start(f"persistor-{kill + 3}", "persistor")
            first, second = (replacement, second) if victim is first else (first, replacement)
        stored = _check_persisted_exactly_once(vitrail, notifier, api, graph, first, second)
        alive(first, second, graph, api, listener)
        print(f"\nkilled holding {unacked} unacked processed-events messages; {len(stored.rows)} events logged")
