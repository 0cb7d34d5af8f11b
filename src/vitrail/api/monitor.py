"""Monitor targets: ``/v1/monitor/targets/`` (a Vitrail extension; docs/monitor.md).

The endpoints the reachability monitor probes: registered, changed and deleted
here, listed with their last status. A definition is checked field by field
(:mod:`vitrail.monitor.targets`); a bad one is answered 422 naming the field.
A partial update (``PATCH``) is checked together with the target it applies
to, so ``{"interval": 2}`` on a target with a 3 s timeout is refused.

Reading is open to every caller; registering, changing and deleting need the
admin role when the caller sends identity headers (the local operator, who
sends none, is an admin). Targets are addressed by id or by name.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import Response

from vitrail.api.backend import MonitorTargets
from vitrail.api.errors import ApiError
from vitrail.api.responses import JSONBody
from vitrail.api.routing import CurrentViewer, registrar
from vitrail.graph.events import format_timestamp
from vitrail.monitor.targets import TargetChanges, TargetDraft, apply_changes
from vitrail.storage import DuplicateTarget, Target, TargetNotFound, UnknownMarker

router = APIRouter(tags=["monitor"])
route = registrar(router)

PREFIX = "/v1/monitor/targets/"
MAX_LIMIT = 10_000
"""Targets per page at most."""

TargetRef = Annotated[str, Path(min_length=1, max_length=255, description="The target's id or name.")]


def targets(request: Request) -> MonitorTargets:
    found: MonitorTargets | None = getattr(request.app.state, "monitor_targets", None)
    if found is None:
        raise ApiError(503, "monitor targets are not available in this process (it has no database)")
    return found


def admin(request: Request, viewer: CurrentViewer) -> MonitorTargets:
    if not viewer.is_admin:
        raise ApiError(403, "Authorization Failed: changing monitor targets needs the admin role")
    return targets(request)


Reader = Annotated[MonitorTargets, Depends(targets)]
Admin = Annotated[MonitorTargets, Depends(admin)]


def target_body(target: Target) -> dict[str, Any]:
    """A target as the API shows it."""

    def time(value: Any) -> str | None:
        return None if value is None else format_timestamp(value)

    return {
        **target.assignment(),
        "status_changed_at": time(target.status_changed_at),
        "last_probe_at": time(target.last_probe_at),
        "detail": target.detail,
        "created_at": time(target.created_at),
        "updated_at": time(target.updated_at),
    }


async def _find(store: MonitorTargets, ref: str) -> Target:
    found = await store.get(ref)
    if found is None:
        raise ApiError(404, f"no monitor target with the id or name {ref!r}")
    return found


async def _update(store: MonitorTargets, target: Target, draft: TargetDraft) -> dict[str, Any]:
    try:
        return target_body(await store.update(target.id, draft.model_dump()))
    except TargetNotFound:
        raise ApiError(404, f"no monitor target with the id or name {target.id!r}") from None
    except DuplicateTarget as exc:
        raise ApiError(409, f"name: {exc}") from None


@route("GET", PREFIX, summary="Monitor targets, in the order they were added")
async def list_targets(
    store: Reader,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Targets per page.")] = 1000,
    marker: Annotated[str | None, Query(description="The id of the last target of the previous page.")] = None,
) -> Any:
    try:
        return [target_body(t) for t in await store.list(limit=limit, marker=marker or None)]
    except UnknownMarker as exc:
        raise ApiError(422, str(exc)) from None


@route("POST", PREFIX, summary="Register a monitor target", status_code=201)
async def add_target(store: Admin, body: Annotated[TargetDraft, Body()]) -> Any:
    try:
        added = await store.add(body)
    except DuplicateTarget as exc:
        raise ApiError(409, f"name: {exc}") from None
    return JSONBody(target_body(added), status_code=201, headers={"Location": f"{PREFIX}{added.id}"})


@route("GET", PREFIX + "{target}/", summary="One monitor target, by id or name")
async def show_target(store: Reader, target: TargetRef) -> Any:
    return target_body(await _find(store, target))


@route("PATCH", PREFIX + "{target}/", summary="Change some fields of a monitor target")
async def patch_target(store: Admin, target: TargetRef, body: Annotated[TargetChanges, Body()]) -> Any:
    current = await _find(store, target)
    try:
        draft = apply_changes(current, body)
    except ValidationError as exc:
        # Named like the body's own errors: "timeout: 3 s must be shorter than the interval (2 s)".
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None
    return await _update(store, current, draft)


@route("PUT", PREFIX + "{target}/", summary="Replace the definition of a monitor target")
async def replace_target(store: Admin, target: TargetRef, body: Annotated[TargetDraft, Body()]) -> Any:
    return await _update(store, await _find(store, target), body)


@route("DELETE", PREFIX + "{target}/", summary="Delete a monitor target (its workers stop probing it)", status_code=204)
async def delete_target(store: Admin, target: TargetRef) -> Response:
    found = await _find(store, target)
    try:
        await store.delete(found.id)
    except TargetNotFound:
        raise ApiError(404, f"no monitor target with the id or name {target!r}") from None
    return Response(status_code=204)
