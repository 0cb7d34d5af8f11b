"""Vitrail's relational storage: engines, migrations and the event log.

SQLite for the embedded mode, PostgreSQL or MariaDB/MySQL in production, all
through asyncio drivers and one Alembic migration history. Import from here;
the submodules are implementation detail.
"""

from __future__ import annotations

from vitrail.storage.database import (
    DatabaseConfigError,
    DatabaseUnavailable,
    check_connection,
    create_engine,
    current_revision,
    describe_target,
    downgrade,
    head_revision,
    mask_url,
    normalize_url,
    upgrade,
)
from vitrail.storage.event_log import EventLog, EventLogConflict
from vitrail.storage.models import events, metadata, templates
from vitrail.storage.templates import DuplicateTemplate, StoredTemplate, TemplateStore

__all__ = [
    "DatabaseConfigError",
    "DatabaseUnavailable",
    "DuplicateTemplate",
    "EventLog",
    "EventLogConflict",
    "StoredTemplate",
    "TemplateStore",
    "check_connection",
    "create_engine",
    "current_revision",
    "describe_target",
    "downgrade",
    "events",
    "head_revision",
    "mask_url",
    "metadata",
    "normalize_url",
    "templates",
    "upgrade",
]
