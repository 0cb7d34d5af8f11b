"""The event: the one input of the graph's fold.

Everything that changes the graph arrives as an :class:`Event`: an entity seen
in a ``get_all`` round, a change, a deletion, or the end of a round. The
processor gives every accepted event the next sequence number, and the ordered
log of accepted events plus a snapshot is enough to rebuild the graph at any
point.

An event carries its own times (``sample_time`` from the datasource,
``received_at`` from the side that accepted it) because the fold must never read
the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class EventAction(StrEnum):
    SNAPSHOT = "snapshot"
    """One entity as a ``get_all`` round reported it (carries ``round``)."""
    UPDATE = "update"
    """A change to one entity (``get_changes``, a listener, the event API)."""
    DELETE = "delete"
    """The datasource says the entity is gone."""
    ROUND_END = "round_end"
    """Every entity of ``round`` has been sent: time to enforce consistency."""


class EventError(ValueError):
    """An event record that is malformed; the message names the field."""


def format_timestamp(moment: datetime) -> str:
    """Vitrail's one timestamp format: ``2026-11-22 00:37:07.123456+00:00`` (UTC).

    It is the format Vitrage shows for ``vitrage_sample_timestamp`` and, being
    fixed-width UTC, timestamps compare correctly as strings.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(sep=" ", timespec="microseconds")


def normalize_timestamp(value: str | datetime, field: str = "time") -> str:
    """Any ISO-8601 time (naive means UTC; any digits of fraction) in Vitrail's format."""
    if isinstance(value, datetime):
        return format_timestamp(value)
    if not isinstance(value, str) or not value.strip():
        raise EventError(f"{field}: expected an ISO-8601 time, got {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python parses at most 6 fractional digits; Alertmanager sends nanoseconds.
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        if digits > 6:
            rest = rest[:6] + rest[digits:]
        text = f"{head}.{rest}"
    try:
        return format_timestamp(datetime.fromisoformat(text))
    except ValueError:
        raise EventError(f"{field}: {value!r} is not an ISO-8601 time") from None
    except OverflowError:
        raise EventError(f"{field}: {value!r} is outside the range of representable times") from None


def utc_now() -> str:
    """The current time in Vitrail's format. For the edges of the system only:
    code inside the fold must take times from events."""
    return format_timestamp(datetime.now(UTC))


_ACTIONS = {a.value: a for a in EventAction}


@dataclass(slots=True)
class Event:
    """One accepted (or to-be-accepted) input of the processor."""

    event_id: str
    datasource: str
    action: EventAction
    sample_time: str
    payload: dict[str, Any]
    round: int | None = None
    received_at: str | None = None
    sequence: int | None = None

    def to_record(self) -> dict[str, Any]:
        """Plain data for the bus and the event log."""
        record: dict[str, Any] = {
            "id": self.event_id,
            "datasource": self.datasource,
            "action": self.action.value,
            "sample_time": self.sample_time,
            "payload": self.payload,
        }
        if self.round is not None:
            record["round"] = self.round
        if self.received_at is not None:
            record["received_at"] = self.received_at
        if self.sequence is not None:
            record["sequence"] = self.sequence
        return record

    @classmethod
    def from_record(cls, record: Any) -> Event:
        """Parse :meth:`to_record` output, naming the first field that is wrong."""
        if not isinstance(record, dict):
            raise EventError(f"event: expected an object, got {type(record).__name__}")
        event_id = record.get("id")
        if not isinstance(event_id, str) or not event_id:
            raise EventError("id: expected a non-empty string")
        datasource = record.get("datasource")
        if not isinstance(datasource, str) or not datasource:
            raise EventError("datasource: expected a non-empty string")
        action = _ACTIONS.get(record.get("action"))  # type: ignore[arg-type]
        if action is None:
            raise EventError(f"action: expected one of {sorted(_ACTIONS)}, got {record.get('action')!r}")
        sample_time = record.get("sample_time")
        if not isinstance(sample_time, str) or not sample_time:
            raise EventError("sample_time: expected a timestamp string")
        payload = record.get("payload", {})
        if not isinstance(payload, dict):
            raise EventError("payload: expected an object")
        round_ = record.get("round")
        if round_ is not None and (not isinstance(round_, int) or isinstance(round_, bool)):
            raise EventError("round: expected an integer")
        if action in (EventAction.SNAPSHOT, EventAction.ROUND_END) and round_ is None:
            raise EventError(f"round: required for a {action.value} event")
        sequence = record.get("sequence")
        if sequence is not None and (not isinstance(sequence, int) or isinstance(sequence, bool)):
            raise EventError("sequence: expected an integer")
        received_at = record.get("received_at")
        if received_at is not None and not isinstance(received_at, str):
            raise EventError("received_at: expected a timestamp string")
        return cls(event_id, datasource, action, sample_time, payload, round_, received_at, sequence)
