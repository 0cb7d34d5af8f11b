"""What the API needs from the graph.

The API never touches the graph directly: it asks a :class:`GraphBackend`.
The embedded mode's implementation lives with the services
(:mod:`vitrail.services.local_backend`); the distributed mode answers the
same calls over RPC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from vitrail.graph.events import Event
from vitrail.graph.queries import AlarmListRequest, TopologyRequest, Viewer


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
