"""Reading the bodies that push datasources receive: errors that name the wrong field.

Alertmanager webhooks, Vitrage's event API and nova's notifications are all
JSON from outside; each parser rejects a bad body with a :class:`PayloadError`
naming the first wrong field, so the API can answer 400 (or the listener log
the reason) and accept nothing of it.
"""

from __future__ import annotations

from typing import Any


class PayloadError(ValueError):
    """A body that cannot be accepted; ``field`` is the path of the first wrong field.

    The API answers 400 with ``field`` and the message; nothing of the body is
    accepted. ``field`` is relative to the body as received, e.g.
    ``alerts[2].labels.alertname``, ``details.hostname`` or ``oslo.message.payload``.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def json_kind(value: Any) -> str:
    """How a JSON value is called in an error message."""
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def required_text(obj: dict[str, Any], key: str, field: str) -> str:
    """``obj[key]``, a non-empty string; otherwise a :class:`PayloadError` naming ``field``."""
    value = obj.get(key)
    if value is None:
        raise PayloadError(field, "required: a non-empty string")
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(field, f"expected a non-empty string, got {value!r}")
    return value
