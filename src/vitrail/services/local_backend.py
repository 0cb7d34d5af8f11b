"""The embedded mode's :class:`~vitrail.api.backend.GraphBackend`: the graph is in this process.

It runs the pure query functions of :mod:`vitrail.graph.queries` on the live
graph in the same event loop, so every answer sees the graph between two
chunks of events, never half an event.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from vitrail.api.backend import BackendStatus
from vitrail.api.errors import Unavailable
from vitrail.graph import queries
from vitrail.graph.entity_graph import EntityGraph
from vitrail.graph.events import Event, utc_now
from vitrail.graph.queries import AlarmListRequest, TopologyRequest, Viewer
from vitrail.services.graph import GraphService

STANDBY_REASON = "vitrail-graph is a standby in this process: another graph process holds the leadership"


class LocalGraphBackend:
    """The embedded mode's backend: the graph service lives in this process."""

    def __init__(
        self,
        graph: GraphService | Callable[[], GraphService | None],
        roles: list[str],
        problems: Callable[[], dict[str, dict[str, list[str]]]] | None = None,
        publish: Callable[[list[Event]], Awaitable[None]] | None = None,
        leadership: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        # A callable follows the leadership: None while this process is a standby.
        self._source = graph if callable(graph) else (lambda: graph)
        self.roles = roles
        self.problems = problems or dict
        self.publish = publish
        self.leadership = leadership or dict
        self.created = datetime.now(UTC).replace(microsecond=0).isoformat()
        self.hostname = socket.gethostname()

    @property
    def service(self) -> GraphService:
        service = self._source()
        if service is None:
            raise Unavailable(STANDBY_REASON)
        return service

    @property
    def _graph(self) -> EntityGraph:
        return self.service.processor.graph

    async def topology(self, request: TopologyRequest, viewer: Viewer) -> dict[str, Any]:
        return queries.topology(self._graph, request, viewer)

    async def resources(
        self, viewer: Viewer, all_tenants: bool, resource_type: str | None, query: Any
    ) -> list[dict[str, Any]]:
        return queries.list_resources(self._graph, viewer, all_tenants, resource_type, query)

    async def resource(self, vitrage_id: str, viewer: Viewer) -> dict[str, Any]:
        return queries.show_resource(self._graph, vitrage_id, viewer)

    async def resource_count(
        self, viewer: Viewer, all_tenants: bool, resource_type: str | None, query: Any, group_by: str | None
    ) -> dict[str, int]:
        return queries.count_resources(self._graph, viewer, all_tenants, resource_type, query, group_by)

    async def alarms(self, request: AlarmListRequest, viewer: Viewer) -> list[dict[str, Any]]:
        return queries.list_alarms(self._graph, request, viewer)

    async def alarm(self, vitrage_id: str, viewer: Viewer) -> dict[str, Any]:
        return queries.show_alarm(self._graph, vitrage_id, viewer)

    async def alarm_count(self, viewer: Viewer, all_tenants: bool) -> dict[str, int]:
        return queries.count_alarms(self._graph, viewer, all_tenants)

    async def rca(self, alarm_id: str, viewer: Viewer, all_tenants: bool) -> dict[str, Any]:
        return queries.rca(self._graph, alarm_id, viewer, all_tenants)

    async def ingest(self, events: list[Event]) -> None:
        if self.publish is None:
            raise RuntimeError("this process takes no events")
        received_at = utc_now()
        for event in events:
            event.received_at = event.received_at or received_at
        if events:
            await self.publish(events)

    async def status(self) -> BackendStatus:
        service = self._source()
        if service is None:
            return BackendStatus(False, STANDBY_REASON, {"leader": False, **self.leadership()})
        progress = service.progress
        details = {
            "vertices": service.processor.graph.num_vertices,
            "edges": service.processor.graph.num_edges,
            "sequence": service.processor.sequence,
            "event_log_backlog": service.log_backlog,
            "stored_sequence": service.stored_sequence,
            "inputs_unacked": service.unacked,
            "leader": True,
            **self.leadership(),
            "loading": {"expected": progress.expected, "applied": progress.applied},
            "datasource_errors": dict(progress.errors),
            "datasource_problems": self.problems(),
            "alarms_on_unknown_resources": queries.alarms_on_unknown_resources(service.processor.graph),
        }
        if service.ready.is_set():
            return BackendStatus(True, "OK", details)
        if progress.expected:
            doing = f"loading the topology ({progress.applied} of {progress.expected} entities)"
        else:
            doing = "reading the datasources (get_all)"
        return BackendStatus(False, f"vitrail-graph is not ready: {doing}", details)

    async def services(self) -> list[dict[str, Any]]:
        pid = os.getpid()
        return sorted(
            (
                {"name": f"vitrail-{role}", "process": pid, "hostname": self.hostname, "created": self.created}
                for role in self.roles
            ),
            key=lambda s: s["name"],
        )
