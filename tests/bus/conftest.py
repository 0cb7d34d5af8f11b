"""Buses for the contract suite: the in-process one and RabbitMQ on 127.0.0.1:5672.

Every RabbitMQ test works in a namespace of its own (a random prefix, so tests
running at the same time never share a queue) and deletes, at teardown, the
exchange and every queue its buses declared. When RabbitMQ is down the
RabbitMQ variants fail, saying how to start it: a skipped broker test would
look like a passing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.servers import bus_url, delete_namespace, require_rabbitmq
from vitrail.bus import EventBus, InProcessBus, open_bus
from vitrail.bus.rabbitmq import RabbitMQBus


class RabbitNamespace:
    """Makes connected RabbitMQ buses in one test namespace; cleans them all up."""

    def __init__(self) -> None:
        self.prefix = f"vt-test-{uuid.uuid4().hex[:12]}"
        self.buses: list[RabbitMQBus] = []
        #: Queues declared by something else than these buses (subprocesses, raw aio-pika).
        self.extra_queues: set[str] = set()

    async def __call__(self, **options: Any) -> RabbitMQBus:
        bus = open_bus(bus_url(self.prefix, **options))
        assert isinstance(bus, RabbitMQBus)
        self.buses.append(bus)
        await bus.connect()
        return bus

    async def cleanup(self) -> None:
        queues = set(self.extra_queues)
        for bus in self.buses:
            queues |= bus.declared_queues
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bus.close(), 15)
        await delete_namespace(self.prefix, queues)


@contextlib.asynccontextmanager
async def rabbit_namespace() -> AsyncIterator[RabbitNamespace]:
    require_rabbitmq()
    namespace = RabbitNamespace()
    try:
        yield namespace
    finally:
        await namespace.cleanup()


@pytest.fixture
async def rabbit() -> AsyncIterator[RabbitNamespace]:
    """A factory of connected RabbitMQ buses sharing one fresh namespace."""
    async with rabbit_namespace() as namespace:
        yield namespace


@pytest.fixture(params=["memory", "rabbitmq"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    """A fresh, connected bus of each implementation (the contract suite runs on both)."""
    if request.param == "memory":
        memory = InProcessBus()
        await memory.connect()
        yield memory
        await memory.close()
        return
    async with rabbit_namespace() as namespace:
        yield await namespace()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0, what: str = "condition") -> None:
    """Poll ``check`` until it is true; fail after ``within`` seconds.

    For what a broker makes true a moment later (a delivery travelling from the
    broker into the consumer's buffer), never as a sleep in disguise.
    """
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} still false after {within} s")
        await asyncio.sleep(0.02)


#: How long a test waits to be sure that something does *not* arrive.
QUIET = 0.3


async def nothing_comes(bus: EventBus, topic: str, group: str) -> bool:
    try:
        delivery = await asyncio.wait_for(bus.get(topic, group), QUIET)
    except TimeoutError:
        return True
    await bus.nack(delivery)
    return False
