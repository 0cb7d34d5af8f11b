"""What every datasource driver provides.

A driver knows how to read one source of entities (files, a cloud API, a
simulator) and how its raw records become graph updates (its transformer). It
has no timers and no idea of the graph: the collector calls ``get_all`` and
``get_changes`` when the graph service asks (seed "collector on demand"), wraps
the records into events and publishes them.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vitrail.graph.events import Event, EventAction
from vitrail.graph.updates import Transformer


@dataclass(frozen=True, slots=True)
class RawEntity:
    """One record as the driver read it, with a key unique within the datasource."""

    key: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RawChange:
    """A change ``get_changes`` found: an entity that is new/changed, or gone."""

    key: str
    payload: dict[str, Any]
    deleted: bool = False


class DatasourceError(RuntimeError):
    """The driver could not read its source; the message says what and where."""


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def snapshot_event_id(datasource: str, round_id: int, key: str) -> str:
    """Event id of an entity in a ``get_all`` round.

    Derived from the round and the entity, so a round that is published twice
    (an RPC retried on another collector) produces duplicates the processor
    ignores, not a second copy.
    """
    return f"{datasource}/r{round_id}/{_digest(key)}"


def round_end_event_id(datasource: str, round_id: int) -> str:
    return f"{datasource}/r{round_id}/end"


class Driver(ABC):
    """Base of every datasource driver."""

    #: The datasource name: ``vitrage_datasource_name`` of what it reports.
    name: str
    #: The ``vitrage_type`` values this driver owns; others refer to them.
    entity_types: tuple[str, ...] = ()
    #: True when ``get_changes`` can report something between ``get_all`` rounds.
    has_changes: bool = False
    #: False for push datasources (alarms posted to the API): they have no ``get_all``
    #: rounds, so consistency never deletes what they reported; their entities go
    #: only when the source says so (a resolved alert).
    has_get_all: bool = True

    @abstractmethod
    def transformer(self) -> Transformer:
        """The pure function from this driver's events to graph updates."""

    @abstractmethod
    def get_all(self) -> Sequence[RawEntity]:
        """Every entity the source has now. Raises :class:`DatasourceError`."""

    def get_changes(self) -> Sequence[RawChange]:
        """What changed since the last ``get_all``/``get_changes`` call."""
        return ()

    def problems(self) -> dict[str, list[str]]:
        """Problems an operator should fix, by source (e.g. a file), while the driver keeps working."""
        return {}

    # -- events --------------------------------------------------------------------

    def snapshot_events(self, entities: Iterable[RawEntity], round_id: int, sample_time: str) -> list[Event]:
        """One event per entity of a ``get_all`` round."""
        name = self.name
        return [
            Event(
                snapshot_event_id(name, round_id, e.key), name, EventAction.SNAPSHOT, sample_time, e.payload, round_id
            )
            for e in entities
        ]

    def round_end_event(self, round_id: int, sample_time: str, count: int) -> Event:
        """The mark that every entity of the round has been sent."""
        return Event(
            round_end_event_id(self.name, round_id),
            self.name,
            EventAction.ROUND_END,
            sample_time,
            {"count": count},
            round_id,
        )

    def round_events(self, entities: Sequence[RawEntity], round_id: int, sample_time: str) -> list[Event]:
        """The events of one ``get_all`` round: one per entity, then the end mark."""
        events = self.snapshot_events(entities, round_id, sample_time)
        events.append(self.round_end_event(round_id, sample_time, len(entities)))
        return events

    def change_events(self, changes: Sequence[RawChange], batch_id: str, sample_time: str) -> list[Event]:
        """The events of one ``get_changes`` call; ``batch_id`` makes their ids unique."""
        name = self.name
        return [
            Event(
                f"{name}/c{batch_id}/{_digest(c.key)}",
                name,
                EventAction.DELETE if c.deleted else EventAction.UPDATE,
                sample_time,
                c.payload,
            )
            for c in changes
        ]
