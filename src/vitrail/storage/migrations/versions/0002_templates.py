"""Templates added at run time.

Revision ID: 0002
Revises: 0001
Created: 2026-11-22

Mirrors ``vitrail.storage.models.templates``. ``live_name`` holds the name while
the template is not deleted and NULL after: a unique key on it keeps live names
unique on every backend without partial indexes (NULLs never collide).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from vitrail.storage.models import ExactString, UTCDateTime, json_text_type

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "templates",
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column(
            "live_name",
            ExactString(255),
            nullable=True,
            comment="the name while the template is not DELETED, else NULL: unique, so live names never repeat",
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_details", sa.Text(), nullable=True),
        sa.Column("template_type", sa.String(32), nullable=False),
        sa.Column("version", sa.String(8), nullable=True),
        sa.Column("document", json_text_type(), nullable=False, comment="the template as stored (parameters resolved)"),
        sa.Column("params", json_text_type(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("uuid", name=op.f("pk_templates")),
        sa.UniqueConstraint("live_name", name=op.f("uq_templates_live_name")),
        comment="Templates added at run time; the evaluator loads the ACTIVE ones.",
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.create_index(op.f("ix_templates_name"), "templates", ["name"])


def downgrade() -> None:
    op.drop_index(op.f("ix_templates_name"), table_name="templates")
    op.drop_table("templates")
