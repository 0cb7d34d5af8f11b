"""The event log: every event the graph accepted, in order.

Revision ID: 0001
Revises:
Created: 2026-11-22

Mirrors ``vitrail.storage.models.events``. The column types are the models' own
portable types (UTC times with microseconds, byte-exact event ids, JSON text),
imported rather than copied because they carry per-dialect behaviour, not schema
that could drift.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from vitrail.storage.models import ExactString, UTCDateTime, json_text_type, sequence_type

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("sequence", sequence_type(), autoincrement=False, nullable=False, comment="assigned by the graph"),
        sa.Column("event_id", ExactString(255), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=True),
        sa.Column("sample_time", UTCDateTime(), nullable=False),
        sa.Column("datasource", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("round", sa.BigInteger(), nullable=True),
        sa.Column("payload", json_text_type(), nullable=False, comment="canonical JSON (orjson, sorted keys)"),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_events_event_id")),
        comment="The ordered log of events the graph accepted: snapshot + log = graph.",
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.create_index(op.f("ix_events_received_at"), "events", ["received_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_events_received_at"), table_name="events")
    op.drop_table("events")
