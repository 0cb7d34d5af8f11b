"""The bus contract (:mod:`vitrail.bus.base`), run against every implementation.

Each test gets ``bus``: the in-process bus and a RabbitMQ bus in a namespace of
its own. A test here states what callers may rely on whichever bus they run
on; what only one implementation does lives at the end of this file
(in-process) or in ``test_rabbitmq.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from vitrail.bus import InProcessBus, open_bus
from vitrail.bus.base import BusClosed, EventBus, RpcError, RpcMethodError, RpcTimeout

from .conftest import eventually, nothing_comes

# -- topics and groups -----------------------------------------------------------------


async def test_every_group_gets_every_message(bus: EventBus) -> None:
    await bus.declare("events", "graph")
    await bus.declare("events", "persistor")
    await bus.publish("events", "m1")
    await bus.publish("events", "m2")
    for group in ("graph", "persistor"):
        got = []
        for _ in range(2):
            delivery = await asyncio.wait_for(bus.get("events", group), 5)
            got.append(delivery.body)
            await bus.ack(delivery)
        assert got == ["m1", "m2"]
    assert await nothing_comes(bus, "events", "graph")


async def test_topics_are_separate(bus: EventBus) -> None:
    await bus.declare("events.bulk", "graph")
    await bus.declare("events.priority", "graph")
    await bus.publish("events.priority", "urgent")
    delivery = await asyncio.wait_for(bus.get("events.priority", "graph"), 5)
    assert delivery.body == "urgent"
    assert (delivery.topic, delivery.group) == ("events.priority", "graph")
    await bus.ack(delivery)
    assert await bus.pending("events.bulk", "graph") == 0


async def test_consumers_of_one_group_compete(bus: EventBus) -> None:
    await bus.declare("events", "graph")
    count = 40
    for n in range(count):
        await bus.publish("events", n)
    seen: dict[str, list[int]] = {"a": [], "b": []}

    async def consume(name: str) -> None:
        while len(seen["a"]) + len(seen["b"]) < count:
            delivery = await bus.get("events", "graph")
            seen[name].append(delivery.body)
            await asyncio.sleep(0)  # let the other consumer take its turn
            await bus.ack(delivery)

    consumers = [asyncio.create_task(consume(name)) for name in seen]
    done, _ = await asyncio.wait(consumers, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    assert done, "the consumers did not get every message"
    for task in consumers:
        task.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    together = seen["a"] + seen["b"]
    assert sorted(together) == list(range(count)), "each message goes to exactly one consumer"
    assert seen["a"]
    assert seen["b"]


async def test_a_message_held_by_one_consumer_is_not_given_to_another(bus: EventBus) -> None:
    await bus.declare("t", "g")
    await bus.publish("t", "only")
    first = await asyncio.wait_for(bus.get("t", "g"), 5)
    assert first.body == "only"
    assert await nothing_comes(bus, "t", "g")
    await bus.ack(first)


async def test_order_within_a_topic(bus: EventBus) -> None:
    await bus.declare("t", "g")
    for n in range(50):
        await bus.publish("t", {"n": n})
    got = []
    for _ in range(50):
        delivery = await asyncio.wait_for(bus.get("t", "g"), 5)
        got.append(delivery.body["n"])
        await bus.ack(delivery)
    assert got == list(range(50))


async def test_a_message_nobody_declared_for_is_not_kept(bus: EventBus) -> None:
    await bus.publish("t", "lost")
    await bus.declare("t", "late")
    assert await bus.pending("t", "late") == 0
    await bus.publish("t", "kept")
    delivery = await asyncio.wait_for(bus.get("t", "late"), 5)
    assert delivery.body == "kept"
    await bus.ack(delivery)


async def test_declaring_twice_changes_nothing(bus: EventBus) -> None:
    await bus.declare("t", "g")
    await bus.publish("t", "one")
    await bus.declare("t", "g")
    assert await bus.pending("t", "g") == 1


# -- acknowledgements ----------------------------------------------------------------------


async def test_nack_redelivers_and_ack_forgets(bus: EventBus) -> None:
    await bus.declare("t", "g")
    await bus.publish("t", "first")
    await bus.publish("t", "second")
    delivery = await asyncio.wait_for(bus.get("t", "g"), 5)
    assert (delivery.body, delivery.redelivered) == ("first", False)
    await bus.nack(delivery)
    # A redelivery may come after messages a consumer had already buffered (a broker
    # prefetch); it comes again, marked redelivered, and nothing is lost or doubled.
    got = {}
    for _ in range(2):
        again = await asyncio.wait_for(bus.get("t", "g"), 5)
        got[again.body] = again.redelivered
        await bus.ack(again)
    assert got == {"first": True, "second": False}
    assert await nothing_comes(bus, "t", "g")
    assert await bus.pending("t", "g") == 0


async def test_settling_twice_changes_nothing(bus: EventBus) -> None:
    await bus.declare("t", "g")
    await bus.publish("t", "x")
    delivery = await asyncio.wait_for(bus.get("t", "g"), 5)
    await bus.ack(delivery)
    await bus.nack(delivery)  # already settled: not redelivered
    await bus.ack(delivery)
    assert await nothing_comes(bus, "t", "g")


async def test_nack_without_requeue_drops(bus: EventBus) -> None:
    await bus.declare("t", "g")
    await bus.publish("t", "poison")
    await bus.publish("t", "fine")
    delivery = await asyncio.wait_for(bus.get("t", "g"), 5)
    assert delivery.body == "poison"
    await bus.nack(delivery, requeue=False)
    following = await asyncio.wait_for(bus.get("t", "g"), 5)
    assert following.body == "fine"
    await bus.ack(following)
    assert await nothing_comes(bus, "t", "g")
    assert await bus.pending("t", "g") == 0


async def test_pending_counts_what_waits_not_what_is_in_flight(bus: EventBus) -> None:
    await bus.declare("t", "g")
    assert await bus.pending("t", "g") == 0
    for n in range(3):
        await bus.publish("t", n)
    assert await bus.pending("t", "g") == 3
    delivery = await asyncio.wait_for(bus.get("t", "g"), 5)

    async def two_waiting() -> bool:
        return await bus.pending("t", "g") == 2

    await eventually(two_waiting, what="pending == 2 with one message in flight")
    await bus.nack(delivery)
    await eventually(lambda: _pending_is(bus, 3), what="pending == 3 after a nack")
    for _ in range(3):
        await bus.ack(await asyncio.wait_for(bus.get("t", "g"), 5))
    assert await bus.pending("t", "g") == 0


async def _pending_is(bus: EventBus, expected: int) -> bool:
    return await bus.pending("t", "g") == expected


async def test_pending_of_a_group_nobody_declared_is_zero(bus: EventBus) -> None:
    assert await bus.pending("never", "declared") == 0


# -- bodies --------------------------------------------------------------------------------

BODIES: list[Any] = [
    None,
    True,
    0,
    -17,
    2**53,
    3.25,
    "",
    "plain",
    "unicode: é ü ß 漢字 🚨 \u0000 \n",
    [],
    {},
    [{"a": [1, 2, {"b": None}], "c": {"d": {"e": [True, False, 1.5]}}}],
    {"vitrage_id": "a1", "nested": {"list": [{"deep": ["x" * 1000]}]}, "ключ": "значение"},
]


async def test_bodies_round_trip(bus: EventBus) -> None:
    await bus.declare("t", "g")
    for body in BODIES:
        await bus.publish("t", body)
    for body in BODIES:
        delivery = await asyncio.wait_for(bus.get("t", "g"), 5)
        assert delivery.body == body
        await bus.ack(delivery)


async def test_a_page_of_records_round_trips(bus: EventBus) -> None:
    page = [
        {"event_id": f"e{n}", "datasource": "simulator", "action": "snapshot", "properties": {"id": n, "name": "h-é"}}
        for n in range(1000)
    ]
    await bus.declare("events.bulk", "graph")
    await bus.publish("events.bulk", page)
    delivery = await asyncio.wait_for(bus.get("events.bulk", "graph"), 5)
    assert delivery.body == page
    await bus.ack(delivery)


# -- lifecycle -----------------------------------------------------------------------------


async def test_close_wakes_waiting_consumers_and_refuses_publishers(bus: EventBus) -> None:
    await bus.declare("t", "g")
    waiting = [asyncio.create_task(bus.get("t", "g")) for _ in range(2)]
    await asyncio.sleep(0.1)
    assert not any(task.done() for task in waiting)
    await bus.close()
    for task in waiting:
        with pytest.raises(BusClosed):
            await asyncio.wait_for(task, 5)
    with pytest.raises(BusClosed):
        await bus.publish("t", "x")
    with pytest.raises(BusClosed):
        await bus.get("t", "g")


# -- rpc -----------------------------------------------------------------------------------


async def echo(method: str, params: dict[str, Any]) -> Any:
    if method == "echo":
        return params
    if method == "fail":
        raise ValueError("the disk is on fire")
    if method == "stale":
        raise RpcError("action 7 is stale", "bad_action")
    raise RpcMethodError(f"unknown method {method!r}")


async def test_call_returns_the_result(bus: EventBus) -> None:
    await bus.serve("collector", echo)
    params = {"datasource_names": ["static", "nova"], "round": 3, "text": "é 漢字", "nested": {"a": [None, 1.5]}}
    assert await bus.call("collector", "echo", params, within=5) == params


async def test_a_method_error_reaches_the_caller_as_bad_request(bus: EventBus) -> None:
    await bus.serve("collector", echo)
    with pytest.raises(RpcError) as caught:
        await bus.call("collector", "get_everything", {}, within=5)
    assert caught.value.kind == "bad_request"
    assert str(caught.value) == "unknown method 'get_everything'"
    assert not isinstance(caught.value, RpcTimeout)


async def test_any_other_exception_reaches_the_caller_as_error(bus: EventBus) -> None:
    await bus.serve("collector", echo)
    with pytest.raises(RpcError) as caught:
        await bus.call("collector", "fail", {}, within=5)
    assert caught.value.kind == "error"
    assert "the disk is on fire" in str(caught.value)
    assert "ValueError" in str(caught.value)


async def test_an_rpc_error_keeps_its_kind(bus: EventBus) -> None:
    await bus.serve("conductor", echo)
    with pytest.raises(RpcError) as caught:
        await bus.call("conductor", "stale", {}, within=5)
    assert (caught.value.kind, str(caught.value)) == ("bad_action", "action 7 is stale")


async def test_no_server_is_a_timeout_after_within(bus: EventBus) -> None:
    started = time.monotonic()
    with pytest.raises(RpcTimeout) as caught:
        await bus.call("nobody", "echo", {}, within=0.4)
    elapsed = time.monotonic() - started
    assert 0.35 <= elapsed < 2.0
    assert caught.value.kind == "timeout"
    assert "nobody.echo" in str(caught.value)


async def test_a_slow_server_is_a_timeout(bus: EventBus) -> None:
    async def slow(method: str, params: dict[str, Any]) -> Any:
        await asyncio.sleep(1)
        return "too late"

    await bus.serve("slow", slow)
    started = time.monotonic()
    with pytest.raises(RpcTimeout):
        await bus.call("slow", "wait", {}, within=0.3)
    assert time.monotonic() - started < 1.5


async def test_servers_of_one_service_share_its_calls(bus: EventBus) -> None:
    served: dict[str, int] = {"a": 0, "b": 0}

    def server(name: str) -> Any:
        async def handle(method: str, params: dict[str, Any]) -> Any:
            served[name] += 1
            return name

        return handle

    await bus.serve("collector", server("a"))
    await bus.serve("collector", server("b"))
    answers = [await bus.call("collector", "who", {}, within=5) for _ in range(10)]
    assert sorted(set(answers)) == ["a", "b"]
    assert served["a"] + served["b"] == 10


async def test_concurrent_calls_each_get_their_own_answer(bus: EventBus) -> None:
    await bus.serve("collector", echo)
    answers = await asyncio.gather(*(bus.call("collector", "echo", {"n": n}, within=5) for n in range(30)))
    assert answers == [{"n": n} for n in range(30)]


async def test_cast_reaches_a_server(bus: EventBus) -> None:
    got: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    async def handle(method: str, params: dict[str, Any]) -> None:
        await got.put((method, params))

    await bus.serve("graph", handle)
    await bus.cast("graph", "refresh", {"names": ["static"], "é": 1})
    assert await asyncio.wait_for(got.get(), 5) == ("refresh", {"names": ["static"], "é": 1})


async def test_a_failing_cast_does_not_stop_the_server(bus: EventBus) -> None:
    await bus.serve("collector", echo)
    await bus.cast("collector", "fail", {})
    await bus.cast("collector", "unknown", {})
    assert await bus.call("collector", "echo", {"still": "here"}, within=5) == {"still": "here"}


async def test_json_incompatible_params_are_an_error(bus: EventBus) -> None:
    calls = []

    async def handle(method: str, params: dict[str, Any]) -> Any:
        calls.append(method)
        return None

    await bus.serve("collector", handle)
    for params in ({"when": object()}, {"ids": {1, 2}}, {1: "key not a string"}):
        with pytest.raises(RpcError) as caught:
            await bus.call("collector", "get_all", params, within=2)  # type: ignore[arg-type]
        assert caught.value.kind == "bad_request"
        assert "JSON" in str(caught.value)
    with pytest.raises(RpcError):
        await bus.cast("collector", "get_all", {"when": object()})
    assert calls == []


async def test_a_stopped_server_takes_no_more_calls(bus: EventBus) -> None:
    server = await bus.serve("collector", echo)
    assert await bus.call("collector", "echo", {"n": 1}, within=5) == {"n": 1}
    await server.stop()
    with pytest.raises(RpcTimeout):
        await bus.call("collector", "echo", {"n": 2}, within=0.3)


async def test_stop_lets_a_call_in_progress_finish(bus: EventBus) -> None:
    started = asyncio.Event()

    async def slow(method: str, params: dict[str, Any]) -> Any:
        started.set()
        await asyncio.sleep(0.3)
        return "done"

    server = await bus.serve("slow", slow)
    call = asyncio.create_task(bus.call("slow", "work", {}, within=5))
    await asyncio.wait_for(started.wait(), 5)
    await server.stop()
    assert await asyncio.wait_for(call, 5) == "done"


# -- in-process specifics ----------------------------------------------------------------


async def test_in_process_a_full_group_holds_the_publisher_back() -> None:
    bus = InProcessBus(max_pending=2)
    await bus.declare("t", "g")
    await bus.publish("t", 1)
    await bus.publish("t", 2)
    third = asyncio.create_task(bus.publish("t", 3))
    await asyncio.sleep(0.05)
    assert not third.done()
    await bus.ack(await bus.get("t", "g"))
    await asyncio.wait_for(third, 1)
    assert await bus.pending("t", "g") == 2


def test_transport_urls() -> None:
    from vitrail.bus.rabbitmq import RabbitMQBus

    assert isinstance(open_bus("memory://"), InProcessBus)
    assert isinstance(open_bus("amqp://guest:guest@127.0.0.1:5672/"), RabbitMQBus)
    assert isinstance(open_bus("amqps://user:pw@broker.example:5671/vitrail"), RabbitMQBus)
    with pytest.raises(ValueError, match="'kafka' is not supported"):
        open_bus("kafka://broker:9092")
