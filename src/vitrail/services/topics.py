"""Names on the bus, and how events travel on it.

Two topics carry events to the graph, so that it can take what people and
monitors report before the bulk of a ``get_all`` (the event coordinator in
:mod:`vitrail.services.graph`): alarms posted to the API, listener
notifications and template changes go on :data:`PRIORITY_EVENTS`; what the
collector reads goes on :data:`BULK_EVENTS`. Events travel as lists of plain
records (:meth:`vitrail.graph.events.Event.to_record`), a page per message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from vitrail.bus.base import EventBus
from vitrail.graph.events import Event

BULK_EVENTS = "events.bulk"
PRIORITY_EVENTS = "events.priority"
GRAPH_GROUP = "graph"

#: What the graph leader accepted, with sequence numbers and its epoch, for the persistors.
PROCESSED_EVENTS = "events.processed"
#: Messages nobody could process, for the persistors to keep (raw bytes, source, reason).
DEAD_LETTERS = "dead_letters"
PERSISTOR_GROUP = "persistor"

#: RPC services.
COLLECTOR_SERVICE = "collector"
GRAPH_SERVICE = "graph"
CONDUCTOR_SERVICE = "conductor"


#: ``publish(events)``: put events on the bus; raises when the bus did not take them.
Publisher = Callable[[list[Event]], Awaitable[None]]


def publisher(bus: EventBus, topic: str = PRIORITY_EVENTS) -> Publisher:
    """Publish lists of events on ``topic`` (by default the priority one: alarms, notifications, templates)."""

    async def publish(events: list[Event]) -> None:
        if events:
            await bus.publish(topic, encode(events))

    return publish


def encode(events: Iterable[Event]) -> list[dict[str, Any]]:
    return [event.to_record() for event in events]


def decode(body: Any) -> list[Event]:
    """The events of one message; :class:`vitrail.graph.events.EventError` names what is wrong."""
    if not isinstance(body, list):
        from vitrail.graph.events import EventError

        raise EventError(f"message: expected a list of events, got {type(body).__name__}")
    return [Event.from_record(record) for record in body]
