"""Dead letters: ``/v1/dead_letters/`` (a Vitrail extension; Vitrage has none).

Messages and rows no component could process, kept with their raw bytes
(:mod:`vitrail.services.dead_letter_admin`). Listed newest first without their
bodies; shown one at a time with the body as base64 (exact) and as text (when
it is UTF-8). A retry re-publishes a graph input to its topic; a purge must
name what it deletes (``before``, ``source``) or say ``all=true``.

Dead letters hold every project's raw messages, so, like ``all_tenants``,
they need the admin role when the caller sends identity headers (the local
operator, who sends none, is an admin).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from vitrail.api.backend import DeadLetterManager, PurgeRefused, RetryRefused
from vitrail.api.errors import ApiError
from vitrail.api.routing import CurrentViewer, registrar
from vitrail.api.schemas import Flag, parse_time
from vitrail.graph.events import format_timestamp
from vitrail.storage import DeadLetter, DeadLetterNotFound

router = APIRouter(tags=["dead letters"])
route = registrar(router)

MAX_LIMIT = 1000
"""Dead letters per page at most: their bodies are read with them."""
MAX_ID = 2**63 - 1
"""Ids beyond a signed 64-bit integer exist on no backend (and SQLite cannot even compare them)."""

LetterId = Annotated[int, Path(ge=1, le=MAX_ID, description="The dead letter's id.")]


def admin(request: Request, viewer: CurrentViewer) -> DeadLetterManager:
    if not viewer.is_admin:
        raise ApiError(403, "Authorization Failed: dead letters need the admin role")
    found: DeadLetterManager | None = getattr(request.app.state, "dead_letters", None)
    if found is None:
        raise ApiError(503, "dead letters are not available in this process (it has no database)")
    return found


Admin = Annotated[DeadLetterManager, Depends(admin)]


@contextmanager
def _answers() -> Iterator[None]:
    """The admin's refusals as API errors (the admin knows nothing of HTTP)."""
    try:
        yield
    except DeadLetterNotFound as exc:
        raise ApiError(404, str(exc)) from None
    except RetryRefused as exc:
        raise ApiError(409, str(exc)) from None
    except PurgeRefused as exc:
        raise ApiError(422, str(exc)) from None


def summary(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter without its body (a listing may hold a thousand large ones)."""
    return {
        "id": letter.id,
        "created_at": format_timestamp(letter.created_at),
        "source": letter.source,
        "reason": letter.reason,
        "content_type": letter.content_type,
        "size": len(letter.body),
        "retries": letter.retries,
        "retried_at": None if letter.retried_at is None else format_timestamp(letter.retried_at),
    }


def _text(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


@route("GET", "/v1/dead_letters/", summary="Dead letters, newest first, without their bodies")
async def list_dead_letters(
    dead_letters: Admin,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Dead letters per page.")] = 50,
    marker: Annotated[int | None, Query(ge=1, le=MAX_ID, description="The last id of the previous page.")] = None,
    source: Annotated[str | None, Query(description="Only those from this source, e.g. events.priority/graph.")] = None,
) -> Any:
    return [summary(letter) for letter in await dead_letters.list(limit, marker, source or None)]


@route("GET", "/v1/dead_letters/{letter_id}", summary="One dead letter with its body (base64, and text if UTF-8)")
async def show_dead_letter(dead_letters: Admin, letter_id: LetterId) -> Any:
    with _answers():
        letter = await dead_letters.show(letter_id)
    return {
        **summary(letter),
        "body_base64": base64.b64encode(letter.body).decode("ascii"),
        "body_text": _text(letter.body),
    }


@route("POST", "/v1/dead_letters/{letter_id}/retry", summary="Re-publish a dead letter to the graph's input topic")
async def retry_dead_letter(dead_letters: Admin, letter_id: LetterId) -> Any:
    with _answers():
        letter, topic = await dead_letters.retry(letter_id)
    return {**summary(letter), "republished_to": topic}


@route("DELETE", "/v1/dead_letters/{letter_id}", summary="Delete one dead letter", status_code=204)
async def delete_dead_letter(dead_letters: Admin, letter_id: LetterId) -> Response:
    with _answers():
        await dead_letters.delete(letter_id)
    return Response(status_code=204)


@route("DELETE", "/v1/dead_letters/", summary="Purge dead letters: before a time, from a source, or all")
async def purge_dead_letters(
    dead_letters: Admin,
    before: Annotated[str | None, Query(description="Created before this ISO-8601 time (naive: UTC).")] = None,
    source: Annotated[str | None, Query(description="From this source only.")] = None,
    everything: Annotated[Flag, Query(alias="all", description="Every dead letter (alone).")] = False,
) -> Any:
    with _answers():
        purged = await dead_letters.purge(parse_time(before, "before"), source or None, everything)
    return {"purged": purged}
