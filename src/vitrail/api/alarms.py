"""Alarms and root causes: ``/v1/alarm/``, ``/v1/alarm/count/``, ``/v1/alarm/{id}``, ``/v1/rca/``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from vitrail.api.alarm_history import rca_with_history
from vitrail.api.history import AtTime, answers
from vitrail.api.identity import require_all_tenants
from vitrail.api.routing import Backend, CurrentViewer, registrar
from vitrail.api.schemas import Flag
from vitrail.graph.queries import AlarmListRequest

router = APIRouter(tags=["alarms"])
route = registrar(router)


@route("GET", "/v1/alarm/", summary="Active alarms, of one resource or all")
async def list_alarms(
    backend: Backend,
    viewer: CurrentViewer,
    vitrage_id: str = "all",
    all_tenants: Flag = False,
    sort_by: Annotated[list[str] | None, Query()] = None,
    sort_dirs: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int | None, Query(ge=0)] = None,
    marker: str | None = None,
    next_page: Flag = True,
    past: AtTime = None,
) -> Any:
    require_all_tenants(viewer, all_tenants)
    request = AlarmListRequest(
        vitrage_id=vitrage_id,
        all_tenants=all_tenants,
        sort_by=tuple(sort_by or ("start_timestamp", "vitrage_id")),
        sort_dirs=tuple(sort_dirs or ()),
        limit=limit,
        marker=marker,
        next_page=next_page,
    )
    if past is not None:
        with answers():
            return await past.history.alarms(past.at, request, viewer)
    return await backend.alarms(request, viewer)


@route("GET", "/v1/alarm/count/", summary="Active alarms by operational severity")
async def count_alarms(backend: Backend, viewer: CurrentViewer, all_tenants: Flag = False, past: AtTime = None) -> Any:
    require_all_tenants(viewer, all_tenants)
    if past is not None:
        with answers():
            return await past.history.alarm_count(past.at, viewer, all_tenants)
    return await backend.alarm_count(viewer, all_tenants)


@route("GET", "/v1/alarm/{vitrage_id}", summary="One active alarm")
async def show_alarm(backend: Backend, viewer: CurrentViewer, vitrage_id: str, past: AtTime = None) -> Any:
    if past is not None:
        with answers():
            return await past.history.alarm(past.at, vitrage_id, viewer)
    return await backend.alarm(vitrage_id, viewer)


@route("GET", "/v1/rca/", summary="An alarm's causes and consequences")
async def rca(
    request: Request,
    backend: Backend,
    viewer: CurrentViewer,
    alarm_id: str,
    all_tenants: Flag = False,
    past: AtTime = None,
) -> Any:
    require_all_tenants(viewer, all_tenants)
    if past is not None:
        with answers():
            return await past.history.rca(past.at, alarm_id, viewer, all_tenants)
    return await rca_with_history(request, backend, alarm_id, viewer, all_tenants)


@route("GET", "/v1/rca/{alarm_id}/", summary="An alarm's causes and consequences (path form)")
async def rca_by_path(
    request: Request,
    backend: Backend,
    viewer: CurrentViewer,
    alarm_id: str,
    all_tenants: Flag = False,
    past: AtTime = None,
) -> Any:
    require_all_tenants(viewer, all_tenants)
    if past is not None:
        with answers():
            return await past.history.rca(past.at, alarm_id, viewer, all_tenants)
    return await rca_with_history(request, backend, alarm_id, viewer, all_tenants)
