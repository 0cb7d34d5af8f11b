"""Alarms posted to Vitrail: Vitrage's event API and the Alertmanager webhook receiver.

``POST /v1/event/`` takes Vitrage's event body (``type``, ``time``, ``details``:
a Doctor-style ``compute.host.down``) — or, when the ``User-Agent`` is
Alertmanager's, an Alertmanager webhook body, as Vitrage did.
``POST /v1/webhooks/alertmanager`` is the receiver to point Alertmanager at.
A body that cannot be understood is a 400 naming the field; nothing of it is kept.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request

from vitrail import metrics
from vitrail.api.errors import ApiError
from vitrail.api.routing import Backend, registrar
from vitrail.datasources import alertmanager, doctor
from vitrail.datasources.payload import PayloadError
from vitrail.graph.events import Event, utc_now

router = APIRouter(tags=["events"])
route = registrar(router)

MAX_BODY = 4 << 20


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(413, f"body: larger than {MAX_BODY} bytes")
    if not raw:
        raise ApiError(400, "body: a JSON object is required")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body: not valid JSON ({exc})") from None


def _parse(parser: Any, body: Any) -> list[Event]:
    try:
        events: list[Event] = parser(body, utc_now())
    except PayloadError as exc:
        raise ApiError(400, str(exc)) from None
    for event in events:
        metrics.ALARMS_RECEIVED.labels(event.datasource).inc()
        resource = event.payload.get("resource")
        if isinstance(resource, dict) and resource.get("rule") == "fallback":
            metrics.ALERTS_UNMAPPED.inc()
    return events


@route("POST", "/v1/event/", summary="Post an event (Vitrage's event API; Alertmanager bodies too)")
async def post_event(request: Request, backend: Backend) -> Any:
    body = await _json_body(request)
    if doctor.is_alertmanager(request.headers.get("user-agent"), body):
        events = _parse(alertmanager.parse_webhook, body)
    else:
        events = _parse(doctor.parse_event, body)
    await backend.ingest(events)
    return None


@route("POST", "/v1/webhooks/alertmanager", summary="Alertmanager webhook receiver (payload version 4)")
async def alertmanager_webhook(request: Request, backend: Backend) -> Any:
    events = _parse(alertmanager.parse_webhook, await _json_body(request))
    await backend.ingest(events)
    return {"accepted": len(events)}
