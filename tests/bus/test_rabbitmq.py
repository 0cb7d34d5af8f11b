"""What only the RabbitMQ bus does: durability, confirms, prefetch, quorum queues, outages.

These run against the real broker on 127.0.0.1:5672 (``conftest.py``); the
broker-restart test stops and starts the RabbitMQ application and always
starts it again, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from tests.servers import RABBITMQ_URL, bus_url, rabbitmqctl, start_rabbitmq_app
from vitrail.bus import open_bus
from vitrail.bus.base import BusClosed, BusUnavailable, Delivery, RpcTimeout, Undecodable
from vitrail.bus.connection import mask_url
from vitrail.bus.rabbitmq import QueueMismatch, RabbitMQBus, RabbitMQOptions

from .conftest import QUIET, RabbitNamespace, eventually, nothing_comes

# -- options and names (no broker needed) ----------------------------------------------


def test_options_come_from_the_url_and_the_rest_goes_to_aio_pika() -> None:
    url, options = RabbitMQOptions.from_url(
        "amqp://u:p@broker:5672/vh?prefix=prod&quorum=true&prefetch=32&rpc_prefetch=4"
        "&publish_timeout=5&reconnect_max=10&heartbeat=20"
    )
    assert options == RabbitMQOptions(
        prefix="prod", quorum=True, prefetch=32, rpc_prefetch=4, publish_timeout=5.0, reconnect_max=10.0
    )
    assert dict(url.query) == {"heartbeat": "20"}
    assert (url.host, url.port, url.path) == ("broker", 5672, "/vh")
    _, overridden = RabbitMQOptions.from_url("amqp://h/?prefix=a", prefix="b")
    assert overridden.prefix == "b"


@pytest.mark.parametrize(
    "query",
    ["quorum=maybe", "prefetch=0", "prefetch=many", "publish_timeout=-1", "prefix=has.dot", "prefix="],
)
def test_bad_options_are_refused(query: str) -> None:
    with pytest.raises(ValueError, match=r"prefetch|prefix|quorum|publish_timeout"):
        open_bus(f"amqp://guest:guest@127.0.0.1:5672/?{query}")


def test_names_that_would_collide_are_refused() -> None:
    bus = RabbitMQBus("amqp://guest:guest@127.0.0.1:5672/")
    assert bus.group_queue("events.bulk", "graph") == "vitrail.events.bulk.graph"
    assert bus.rpc_queue("collector") == "vitrail.rpc.collector"
    for topic in ("rpc", "rpc.collector", "reply.x", "a..b", "events.*", "events.#", ""):
        with pytest.raises(ValueError, match="topic"):
            bus.group_queue(topic, "g")
    for group in ("a.b", "", "g*"):
        with pytest.raises(ValueError, match="group"):
            bus.group_queue("t", group)
    with pytest.raises(ValueError, match="service"):
        bus.rpc_queue("col.lector")


def test_urls_in_messages_hide_the_password() -> None:
    assert mask_url("amqp://guest:s3cret@host:5672/vh?x=1") == "amqp://guest:***@host:5672/vh"
    assert "s3cret" not in repr(RabbitMQBus("amqp://guest:s3cret@host:5672/"))


async def test_connect_names_an_unreachable_broker_and_hides_the_password() -> None:
    bus = open_bus("amqp://guest:s3cret@127.0.0.1:1/?connect_timeout=3")
    started = time.monotonic()
    with pytest.raises(BusUnavailable) as caught:
        await bus.connect()
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "RabbitMQ is not reachable on 127.0.0.1:1" in message
    assert "s3cret" not in message
    assert "guest:***@127.0.0.1:1" in message


# -- durability and confirms -------------------------------------------------------------


async def test_a_message_outlives_the_bus_that_published_it(rabbit: RabbitNamespace) -> None:
    first = await rabbit()
    await first.declare("events", "graph")
    await first.publish("events", {"kept": "on disk"})
    await first.close()
    second = await rabbit()  # a new connection, as after a process restart
    delivery = await asyncio.wait_for(second.get("events", "graph"), 5)
    assert delivery.body == {"kept": "on disk"}
    assert delivery._native.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    await second.ack(delivery)


async def test_a_confirmed_publish_is_in_the_queue(rabbit: RabbitNamespace) -> None:
    bus = await rabbit()
    await bus.declare("t", "g")
    await bus.declare("t", "h")
    for n in range(1, 21):
        await bus.publish("t", n)
        # No waiting: publish returned after the broker's confirm, so the message is there.
        assert await bus.pending("t", "g") == n
        assert await bus.pending("t", "h") == n


async def test_closing_gives_unacked_deliveries_back(rabbit: RabbitNamespace) -> None:
    first = await rabbit()
    await first.declare("t", "g")
    await first.publish("t", "unfinished")
    held = await asyncio.wait_for(first.get("t", "g"), 5)
    await first.close()
    await first.ack(held)  # too late, and harmless
    second = await rabbit()
    again = await asyncio.wait_for(second.get("t", "g"), 5)
    assert (again.body, again.redelivered) == ("unfinished", True)
    await second.ack(again)


KILLED_CONSUMER = """
import asyncio, sys
from vitrail.bus import open_bus

async def main():
    bus = open_bus(sys.argv[1])
    await bus.connect()
    delivery = await bus.get("t", "g")
    print("got", delivery.body, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_message_held_by_a_killed_consumer_is_delivered_again(rabbit: RabbitNamespace) -> None:
    bus = await rabbit()
    await bus.declare("t", "g")
    await bus.publish("t", "in the hands of a process that dies")
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_CONSUMER, bus_url(rabbit.prefix), stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 15)
        assert line.decode().strip() == "got in the hands of a process that dies"
        assert await nothing_comes(bus, "t", "g")  # held (unacked) by the child
    finally:
        child.kill()  # SIGKILL: no AMQP close, the broker only sees the socket go
        await child.wait()
    delivery = await asyncio.wait_for(bus.get("t", "g"), 10)
    assert (delivery.body, delivery.redelivered) == ("in the hands of a process that dies", True)
    await bus.ack(delivery)


async def test_consumers_in_two_processes_compete(rabbit: RabbitNamespace) -> None:
    a, b = await rabbit(), await rabbit()
    await a.declare("t", "g")
    got: dict[str, list[int]] = {"a": [], "b": []}

    async def consume(name: str, bus: RabbitMQBus) -> None:
        while True:
            delivery = await bus.get("t", "g")
            got[name].append(delivery.body)
            await bus.ack(delivery)

    tasks = [asyncio.create_task(consume("a", a)), asyncio.create_task(consume("b", b))]
    try:
        await eventually(lambda: _consuming(a, b), what="both consumers subscribed")
        for n in range(40):
            await a.publish("t", n)

        async def all_taken() -> bool:
            return len(got["a"]) + len(got["b"]) >= 40

        await eventually(all_taken, what="40 messages consumed")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert sorted(got["a"] + got["b"]) == list(range(40))
    assert got["a"]
    assert got["b"]


async def _consuming(*buses: RabbitMQBus) -> bool:
    return all(("t", "g") in bus._consumers for bus in buses)


# -- consuming ---------------------------------------------------------------------------


async def test_a_consumer_holds_at_most_prefetch_unacked_deliveries(rabbit: RabbitNamespace) -> None:
    bus = await rabbit(prefetch=3)
    await bus.declare("t", "g")
    for n in range(5):
        await bus.publish("t", n)
    held = [await asyncio.wait_for(bus.get("t", "g"), 5) for _ in range(3)]
    assert [d.body for d in held] == [0, 1, 2]
    assert await nothing_comes(bus, "t", "g")  # the broker sends no fourth before an ack
    assert await bus.pending("t", "g") == 2
    await bus.ack(held[0])
    fourth = await asyncio.wait_for(bus.get("t", "g"), 5)
    assert fourth.body == 3
    for delivery in (*held[1:], fourth):
        await bus.ack(delivery)


async def test_a_body_that_is_not_json_is_handed_over_raw_and_never_requeued(
    rabbit: RabbitNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    bus = await rabbit()
    await bus.declare("t", "g")
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(rabbit.prefix)
        await exchange.publish(aio_pika.Message(b"\x80not json{", content_type="text/plain"), routing_key="t")
    await bus.publish("t", "good")
    with caplog.at_level(logging.ERROR, logger="vitrail.bus.rabbitmq"):
        poison = await asyncio.wait_for(bus.get("t", "g"), 5)
    assert isinstance(poison.body, Undecodable)
    assert poison.body.raw == b"\x80not json{"
    assert poison.body.content_type == "text/plain"
    assert "not JSON" in poison.body.reason
    await bus.ack(poison)  # the consumer keeps it as a dead letter and acks it
    delivery = await asyncio.wait_for(bus.get("t", "g"), 5)
    assert delivery.body == "good"
    await bus.ack(delivery)
    assert await nothing_comes(bus, "t", "g")
    assert await bus.pending("t", "g") == 0
    logged = [r for r in caplog.records if "not JSON" in r.getMessage()]
    assert len(logged) == 1
    assert "not json{" in logged[0].raw  # type: ignore[attr-defined]


async def test_publishing_a_body_that_is_not_json_compatible_is_refused(rabbit: RabbitNamespace) -> None:
    bus = await rabbit()
    await bus.declare("t", "g")
    with pytest.raises(TypeError, match="JSON-compatible"):
        await bus.publish("t", {"when": object()})
    assert await bus.pending("t", "g") == 0


# -- quorum queues -------------------------------------------------------------------------


async def test_quorum_queues(rabbit: RabbitNamespace) -> None:
    bus = await rabbit(quorum=True)
    await bus.declare("t", "g")
    await bus.publish("t", "replicated")
    assert await bus.pending("t", "g") == 1
    delivery = await asyncio.wait_for(bus.get("t", "g"), 5)
    await bus.nack(delivery)
    again = await asyncio.wait_for(bus.get("t", "g"), 5)
    assert (again.body, again.redelivered) == ("replicated", True)
    await bus.ack(again)

    async def handle(method: str, params: dict[str, Any]) -> Any:
        return params

    await bus.serve("svc", handle)
    assert await bus.call("svc", "echo", {"q": 1}, within=5) == {"q": 1}
    # The queue really is a quorum queue: a classic declaration of it is refused.
    classic = await rabbit()
    with pytest.raises(QueueMismatch, match="quorum"):
        await classic.declare("t", "g")


# -- rpc -------------------------------------------------------------------------------------


async def test_a_call_that_expired_is_never_run(rabbit: RabbitNamespace) -> None:
    bus = await rabbit()
    with pytest.raises(RpcTimeout):
        await bus.call("late", "work", {}, within=0.3)
    ran: list[str] = []

    async def handle(method: str, params: dict[str, Any]) -> Any:
        ran.append(method)
        return None

    await bus.serve("late", handle)
    await asyncio.sleep(QUIET)
    assert ran == []
    assert await bus.call("late", "now", {}, within=5) is None
    assert ran == ["now"]


async def test_a_cast_waits_for_a_server_to_start(rabbit: RabbitNamespace) -> None:
    caster = await rabbit()
    await caster.cast("graph", "refresh", {"n": 1})
    server_bus = await rabbit()
    got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def handle(method: str, params: dict[str, Any]) -> None:
        await got.put(params)

    await server_bus.serve("graph", handle)
    assert await asyncio.wait_for(got.get(), 5) == {"n": 1}


async def test_closing_the_bus_ends_a_pending_call(rabbit: RabbitNamespace) -> None:
    bus = await rabbit()
    call = asyncio.create_task(bus.call("nobody", "wait", {}, within=10))
    await asyncio.sleep(0.2)
    await bus.close()
    with pytest.raises(BusClosed):
        await asyncio.wait_for(call, 5)


# -- broker restart ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def broker_stopped() -> AsyncIterator[None]:
    """The RabbitMQ application stopped for the block; started again whatever happens."""
    await asyncio.to_thread(rabbitmqctl, "stop_app")
    try:
        yield
    finally:
        await asyncio.to_thread(start_rabbitmq_app)


async def _collect(bus: RabbitMQBus, wanted: set[str]) -> dict[str, Delivery]:
    """Deliveries of ``t``/``g`` by body until every one of ``wanted`` came (acked on the way)."""
    got: dict[str, Delivery] = {}
    while not wanted <= got.keys():
        delivery = await asyncio.wait_for(bus.get("t", "g"), 30)
        assert delivery.body not in got, f"{delivery.body!r} delivered twice"
        got[delivery.body] = delivery
        await bus.ack(delivery)
    return got


async def test_the_bus_survives_a_broker_restart(rabbit: RabbitNamespace) -> None:
    bus = await rabbit(reconnect_max=1)
    impatient = await rabbit(publish_timeout=0.5)
    await bus.declare("t", "g")
    await bus.declare("t2", "g")
    await bus.publish("t", "held")
    await bus.publish("t", "buffered")
    held = await asyncio.wait_for(bus.get("t", "g"), 5)
    assert held.body == "held"

    async def buffered() -> bool:  # delivered into this process, not handed out by get()
        return bus._consumers["t", "g"].buffered() == 1

    await eventually(buffered, what="the second message in the consumer's buffer")
    answered: list[int] = []

    async def handle(method: str, params: dict[str, Any]) -> Any:
        answered.append(params["n"])
        return params["n"] * 2

    await bus.serve("svc", handle)
    assert await bus.call("svc", "double", {"n": 1}, within=5) == 2
    waiting = asyncio.create_task(bus.get("t2", "g"))  # a consumer waiting through the restart

    async with broker_stopped():
        with pytest.raises(BusUnavailable) as caught:
            await impatient.publish("t", "nobody takes this")
        message = str(caught.value)
        assert "127.0.0.1:5672" in message
        assert "guest:***@" in message
        assert "guest:guest" not in message
        during = asyncio.create_task(bus.publish("t", "during"))
        await asyncio.sleep(QUIET)
        assert not during.done(), "a publish in an outage waits for the broker"
        assert not waiting.done()

    await asyncio.wait_for(during, 30)
    await bus.ack(held)  # its channel is gone: no error, the broker redelivers it instead
    got = await _collect(bus, {"held", "buffered", "during"})
    # What this process had (handed out or only buffered) comes again from the broker, once.
    assert got["held"].redelivered
    assert got["buffered"].redelivered
    assert not got["during"].redelivered
    assert await nothing_comes(bus, "t", "g")

    await bus.publish("t2", "after")
    after = await asyncio.wait_for(waiting, 10)
    assert after.body == "after"
    await bus.ack(after)
    assert await bus.call("svc", "double", {"n": 21}, within=10) == 42
    assert answered == [1, 21]
    assert await bus.pending("t", "g") == 0
