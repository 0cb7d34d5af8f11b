"""Structured logging for every process.

Code logs through the standard library (``logging.getLogger(__name__)`` with
``extra={...}`` for fields), so third-party libraries (uvicorn, alembic,
SQLAlchemy) land in the same stream. structlog's ``ProcessorFormatter`` turns
each record into one JSON object per line (``format=json``) or a readable line
for people (``format=console``); ``auto`` picks console on a terminal.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_QUIET = {
    "uvicorn.access": logging.WARNING,
    "aiosqlite": logging.WARNING,
    "asyncio": logging.WARNING,
    "alembic": logging.WARNING,  # Vitrail logs the resulting revision itself
}


def _drop_color_message(logger: Any, name: str, event: dict[str, Any]) -> dict[str, Any]:
    event.pop("color_message", None)  # uvicorn's ANSI copy of the message
    return event


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None) -> None:
    """Route all logging through structlog's formatter. Safe to call more than once."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not getattr(stream, "isatty", lambda: False)())
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=bool(getattr(stream, "isatty", lambda: False)()))
    )
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if use_json:
        final.append(structlog.processors.format_exc_info)  # the console renderer formats its own
    final.append(renderer)
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_vitrail", False):
            root.removeHandler(old)
    handler._vitrail = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name, minimum in _QUIET.items():
        logging.getLogger(name).setLevel(max(minimum, logging.getLevelName(level)))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
