"""History: alarm history, the changes of active alarms, RCA history, and how far it is written.

Revision ID: 0004
Revises: 0003
Created: 2026-11-22

Mirrors ``vitrail.storage.models.alarm_history``, ``alarm_changes``,
``cause_history`` and ``history_progress``. No row is created: the graph
leader starts the history at its first takeover on this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from vitrail.storage.models import MYSQL_TABLE_OPTIONS, UTCDateTime, json_text_type, sequence_type

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alarm_history",
        sa.Column("id", sequence_type(), nullable=False, autoincrement=True),
        sa.Column("vitrage_id", sa.String(64), nullable=False, comment="the alarm's id in the graph"),
        sa.Column("start_sequence", sa.BigInteger(), nullable=False, comment="the event that made it active"),
        sa.Column("end_sequence", sa.BigInteger(), nullable=True, comment="the event that ended it; NULL while active"),
        sa.Column("start_time", UTCDateTime(), nullable=False),
        sa.Column("end_time", UTCDateTime(), nullable=True),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("vitrage_type", sa.String(64), nullable=True, comment="its datasource; 'vitrage' when deduced"),
        sa.Column("severity", sa.String(64), nullable=True, comment="operational severity, latest"),
        sa.Column("aggregated_severity", sa.String(64), nullable=True),
        sa.Column("state", sa.String(64), nullable=True),
        sa.Column("project_id", sa.String(64), nullable=True),
        sa.Column("resource_id", sa.String(64), nullable=True),
        sa.Column("resource_type", sa.String(64), nullable=True),
        sa.Column("resource_name", sa.String(255), nullable=True),
        sa.Column("resource_project_id", sa.String(64), nullable=True),
        sa.Column("deduced", sa.Boolean(), nullable=False),
        sa.Column(
            "templates", json_text_type(), nullable=True, comment="JSON list: templates that raised a deduced alarm"
        ),
        sa.Column("payload", json_text_type(), nullable=False, comment="the alarm as the API showed it, latest"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_history")),
        sa.UniqueConstraint("vitrage_id", "start_sequence", name=op.f("uq_alarm_history_vitrage_id_start_sequence")),
        comment="Every alarm that was active, with when it began and ended (alarm history, seed 002).",
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index(op.f("ix_alarm_history_severity"), "alarm_history", ["severity"])
    op.create_index(op.f("ix_alarm_history_resource_id"), "alarm_history", ["resource_id"])
    op.create_index("ix_alarm_history_start_time_vitrage_id", "alarm_history", ["start_time", "vitrage_id"])
    op.create_index("ix_alarm_history_end_time_start_time", "alarm_history", ["end_time", "start_time"])
    op.create_table(
        "alarm_changes",
        sa.Column("id", sequence_type(), nullable=False, autoincrement=True),
        sa.Column("vitrage_id", sa.String(64), nullable=False),
        sa.Column(
            "start_sequence", sa.BigInteger(), nullable=False, comment="the alarm_history row: (vitrage_id, start)"
        ),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.Column("severity", sa.String(64), nullable=True),
        sa.Column("aggregated_severity", sa.String(64), nullable=True),
        sa.Column("state", sa.String(64), nullable=True),
        sa.Column("payload", json_text_type(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_changes")),
        sa.UniqueConstraint("vitrage_id", "sequence", name=op.f("uq_alarm_changes_vitrage_id_sequence")),
        comment="Severity, state, name or resource changes of an active alarm.",
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_alarm_changes_vitrage_id_start_sequence", "alarm_changes", ["vitrage_id", "start_sequence"])
    op.create_table(
        "cause_history",
        sa.Column("id", sequence_type(), nullable=False, autoincrement=True),
        sa.Column("source_id", sa.String(64), nullable=False, comment="the causing alarm"),
        sa.Column("target_id", sa.String(64), nullable=False, comment="the alarm it causes"),
        sa.Column("start_sequence", sa.BigInteger(), nullable=False),
        sa.Column("end_sequence", sa.BigInteger(), nullable=True),
        sa.Column("start_time", UTCDateTime(), nullable=False),
        sa.Column("end_time", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cause_history")),
        sa.UniqueConstraint(
            "source_id", "target_id", "start_sequence", name=op.f("uq_cause_history_source_id_target_id_start_sequence")
        ),
        comment="Every causal link between two alarms, with when it began and ended (RCA history, seed 002).",
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index(op.f("ix_cause_history_source_id"), "cause_history", ["source_id"])
    op.create_index(op.f("ix_cause_history_target_id"), "cause_history", ["target_id"])
    op.create_index(op.f("ix_cause_history_end_time"), "cause_history", ["end_time"])
    op.create_table(
        "history_progress",
        sa.Column("name", sa.String(64), nullable=False, comment="what is recorded: 'alarms'"),
        sa.Column(
            "sequence", sa.BigInteger(), nullable=False, comment="the history holds every record up to this event"
        ),
        sa.Column(
            "longest_alarm_s",
            sa.Float(),
            nullable=False,
            comment="the longest an ended occurrence lasted (seconds): bounds time-frame queries",
        ),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_history_progress")),
        comment="How far the alarm and RCA history is written, so a new graph leader continues it exactly.",
        **MYSQL_TABLE_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("history_progress")
    op.drop_index(op.f("ix_cause_history_end_time"), table_name="cause_history")
    op.drop_index(op.f("ix_cause_history_target_id"), table_name="cause_history")
    op.drop_index(op.f("ix_cause_history_source_id"), table_name="cause_history")
    op.drop_table("cause_history")
    op.drop_index("ix_alarm_changes_vitrage_id_start_sequence", table_name="alarm_changes")
    op.drop_table("alarm_changes")
    op.drop_index("ix_alarm_history_end_time_start_time", table_name="alarm_history")
    op.drop_index("ix_alarm_history_start_time_vitrage_id", table_name="alarm_history")
    op.drop_index(op.f("ix_alarm_history_resource_id"), table_name="alarm_history")
    op.drop_index(op.f("ix_alarm_history_severity"), table_name="alarm_history")
    op.drop_table("alarm_history")
