"""Errors as Vitrage returns them: ``{"code", "title", "description"}``.

python-vitrageclient prints ``description``; every error Vitrail answers has
this shape, including validation errors (which name the parameter) and
unexpected ones (which never carry a traceback).
"""

from __future__ import annotations

import logging
import uuid
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vitrail.api.responses import JSONBody
from vitrail.graph.queries import NotFound, QueryError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answer: status code and a description naming what is wrong."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


class Unavailable(RuntimeError):
    """A service the API needs did not answer: 503, saying which."""


def error_body(status: int, description: str) -> dict[str, Any]:
    return {"code": status, "title": HTTPStatus(status).phrase, "description": description}


def error_response(status: int, description: str, headers: dict[str, str] | None = None) -> JSONBody:
    return JSONBody(error_body(status, description), status_code=status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONBody:
        return error_response(exc.status, exc.description)

    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, exc: Unavailable) -> JSONBody:
        return error_response(503, str(exc))

    @app.exception_handler(QueryError)
    async def _query_error(request: Request, exc: QueryError) -> JSONBody:
        return error_response(422, str(exc))

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONBody:
        return error_response(404, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONBody:
        problems = []
        for err in exc.errors():
            message = err.get("msg", "invalid")
            if err.get("type") == "json_invalid":
                problems.append(f"body: not valid JSON ({err.get('ctx', {}).get('error', message)})")
            else:
                problems.append(f"{_field(tuple(err.get('loc', ())))}: {message}")
        return error_response(422, "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONBody:
        if exc.status_code == 404:
            description = f"no such path: {request.url.path}"
        elif exc.status_code == 405:
            description = f"method {request.method} is not allowed on {request.url.path}"
        else:
            description = str(exc.detail)
        return error_response(exc.status_code, description, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONBody:
        incident = uuid.uuid4().hex[:12]
        log.exception("unexpected error answering a request", extra={"incident": incident, "path": request.url.path})
        return error_response(500, f"internal error (incident {incident}); the server log has the details")
