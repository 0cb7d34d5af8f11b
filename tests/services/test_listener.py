"""The OpenStack notifications listener against the real RabbitMQ on this machine.

Each test declares a ``topic`` exchange under a random name (non-durable, as
oslo.messaging declares ``nova`` by default), starts a listener on it and
publishes message bodies the way oslo.messaging's rabbit driver does: to the
exchange, routing key ``<topic>.<priority>``, ``content_type
application/json``, the body being the fixture's bytes. Events go through an
:class:`InProcessBus` to a real :class:`Processor`. Exchanges and queues are
deleted afterwards. RabbitMQ being down fails the tests, naming the command
that starts it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import pytest
from prometheus_client import REGISTRY

from tests.upstream import FIXTURES as UPSTREAM
from vitrail.bus import InProcessBus
from vitrail.datasources.nova import NovaTransformer
from vitrail.datasources.state_tables import load_state_table
from vitrail.graph.events import Event
from vitrail.graph.identity import vitrage_id_for
from vitrail.graph.processor import Processor
from vitrail.graph.properties import Direction
from vitrail.services.listener import ListenerError, NotificationListener
from vitrail.services.topics import GRAPH_GROUP, PRIORITY_EVENTS, decode, publisher

AMQP_URL = os.environ.get("VITRAIL_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
START_COMMAND = "rabbitmq-server -detached"
OPENSTACK = UPSTREAM / "openstack"
ENVELOPE_DELETE = OPENSTACK / "envelope/nova__notifications.info__compute.instance.delete.end.json"
ENVELOPE_SERVICE = OPENSTACK / "envelope/nova__versioned_notifications.info__service.update.json"
VERSIONED_KEY = "versioned_notifications.info"
LEGACY_KEY = "notifications.info"
VM = "178b0921-8f85-4257-88b6-2e743b5a975c"
TIMEOUT = 10.0


def oslo_envelope(sample: str, message_id: str, timestamp: str = "2026-11-22 00:20:23.028475") -> bytes:
    """A nova versioned sample as oslo.messaging sends it: ids and time added, then the v2 envelope."""
    inner = json.loads((OPENSTACK / "versioned" / sample).read_text(encoding="utf-8"))
    inner.update(message_id=message_id, timestamp=timestamp, _unique_id=secrets.token_hex(16))
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}).encode()


async def eventually(check: Callable[[], bool]) -> None:
    """Wait until ``check()`` holds; fail after :data:`TIMEOUT` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"condition not reached within {TIMEOUT}s")
        await asyncio.sleep(0.02)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class Broker:
    """The test's exchange and queue on the real RabbitMQ, and the listeners it started."""

    connection: aio_pika.abc.AbstractConnection
    exchange: aio_pika.abc.AbstractExchange
    queue: str
    bus: InProcessBus
    listeners: list[NotificationListener] = field(default_factory=list)

    async def send(self, body: bytes, routing_key: str) -> None:
        """Publish as oslo.messaging's rabbit driver does."""
        message = aio_pika.Message(body, content_type="application/json", content_encoding="utf-8")
        await self.exchange.publish(message, routing_key=routing_key)

    async def listen(
        self, publish: Callable[[list[Event]], Awaitable[None]] | None = None, **options: Any
    ) -> NotificationListener:
        options.setdefault("reconnect_interval", 0.5)
        listener = NotificationListener(
            AMQP_URL,
            self.exchange.name,
            (LEGACY_KEY, VERSIONED_KEY),
            publish or publisher(self.bus),
            queue=self.queue,
            **options,
        )
        self.listeners.append(listener)
        await listener.start()
        return listener

    async def waiting(self) -> int:
        """Messages ready in the listener's queue (not counting unacked ones)."""
        channel = await self.connection.channel()
        try:
            queue = await channel.declare_queue(self.queue, passive=True)
            return queue.declaration_result.message_count or 0
        finally:
            await channel.close()

    async def settle(self, ready: int) -> None:
        """Wait until ``ready`` messages wait in the queue (RabbitMQ requeues asynchronously)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while (count := await self._waiting_or_unknown()) != ready:
            if loop.time() > deadline:
                pytest.fail(f"{count} messages wait in {self.queue}, expected {ready}")
            await asyncio.sleep(0.05)

    async def _waiting_or_unknown(self) -> int | None:
        try:
            return await self.waiting()
        except (aio_pika.exceptions.AMQPError, RuntimeError, ConnectionError):
            return None  # the broker is being restarted (another suite's outage test): ask again

    async def cleanup(self) -> None:
        """Delete the test's queue and exchange, retrying while the broker is away."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:
            try:
                channel = await self.connection.channel()
                await channel.queue_delete(self.queue)
                await channel.exchange_delete(self.exchange.name)
                await channel.close()
                return
            except (aio_pika.exceptions.AMQPError, RuntimeError, ConnectionError):
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def events(self, count: int) -> list[Event]:
        """The next ``count`` events the listener put on the bus."""
        events: list[Event] = []
        while len(events) < count:
            delivery = await asyncio.wait_for(self.bus.get(PRIORITY_EVENTS, GRAPH_GROUP), TIMEOUT)
            events.extend(decode(delivery.body))
            await self.bus.ack(delivery)
        return events


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    try:
        # Robust, like the listener: another suite may restart the shared broker meanwhile.
        connection = await aio_pika.connect_robust(AMQP_URL, timeout=5, reconnect_interval=0.5)
    except Exception as exc:
        pytest.fail(f"RabbitMQ is not reachable on 127.0.0.1:5672 — start it with: {START_COMMAND}\n({exc!r})")
    suffix = secrets.token_hex(4)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(f"vitrail-test-nova-{suffix}", aio_pika.ExchangeType.TOPIC)
    bus = InProcessBus()
    await bus.declare(PRIORITY_EVENTS, GRAPH_GROUP)
    state = Broker(connection, exchange, f"vitrail-test-notifications-{suffix}", bus)
    try:
        yield state
    finally:
        for listener in state.listeners:
            await listener.stop()
        await state.cleanup()
        await connection.close()
        await bus.close()


def make_processor() -> Processor:
    return Processor({"nova": NovaTransformer()}, load_state_table())


# -- the tests ------------------------------------------------------------------------------


async def test_notifications_published_like_oslo_become_graph_entities(broker: Broker) -> None:
    listener = await broker.listen()
    await broker.send(oslo_envelope("nova__instance-create-end.json", "msg-create"), VERSIONED_KEY)
    await broker.send(ENVELOPE_SERVICE.read_bytes(), VERSIONED_KEY)
    await broker.send(ENVELOPE_DELETE.read_bytes(), LEGACY_KEY)
    events = await broker.events(3)
    assert [e.event_id for e in events] == [
        "nova/msg-create",
        "nova/97936277-8923-450f-9bae-b3f5df9aad39",
        "nova/52d567e0-4b07-4821-944a-46860bf539ef",
    ]
    proc = make_processor()
    for event in events:
        proc.process(event)
    vm = proc.graph.get_vertex(vitrage_id_for("RESOURCE", "nova.instance", VM))
    assert vm is not None and vm.state == "ACTIVE"
    (host,) = proc.graph.neighbors(vm.vitrage_id, direction=Direction.IN, labels=["contains"])
    assert host.id == "compute"
    host1 = proc.graph.get_vertex(vitrage_id_for("RESOURCE", "nova.host", "host1"))
    assert host1 is not None and host1.state == "available"
    await eventually(lambda: listener.stats.received == 3)
    assert (listener.stats.unparsable, listener.stats.ignored, listener.stats.events) == (0, 0, 3)
    await broker.settle(0)


async def test_garbage_is_counted_and_acked_and_others_are_ignored(broker: Broker) -> None:
    unparsable = metric("vitrail_notifications_unparsable_total")
    ignored = metric("vitrail_notifications_ignored_total", reason="event_type")
    listener = await broker.listen()
    await broker.send(b"\x00 this is not json", LEGACY_KEY)
    await broker.send(b'{"oslo.version": "2.0", "oslo.message": "{\\"event_type\\": 5}"}', LEGACY_KEY)
    port = json.loads((OPENSTACK / "legacy/ceilometer__port.create.end__notification_port_create.json").read_text())
    await broker.send(json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(port)}).encode(), LEGACY_KEY)
    await broker.send(ENVELOPE_SERVICE.read_bytes(), VERSIONED_KEY)
    (event,) = await broker.events(1)  # the consumer went on after the garbage
    assert event.payload["id"] == "host1"
    await eventually(lambda: listener.stats.received == 4)
    assert (listener.stats.unparsable, listener.stats.ignored) == (2, 1)
    assert metric("vitrail_notifications_unparsable_total") == unparsable + 2
    assert metric("vitrail_notifications_ignored_total", reason="event_type") == ignored + 1
    await listener.stop()
    await broker.settle(0)  # acked: nothing comes back, not even after the listener stopped
    again = await broker.listen()
    await asyncio.sleep(0.3)
    assert again.stats.received == 0


async def test_garbage_is_kept_as_a_dead_letter_with_its_exact_bytes(broker: Broker) -> None:
    kept: list[tuple[str, str, object]] = []

    class Letters:
        async def send(self, source: str, reason: str, body: object) -> None:
            kept.append((source, reason, body))

    listener = await broker.listen(dead_letters=Letters())
    await broker.send(b"\x00 this is not json", LEGACY_KEY)
    await broker.send(ENVELOPE_SERVICE.read_bytes(), VERSIONED_KEY)
    await broker.events(1)
    await eventually(lambda: listener.stats.received == 2 and len(kept) == 1)
    ((source, reason, body),) = kept
    assert source == broker.queue and body == b"\x00 this is not json"
    assert reason  # says why it could not be parsed
    await listener.stop()


async def test_a_burst_is_published_in_few_batches(broker: Broker) -> None:
    listener = await broker.listen()
    for n in range(60):
        await broker.send(oslo_envelope("nova__instance-update.json", f"msg-{n}"), VERSIONED_KEY)
    events = await broker.events(60)
    assert [e.event_id for e in events] == [f"nova/msg-{n}" for n in range(60)]  # in order
    assert listener.stats.publishes < 20, listener.stats
    assert listener.stats.batches == listener.stats.publishes


async def test_a_failed_publish_is_retried_and_acked_only_after(broker: Broker) -> None:
    published: list[list[Event]] = []

    async def flaky(events: list[Event]) -> None:
        if not published and listener.stats.publish_failures == 0:
            raise ConnectionError("bus briefly down")
        published.append(events)

    listener = await broker.listen(flaky, retry_initial=0.05)
    await broker.send(ENVELOPE_SERVICE.read_bytes(), VERSIONED_KEY)
    await eventually(lambda: bool(published))
    assert listener.stats.publish_failures == 1
    assert [e.event_id for e in published[0]] == ["nova/97936277-8923-450f-9bae-b3f5df9aad39"]
    await broker.settle(0)


async def test_stopping_while_the_bus_is_down_hands_the_batch_back(broker: Broker) -> None:
    async def down(events: list[Event]) -> None:
        raise ConnectionError("bus down")

    listener = await broker.listen(down, retry_initial=0.05)
    await broker.send(ENVELOPE_SERVICE.read_bytes(), VERSIONED_KEY)
    await eventually(lambda: listener.stats.publish_failures >= 2)
    await listener.stop()
    await broker.settle(1)  # back in the queue for the next listener: at-least-once
    again = await broker.listen()
    (event,) = await broker.events(1)
    assert event.event_id == "nova/97936277-8923-450f-9bae-b3f5df9aad39"
    await eventually(lambda: again.stats.events == 1)


async def test_stop_does_not_wait_forever_for_a_stuck_publish(broker: Broker) -> None:
    stuck = asyncio.Event()

    async def blocked(events: list[Event]) -> None:
        stuck.set()
        await asyncio.Event().wait()  # a bus that never takes the message

    listener = await broker.listen(blocked, stop_timeout=0.2)
    await broker.send(ENVELOPE_SERVICE.read_bytes(), VERSIONED_KEY)
    await asyncio.wait_for(stuck.wait(), TIMEOUT)
    await asyncio.wait_for(listener.stop(), TIMEOUT)
    await broker.settle(1)  # abandoned unacked: RabbitMQ has it again


async def close_connection(name: str) -> None:
    """Make RabbitMQ close the connection whose client ``connection_name`` is ``name`` (and only it).

    Retried while ``rabbitmqctl`` cannot list connections (another suite restarting the broker).
    """
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        pytest.fail("rabbitmqctl is needed to close one connection from the broker side")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while loop.time() < deadline:
        listing = await asyncio.create_subprocess_exec(
            ctl, "-q", "list_connections", "pid", "client_properties", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(listing.communicate(), 60)
        found = [line.split("\t")[0] for line in out.decode().splitlines() if f'"{name}"' in line]
        if found:
            closing = await asyncio.create_subprocess_exec(ctl, "-q", "close_connection", found[0], "test: broker side")
            await asyncio.wait_for(closing.wait(), 60)
            return
        await asyncio.sleep(0.5)
    pytest.fail(f"no RabbitMQ connection named {name!r}")


async def test_the_listener_reconnects_when_the_broker_closes_its_connection(broker: Broker) -> None:
    listener = await broker.listen(reconnect_interval=0.2)
    await broker.send(ENVELOPE_SERVICE.read_bytes(), VERSIONED_KEY)
    await broker.events(1)
    await close_connection(listener.connection_name)
    # Published while the listener may still be away: the durable queue keeps it.
    await broker.send(oslo_envelope("nova__instance-create-end.json", "msg-after-reconnect"), VERSIONED_KEY)
    (event,) = await broker.events(1)
    assert event.event_id == "nova/msg-after-reconnect"
    await broker.settle(0)


async def test_an_exchange_declared_otherwise_is_a_clear_error(broker: Broker) -> None:
    """oslo.messaging with amqp_durable_queues = true declares a durable exchange: the listener must be told."""
    channel = await broker.connection.channel()
    durable = await channel.declare_exchange(
        f"{broker.exchange.name}-durable", aio_pika.ExchangeType.TOPIC, durable=True
    )
    try:
        with pytest.raises(ListenerError, match="exchange_durable"):
            await NotificationListener(
                AMQP_URL, durable.name, [LEGACY_KEY], publisher(broker.bus), queue=broker.queue
            ).start()
        listener = NotificationListener(
            AMQP_URL, durable.name, [LEGACY_KEY], publisher(broker.bus), queue=broker.queue, exchange_durable=True
        )
        broker.listeners.append(listener)
        await listener.start()
        await durable.publish(aio_pika.Message(ENVELOPE_SERVICE.read_bytes()), routing_key=LEGACY_KEY)
        (event,) = await broker.events(1)
        assert event.payload["id"] == "host1"
    finally:
        await channel.exchange_delete(durable.name)
        await channel.close()


async def test_an_unreachable_broker_is_a_clear_error() -> None:
    async def publish(events: list[Event]) -> None:
        return None

    listener = NotificationListener("amqp://guest:secret@127.0.0.1:1/", publish=publish)
    with pytest.raises(ListenerError, match=r"not reachable at amqp://guest:\*\*\*@127\.0\.0\.1:1/"):
        await listener.start()
