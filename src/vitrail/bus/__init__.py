"""The event bus between datasources/listeners and the graph.

One interface (:class:`~vitrail.bus.base.EventBus`); the embedded mode uses the
in-process implementation, the distributed mode RabbitMQ.
"""

from __future__ import annotations

from vitrail.bus.base import Delivery, EventBus
from vitrail.bus.memory import InProcessBus

__all__ = ["Delivery", "EventBus", "InProcessBus", "open_bus"]


def open_bus(transport_url: str, *, prefix: str | None = None) -> EventBus:
    """The bus for ``transport_url``.

    * ``memory://``: the in-process bus of the embedded mode.
    * ``amqp://user:password@host:5672/vhost?options`` (or ``amqps://``): RabbitMQ.
      Options, as query parameters (``docs/bus.md``): ``prefix`` (namespace, default
      ``vitrail``), ``quorum`` (``true`` for quorum queues), ``prefetch`` (default 8),
      ``rpc_prefetch`` (8), ``publish_timeout`` (s an operation waits for the broker in an
      outage, 60), ``connect_timeout`` (10), ``reconnect_interval`` and ``reconnect_max``
      (reconnection backoff, 0.5 and 30 s). Other parameters (``heartbeat``, TLS files…) go
      to aio-pika. ``prefix`` given here wins over the URL's.

    The bus is not connected yet: call ``await bus.connect()``.
    """
    if transport_url.startswith("memory://"):
        return InProcessBus()
    scheme = transport_url.split("://", 1)[0] if "://" in transport_url else transport_url
    if scheme in ("amqp", "amqps"):
        # Imported here: aio-pika is only needed in the distributed mode.
        from vitrail.bus.rabbitmq import RabbitMQBus

        return RabbitMQBus.from_url(transport_url, prefix=prefix)
    raise ValueError(f"transport_url scheme {scheme!r} is not supported; use memory:// or amqp://")
