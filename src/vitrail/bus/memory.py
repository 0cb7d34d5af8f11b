"""The in-process bus of the embedded mode.

A real bus, not a test double: bounded queues give back-pressure to
publishers (a datasource cannot run ahead of the graph by more than
``max_pending`` messages), messages in flight are redelivered on nack, several
consumer groups each see every message, and RPC servers of one service share
its calls. It just never leaves the process. RPC parameters and results go
through a JSON round trip, so code that works here works on RabbitMQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from typing import Any

import orjson

from vitrail.bus.base import (
    BusClosed,
    Delivery,
    EventBus,
    RpcError,
    RpcHandler,
    RpcMethodError,
    RpcServer,
    RpcTimeout,
)


class _Group:
    def __init__(self, max_pending: int) -> None:
        self.queue: deque[tuple[int, Any, bool]] = deque()
        self.in_flight: dict[int, Any] = {}
        self.max_pending = max_pending
        self.readable = asyncio.Condition()
        self.writable = asyncio.Condition()


class _LocalServer(RpcServer):
    def __init__(self, bus: InProcessBus, service: str, handler: RpcHandler) -> None:
        self.bus = bus
        self.service = service
        self.handler = handler

    async def stop(self) -> None:
        servers = self.bus._servers.get(self.service, [])
        if self in servers:
            servers.remove(self)


def _json(value: Any) -> Any:
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError as exc:
        raise RpcError(f"not JSON-compatible: {exc}", "bad_request") from None


class InProcessBus(EventBus):
    def __init__(self, max_pending: int = 256) -> None:
        self._groups: dict[str, dict[str, _Group]] = {}
        self._ids = itertools.count(1)
        self._max_pending = max_pending
        self._closed = False
        self._servers: dict[str, list[_LocalServer]] = {}
        self._turn = itertools.count()
        self._casts: set[asyncio.Task[None]] = set()

    # -- topics --------------------------------------------------------------------

    def _group(self, topic: str, group: str) -> _Group:
        groups = self._groups.setdefault(topic, {})
        state = groups.get(group)
        if state is None:  # not setdefault: it would build a _Group (two Conditions) on every call
            state = groups[group] = _Group(self._max_pending)
        return state

    async def declare(self, topic: str, group: str) -> None:
        self._group(topic, group)

    async def publish(self, topic: str, body: Any) -> None:
        if self._closed:
            raise BusClosed("the bus is closed")
        for group in list(self._groups.get(topic, {}).values()):
            async with group.writable:
                await group.writable.wait_for(lambda g=group: len(g.queue) < g.max_pending or self._closed)
            if self._closed:
                raise BusClosed("the bus is closed")
            group.queue.append((next(self._ids), body, False))
            async with group.readable:
                group.readable.notify()

    async def get(self, topic: str, group: str) -> Delivery:
        state = self._group(topic, group)
        async with state.readable:
            await state.readable.wait_for(lambda: bool(state.queue) or self._closed)
        if self._closed:
            raise BusClosed("the bus is closed")
        delivery_id, body, redelivered = state.queue.popleft()
        state.in_flight[delivery_id] = body
        async with state.writable:
            state.writable.notify()
        return Delivery(topic, group, body, delivery_id, redelivered)

    async def ack(self, delivery: Delivery) -> None:
        if delivery._settled:
            return
        delivery._settled = True
        self._group(delivery.topic, delivery.group).in_flight.pop(delivery.delivery_id, None)

    async def nack(self, delivery: Delivery, requeue: bool = True) -> None:
        if delivery._settled:
            return
        delivery._settled = True
        state = self._group(delivery.topic, delivery.group)
        body = state.in_flight.pop(delivery.delivery_id, None)
        if requeue and body is not None:
            state.queue.appendleft((delivery.delivery_id, body, True))
            async with state.readable:
                state.readable.notify()

    async def pending(self, topic: str, group: str) -> int:
        return len(self._group(topic, group).queue)

    # -- rpc -----------------------------------------------------------------------

    async def serve(self, service: str, handler: RpcHandler) -> RpcServer:
        server = _LocalServer(self, service, handler)
        self._servers.setdefault(service, []).append(server)
        return server

    def _pick(self, service: str) -> _LocalServer | None:
        servers = self._servers.get(service)
        if not servers:
            return None
        return servers[next(self._turn) % len(servers)]

    async def call(self, service: str, method: str, params: dict[str, Any], within: float = 30.0) -> Any:
        if self._closed:
            raise BusClosed("the bus is closed")
        server = self._pick(service)
        if server is None:
            await asyncio.sleep(within)  # as on a broker: the call waits in the queue, unanswered
            raise RpcTimeout(f"no answer from {service}.{method} within {within} s")
        try:
            result = await asyncio.wait_for(server.handler(method, _json(params)), within)
        except TimeoutError:
            raise RpcTimeout(f"no answer from {service}.{method} within {within} s") from None
        except RpcMethodError as exc:
            raise RpcError(str(exc), "bad_request") from None
        except RpcError:
            raise
        except Exception as exc:
            raise RpcError(f"{type(exc).__name__}: {exc}") from None
        return _json(result)

    async def cast(self, service: str, method: str, params: dict[str, Any]) -> None:
        server = self._pick(service)
        if server is None:
            return  # nobody to take it: a broker would keep it; nothing serves in-process
        task = asyncio.create_task(self._run_cast(server, method, _json(params)))
        self._casts.add(task)
        task.add_done_callback(self._casts.discard)

    @staticmethod
    async def _run_cast(server: _LocalServer, method: str, params: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # a cast has nobody to report to; the handler logs
            await server.handler(method, params)

    async def connect(self) -> None:
        """Nothing to connect to."""

    # -- lifecycle -----------------------------------------------------------------

    async def close(self) -> None:
        self._closed = True
        for task in list(self._casts):
            task.cancel()
        for groups in self._groups.values():
            for state in groups.values():
                async with state.readable:
                    state.readable.notify_all()
                async with state.writable:
                    state.writable.notify_all()
