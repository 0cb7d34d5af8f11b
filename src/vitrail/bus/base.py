"""The bus contract: topics with consumer groups, acknowledgements, and RPC.

**Topics.** Every consumer group of a topic receives every message; consumers
of the same group compete for them. A message stays "in flight" until its
consumer acks it; a nack puts it back (at-least-once delivery), so processing a
message twice is possible and the graph's duplicate check makes it harmless.
A message published before any group of the topic was declared is not kept.

**RPC.** ``serve(service, handler)`` answers calls to ``service``; any number of
servers of one service compete for its calls (active-active collectors).
``call`` waits for the answer (:class:`RpcTimeout` when none comes ``within`` seconds,
:class:`RpcError` carrying the remote error), ``cast`` does not wait.

Bodies, parameters and results are JSON-compatible data (dicts, lists,
strings, numbers, booleans, None): the RabbitMQ implementation sends them as
JSON, and the in-process one must not be relied on to do otherwise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

#: ``handler(method, params) -> result``; raise :class:`RpcMethodError` for a caller's mistake.
RpcHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]


@dataclass(slots=True)
class Delivery:
    """One message handed to one consumer."""

    topic: str
    group: str
    body: Any
    delivery_id: int
    redelivered: bool = False
    _settled: bool = field(default=False, repr=False)
    _native: Any = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Undecodable:
    """The body of a delivery whose bytes are not JSON (someone else published them).

    It is handed to the consumer rather than dropped by the bus, so that the
    consumer can keep the raw bytes as a dead letter, then ack: a message that
    cannot be read must never be requeued (it would come back forever).
    """

    raw: bytes
    content_type: str | None
    reason: str


class BusClosed(RuntimeError):
    """The bus was closed while waiting for a message."""


class BusUnavailable(ConnectionError):
    """The broker could not be reached: at connect, or for longer than an operation may wait.

    The message names the broker (host:port), never its password.
    """


class RpcError(RuntimeError):
    """The remote side failed; the message is the remote error."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


class RpcTimeout(RpcError):
    """No answer in time (no server running, or it is too slow)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "timeout")


class RpcMethodError(RpcError):
    """Raised by a handler for a call it cannot take (unknown method, bad parameters).

    It reaches the caller as an :class:`RpcError` of kind ``bad_request``; other
    exceptions reach it as kind ``error`` with their message.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, "bad_request")


class RpcServer(ABC):
    """A running :meth:`EventBus.serve`."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop taking calls (calls in progress finish)."""


class EventBus(ABC):
    """Publish/consume and RPC, shared by every bus implementation."""

    # -- topics --------------------------------------------------------------------

    @abstractmethod
    async def publish(self, topic: str, body: Any) -> None:
        """Hand ``body`` to every consumer group of ``topic`` (confirmed when this returns)."""

    @abstractmethod
    async def declare(self, topic: str, group: str) -> None:
        """Make sure ``group`` receives messages of ``topic`` from now on (durably)."""

    def set_prefetch(self, topic: str, group: str, count: int) -> None:
        """Let this process's consumer of (``topic``, ``group``) hold up to ``count`` unacked messages.

        For consumers that ack late (the graph acks an input once its events are
        stored): with the default prefetch they would run dry waiting for acks.
        Call before the first :meth:`get`; buses without prefetch ignore it.
        """
        if count < 1:
            raise ValueError(f"prefetch must be at least 1, got {count}")

    @abstractmethod
    async def get(self, topic: str, group: str) -> Delivery:
        """The next message of ``group``; raises :class:`BusClosed` when closed."""

    @abstractmethod
    async def ack(self, delivery: Delivery) -> None:
        """The message is processed: forget it."""

    @abstractmethod
    async def nack(self, delivery: Delivery, requeue: bool = True) -> None:
        """The message was not processed: give it again (or drop it)."""

    async def stop_consuming(self, topic: str, group: str) -> None:  # noqa: B027 - optional, a no-op by default
        """Stop receiving ``group``'s messages in this process; what it received and did not
        settle goes back to the group (a no-op for buses that deliver only on :meth:`get`)."""

    @abstractmethod
    async def pending(self, topic: str, group: str) -> int:
        """Messages waiting in ``group`` (not counting those in flight)."""

    # -- rpc -----------------------------------------------------------------------

    @abstractmethod
    async def call(self, service: str, method: str, params: dict[str, Any], within: float = 30.0) -> Any:
        """Call ``method`` on one server of ``service`` and return its result (in ``within`` seconds)."""

    @abstractmethod
    async def cast(self, service: str, method: str, params: dict[str, Any]) -> None:
        """Send ``method`` to one server of ``service`` without waiting for it."""

    @abstractmethod
    async def serve(self, service: str, handler: RpcHandler) -> RpcServer:
        """Answer calls to ``service`` with ``handler`` until the returned server stops."""

    # -- lifecycle -----------------------------------------------------------------

    @abstractmethod
    async def connect(self) -> None:
        """Open connections (a no-op in-process). Raises when the broker is unreachable."""

    @abstractmethod
    async def close(self) -> None:
        """Stop delivering; waiting consumers get :class:`BusClosed`."""
