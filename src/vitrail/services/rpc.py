"""The RPC faces of the collector and the graph, and their clients.

In the distributed mode the graph asks the collectors for ``get_all`` and
``get_changes`` over RPC (any collector may answer: active-active), and the API
processes ask the graph their questions over RPC. Errors that mean "your
request is wrong" travel as data (``not_found``, ``query_error``) so the API can
answer 404 or 422 exactly as in the embedded mode.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from vitrail.api.backend import BackendStatus
from vitrail.api.errors import Unavailable
from vitrail.bus.base import EventBus, RpcError, RpcHandler, RpcMethodError, RpcTimeout
from vitrail.graph.events import Event, utc_now
from vitrail.graph.queries import AlarmListRequest, NotFound, QueryError, TopologyRequest, Viewer
from vitrail.services.collector import Collector, CollectSummary
from vitrail.services.topics import COLLECTOR_SERVICE, GRAPH_SERVICE, Publisher, publisher

log = logging.getLogger(__name__)


def process_identity(role: str) -> dict[str, Any]:
    """How a process names itself in ``/v1/service/`` (Vitrage's keys)."""
    return {
        "name": f"vitrail-{role}",
        "process": os.getpid(),
        "hostname": socket.gethostname(),
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }


# -- the collector ---------------------------------------------------------------------


def collector_handler(collector: Collector) -> RpcHandler:
    identity = process_identity("collector")

    async def handle(method: str, params: dict[str, Any]) -> Any:
        names = params.get("datasources")
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise RpcMethodError("datasources: expected a list of datasource names")
        try:
            if method == "get_all":
                round_id = params.get("round")
                if not isinstance(round_id, int) or isinstance(round_id, bool):
                    raise RpcMethodError("round: expected an integer")
                summary = await collector.get_all(names, round_id)
            elif method == "get_changes":
                summary = await collector.get_changes(names)
            elif method == "ping":
                return identity
            else:
                raise RpcMethodError(f"unknown method {method!r}; a collector answers get_all, get_changes, ping")
        except ValueError as exc:  # an unknown datasource name
            raise RpcMethodError(str(exc)) from None
        return {**summary.to_dict(), "collector": identity}

    return handle


class RemoteCollector:
    """The graph's client of the collectors (``CollectorClient``), retrying on another collector."""

    def __init__(self, bus: EventBus, within: float = 120.0, attempts: int = 3) -> None:
        self.bus = bus
        self.within = within
        self.attempts = attempts
        self.seen: dict[str, dict[str, Any]] = {}  # collectors that answered, by "host:pid"

    async def _call(self, method: str, params: dict[str, Any]) -> CollectSummary:
        delay = 1.0
        for attempt in range(1, self.attempts + 1):
            try:
                answer = await self.bus.call(COLLECTOR_SERVICE, method, params, self.within)
            except RpcError as exc:
                if exc.kind == "bad_request" or attempt == self.attempts:
                    raise
                log.warning(
                    "collector call failed; retrying (another collector may take it)",
                    extra={"method": method, "attempt": attempt, "error": str(exc)},
                )
                await asyncio.sleep(delay)
                delay *= 2
                continue
            who = answer.get("collector") or {}
            self.seen[f"{who.get('hostname')}:{who.get('process')}"] = who
            return CollectSummary(answer.get("round"), dict(answer.get("counts", {})), dict(answer.get("errors", {})))
        raise AssertionError("unreachable")

    async def get_all(self, datasource_names: Sequence[str] | None, round_id: int) -> CollectSummary:
        names = None if datasource_names is None else list(datasource_names)
        return await self._call("get_all", {"datasources": names, "round": round_id})

    async def get_changes(self, datasource_names: Sequence[str] | None) -> CollectSummary:
        names = None if datasource_names is None else list(datasource_names)
        return await self._call("get_changes", {"datasources": names})


# -- the graph ---------------------------------------------------------------------------


def _viewer(data: Any) -> Viewer:
    if not isinstance(data, dict):
        raise RpcMethodError("viewer: expected an object")
    return Viewer(data.get("project_id"), bool(data.get("is_admin")), frozenset(data.get("roles") or ()))


def _viewer_data(viewer: Viewer) -> dict[str, Any]:
    return {"project_id": viewer.project_id, "is_admin": viewer.is_admin, "roles": sorted(viewer.roles)}


def graph_handler(backend: Any, extra_services: Callable[[], list[dict[str, Any]]] | None = None) -> RpcHandler:
    """Answers the API's questions with ``backend`` (the graph's LocalGraphBackend)."""

    async def answer(method: str, params: dict[str, Any]) -> Any:
        viewer = _viewer(params.get("viewer", {})) if "viewer" in params else Viewer()
        if method == "topology":
            return await backend.topology(TopologyRequest(**params["request"]), viewer)
        if method == "resources":
            return await backend.resources(viewer, params["all_tenants"], params["resource_type"], params["query"])
        if method == "resource":
            return await backend.resource(params["vitrage_id"], viewer)
        if method == "resource_count":
            return await backend.resource_count(
                viewer, params["all_tenants"], params["resource_type"], params["query"], params["group_by"]
            )
        if method == "alarms":
            request = params["request"]
            request = {**request, "sort_by": tuple(request["sort_by"]), "sort_dirs": tuple(request["sort_dirs"])}
            return await backend.alarms(AlarmListRequest(**request), viewer)
        if method == "alarm":
            return await backend.alarm(params["vitrage_id"], viewer)
        if method == "alarm_count":
            return await backend.alarm_count(viewer, params["all_tenants"])
        if method == "rca":
            return await backend.rca(params["alarm_id"], viewer, params["all_tenants"])
        if method == "status":
            status = await backend.status()
            return {"ready": status.ready, "reason": status.reason, "details": status.details}
        if method == "services":
            found = await backend.services()
            return found + (extra_services() if extra_services else [])
        raise RpcMethodError(f"unknown method {method!r}")

    async def handle(method: str, params: dict[str, Any]) -> Any:
        try:
            return {"result": await answer(method, params)}
        except NotFound as exc:
            return {"not_found": str(exc)}
        except QueryError as exc:
            return {"query_error": {"message": str(exc), "parameter": exc.parameter}}
        except (KeyError, TypeError) as exc:
            raise RpcMethodError(f"bad parameters for {method}: {exc}") from None

    return handle


class RemoteGraphBackend:
    """The API's ``GraphBackend`` in the distributed mode: questions go to the graph over RPC."""

    def __init__(
        self, bus: EventBus, role: str = "api", within: float = 30.0, publish: Publisher | None = None
    ) -> None:
        self.bus = bus
        self.within = within
        self.identity = process_identity(role)
        self.publish = publish or publisher(bus)

    async def _ask(self, method: str, params: dict[str, Any], within: float | None = None) -> Any:
        try:
            reply = await self.bus.call(GRAPH_SERVICE, method, params, within or self.within)
        except RpcTimeout:
            raise GraphUnavailable(f"vitrail-graph did not answer within {within or self.within} s") from None
        except RpcError as exc:
            raise GraphUnavailable(f"vitrail-graph failed: {exc}") from None
        if "not_found" in reply:
            raise NotFound(reply["not_found"])
        if "query_error" in reply:
            raise QueryError(reply["query_error"]["message"], reply["query_error"]["parameter"])
        return reply["result"]

    async def topology(self, request: TopologyRequest, viewer: Viewer) -> dict[str, Any]:
        return await self._ask("topology", {"request": dataclasses.asdict(request), "viewer": _viewer_data(viewer)})

    async def resources(
        self, viewer: Viewer, all_tenants: bool, resource_type: str | None, query: Any
    ) -> list[dict[str, Any]]:
        params = {"viewer": _viewer_data(viewer), "all_tenants": all_tenants, "resource_type": resource_type}
        return await self._ask("resources", {**params, "query": query})

    async def resource(self, vitrage_id: str, viewer: Viewer) -> dict[str, Any]:
        return await self._ask("resource", {"vitrage_id": vitrage_id, "viewer": _viewer_data(viewer)})

    async def resource_count(
        self, viewer: Viewer, all_tenants: bool, resource_type: str | None, query: Any, group_by: str | None
    ) -> dict[str, int]:
        params = {"viewer": _viewer_data(viewer), "all_tenants": all_tenants, "resource_type": resource_type}
        return await self._ask("resource_count", {**params, "query": query, "group_by": group_by})

    async def alarms(self, request: AlarmListRequest, viewer: Viewer) -> list[dict[str, Any]]:
        return await self._ask("alarms", {"request": dataclasses.asdict(request), "viewer": _viewer_data(viewer)})

    async def alarm(self, vitrage_id: str, viewer: Viewer) -> dict[str, Any]:
        return await self._ask("alarm", {"vitrage_id": vitrage_id, "viewer": _viewer_data(viewer)})

    async def alarm_count(self, viewer: Viewer, all_tenants: bool) -> dict[str, int]:
        return await self._ask("alarm_count", {"viewer": _viewer_data(viewer), "all_tenants": all_tenants})

    async def rca(self, alarm_id: str, viewer: Viewer, all_tenants: bool) -> dict[str, Any]:
        params = {"alarm_id": alarm_id, "viewer": _viewer_data(viewer), "all_tenants": all_tenants}
        return await self._ask("rca", params)

    async def ingest(self, events: list[Event]) -> None:
        received_at = utc_now()
        for event in events:
            event.received_at = event.received_at or received_at
        await self.publish(events)

    async def status(self) -> BackendStatus:
        try:
            answer = await self._ask("status", {}, within=min(5.0, self.within))
        except GraphUnavailable as exc:
            return BackendStatus(False, f"vitrail-graph is not available: {exc}")
        return BackendStatus(answer["ready"], answer["reason"], answer["details"])

    async def services(self) -> list[dict[str, Any]]:
        try:
            others = await self._ask("services", {}, within=min(5.0, self.within))
        except GraphUnavailable:
            others = []
        return sorted([self.identity, *others], key=lambda s: (s["name"], s["hostname"], s["process"]))


class GraphUnavailable(Unavailable):
    """The graph service did not answer (the API answers 503)."""
