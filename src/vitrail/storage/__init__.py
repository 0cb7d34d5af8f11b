"""Vitrail's relational storage: engines, migrations, the event log and the durability stores.

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
from vitrail.storage.dead_letters import DeadLetter, DeadLetterDraft, DeadLetterNotFound, DeadLetterStore, NewDeadLetter
from vitrail.storage.event_log import EventLog, EventLogConflict, EventLogGap
from vitrail.storage.leadership import EpochHolder, EpochStore, Fenced, check_epoch, read_watermark
from vitrail.storage.models import events, metadata, templates
from vitrail.storage.monitor_targets import DuplicateTarget, Target, TargetNotFound, TargetStore, UnknownMarker
from vitrail.storage.snapshots import SnapshotCorrupt, SnapshotInfo, SnapshotNotFound, SnapshotStore, thinning_plan
from vitrail.storage.templates import DuplicateTemplate, StoredTemplate, TemplateStore

__all__ = [
    "DatabaseConfigError",
    "DatabaseUnavailable",
    "DeadLetter",
    "DeadLetterDraft",
    "DeadLetterNotFound",
    "DeadLetterStore",
    "DuplicateTarget",
    "DuplicateTemplate",
    "EpochHolder",
    "EpochStore",
    "EventLog",
    "EventLogConflict",
    "EventLogGap",
    "Fenced",
    "NewDeadLetter",
    "SnapshotCorrupt",
    "SnapshotInfo",
    "SnapshotNotFound",
    "SnapshotStore",
    "StoredTemplate",
    "Target",
    "TargetNotFound",
    "TargetStore",
    "TemplateStore",
    "UnknownMarker",
    "check_connection",
    "check_epoch",
    "create_engine",
    "current_revision",
    "describe_target",
    "downgrade",
    "events",
    "head_revision",
    "mask_url",
    "metadata",
    "normalize_url",
    "read_watermark",
    "templates",
    "thinning_plan",
    "upgrade",
]
