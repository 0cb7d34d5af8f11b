"""From the graph to the event log: processed events on the bus, and how far they are stored.

Seed ``001`` (fast failover): the graph "sends each processed event to the
persistor so these are stored in the order of handling". The graph leader
publishes what it accepted, numbered, on
:data:`~vitrail.services.topics.PROCESSED_EVENTS` as ``{"epoch": E,
"events": [record, ...]}``; persistors write them (:mod:`vitrail.services.persistor`).

The graph acknowledges an input message only once every event it produced is
stored: until then a crash of the graph, the broker or a persistor leaves the
input on the bus, and the next leader applies it. :class:`LogWatermark` tells
how far the log is stored *for this leader*: it reads the current epoch and
the highest stored sequence in one statement, so a leader that lost its
epoch learns it (:class:`~vitrail.storage.Fenced`) instead of counting its
successor's events as its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from vitrail.bus.base import EventBus
from vitrail.graph.events import Event, EventError
from vitrail.services.topics import PROCESSED_EVENTS, encode
from vitrail.storage import Fenced, read_watermark

#: The led role whose epoch fences the event log.
LEADERSHIP = "graph"


class ProcessedPublisher:
    """The graph's event sink: publishes accepted events with the leader's epoch."""

    def __init__(self, bus: EventBus, epoch: int) -> None:
        self.bus = bus
        self.epoch = epoch

    async def append(self, events: Sequence[Event]) -> int:
        if events:
            await self.bus.publish(PROCESSED_EVENTS, {"epoch": self.epoch, "events": encode(events)})
        return len(events)


def decode_processed(body: Any) -> tuple[int, list[Event]]:
    """The epoch and events of a processed-events message; ValueError names what is wrong."""
    if not isinstance(body, dict):
        raise ValueError(f"processed events: expected an object, got {type(body).__name__}")
    epoch = body.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
        raise ValueError(f"processed events: epoch must be a positive integer, got {epoch!r}")
    records = body.get("events")
    if not isinstance(records, list) or not records:
        raise ValueError("processed events: events must be a non-empty list")
    events: list[Event] = []
    for index, record in enumerate(records):
        try:
            event = Event.from_record(record)
        except EventError as exc:
            raise ValueError(f"processed events: event {index}: {exc}") from None
        if event.sequence is None or event.sequence < 1:
            raise ValueError(f"processed events: event {index} ({event.event_id!r}) has no sequence number")
        if events and event.sequence != events[-1].sequence + 1:  # type: ignore[operator]
            raise ValueError(
                f"processed events: sequence numbers must follow each other, got {events[-1].sequence} "
                f"then {event.sequence}"
            )
        events.append(event)
    return epoch, events


class LogWatermark:
    """How far the event log is stored, for the leader of ``epoch``."""

    def __init__(self, engine: AsyncEngine, epoch: int) -> None:
        self.engine = engine
        self.epoch = epoch

    async def stored(self) -> int:
        """The highest stored sequence number; :class:`Fenced` once another leader took over."""
        current, highest = await read_watermark(self.engine, LEADERSHIP)
        if current is not None and current != self.epoch:
            raise Fenced(f"epoch {self.epoch} was superseded by epoch {current}: another graph leader took over")
        return highest


__all__ = ["LEADERSHIP", "LogWatermark", "ProcessedPublisher", "decode_processed"]
