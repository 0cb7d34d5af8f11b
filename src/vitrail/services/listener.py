"""The OpenStack notifications listener: nova's RabbitMQ exchange → Vitrail's event bus.

Nova (through oslo.messaging) publishes every notification to a ``topic``
exchange (``nova`` by default) with the routing key ``<topic>.<priority>``
(``notifications.info``, ``versioned_notifications.info``...). The listener
declares **its own durable queue** bound to those keys, so it gets a copy of
every notification without taking any from the ``notifications.info`` queue
oslo.messaging declares for ceilometer and friends (consumers of one queue
compete for its messages).

For every small burst of messages (up to ``batch_size`` or ``batch_window``
seconds after the first one) it parses each with
:func:`vitrail.datasources.nova.read_notification`, publishes all the
resulting events with one call of ``publish(events)`` (the caller puts
``encode(events)`` on :data:`~vitrail.services.topics.PRIORITY_EVENTS`, see
:func:`vitrail.services.topics.publisher`) and only then acks the messages: delivery is
at-least-once, and the event ids (nova's ``message_id``) make a redelivered
notification a duplicate the graph ignores.

* A notification this datasource does not map (neutron, cinder, metrics...)
  is counted as ignored, with the reason, and acked.
* A message that cannot be parsed is counted, logged with the reason, kept as
  a dead letter with its raw bytes (:mod:`vitrail.services.dead_letters`:
  a persistor stores it) and acked: requeueing it would only bring it back
  forever.
* A publish that fails is retried with backoff, the batch held unacked, so
  consumption pauses (prefetch is bounded) until the bus takes events again;
  stopping meanwhile hands the batch back to RabbitMQ.
* The connection is aio-pika's robust one: after a broker restart it
  reconnects and re-declares the exchange, queue and bindings by itself;
  messages that were unacked come back, their events are duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from yarl import URL

from vitrail.bus.base import BusUnavailable
from vitrail.bus.connection import ConnectionOptions, open_connection
from vitrail.datasources.nova import Notification, read_notification
from vitrail.datasources.payload import PayloadError
from vitrail.graph.events import Event, utc_now
from vitrail.metrics import (
    NOTIFICATION_PUBLISH_FAILURES,
    NOTIFICATIONS_IGNORED,
    NOTIFICATIONS_RECEIVED,
    NOTIFICATIONS_UNPARSABLE,
)
from vitrail.services.dead_letters import DeadLetterSender
from vitrail.services.topics import Publisher
from vitrail.urls import mask_url

log = logging.getLogger(__name__)

#: oslo.messaging's exchange for nova (``control_exchange = nova``).
DEFAULT_EXCHANGE = "nova"
#: Legacy (``notifications``) and versioned (``versioned_notifications``) topics, INFO and ERROR priorities.
DEFAULT_TOPICS: tuple[str, ...] = (
    "notifications.info",
    "notifications.error",
    "versioned_notifications.info",
    "versioned_notifications.error",
)
#: Vitrail's own queue: never one of oslo's ``<topic>.<priority>`` queues, whose consumers would compete.
DEFAULT_QUEUE = "vitrail.notifications"

#: ``parser(body, received_at)``: :func:`~vitrail.datasources.nova.read_notification` or a driver's ``read``.
Parser = Callable[[Any, str], Notification]


class ListenerError(RuntimeError):
    """The listener cannot start: broker unreachable, or the exchange declared differently."""


@dataclass(slots=True)
class ListenerStats:
    """Counters since the listener was created (the Prometheus counters are process-wide)."""

    received: int = 0
    ignored: int = 0
    unparsable: int = 0
    events: int = 0
    batches: int = 0
    publishes: int = 0
    publish_failures: int = 0


def preview(body: bytes, limit: int) -> str:
    """The raw body as text for a log line, cut at ``limit`` characters."""
    text = body.decode("utf-8", errors="replace")
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(body)} bytes)"


class NotificationListener:
    """Consumes oslo.messaging notifications and publishes Vitrail events (see the module docstring).

    ``exchange_durable`` must match how oslo.messaging declares the exchange
    (its ``[oslo_messaging_rabbit] amqp_durable_queues``, False by default):
    RabbitMQ refuses a second declaration with another durability, and nova
    would then fail to publish if Vitrail declared it first. ``quorum`` makes
    Vitrail's queue a quorum queue (replicated across a RabbitMQ cluster).
    ``reconnect_interval`` is the first pause between reconnection attempts after
    the broker went away; the pauses grow with the outage up to ``reconnect_max``
    (the bus's own connections, :mod:`vitrail.bus.connection`, reconnect alike).
    ``stop_timeout`` bounds how long :meth:`stop` waits for a batch in progress
    (a publish blocked by a full bus); after it the batch is abandoned unacked,
    so RabbitMQ delivers it again.
    """

    def __init__(
        self,
        url: str,
        exchange: str = DEFAULT_EXCHANGE,
        topics: Sequence[str] = DEFAULT_TOPICS,
        publish: Publisher | None = None,
        *,
        queue: str = DEFAULT_QUEUE,
        exchange_durable: bool = False,
        quorum: bool = False,
        batch_size: int = 100,
        batch_window: float = 0.05,
        prefetch: int | None = None,
        parser: Parser = read_notification,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        reconnect_interval: float = 0.5,
        reconnect_max: float = 30.0,
        stop_timeout: float = 10.0,
        body_preview: int = 2000,
        dead_letters: DeadLetterSender | None = None,
    ) -> None:
        if publish is None:
            raise ValueError("publish is required: the coroutine that puts events on Vitrail's bus")
        if not topics:
            raise ValueError("topics must name at least one routing key")
        if batch_size < 1 or batch_window < 0:
            raise ValueError("batch_size must be >= 1 and batch_window >= 0")
        self.url = url
        self.exchange = exchange
        self.topics = tuple(topics)
        self.publish = publish
        self.dead_letters = dead_letters
        self._rejected: list[tuple[bytes, str]] = []  # (raw body, reason) of the batch being handled
        self.queue_name = queue
        self.exchange_durable = exchange_durable
        self.quorum = quorum
        self.batch_size = batch_size
        self.batch_window = batch_window
        self.prefetch = prefetch or 2 * batch_size
        self.parser = parser
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.reconnect_interval = reconnect_interval
        self.reconnect_max = reconnect_max
        self.stop_timeout = stop_timeout
        self.body_preview = body_preview
        self.stats = ListenerStats()
        #: How RabbitMQ's management tools show this listener's connection.
        self.connection_name = f"vitrail notifications {queue} {socket.gethostname()}:{os.getpid()}"
        self._connection: AbstractRobustConnection | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._busy = False

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Connect, declare the exchange and the queue, bind the topics and start consuming.

        Raises :class:`ListenerError` when the broker is unreachable or refuses the declarations.
        """
        try:
            options = ConnectionOptions(reconnect_interval=self.reconnect_interval, reconnect_max=self.reconnect_max)
            self._connection = await open_connection(URL(self.url), options, self.connection_name)
        except (BusUnavailable, ValueError) as exc:
            raise ListenerError(f"RabbitMQ is not reachable at {mask_url(self.url)}: {exc}") from exc
        try:
            self._queue = await self._declare(self._connection)
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name=f"notification-listener:{self.queue_name}")
            self._consumer_tag = await self._queue.consume(self._on_message)
        except BaseException as exc:
            # Half started (the broker refused a declaration or went away): leave nothing running.
            with contextlib.suppress(Exception):
                await self.stop()
            if isinstance(exc, Exception):
                raise ListenerError(self._start_failure(exc)) from exc
            raise
        log.info(
            "notification listener started",
            extra={"exchange": self.exchange, "topics": list(self.topics), "queue": self.queue_name},
        )

    def _start_failure(self, exc: Exception) -> str:
        if isinstance(exc, aiormq.exceptions.ChannelPreconditionFailed):
            return (
                f"exchange {self.exchange!r} exists with other settings than type=topic, "
                f"durable={self.exchange_durable}: set exchange_durable to oslo.messaging's "
                f"amqp_durable_queues ({exc})"
            )
        return f"RabbitMQ at {mask_url(self.url)} failed while the listener declared its queue: {exc!r}"

    async def _declare(self, connection: AbstractRobustConnection) -> AbstractQueue:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        exchange = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.TOPIC, durable=self.exchange_durable, auto_delete=False
        )
        arguments = {"x-queue-type": "quorum"} if self.quorum else None
        queue = await channel.declare_queue(self.queue_name, durable=True, arguments=arguments)
        for topic in self.topics:
            await queue.bind(exchange, routing_key=topic)
        return queue

    async def stop(self) -> None:
        """Stop consuming; a batch being handled finishes (or is handed back), the rest is requeued."""
        self._stopping.set()
        if self._queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(Exception):  # the channel may be gone already
                await self._queue.cancel(self._consumer_tag)
            self._consumer_tag = None
        if self._task is not None:
            task, self._task = self._task, None
            if self._busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), self.stop_timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._connection is not None:
            # Messages prefetched but not handled are unacked: closing hands them back to RabbitMQ.
            connection, self._connection = self._connection, None
            await connection.close()
        self._queue = None
        self._inbox = asyncio.Queue()

    async def __aenter__(self) -> NotificationListener:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- consuming -----------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        await self._inbox.put(message)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            batch = await self._next_batch()
            self._busy = True
            try:
                await self._handle(batch)
            finally:
                self._busy = False

    async def _next_batch(self) -> list[AbstractIncomingMessage]:
        """The first waiting message and those that follow within ``batch_window``, up to ``batch_size``."""
        inbox = self._inbox
        batch = [await inbox.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.batch_window
        while len(batch) < self.batch_size:
            if not inbox.empty():
                batch.append(inbox.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that races with the get (CPython gh-86296), and stopping would hang.
                async with asyncio.timeout(remaining):
                    batch.append(await inbox.get())
            except TimeoutError:
                break
        return batch

    async def _handle(self, batch: list[AbstractIncomingMessage]) -> None:
        """Parse, publish once, then ack; hand the batch back when stopped before publishing."""
        self.stats.batches += 1
        received_at = utc_now()
        events: list[Event] = []
        self._rejected = []
        for message in batch:
            events.extend(self._parse(message, received_at))
        if events and not await self._publish(events):
            await self._settle(batch, ack=False)
            return
        if self.dead_letters is not None:
            for body, reason in self._rejected:
                await self.dead_letters.send(self.queue_name, reason, body)
        await self._settle(batch, ack=True)

    def _parse(self, message: AbstractIncomingMessage, received_at: str) -> list[Event]:
        """The events of one message; ignored and unparsable ones are counted and logged here."""
        self.stats.received += 1
        NOTIFICATIONS_RECEIVED.inc()
        try:
            notification = self.parser(message.body, received_at)
        except PayloadError as exc:
            self._unparsable(message, f"{exc.field}: {exc.reason}")
            return []
        except Exception as exc:  # a parser bug must not stop consumption, nor requeue forever
            log.exception("notification parser failed")
            self._unparsable(message, f"parser error: {exc!r}")
            return []
        if notification.ignored is not None:
            self.stats.ignored += 1
            NOTIFICATIONS_IGNORED.labels(reason=notification.ignored).inc()
            log.debug(
                "notification ignored",
                extra={"event_type": notification.event_type, "reason": notification.ignored},
            )
        return notification.events

    def _unparsable(self, message: AbstractIncomingMessage, reason: str) -> None:
        self.stats.unparsable += 1
        self._rejected.append((bytes(message.body), reason))
        NOTIFICATIONS_UNPARSABLE.inc()
        log.warning(
            "unparsable notification kept as a dead letter: %s",
            reason,
            extra={
                "reason": reason,
                "exchange": message.exchange,
                "routing_key": message.routing_key,
                "message_id": message.message_id,
                "body": preview(message.body, self.body_preview),
            },
        )

    async def _publish(self, events: list[Event]) -> bool:
        """Publish until it works (True) or the listener stops (False), backing off between tries."""
        delay = self.retry_initial
        while True:
            try:
                await self.publish(events)
            except Exception as exc:
                self.stats.publish_failures += 1
                NOTIFICATION_PUBLISH_FAILURES.inc()
                log.warning("publishing %d notification events failed, retrying in %.1fs: %s", len(events), delay, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                if self._stopping.is_set():
                    return False
                delay = min(delay * 2, self.retry_max)
                continue
            self.stats.publishes += 1
            self.stats.events += len(events)
            return True

    async def _settle(self, batch: list[AbstractIncomingMessage], ack: bool) -> None:
        """Ack (or requeue) every message; one whose channel is gone comes back by itself."""
        for message in batch:
            try:
                if ack:
                    await message.ack()
                else:
                    await message.nack(requeue=True)
            except Exception as exc:
                log.debug("could not settle a notification (it will be redelivered): %s", exc)
