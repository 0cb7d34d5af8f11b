"""The event bus on RabbitMQ (aio-pika): the distributed mode.

How the contract of :mod:`vitrail.bus.base` maps to RabbitMQ (``docs/bus.md``
has the long version):

* **Topics** are routing keys on one durable *topic* exchange per namespace,
  named after the prefix (``vitrail``). A consumer group is a durable queue
  ``<prefix>.<topic>.<group>`` bound with the topic as binding key, so every
  group gets every message and the consumers of a group compete. A message
  routed to no queue is dropped by the broker: "not kept" when no group was
  ever declared.
* **Publishing** sends persistent JSON messages on a channel in confirm mode
  and returns when the broker confirmed (it has the message in every bound
  queue, on disk for durable queues). A publisher therefore never has more
  unconfirmed messages out than it has concurrent ``publish`` calls: that is
  the back-pressure.
* **Consuming**: the first :meth:`RabbitMQBus.get` of a (topic, group) starts
  a consumer on its own channel with manual acks and a prefetch; deliveries
  wait in a small in-process buffer (at most ``prefetch``) for ``get``.
  ``ack``/``nack`` are ``basic.ack``/``basic.nack``. A body that is not JSON is
  logged and handed over as :class:`~vitrail.bus.base.Undecodable`, so that the
  consumer keeps it as a dead letter and acks it: a poison message must never loop.
* **RPC**: a durable queue ``<prefix>.rpc.<service>`` per service, on the
  default exchange; servers compete for it. A call carries a correlation id,
  the caller's exclusive reply queue and an ``expiration`` of ``within``, so a
  call nobody took in time is dropped by the broker instead of run late.
* **Outages**: connections and their consumers come back by themselves
  (:mod:`vitrail.bus.connection`); what was delivered and not acked when a
  connection dropped is delivered again (at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import uuid
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import aiormq.exceptions
import orjson
from aio_pika import DeliveryMode, ExchangeType, Message
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustExchange,
    AbstractRobustQueue,
)
from yarl import URL

from vitrail import metrics
from vitrail.bus.base import (
    BusClosed,
    BusUnavailable,
    Delivery,
    EventBus,
    RpcError,
    RpcHandler,
    RpcServer,
    RpcTimeout,
    Undecodable,
)
from vitrail.bus.connection import TRANSIENT, Broker, ConnectionOptions, mask_url

log = logging.getLogger(__name__)

T = TypeVar("T")

JSON = "application/json"
#: How much of a poison message goes into the log line.
RAW_LOG_BYTES = 2000

_WORD = r"[A-Za-z0-9_-]+"
_TOPIC = re.compile(rf"{_WORD}(\.{_WORD})*")
_NAME = re.compile(_WORD)
#: First words of queue names the bus uses itself; a topic may not start with them.
_RESERVED = frozenset({"rpc", "reply"})


class QueueMismatch(RuntimeError):
    """A queue or exchange exists on the broker with other properties than this bus declares."""


@dataclass(frozen=True, slots=True)
class RabbitMQOptions:
    """What the transport URL's query parameters may set (see ``docs/bus.md``)."""

    #: Namespace: the exchange's name and the first word of every queue name.
    prefix: str = "vitrail"
    #: Group and RPC queues as quorum queues (replicated, for clusters) instead of classic ones.
    quorum: bool = False
    #: Unacked deliveries a consumer of a (topic, group) may hold.
    prefetch: int = 8
    #: Calls an RPC server runs at once.
    rpc_prefetch: int = 8
    #: Seconds ``publish``/``cast``/``declare`` wait for the broker in an outage before giving up.
    publish_timeout: float = 60.0
    #: Seconds to open a connection in ``connect``.
    connect_timeout: float = 10.0
    #: First and longest delay between reconnection attempts (seconds).
    reconnect_interval: float = 0.5
    reconnect_max: float = 30.0

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.prefix):
            raise ValueError(f"prefix {self.prefix!r}: use letters, digits, '_' and '-' only")
        if self.prefetch < 1 or self.rpc_prefetch < 1:
            raise ValueError("prefetch and rpc_prefetch must be at least 1")
        for name in ("publish_timeout", "connect_timeout", "reconnect_interval", "reconnect_max"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    @classmethod
    def from_url(cls, transport_url: str, **overrides: Any) -> tuple[URL, RabbitMQOptions]:
        """Split ``transport_url`` into the URL aio-pika gets and the bus options.

        Query parameters that are not bus options (``heartbeat``, TLS files…)
        stay in the URL for aio-pika; ``overrides`` (keyword arguments of
        ``open_bus``) win over the URL.
        """
        url = URL(transport_url)
        values: dict[str, Any] = {}
        query = dict(url.query)
        for option in fields(cls):
            raw = query.pop(option.name, None)
            if raw is None:
                continue
            try:
                values[option.name] = _parse(raw, type(getattr(cls(), option.name)))
            except ValueError:
                raise ValueError(f"transport_url option {option.name}={raw!r} is not valid") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return url.with_query(query), cls(**values)


def _parse(raw: str, kind: type) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError(raw)
    return kind(raw)


def _encode(value: Any) -> bytes:
    return orjson.dumps(value)


def _check_topic(topic: str) -> None:
    if not _TOPIC.fullmatch(topic) or topic.split(".", 1)[0] in _RESERVED:
        raise ValueError(
            f"topic {topic!r}: use dot-separated words of letters, digits, '_' and '-', "
            f"not starting with {' or '.join(sorted(_RESERVED))}"
        )


def _check_name(kind: str, name: str) -> None:
    # No dots: "<prefix>.<topic>.<group>" must name one (topic, group) only.
    if not _NAME.fullmatch(name):
        raise ValueError(f"{kind} {name!r}: use letters, digits, '_' and '-' only")


def _native(delivery: Delivery) -> AbstractIncomingMessage:
    message = delivery._native
    if not isinstance(message, AbstractIncomingMessage):
        raise TypeError("this delivery did not come from a RabbitMQ bus")
    return message


def _stale(message: AbstractIncomingMessage) -> bool:
    """The channel that delivered ``message`` is gone: the broker gives it again on the new one."""
    try:
        return bool(message.channel.is_closed)
    except aiormq.exceptions.ChannelInvalidStateError:
        return True


#: An ack/nack that fails with one of these was not sent because the channel is gone.
_UNSENT: tuple[type[BaseException], ...] = (*TRANSIENT, aiormq.exceptions.AMQPError)


async def _settle(action: Awaitable[None], what: str) -> None:
    """Send an ack/nack; if the connection is gone, the broker redelivers instead (at-least-once)."""
    try:
        await action
    except _UNSENT as exc:
        log.info(
            "%s not sent: the channel is gone; the broker will deliver the message again",
            what,
            extra={"error": repr(exc)},
        )


async def _open_channel(connection: AbstractRobustConnection, confirms: bool) -> AbstractRobustChannel:
    channel = connection.channel(publisher_confirms=confirms)
    await channel.initialize()
    return channel


async def _close_quietly(channel: AbstractRobustChannel | None) -> None:
    if channel is not None and not channel.is_closed:
        with contextlib.suppress(Exception):
            await channel.close()


class _Consumer:
    """The consumer of one (topic, group) in this process, and its delivery buffer."""

    def __init__(self, bus: RabbitMQBus, topic: str, group: str) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group
        self.queue_name = bus.group_queue(topic, group)
        self._messages: deque[AbstractIncomingMessage] = deque()
        self._ready = asyncio.Condition()
        self._closed = False
        self._channel: AbstractRobustChannel | None = None

    async def start(self) -> None:
        broker = self.bus.broker

        async def open_consumer() -> AbstractRobustChannel:
            channel = await _open_channel(broker.consumer, confirms=False)
            try:
                await channel.set_qos(prefetch_count=self.bus.prefetch_of(self.topic, self.group))
                # Declared here too so that the robust channel re-consumes it after a reconnect.
                queue = await channel.declare_queue(self.queue_name, durable=True, arguments=self.bus.queue_arguments)
                await queue.consume(self._arrived)
            except BaseException:
                await _close_quietly(channel)
                raise
            return channel

        self._channel = await broker.persist(open_consumer, broker.consumer, f"consume {self.queue_name}")

    async def _arrived(self, message: AbstractIncomingMessage) -> None:
        async with self._ready:
            self._messages.append(message)
            self._ready.notify()

    async def next(self) -> tuple[AbstractIncomingMessage, Any]:
        """The next delivery and its decoded body (:class:`Undecodable` for bytes that are not JSON)."""
        while True:
            async with self._ready:
                await self._ready.wait_for(lambda: bool(self._messages) or self._closed)
                if self._closed:
                    raise BusClosed("the bus is closed")
                message = self._messages.popleft()
            if _stale(message):
                continue  # delivered on a channel that has since closed: it comes again
            try:
                return message, orjson.loads(message.body)
            except orjson.JSONDecodeError as exc:
                return message, self._poison(message, exc)

    def _poison(self, message: AbstractIncomingMessage, exc: Exception) -> Undecodable:
        metrics.EVENTS_UNPARSABLE.inc()
        log.error(
            "received a message that is not JSON (kept as a dead letter, not requeued)",
            extra={
                "queue": self.queue_name,
                "reason": str(exc),
                "content_type": message.content_type,
                "raw": message.body[:RAW_LOG_BYTES].decode("utf-8", "replace"),
            },
        )
        return Undecodable(bytes(message.body), message.content_type, f"not JSON: {exc}")

    def buffered(self) -> int:
        """Deliveries received and not handed out yet (they wait in this process)."""
        return sum(1 for message in self._messages if not _stale(message))

    async def cancel(self) -> None:
        """Close the consumer's channel: the broker requeues every delivery it holds, in order."""
        await self.shut()
        await _close_quietly(self._channel)
        self._messages.clear()

    async def shut(self) -> None:
        async with self._ready:
            self._closed = True
            self._ready.notify_all()


class _RabbitServer(RpcServer):
    """An RPC server: one consumer of ``<prefix>.rpc.<service>``, each call in its own task."""

    def __init__(self, bus: RabbitMQBus, service: str, handler: RpcHandler) -> None:
        self.bus = bus
        self.service = service
        self.handler = handler
        self.queue_name = bus.rpc_queue(service)
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractRobustQueue | None = None
        self._tag: str | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        broker = self.bus.broker

        async def open_server() -> tuple[AbstractRobustChannel, AbstractRobustQueue, str]:
            channel = await _open_channel(broker.consumer, confirms=False)
            try:
                await channel.set_qos(prefetch_count=self.bus.options.rpc_prefetch)
                queue = await channel.declare_queue(self.queue_name, durable=True, arguments=self.bus.queue_arguments)
                tag = await queue.consume(self._received)
            except BaseException:
                await _close_quietly(channel)
                raise
            return channel, queue, tag

        self._channel, self._queue, self._tag = await broker.persist(
            open_server, broker.consumer, f"serve {self.service}"
        )

    async def _received(self, message: AbstractIncomingMessage) -> None:
        if self._stopping:
            return  # not acked: the broker gives it to another server when this channel closes
        # A task of our own, not aio-pika's consumer task: that one is cancelled when the
        # channel drops, and a call that is already running should finish and answer.
        task = asyncio.create_task(self._answer(message), name=f"rpc-{self.service}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: AbstractIncomingMessage) -> None:
        method = "?"
        try:
            request = orjson.loads(message.body)
            method, params = request["method"], request["params"]
            if not isinstance(method, str) or not isinstance(params, dict):
                raise TypeError("method must be a string and params an object")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            metrics.EVENTS_UNPARSABLE.inc()
            log.error(
                "malformed RPC request (not requeued)",
                extra={
                    "queue": self.queue_name,
                    "reason": str(exc),
                    "raw": message.body[:RAW_LOG_BYTES].decode("utf-8", "replace"),
                },
            )
            answer: dict[str, Any] = {"error": f"malformed request: {exc}", "kind": "bad_request"}
        else:
            answer = await self._run(method, params, call=bool(message.reply_to))
        if message.reply_to:
            try:
                await self.bus._reply(message.reply_to, message.correlation_id, answer, f"{self.service}.{method}")
            except (BusUnavailable, BusClosed) as exc:
                # Not acked: the request goes back to the queue (unless it expired meanwhile).
                log.warning("RPC answer not sent", extra={"service": self.service, "method": method, "error": str(exc)})
                return
        await _settle(message.ack(), f"ack of an RPC request to {self.service}")

    async def _run(self, method: str, params: dict[str, Any], call: bool) -> dict[str, Any]:
        try:
            return {"result": await self.handler(method, params)}
        except RpcError as exc:  # RpcMethodError is kind "bad_request"; a handler may pick other kinds
            if not call:
                log.warning("cast failed", extra={"service": self.service, "method": method, "error": str(exc)})
            return {"error": str(exc), "kind": exc.kind}
        except Exception as exc:
            log.warning(
                "RPC handler failed", exc_info=True, extra={"service": self.service, "method": method, "cast": not call}
            )
            return {"error": f"{type(exc).__name__}: {exc}", "kind": "error"}

    async def stop(self) -> None:
        await self._stop(grace=None)

    async def _stop(self, grace: float | None) -> None:
        """Stop consuming, let running calls finish (cancel them after ``grace`` s), close the channel."""
        if self._stopping:
            return
        self._stopping = True
        if self._queue is not None and self._tag is not None:
            with contextlib.suppress(Exception):
                await self._queue.cancel(self._tag)
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in late:
                task.cancel()  # its request is not acked: the broker gives it to another server
            if late:
                await asyncio.wait(late)
        await _close_quietly(self._channel)
        with contextlib.suppress(ValueError):
            self.bus._servers.remove(self)


class RabbitMQBus(EventBus):
    """:class:`~vitrail.bus.base.EventBus` on RabbitMQ; see the module docstring for the mapping."""

    #: Seconds :meth:`close` lets running RPC calls finish before cancelling them.
    CLOSE_GRACE = 5.0

    def __init__(self, url: str | URL, options: RabbitMQOptions | None = None) -> None:
        self.url = URL(str(url))
        self.options = options or RabbitMQOptions()
        self.exchange_name = self.options.prefix
        self.queue_arguments: dict[str, Any] | None = {"x-queue-type": "quorum"} if self.options.quorum else None
        self._broker: Broker | None = None
        self._connect_lock = asyncio.Lock()
        self._closed = False
        self._publish_channel: AbstractRobustChannel | None = None
        self._admin_channel: AbstractRobustChannel | None = None
        self._query_channel: AbstractRobustChannel | None = None
        self._exchange: AbstractRobustExchange | None = None
        self._declared: set[str] = set()
        self._declare_lock = asyncio.Lock()
        self._query_lock = asyncio.Lock()
        self._consumers: dict[tuple[str, str], _Consumer] = {}
        self._prefetch: dict[tuple[str, str], int] = {}  # per-consumer overrides of options.prefetch
        self._consumer_lock = asyncio.Lock()
        self._servers: list[_RabbitServer] = []
        self._ids = itertools.count(1)
        self._calls: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reply_queue: str | None = None
        self._reply_channel: AbstractRobustChannel | None = None
        self._reply_lock = asyncio.Lock()

    @classmethod
    def from_url(cls, transport_url: str, **overrides: Any) -> RabbitMQBus:
        url, options = RabbitMQOptions.from_url(transport_url, **overrides)
        return cls(url, options)

    def __repr__(self) -> str:
        return f"<RabbitMQBus {mask_url(self.url)} prefix={self.options.prefix!r}>"

    # -- names -----------------------------------------------------------------------

    def group_queue(self, topic: str, group: str) -> str:
        _check_topic(topic)
        _check_name("group", group)
        return f"{self.options.prefix}.{topic}.{group}"

    def rpc_queue(self, service: str) -> str:
        _check_name("service", service)
        return f"{self.options.prefix}.rpc.{service}"

    @property
    def declared_queues(self) -> frozenset[str]:
        """Durable queues this bus declared (the exclusive reply queue goes away by itself)."""
        return frozenset(self._declared)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            raise RuntimeError("the bus is not connected")
        return self._broker

    async def connect(self) -> None:
        """Open the connections and declare the namespace's exchange.

        Raises :class:`~vitrail.bus.connection.BusUnavailable` naming host:port
        (password masked) when the broker cannot be reached.
        """
        async with self._connect_lock:
            if self._closed:
                raise BusClosed("the bus is closed")
            if self._broker is not None:
                return
            broker = Broker(
                self.url,
                ConnectionOptions(
                    connect_timeout=self.options.connect_timeout,
                    reconnect_interval=self.options.reconnect_interval,
                    reconnect_max=self.options.reconnect_max,
                    operation_timeout=self.options.publish_timeout,
                ),
                name=f"vitrail {self.options.prefix}",
            )
            await broker.open()
            if self._closed:  # closed while the connections were opening
                await broker.close()
                raise BusClosed("the bus is closed")
            try:
                self._publish_channel = await _open_channel(broker.publisher, confirms=True)
                self._admin_channel = await _open_channel(broker.publisher, confirms=False)
                self._query_channel = await _open_channel(broker.publisher, confirms=False)
                self._exchange = await self._declare_exchange(self._publish_channel)
                await self._declare_exchange(self._admin_channel)  # bindings are made there
            except BaseException:
                await broker.close()
                raise
            self._broker = broker

    async def _declare_exchange(self, channel: AbstractRobustChannel) -> AbstractRobustExchange:
        try:
            return await channel.declare_exchange(self.exchange_name, ExchangeType.TOPIC, durable=True)
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            raise QueueMismatch(
                f"exchange {self.exchange_name!r} exists with other properties than a durable topic exchange: {exc}"
            ) from None

    async def _connected(self) -> Broker:
        if self._closed:
            raise BusClosed("the bus is closed")
        if self._broker is None:
            await self.connect()
        return self.broker

    async def close(self) -> None:
        """Stop delivering: waiting ``get`` callers and pending calls get :class:`BusClosed`.

        Unacked deliveries go back to their queues when the connections close.
        """
        if self._closed:
            return
        self._closed = True
        if self._broker is not None:
            self._broker.closing.set()
        for consumer in list(self._consumers.values()):
            await consumer.shut()
        for server in list(self._servers):
            await server._stop(grace=self.CLOSE_GRACE)
        for future in self._calls.values():
            if not future.done():
                future.set_exception(BusClosed("the bus is closed"))
        if self._broker is not None:
            await self._broker.close()

    # -- topics ----------------------------------------------------------------------

    async def declare(self, topic: str, group: str) -> None:
        name = self.group_queue(topic, group)
        if name in self._declared:
            return
        broker = await self._connected()
        channel = self._admin_channel
        assert channel is not None

        async def declare_group() -> None:
            queue = await self._declare_queue(channel, name)
            await queue.bind(self.exchange_name, routing_key=topic)

        async with self._declare_lock:
            if name not in self._declared:
                await broker.persist(declare_group, channel, f"declare {name}")
                self._declared.add(name)

    async def _declare_queue(self, channel: AbstractRobustChannel, name: str) -> AbstractRobustQueue:
        try:
            return await channel.declare_queue(name, durable=True, arguments=self.queue_arguments)
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            kind = "quorum" if self.options.quorum else "classic"
            raise QueueMismatch(
                f"queue {name!r} exists with other arguments than this bus declares ({kind}, durable): {exc}. "
                "Every process of one namespace needs the same quorum setting."
            ) from None

    async def publish(self, topic: str, body: Any) -> None:
        """Send ``body`` to every group of ``topic``; returns once the broker confirmed it.

        In an outage this waits for the broker (``publish_timeout``), then raises
        :class:`~vitrail.bus.connection.BusUnavailable`. A ``TypeError`` says the
        body is not JSON-compatible.
        """
        _check_topic(topic)
        try:
            data = _encode(body)
        except TypeError as exc:
            raise TypeError(f"a message to {topic!r} must be JSON-compatible: {exc}") from None
        broker = await self._connected()
        exchange = self._exchange
        channel = self._publish_channel
        assert exchange is not None
        assert channel is not None
        message = Message(data, content_type=JSON, delivery_mode=DeliveryMode.PERSISTENT)

        async def send() -> None:
            # mandatory=False: a message no group is bound for is dropped, as the contract says.
            await exchange.publish(message, routing_key=topic, mandatory=False)

        await broker.persist(send, channel, f"publish to {topic}")

    def set_prefetch(self, topic: str, group: str, count: int) -> None:
        super().set_prefetch(topic, group, count)
        self._prefetch[(topic, group)] = count

    def prefetch_of(self, topic: str, group: str) -> int:
        """The prefetch of this process's consumer of (``topic``, ``group``)."""
        return self._prefetch.get((topic, group), self.options.prefetch)

    async def _consumer(self, topic: str, group: str) -> _Consumer:
        key = (topic, group)
        consumer = self._consumers.get(key)
        if consumer is not None:
            return consumer
        async with self._consumer_lock:
            consumer = self._consumers.get(key)
            if consumer is None:
                await self.declare(topic, group)
                consumer = _Consumer(self, topic, group)
                await consumer.start()
                self._consumers[key] = consumer
                if self._closed:
                    await consumer.shut()
        return consumer

    async def get(self, topic: str, group: str) -> Delivery:
        await self._connected()
        consumer = await self._consumer(topic, group)
        message, body = await consumer.next()
        return Delivery(topic, group, body, next(self._ids), bool(message.redelivered), _native=message)

    async def stop_consuming(self, topic: str, group: str) -> None:
        async with self._consumer_lock:
            consumer = self._consumers.pop((topic, group), None)
        if consumer is not None:
            await consumer.cancel()

    async def ack(self, delivery: Delivery) -> None:
        if delivery._settled:
            return
        delivery._settled = True
        await _settle(_native(delivery).ack(), "ack")

    async def nack(self, delivery: Delivery, requeue: bool = True) -> None:
        if delivery._settled:
            return
        delivery._settled = True
        await _settle(_native(delivery).nack(requeue=requeue), "nack")

    async def pending(self, topic: str, group: str) -> int:
        """Messages ready in the group's queue plus those buffered here and not handed out yet.

        Deliveries buffered by consumers in *other* processes count as in flight.
        """
        name = self.group_queue(topic, group)
        broker = await self._connected()
        channel = self._query_channel
        assert channel is not None

        async def count() -> int:
            underlay = await channel.get_underlay_channel()
            try:
                declared = await underlay.queue_declare(name, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return 0  # never declared: nothing kept (the robust channel reopens by itself)
            return int(declared.message_count or 0)

        async with self._query_lock:
            ready = await broker.persist(count, channel, f"count {name}")
        consumer = self._consumers.get((topic, group))
        return ready + (consumer.buffered() if consumer is not None else 0)

    # -- rpc -------------------------------------------------------------------------

    async def serve(self, service: str, handler: RpcHandler) -> RpcServer:
        await self._connected()
        server = _RabbitServer(self, service, handler)
        await server.start()
        self._declared.add(server.queue_name)
        self._servers.append(server)
        if self._closed:
            await server._stop(grace=0)
            raise BusClosed("the bus is closed")
        return server

    async def _ensure_rpc_queue(self, service: str, broker: Broker, patience: float | None = None) -> str:
        """Declare the service's queue from the caller's side too, so a call waits there for a
        server that is (re)starting instead of being dropped as unroutable."""
        name = self.rpc_queue(service)
        if name in self._declared:
            return name
        channel = self._admin_channel
        assert channel is not None

        async def declare_rpc() -> None:
            await self._declare_queue(channel, name)

        async with self._declare_lock:
            if name not in self._declared:
                await broker.persist(declare_rpc, channel, f"declare {name}", patience)
                self._declared.add(name)
        return name

    async def _replies(self, broker: Broker) -> str:
        """This bus's exclusive reply queue (made on first call, re-made by aio-pika after a reconnect)."""
        if self._reply_queue is not None:
            return self._reply_queue
        async with self._reply_lock:
            if self._reply_queue is None:
                name = f"{self.options.prefix}.reply.{uuid.uuid4().hex}"

                async def open_replies() -> AbstractRobustChannel:
                    channel = await _open_channel(broker.consumer, confirms=False)
                    try:
                        queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
                        await queue.consume(self._reply_arrived, no_ack=True)
                    except BaseException:
                        await _close_quietly(channel)
                        raise
                    return channel

                self._reply_channel = await broker.persist(open_replies, broker.consumer, "open the reply queue")
                self._reply_queue = name
        return self._reply_queue

    async def _reply_arrived(self, message: AbstractIncomingMessage) -> None:
        future = self._calls.get(message.correlation_id or "")
        if future is None or future.done():
            log.debug("late or unknown RPC reply ignored", extra={"correlation_id": message.correlation_id})
            return
        try:
            answer = orjson.loads(message.body)
            if not isinstance(answer, dict):
                raise TypeError(f"expected an object, got {type(answer).__name__}")
        except (orjson.JSONDecodeError, TypeError) as exc:
            future.set_exception(RpcError(f"malformed RPC reply: {exc}"))
            return
        future.set_result(answer)

    async def _reply(self, reply_to: str, correlation_id: str | None, answer: dict[str, Any], what: str) -> None:
        try:
            data = _encode(answer)
        except TypeError as exc:
            data = _encode({"error": f"the result of {what} is not JSON-compatible: {exc}", "kind": "error"})
        broker = self.broker
        channel = self._publish_channel
        assert channel is not None
        message = Message(
            data, content_type=JSON, correlation_id=correlation_id, delivery_mode=DeliveryMode.NOT_PERSISTENT
        )

        async def send() -> None:
            # The caller may be gone with its reply queue: then the answer is dropped, not returned.
            await channel.default_exchange.publish(message, routing_key=reply_to, mandatory=False)

        await broker.persist(send, channel, f"answer {what}")

    @staticmethod
    def _request(service: str, method: str, params: dict[str, Any]) -> bytes:
        try:
            return _encode({"method": method, "params": params})
        except TypeError as exc:
            raise RpcError(f"parameters of {service}.{method} are not JSON-compatible: {exc}", "bad_request") from None

    async def call(self, service: str, method: str, params: dict[str, Any], within: float = 30.0) -> Any:
        """Run ``method`` on one server of ``service``.

        The request expires on the broker after ``within`` seconds, so a call
        that no server took in time is never run late; :class:`RpcTimeout` when
        no answer came (including when the broker was away all that time).
        """
        data = self._request(service, method, params)
        broker = await self._connected()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        try:
            async with asyncio.timeout_at(deadline):
                queue = await self._ensure_rpc_queue(service, broker, within + 1)
                reply_to = await self._replies(broker)
                self._calls[correlation_id] = future
                channel = self._publish_channel
                assert channel is not None
                message = Message(
                    data,
                    content_type=JSON,
                    correlation_id=correlation_id,
                    reply_to=reply_to,
                    expiration=max(deadline - loop.time(), 0.001),
                    # Transient: after a broker restart the caller's reply queue is new and
                    # the call has most likely timed out; keeping requests on disk buys nothing.
                    delivery_mode=DeliveryMode.NOT_PERSISTENT,
                )

                async def send() -> None:
                    await channel.default_exchange.publish(message, routing_key=queue, mandatory=False)

                await broker.persist(send, channel, f"call {service}.{method}", within + 1)
                answer = await future
        except TimeoutError:
            detail = f" (RabbitMQ on {broker.endpoint} is unreachable)" if broker.publisher.down else ""
            raise RpcTimeout(f"no answer from {service}.{method} within {within} s{detail}") from None
        finally:
            self._calls.pop(correlation_id, None)
        if "error" in answer:
            kind = str(answer.get("kind") or "error")
            if kind == "timeout":
                raise RpcTimeout(str(answer["error"]))
            raise RpcError(str(answer["error"]), kind)
        return answer.get("result")

    async def cast(self, service: str, method: str, params: dict[str, Any]) -> None:
        """Queue ``method`` for one server of ``service`` (persistent; it waits for a server to start)."""
        data = self._request(service, method, params)
        broker = await self._connected()
        queue = await self._ensure_rpc_queue(service, broker)
        channel = self._publish_channel
        assert channel is not None
        message = Message(data, content_type=JSON, delivery_mode=DeliveryMode.PERSISTENT)

        async def send() -> None:
            await channel.default_exchange.publish(message, routing_key=queue, mandatory=False)

        await broker.persist(send, channel, f"cast {service}.{method}")


__all__ = ["BusUnavailable", "QueueMismatch", "RabbitMQBus", "RabbitMQOptions"]
