"""Alarm history: ``GET /v1/alarm/history/`` as python-vitrageclient 5.4.0 calls it, plus one row's changes.

Vitrage's parameters and semantics: ``start`` and ``end`` select the alarms
active at some moment between them (``start`` alone: active at or after it;
``end`` needs ``start``); ``filter_by``/``filter_vals`` keep the rows whose
column *contains* the value; ``sort_by``/``sort_dirs``; ``limit`` rows (1000
by default, 10000 at most, 0 for the most) after (``next_page``, the default)
or before ``marker``. Vitrail adds exact filters (``resource``, ``type``,
``severity``, ``name``, ``active``) and ``GET /v1/alarm/history/{history_id}``
with the severity and state changes of that occurrence. Every row carries its
``history_id`` (a marker that names exactly one row; a vitrage_id names that
alarm's latest occurrence).

The RCA of an alarm (``GET /v1/rca/``) includes the history's causes too:
:func:`rca_with_history`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from vitrail.api.backend import AlarmHistoryReader, GraphBackend
from vitrail.api.errors import ApiError
from vitrail.api.identity import require_all_tenants
from vitrail.api.routing import CurrentViewer, registrar
from vitrail.api.schemas import Flag, parse_time
from vitrail.graph.queries import NotFound, Viewer
from vitrail.storage.history import MAX_LIMIT, HistoryQuery, HistoryQueryError

router = APIRouter(tags=["alarm history"])
route = registrar(router)


def alarm_history(request: Request) -> AlarmHistoryReader:
    found: AlarmHistoryReader | None = getattr(request.app.state, "alarm_history", None)
    if found is None:
        raise ApiError(503, "the alarm history is not available in this process (it has no database)")
    return found


History = Annotated[AlarmHistoryReader, Depends(alarm_history)]
ListParam = Annotated[list[str] | None, Query()]


@route("GET", "/v1/alarm/history/", summary="Alarms that were active, with their start and end")
async def list_history(
    history: History,
    viewer: CurrentViewer,
    all_tenants: Flag = False,
    start: Annotated[str | None, Query(description="ISO time: alarms active at or after it")] = None,
    end: Annotated[str | None, Query(description="ISO time (with start): alarms active between the two")] = None,
    limit: Annotated[int, Query(ge=0, description=f"Rows per page (0: {MAX_LIMIT}, the most)")] = 1000,
    sort_by: ListParam = None,
    sort_dirs: ListParam = None,
    filter_by: ListParam = None,
    filter_vals: ListParam = None,
    next_page: Flag = True,
    marker: str | None = None,
    resource: Annotated[str | None, Query(description="Only alarms on this resource (vitrage_id)")] = None,
    type: Annotated[str | None, Query(description="Only alarms of this vitrage_type")] = None,
    severity: Annotated[str | None, Query(description="Only this operational severity (latest)")] = None,
    name: Annotated[str | None, Query(description="Only alarms of this name")] = None,
    active: Flag = False,
) -> Any:
    require_all_tenants(viewer, all_tenants)
    query = HistoryQuery(
        start=parse_time(start, "start"),
        end=parse_time(end, "end"),
        limit=limit,
        sort_by=tuple(sort_by or ("start_timestamp", "vitrage_id")),
        sort_dirs=tuple(sort_dirs or ()),
        filter_by=tuple(filter_by or ()),
        filter_vals=tuple(filter_vals or ()),
        resource_id=resource,
        vitrage_type=type,
        severity=severity.upper() if severity else None,
        name=name,
        only_active=active,
        marker=marker,
        next_page=next_page,
    )
    try:
        return await history.list(query, viewer, all_tenants)
    except HistoryQueryError as exc:
        raise ApiError(400, str(exc)) from None


@route("GET", "/v1/alarm/history/{history_id}", summary="One alarm occurrence with its changes")
async def show_history(
    history: History,
    viewer: CurrentViewer,
    history_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="The row's history_id.")],
) -> Any:
    return await history.show(history_id, viewer)


async def rca_with_history(
    request: Request, backend: GraphBackend, alarm_id: str, viewer: Viewer, all_tenants: bool
) -> dict[str, Any]:
    """The live RCA, completed by the RCA history: ended causes and consequences, and ended alarms' chains."""
    try:
        live: dict[str, Any] | None = await backend.rca(alarm_id, viewer, all_tenants)
    except NotFound:
        live = None
    history: AlarmHistoryReader | None = getattr(request.app.state, "alarm_history", None)
    if history is None:
        if live is None:
            raise NotFound(f"alarm {alarm_id!r} does not exist")
        return live
    return await history.rca(alarm_id, viewer, all_tenants, live)


__all__ = ["rca_with_history", "router"]
