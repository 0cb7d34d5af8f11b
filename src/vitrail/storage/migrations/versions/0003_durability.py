"""Durability: the leader's fencing epoch, snapshots, dead letters.

Revision ID: 0003
Revises: 0002
Created: 2026-11-22

Mirrors ``vitrail.storage.models.leadership``, ``snapshots``, ``snapshot_chunks``
and ``dead_letters``. Snapshot bytes are stored in chunks so that no single row
exceeds MySQL/MariaDB's ``max_allowed_packet``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from vitrail.storage.models import MYSQL_TABLE_OPTIONS, Blob, UTCDateTime, sequence_type

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leadership",
        sa.Column("name", sa.String(64), nullable=False, comment="what is led: 'graph'"),
        sa.Column(
            "epoch",
            sa.BigInteger(),
            nullable=False,
            comment="+1 at every takeover; writes of older epochs are refused",
        ),
        sa.Column("holder", sa.String(255), nullable=False, comment="host:pid of the leader that took this epoch"),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leadership")),
        comment="The fencing epoch of each led role: a leader that lost its lock cannot write.",
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_table(
        "snapshots",
        sa.Column("id", sequence_type(), nullable=False, autoincrement=True),
        sa.Column("sequence", sa.BigInteger(), nullable=False, comment="the last event the snapshot includes"),
        sa.Column("epoch", sa.BigInteger(), nullable=False, comment="the leader epoch that took it"),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
        sa.Column("format", sa.String(64), nullable=False, comment="encoding of the chunks, e.g. zlib+json"),
        sa.Column("entities", sa.BigInteger(), nullable=False),
        sa.Column("relationships", sa.BigInteger(), nullable=False),
        sa.Column(
            "raw_bytes", sa.BigInteger(), nullable=False, comment="size of the processor state before compression"
        ),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=False, comment="size of the chunks"),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshots")),
        comment="Full processor states (graph, rounds, recent ids, evaluator): snapshot + later events = graph.",
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index(op.f("ix_snapshots_sequence"), "snapshots", ["sequence"])
    op.create_index(op.f("ix_snapshots_taken_at"), "snapshots", ["taken_at"])
    op.create_table(
        "snapshot_chunks",
        sa.Column("snapshot_id", sa.BigInteger(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("data", Blob(), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_id", "chunk", name=op.f("pk_snapshot_chunks")),
        comment="A snapshot's bytes in pieces (MySQL/MariaDB refuse packets beyond max_allowed_packet).",
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sequence_type(), nullable=False, autoincrement=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(255), nullable=False, comment="where it came from: a queue, a role"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=True),
        sa.Column("body", Blob(), nullable=False, comment="the raw bytes as received"),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("retried_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        comment="Messages and rows that could not be processed, kept for inspection and retry; never requeued.",
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index(op.f("ix_dead_letters_created_at"), "dead_letters", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_dead_letters_created_at"), table_name="dead_letters")
    op.drop_table("dead_letters")
    op.drop_table("snapshot_chunks")
    op.drop_index(op.f("ix_snapshots_taken_at"), table_name="snapshots")
    op.drop_index(op.f("ix_snapshots_sequence"), table_name="snapshots")
    op.drop_table("snapshots")
    op.drop_table("leadership")
