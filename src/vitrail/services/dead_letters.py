"""Dead letters: what no one could process, kept with its raw bytes for a human.

Seed ``004`` (batch consumption): a message that cannot be parsed is stored
"until a human can look at it", acknowledged and never requeued (it would come
back forever). Any role may meet one (the graph on its input topics, the
persistor on the processed events, the listener on OpenStack's notifications)
but only the persistor has the database, so the others publish the dead letter
on :data:`~vitrail.services.topics.DEAD_LETTERS` and a persistor stores it.

On the bus a dead letter is a JSON object: ``source`` (a queue or role),
``reason``, ``content_type`` and ``body`` (the raw bytes, base64).
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

import orjson

from vitrail import metrics
from vitrail.bus.base import EventBus, Undecodable
from vitrail.services.topics import DEAD_LETTERS
from vitrail.storage import NewDeadLetter

log = logging.getLogger(__name__)


def to_message(letter: NewDeadLetter) -> dict[str, Any]:
    """A dead letter as it travels on the bus."""
    return {
        "source": letter.source,
        "reason": letter.reason,
        "content_type": letter.content_type,
        "body": base64.b64encode(letter.body).decode("ascii"),
    }


def from_message(body: Any) -> NewDeadLetter:
    """Parse :func:`to_message`; ValueError names what is wrong."""
    if not isinstance(body, dict):
        raise ValueError(f"a dead letter is an object, got {type(body).__name__}")
    source, reason = body.get("source"), body.get("reason")
    if not isinstance(source, str) or not source:
        raise ValueError("dead letter: source must be a non-empty string")
    if not isinstance(reason, str):
        raise ValueError("dead letter: reason must be a string")
    content_type = body.get("content_type")
    if content_type is not None and not isinstance(content_type, str):
        raise ValueError("dead letter: content_type must be a string or null")
    raw = body.get("body")
    if not isinstance(raw, str):
        raise ValueError("dead letter: body must be base64 text")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("dead letter: body is not valid base64") from None
    return NewDeadLetter(source, reason, data, content_type)


def raw_bytes(body: Any) -> tuple[bytes, str | None]:
    """The bytes of a delivery's body as they came (or as close as JSON gives them back)."""
    if isinstance(body, Undecodable):
        return body.raw, body.content_type
    if isinstance(body, bytes | bytearray):
        return bytes(body), None
    try:
        return orjson.dumps(body), "application/json"
    except TypeError:
        return repr(body).encode("utf-8", "replace"), "text/plain"


class DeadLetterSender:
    """Publishes dead letters for a persistor to store (roles without a database)."""

    def __init__(self, bus: EventBus, role: str) -> None:
        self.bus = bus
        self.role = role

    async def send(self, source: str, reason: str, body: Any) -> None:
        """Keep ``body`` (a delivery body, :class:`Undecodable` included) as a dead letter.

        A dead letter that cannot be published is logged with its bytes: the
        message was already unusable, and the log line is the last copy.
        """
        data, content_type = raw_bytes(body)
        letter = NewDeadLetter(source, reason, data, content_type)
        metrics.DEAD_LETTERS.labels(self.role).inc()
        try:
            await self.bus.publish(DEAD_LETTERS, to_message(letter))
        except Exception as exc:
            log.error(
                "a dead letter could not be published; its bytes are in this line",
                extra={
                    "source": source,
                    "reason": reason,
                    "error": str(exc),
                    "raw": data[:2000].decode("utf-8", "replace"),
                },
            )


__all__ = ["DeadLetterSender", "from_message", "raw_bytes", "to_message"]
