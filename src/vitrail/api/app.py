"""The FastAPI application: routes, error format, metrics."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vitrail import __version__, metrics
from vitrail.api import alarm_history, alarms, dead_letters, events, history, monitor, templates, topology
from vitrail.api.backend import GraphBackend
from vitrail.api.errors import install_error_handlers


class _MetricsMiddleware:
    """Counts requests and their latency per route template (not per raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            metrics.API_REQUESTS.labels(scope["method"], template, str(status)).inc()
            metrics.API_SECONDS.labels(template).observe(time.perf_counter() - started)


def create_app(backend: GraphBackend) -> FastAPI:
    app = FastAPI(
        title="Vitrail",
        version=__version__,
        description="Root-cause analysis for cloud operators. The `/v1` endpoints are compatible with "
        "OpenStack Vitrage's API as python-vitrageclient 5.4.0 calls it.",
        redirect_slashes=False,
    )
    app.state.backend = backend
    install_error_handlers(app)
    for module in (topology, alarm_history, alarms, events, templates, dead_letters, history, monitor):
        app.include_router(module.router)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Any:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_MetricsMiddleware)
    return app
