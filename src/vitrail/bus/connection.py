"""RabbitMQ connections that outlive the broker: everything about outages, in one place.

The RabbitMQ bus never talks to a socket itself. It gets two aio-pika *robust*
connections from :class:`Broker` and runs every broker operation that may meet
an outage (publish, declare, queries) through :meth:`Broker.persist`.

* **Reconnect with backoff.** aio-pika's :class:`~aio_pika.RobustConnection`
  reopens the connection, its channels, exchanges, queues, bindings and
  consumers after the broker comes back, but retries at a fixed interval.
  :class:`BackoffConnection` makes the interval grow with the outage (half of
  its length so far, between ``reconnect_interval`` and ``reconnect_max``, with
  jitter), so a short blip costs a fraction of a second and a long outage does
  not make a whole fleet hammer the broker in lockstep.
* **Two connections.** RabbitMQ blocks *publishing* connections when it runs
  short of memory or disk. If consumers shared that connection their acks
  would be blocked too and the queues could never drain; so publishing (and RPC
  requests and replies) uses one connection, consuming another.
* **Waiting out an outage.** :meth:`Broker.persist` retries an operation that
  failed because the connection or channel went away, waiting for the robust
  channel to be restored, up to a deadline; then it raises
  :class:`BusUnavailable` naming the broker (password masked). A publish whose
  confirmation was lost with the connection is sent again: at-least-once, a
  duplicate is possible and harmless downstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiormq.exceptions
from aio_pika import RobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from yarl import URL

from vitrail import urls
from vitrail.bus.base import BusClosed, BusUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors after which the same operation can succeed once the connection is back.
TRANSIENT: tuple[type[BaseException], ...] = (
    ConnectionError,  # includes aiormq's AMQPConnectionError and ConnectionClosed
    TimeoutError,
    aiormq.exceptions.ChannelInvalidStateError,  # the channel is closed or not reopened yet
    aiormq.exceptions.ChannelClosed,  # e.g. NOT_FOUND: the robust channel redeclares what it knows
    aiormq.exceptions.DeliveryError,  # the broker nacked a publish: it can take it later
)

#: Channel errors that no retry can fix: the request itself is wrong.
PERMANENT: tuple[type[BaseException], ...] = (
    aiormq.exceptions.ChannelPreconditionFailed,  # declared before with other arguments
    aiormq.exceptions.ChannelAccessRefused,  # the user may not use this vhost/resource
    aiormq.exceptions.AuthenticationError,
)


class Restorable(Protocol):
    """A robust channel or connection: ``ready()`` returns once it is usable again."""

    async def ready(self) -> None: ...


def mask_url(url: str | URL) -> str:
    """``url`` without its password and options, fit for logs and error messages."""
    return urls.mask_url(str(URL(str(url)).with_query(None)))


def endpoint(url: str | URL) -> str:
    """``host:port`` of a broker URL (the default AMQP port when none is given)."""
    parsed = URL(str(url))
    port = parsed.port or (5671 if parsed.scheme == "amqps" else 5672)
    return f"{parsed.host or 'localhost'}:{port}"


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """How hard to try (all in seconds)."""

    #: Limit for opening a connection (TCP + AMQP handshake) at :meth:`Broker.open`.
    connect_timeout: float = 10.0
    #: First delay between reconnection attempts after the connection dropped.
    reconnect_interval: float = 0.5
    #: Longest delay between reconnection attempts in a long outage.
    reconnect_max: float = 30.0
    #: How long an operation (a publish, a declare) waits for the broker to come back.
    operation_timeout: float = 60.0


class BackoffConnection(RobustConnection):
    """A robust connection whose reconnection delay grows with the outage.

    :class:`~aio_pika.RobustConnection` sleeps ``reconnect_interval`` between
    attempts; here that attribute is computed: half of the time since the
    connection dropped, clamped to ``[base, reconnect_max]``, ±20 % jitter. The
    attempts come at roughly geometric times (an exponential backoff) without
    keeping a retry counter in step with aio-pika's internal loop.
    """

    def __init__(self, url: URL, *, reconnect_max: float = 30.0, **kwargs: Any) -> None:
        self._base_interval = 0.5
        self._down_since: float | None = None
        self.reconnect_max = reconnect_max
        super().__init__(url, **kwargs)  # assigns reconnect_interval (the base) from the URL or kwargs

    @property
    def reconnect_interval(self) -> float:
        if self._down_since is None:
            return self._base_interval
        outage = asyncio.get_running_loop().time() - self._down_since
        delay = min(self.reconnect_max, max(self._base_interval, outage / 2))
        return delay * random.uniform(0.8, 1.2)

    @reconnect_interval.setter
    def reconnect_interval(self, value: float) -> None:
        self._base_interval = float(value)

    @property
    def down(self) -> bool:
        """The connection was lost and is not back yet."""
        return self._down_since is not None

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if self._down_since is None and not self.close_called:
            self._down_since = asyncio.get_running_loop().time()
            log.warning("connection to RabbitMQ lost; reconnecting", extra={"broker": str(self)})
        await super()._on_connection_close(closing)

    async def _on_connected(self) -> None:
        await super()._on_connected()
        if self._down_since is not None:
            outage = asyncio.get_running_loop().time() - self._down_since
            log.info("reconnected to RabbitMQ", extra={"broker": str(self), "outage_s": round(outage, 2)})
        self._down_since = None


async def open_connection(url: URL, options: ConnectionOptions, name: str) -> BackoffConnection:
    """A connected :class:`BackoffConnection`; :class:`BusUnavailable` names the broker when it is not there.

    ``name`` is what ``rabbitmqctl list_connections client_properties`` and the
    management UI show. Every RabbitMQ connection of Vitrail (the bus's, the
    notifications listener's) is opened here, so all of them reconnect alike.
    """
    connection = BackoffConnection(
        url,
        reconnect_max=options.reconnect_max,
        reconnect_interval=options.reconnect_interval,
        client_properties={"connection_name": name},
    )
    try:
        await connection.connect(timeout=options.connect_timeout)
    except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
        with contextlib.suppress(Exception):
            await connection.close()
        reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
        raise BusUnavailable(f"RabbitMQ is not reachable on {endpoint(url)} ({mask_url(url)}): {reason}") from exc
    return connection


class Broker:
    """One bus's connections to RabbitMQ: one to publish on, one to consume on."""

    def __init__(self, url: URL, options: ConnectionOptions, name: str = "vitrail") -> None:
        self.url = url
        self.options = options
        self.name = name
        self.masked_url = mask_url(url)
        self.endpoint = endpoint(url)
        self.closing = asyncio.Event()
        self._publisher: BackoffConnection | None = None
        self._consumer: BackoffConnection | None = None

    @property
    def publisher(self) -> BackoffConnection:
        if self._publisher is None:
            raise RuntimeError("the broker connections are not open")
        return self._publisher

    @property
    def consumer(self) -> BackoffConnection:
        if self._consumer is None:
            raise RuntimeError("the broker connections are not open")
        return self._consumer

    async def open(self) -> None:
        """Open both connections; :class:`BusUnavailable` names the broker when it is not there."""
        self._publisher = await self._connect("publish")
        try:
            self._consumer = await self._connect("consume")
        except BaseException:
            await self._publisher.close()
            self._publisher = None
            raise

    async def _connect(self, role: str) -> BackoffConnection:
        name = f"{self.name} {role} {socket.gethostname()}:{os.getpid()}"
        return await open_connection(self.url, self.options, name)

    async def close(self) -> None:
        """Close both connections; the broker requeues whatever was delivered and not acked."""
        self.closing.set()
        for connection in (self._consumer, self._publisher):
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()

    async def persist(
        self,
        operation: Callable[[], Awaitable[T]],
        channel: Restorable,
        what: str,
        patience: float | None = None,
    ) -> T:
        """Run ``operation``, waiting out broker outages up to ``patience`` seconds
        (default: ``operation_timeout``).

        Between attempts it waits for ``channel`` (the robust channel or
        connection the operation uses) to be restored.

        Raises :class:`BusUnavailable` (naming the broker, password masked) when
        the broker stays away longer, :class:`~vitrail.bus.base.BusClosed` when the
        bus closes meanwhile, and the error itself when retrying cannot help.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + (self.options.operation_timeout if patience is None else patience)
        delay = 0.05
        warned = False
        while True:
            if self.closing.is_set():
                raise BusClosed("the bus is closed")
            try:
                return await operation()
            except PERMANENT:
                raise
            except TRANSIENT as exc:
                error: BaseException = exc
            except asyncio.CancelledError as exc:
                # aio-pika may cancel what waits on a channel that closes under it;
                # only a cancellation of *this* task is a real one.
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise
                error = exc
            if self.closing.is_set():
                raise BusClosed("the bus is closed") from None
            now = loop.time()
            if now >= deadline:
                raise BusUnavailable(
                    f"{what}: RabbitMQ on {self.endpoint} ({self.masked_url}) unavailable "
                    f"for {now - started:.1f} s; last error: {type(error).__name__}: {error}"
                ) from error
            if not warned and now - started >= 1.0:  # a channel reopening takes milliseconds: no noise
                log.warning(
                    "RabbitMQ unavailable; waiting for it",
                    extra={"operation": what, "broker": self.masked_url, "error": repr(error)},
                )
                warned = True
            await self._wait_ready(channel, delay, deadline)
            delay = min(delay * 2, 2.0)

    async def _wait_ready(self, channel: Restorable, delay: float, deadline: float) -> None:
        """Pause ``delay``, then until ``channel`` is restored, the deadline, or the bus closes."""
        loop = asyncio.get_running_loop()
        closing = asyncio.ensure_future(self.closing.wait())
        ready: asyncio.Future[None] | None = None
        try:
            await asyncio.wait([closing], timeout=max(0.0, min(delay, deadline - loop.time())))
            if closing.done():
                return
            ready = asyncio.ensure_future(channel.ready())
            await asyncio.wait(
                [closing, ready], timeout=max(0.0, deadline - loop.time()), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            await discard(closing)
            if ready is not None:
                await discard(ready)


async def discard(future: asyncio.Future[Any]) -> None:
    """Cancel ``future`` and wait for it, without mistaking its cancellation for ours."""
    future.cancel()
    await asyncio.wait([future])
    if not future.cancelled():
        future.exception()  # retrieved: no "exception was never retrieved" at garbage collection
