"""What the API needs from the graph.

The API never touches the graph directly: it asks a :class:`GraphBackend`.
The embedded mode's implementation lives with the services
(:mod:`vitrail.services.local_backend`); the distributed mode answers the
same calls over RPC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from vitrail.graph.events import Event
from vitrail.graph.queries import AlarmListRequest, TopologyRequest, Viewer
from vitrail.storage import DeadLetter, Target
from vitrail.storage.history import HistoryQuery
from vitrail.storage.monitor_targets import TargetFields


@dataclass(slots=True)
class BackendStatus:
    ready: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


class GraphBackend(Protocol):
    async def topology(self, request: TopologyRequest, viewer: Viewer) -> dict[str, Any]: ...

    async def resources(
        self, viewer: Viewer, all_tenants: bool, resource_type: str | None, query: Any
    ) -> list[dict[str, Any]]: ...

    async def resource(self, vitrage_id: str, viewer: Viewer) -> dict[str, Any]: ...

    async def resource_count(
        self, viewer: Viewer, all_tenants: bool, resource_type: str | None, query: Any, group_by: str | None
    ) -> dict[str, int]: ...

    async def alarms(self, request: AlarmListRequest, viewer: Viewer) -> list[dict[str, Any]]: ...

    async def alarm(self, vitrage_id: str, viewer: Viewer) -> dict[str, Any]: ...

    async def alarm_count(self, viewer: Viewer, all_tenants: bool) -> dict[str, int]: ...

    async def rca(self, alarm_id: str, viewer: Viewer, all_tenants: bool) -> dict[str, Any]: ...

    async def ingest(self, events: list[Event]) -> None:
        """Hand events from the API (alarms posted to it) to the graph."""

    async def status(self) -> BackendStatus: ...

    async def services(self) -> list[dict[str, Any]]: ...


class TemplateManager(Protocol):
    """Templates at run time: validated, stored, loaded into the evaluator, deleted."""

    async def validate(
        self, templates: list[tuple[str | None, Any]], template_type: str | None, params: dict[str, Any]
    ) -> list[dict[str, Any]]: ...

    async def add(
        self, templates: list[tuple[str | None, Any]], template_type: str | None, params: dict[str, Any]
    ) -> list[dict[str, Any]]: ...

    async def list(self) -> list[dict[str, Any]]: ...

    async def show(self, uuid_or_name: str) -> dict[str, Any]: ...

    async def names_of(
        self, templates: list[tuple[str | None, Any]], template_type: str | None, params: dict[str, Any]
    ) -> list[str]:
        """The names the templates would be stored under (for add with overwrite)."""

    async def delete(self, ids: list[str], missing_ok: bool = False) -> None: ...


class AlarmHistoryReader(Protocol):
    """The alarm and RCA history (``vitrail.services.alarm_history`` implements it).

    ``list`` raises :class:`vitrail.storage.history.HistoryQueryError` for a query it cannot
    answer (400); ``show`` and ``rca`` raise :class:`vitrail.graph.queries.NotFound` (404).
    """

    async def list(self, query: HistoryQuery, viewer: Viewer, all_tenants: bool) -> list[dict[str, Any]]: ...

    async def show(self, history_id: int, viewer: Viewer) -> dict[str, Any]: ...

    async def rca(
        self, alarm_id: str, viewer: Viewer, all_tenants: bool, live: dict[str, Any] | None
    ) -> dict[str, Any]: ...


class RetryRefused(Exception):
    """This dead letter cannot be re-published; the message says why (the API answers 409)."""


class PurgeRefused(ValueError):
    """A purge without a filter and without ``everything`` (the API answers 422)."""


class DeadLetterManager(Protocol):
    """What the API offers on dead letters (``vitrail.services.dead_letter_admin`` implements it).

    Unknown ids raise :class:`vitrail.storage.DeadLetterNotFound` (404).
    """

    async def list(self, limit: int = 50, marker: int | None = None, source: str | None = None) -> list[DeadLetter]: ...

    async def show(self, letter_id: int) -> DeadLetter: ...

    async def retry(self, letter_id: int) -> tuple[DeadLetter, str]:
        """Re-publish; the letter with its retry counted, and the topic it went to."""
        ...

    async def delete(self, letter_id: int) -> None: ...

    async def purge(
        self, before: datetime | None = None, source: str | None = None, everything: bool = False
    ) -> int: ...


class MonitorTargets(Protocol):
    """The monitor's targets as the API manages them (``vitrail.storage.TargetStore`` is one).

    ``get`` answers None for an unknown (or deleted) target; ``update`` and ``delete``
    raise :class:`vitrail.storage.TargetNotFound` (404), ``add`` and ``update``
    :class:`vitrail.storage.DuplicateTarget` (409), ``list``
    :class:`vitrail.storage.UnknownMarker` (422). Definitions are validated before.
    """

    async def add(self, draft: TargetFields) -> Target: ...

    async def get(self, id_or_name: str) -> Target | None: ...

    async def list(self, *, limit: int | None = None, marker: str | None = None) -> list[Target]: ...

    async def update(self, target_id: str, changes: Mapping[str, Any]) -> Target: ...

    async def delete(self, target_id: str) -> Target: ...
