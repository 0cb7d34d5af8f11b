"""The graph as it was: ``at=<time>`` on the queries, ``/v1/history/window`` and ``/v1/history/diff``.

``at`` (any ISO-8601 time; naive means UTC) on ``/v1/topology/``, ``/v1/resources/``,
``/v1/resources/count/``, ``/v1/resources/{id}``, ``/v1/alarm/``, ``/v1/alarm/count/``,
``/v1/alarm/{id}`` and ``/v1/rca/`` answers from the graph rebuilt as it was at that time,
with the same response shape as the live answer. The graph is rebuilt on a separate
processor in a worker process (:mod:`vitrail.services.time_travel`), never the live one.

A time outside the window the history covers (``/v1/history/window``: from the retention
or the oldest usable snapshot, whichever is later, to now) is a 400 whose description gives
the window; a time that does not parse is a 422 naming the parameter (``at``, ``from``, ``to``).
See docs/history.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Query, Request

from vitrail.api.errors import ApiError
from vitrail.api.identity import require_all_tenants
from vitrail.api.routing import CurrentViewer, registrar
from vitrail.api.schemas import Flag
from vitrail.graph.events import EventError, format_timestamp, normalize_timestamp
from vitrail.graph.queries import AlarmListRequest, TopologyRequest, Viewer

router = APIRouter(tags=["history"])
route = registrar(router)


class OutsideWindow(ValueError):
    """A time the graph cannot be rebuilt for: in the future, or before the history window (400)."""


class ReconstructionUnavailable(RuntimeError):
    """The graph cannot be rebuilt now (the worker failed, a snapshot is unreadable): 503, saying why."""


@dataclass(frozen=True, slots=True)
class HistoryWindow:
    """The times the graph can be rebuilt for: ``start`` to ``end`` (now), both included.

    ``start`` None: none (the event log was pruned beyond every snapshot).
    """

    start: datetime | None
    end: datetime

    def describe(self) -> str:
        if self.start is None:
            return "no past time can be rebuilt (no snapshot continues the event log)"
        return f"the graph can be rebuilt from {format_timestamp(self.start)} to {format_timestamp(self.end)} (now)"

    def as_json(self) -> dict[str, Any]:
        return {
            "start": None if self.start is None else format_timestamp(self.start),
            "end": format_timestamp(self.end),
        }


class TimeTravelManager(Protocol):
    """The graph at a past time (:class:`vitrail.services.time_travel.TimeTravel` implements it).

    Every query raises :class:`OutsideWindow` for a time outside :meth:`window`,
    :class:`~vitrail.graph.queries.QueryError` and :class:`~vitrail.graph.queries.NotFound`
    as the live queries do, and :class:`ReconstructionUnavailable`.
    """

    async def window(self) -> HistoryWindow: ...

    async def topology(self, at: datetime, request: TopologyRequest, viewer: Viewer) -> dict[str, Any]: ...

    async def resources(
        self, at: datetime, viewer: Viewer, all_tenants: bool, resource_type: str | None, query: Any
    ) -> list[dict[str, Any]]: ...

    async def resource(self, at: datetime, vitrage_id: str, viewer: Viewer) -> dict[str, Any]: ...

    async def resource_count(
        self,
        at: datetime,
        viewer: Viewer,
        all_tenants: bool,
        resource_type: str | None,
        query: Any,
        group_by: str | None,
    ) -> dict[str, int]: ...

    async def alarms(self, at: datetime, request: AlarmListRequest, viewer: Viewer) -> list[dict[str, Any]]: ...

    async def alarm(self, at: datetime, vitrage_id: str, viewer: Viewer) -> dict[str, Any]: ...

    async def alarm_count(self, at: datetime, viewer: Viewer, all_tenants: bool) -> dict[str, int]: ...

    async def rca(self, at: datetime, alarm_id: str, viewer: Viewer, all_tenants: bool) -> dict[str, Any]: ...

    async def diff(
        self, start: datetime, end: datetime, viewer: Viewer, all_tenants: bool = False, limit: int | None = None
    ) -> dict[str, Any]: ...


def parse_time(parameter: str, value: str) -> datetime:
    """``value`` as an aware datetime (naive: UTC); a 422 naming ``parameter`` when it does not parse."""
    try:
        return datetime.fromisoformat(normalize_timestamp(value, parameter))
    except EventError as exc:
        raise ApiError(422, str(exc)) from None


def time_travel(request: Request) -> TimeTravelManager:
    found: TimeTravelManager | None = getattr(request.app.state, "time_travel", None)
    if found is None:
        raise ApiError(503, "the graph at a past time is not available in this process (it has no database)")
    return found


@dataclass(frozen=True, slots=True)
class Past:
    """An ``at`` given to a query: where and when to ask."""

    history: TimeTravelManager
    at: datetime


AT_DESCRIPTION = (
    "Answer from the graph as it was at this ISO-8601 time (naive: UTC), within /v1/history/window. "
    "Default: the live graph."
)


def past(request: Request, at: Annotated[str | None, Query(description=AT_DESCRIPTION)] = None) -> Past | None:
    return None if at is None else Past(time_travel(request), parse_time("at", at))


#: The ``at`` parameter of a query: None for the live graph.
AtTime = Annotated[Past | None, Depends(past)]


@contextmanager
def answers() -> Iterator[None]:
    """The reconstruction's refusals as API errors (it knows nothing of HTTP)."""
    try:
        yield
    except OutsideWindow as exc:
        raise ApiError(400, str(exc)) from None
    except ReconstructionUnavailable as exc:
        raise ApiError(503, str(exc)) from None


History = Annotated[TimeTravelManager, Depends(time_travel)]


@route("GET", "/v1/history/window", summary="The times the graph can be rebuilt for")
async def history_window(history: History) -> Any:
    with answers():
        return (await history.window()).as_json()


@route("GET", "/v1/history/diff", summary="Resources and alarms added, removed and changed between two times")
async def history_diff(
    history: History,
    viewer: CurrentViewer,
    start: Annotated[str, Query(alias="from", description="The earlier ISO-8601 time (naive: UTC).")],
    end: Annotated[str, Query(alias="to", description="The later ISO-8601 time (naive: UTC).")],
    all_tenants: Flag = False,
    limit: Annotated[
        int | None, Query(ge=0, description="At most this many entries in each list (the summary counts all).")
    ] = None,
) -> Any:
    """Compares the graph rebuilt at ``from`` with the graph rebuilt at ``to`` (docs/history.md):

    ``{"from": {"time", "sequence"}, "to": {...}, "summary": {"resources": {"added", "removed",
    "changed"}, "alarms": {...}}, "resources": {"added": [...], "removed": [...], "changed": [...]},
    "alarms": {...}}``. Added entries are as the API shows them at ``to``, removed ones as at
    ``from``; a changed one is ``{"vitrage_id", "vitrage_type", "name", "changes": {property:
    {"from", "to"}}}``. Sample and update timestamps alone do not make a change.
    """
    require_all_tenants(viewer, all_tenants)
    moment_from, moment_to = parse_time("from", start), parse_time("to", end)
    if moment_from > moment_to:
        raise ApiError(
            400,
            f"from: {format_timestamp(moment_from)} is after to: {format_timestamp(moment_to)}; "
            "give the earlier time as from",
        )
    with answers():
        return await history.diff(moment_from, moment_to, viewer, all_tenants, limit)
