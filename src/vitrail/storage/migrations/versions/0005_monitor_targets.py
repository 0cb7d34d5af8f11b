"""Monitor targets: the endpoints the reachability monitor probes, with their last status.

Revision ID: 0005
Revises: 0004
Created: 2026-11-22

Mirrors ``vitrail.storage.models.monitor_targets``. Deleting a target keeps its
row (``deleted_at`` set, ``live_name`` NULL, ``action_id`` bumped), so a worker
still probing it is told its assignment is stale and the id is never reused;
the name can be used again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from vitrail.storage.models import MYSQL_TABLE_OPTIONS, ExactString, UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "monitor_targets",
        sa.Column("id", sa.String(36), nullable=False, comment="uuid4; never reused (deletion is soft)"),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column(
            "live_name",
            ExactString(255),
            nullable=True,
            comment="the name while the target is not deleted, else NULL: unique, compared byte for byte",
        ),
        sa.Column("kind", sa.String(16), nullable=False, comment="tcp, http or vim"),
        sa.Column("address", sa.String(2048), nullable=False, comment="host:port (tcp) or a URL (http, vim)"),
        sa.Column(
            "expected_status", sa.Integer(), nullable=True, comment="http only: the status a well target answers"
        ),
        sa.Column("interval", sa.Double(), nullable=False, comment="seconds between two probes"),
        sa.Column(
            "timeout", sa.Double(), nullable=False, comment="seconds a probe may take; shorter than the interval"
        ),
        sa.Column(
            "failure_threshold", sa.Integer(), nullable=False, comment="failed probes in a row before unreachable"
        ),
        sa.Column(
            "entity_id",
            sa.String(64),
            nullable=True,
            comment="vitrage_id of the entity it belongs to; NULL: a monitor.target entity of its own",
        ),
        sa.Column(
            "action_id",
            sa.BigInteger(),
            nullable=False,
            comment="fencing token: +1 when kind, address or expected_status change and at deletion",
        ),
        sa.Column("status", sa.String(16), nullable=False, comment="unknown, reachable or unreachable"),
        sa.Column("status_changed_at", UTCDateTime(), nullable=True),
        sa.Column("last_probe_at", UTCDateTime(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True, comment="the last probe's error"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column(
            "deleted_at", UTCDateTime(), nullable=True, comment="set at deletion; the row stays to fence old workers"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_targets")),
        sa.UniqueConstraint("live_name", name=op.f("uq_monitor_targets_live_name")),
        comment="Endpoints the reachability monitor probes (seed 003), with their last status.",
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_monitor_targets_created_at_id", "monitor_targets", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_monitor_targets_created_at_id", table_name="monitor_targets")
    op.drop_table("monitor_targets")
