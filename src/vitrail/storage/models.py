"""The relational schema, in SQLAlchemy Core: the single source the migrations mirror.

Core rather than the ORM because the storage layer moves rows in bulk (the
event log takes 100k rows at a time) and never needs identity maps or lazy
loading. A test compares a migrated database with :data:`metadata`, so a change
here without a migration (or the reverse) fails the suite.

Portability notes, one per type below:

* times are stored in UTC with microseconds on every backend, so a timestamp
  read back equals the one written (MySQL's DATETIME has no time zone and only
  whole seconds unless ``fsp=6``; SQLite keeps text);
* event ids are compared byte for byte everywhere (MySQL/MariaDB collations are
  case-insensitive or ignore trailing spaces, which would make two distinct ids
  collide on the unique key and silently drop an event);
* payloads are canonical JSON text, never pickle: whoever can write the database
  must not gain code execution.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Double,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator, TypeEngine

MYSQL_DIALECTS = ("mysql", "mariadb")
"""SQLAlchemy names a MariaDB dialect either way, depending on the URL scheme."""

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so later migrations can drop or alter them by name
on every backend (otherwise each database invents its own)."""

MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}
"""Per table, not per database: the database default may be latin1 or 3-byte utf8,
which cannot hold every character of a payload."""

EVENT_ID_LENGTH = 255
"""Characters; the event log rejects longer ids rather than let a database truncate them."""
DATASOURCE_LENGTH = 64
ACTION_LENGTH = 16

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _utc_naive(value: datetime) -> datetime:
    """``value`` in UTC without its zone, for backends whose column cannot hold one."""
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None)


class _SQLiteUTCDateTime(sqlite.DATETIME):
    """SQLite text ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC (SQLAlchemy's own storage format,
    so plain ``DateTime`` readers agree), converted with the C ``isoformat`` and
    ``fromisoformat`` rather than the generic %-formatting and regex: the event log
    converts two times per row, 100k rows at a time."""

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], str | None]:
        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.utcoffset():
                value = value.astimezone(UTC)
            # The first 26 characters are the time; the rest is the zone: "+00:00" or none.
            return value.isoformat(" ", "microseconds")[:26]

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[str | None], datetime | None]:
        def process(value: str | None) -> datetime | None:
            return None if value is None else _parse_stored_time(value)

        return process


class _MySQLUTCDateTime(mysql.DATETIME):
    """MySQL/MariaDB ``DATETIME(6)`` holding UTC: it has no zone, and a literal with an
    offset is an error on MariaDB, so the zone is dropped after converting to UTC and
    put back on read."""

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], datetime | None]:
        def process(value: datetime | None) -> datetime | None:
            return None if value is None else _utc_naive(value)

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[datetime | None], datetime | None]:
        def process(value: datetime | None) -> datetime | None:
            return None if value is None else value.replace(tzinfo=UTC)

        return process


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as UTC with microseconds, read back aware in UTC.

    PostgreSQL keeps ``timestamptz`` (the driver returns UTC); MySQL/MariaDB get
    ``DATETIME(6)`` and SQLite text, both in UTC without a zone. Converting to UTC
    before the zone is dropped is what makes all three agree. Naive values are
    refused: their meaning depends on the machine that wrote them (asyncpg would
    take them as local time).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SQLiteUTCDateTime())  # type: ignore[no-untyped-call]
        if dialect.name in MYSQL_DIALECTS:
            return dialect.type_descriptor(_MySQLUTCDateTime(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: give a time zone (UTC)")
        return value


class _Utf8VarBinary(mysql.VARBINARY):
    """VARBINARY holding UTF-8 text, bound as a string.

    The server converts a string literal with the connection charset (always
    utf8mb4, see ``create_engine``), so the stored bytes are the UTF-8 encoding.
    Binding ``bytes`` instead would fail: aiomysql 0.3 escapes bytes with a PyMySQL
    helper that PyMySQL 1.1 removed.
    """

    def bind_processor(self, dialect: Dialect) -> None:
        return None


class ExactString(TypeDecorator[str]):
    """A short string compared byte for byte, for keys that must never collide.

    On MySQL/MariaDB every text collation is either case-insensitive or pads with
    spaces (``'a' = 'a '`` even in ``utf8mb4_bin``), so a unique key over VARCHAR
    would treat distinct event ids as duplicates and ``INSERT IGNORE`` would drop
    one silently. There the value is stored UTF-8 encoded in ``VARBINARY`` (4 bytes
    per character at most); other backends compare strings exactly already.
    """

    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in MYSQL_DIALECTS:
            return dialect.type_descriptor(_Utf8VarBinary(4 * self.length))
        return dialect.type_descriptor(String(self.length))

    def process_result_value(self, value: str | bytes | None, dialect: Dialect) -> str | None:
        if isinstance(value, bytes | bytearray):
            return value.decode("utf-8")
        return value


class _MySQLHexBlob(mysql.LONGBLOB):
    """LONGBLOB whose values are sent as hexadecimal text and decoded by the server."""

    def bind_processor(self, dialect: Dialect) -> Callable[[bytes | None], str | None]:
        def process(value: bytes | None) -> str | None:
            return None if value is None else bytes(value).hex()

        return process

    def bind_expression(self, bindvalue: Any) -> ColumnElement[Any]:
        return func.unhex(bindvalue)


class Blob(TypeDecorator[bytes]):
    """Bytes of any size: BYTEA on PostgreSQL, BLOB on SQLite, LONGBLOB on MySQL/MariaDB.

    aiomysql cannot bind ``bytes`` (it escapes them with a PyMySQL helper that
    PyMySQL 1.1 removed), so on MySQL/MariaDB the value travels as hexadecimal
    text and the server decodes it (``UNHEX``): twice the bytes on the wire, the
    exact bytes stored.
    """

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in MYSQL_DIALECTS:
            return dialect.type_descriptor(_MySQLHexBlob())
        return dialect.type_descriptor(LargeBinary())

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else bytes(value)


def sequence_type() -> TypeEngine[int]:
    """64-bit integer key; on SQLite plain INTEGER so the key *is* the rowid.

    SQLite only aliases the rowid for a column declared exactly ``INTEGER``; a
    BIGINT key would get a second B-tree, slowing every insert and range scan.
    SQLite integers are 64-bit anyway.
    """
    return BigInteger().with_variant(Integer(), "sqlite")


def json_text_type() -> TypeEngine[str]:
    """Canonical JSON text: TEXT is unbounded on PostgreSQL and SQLite, 64 KiB on MySQL."""
    return Text().with_variant(mysql.LONGTEXT(), *MYSQL_DIALECTS)


events = Table(
    "events",
    metadata,
    Column("sequence", sequence_type(), primary_key=True, autoincrement=False, comment="assigned by the graph"),
    Column("event_id", ExactString(EVENT_ID_LENGTH), nullable=False),
    Column("received_at", UTCDateTime(), nullable=True, index=True),
    Column("sample_time", UTCDateTime(), nullable=False),
    Column("datasource", String(DATASOURCE_LENGTH), nullable=False),
    Column("action", String(ACTION_LENGTH), nullable=False),
    Column("round", BigInteger(), nullable=True),
    Column("payload", json_text_type(), nullable=False, comment="canonical JSON (orjson, sorted keys)"),
    UniqueConstraint("event_id"),
    comment="The ordered log of events the graph accepted: snapshot + log = graph.",
    **MYSQL_TABLE_OPTIONS,
)
"""Every event the graph accepted, in the order it applied them (``sequence``)."""

TEMPLATE_NAME_LENGTH = 255

templates = Table(
    "templates",
    metadata,
    Column("uuid", String(36), primary_key=True),
    Column("name", String(TEMPLATE_NAME_LENGTH), nullable=False, index=True),
    Column(
        "live_name",
        ExactString(TEMPLATE_NAME_LENGTH),
        nullable=True,
        comment="the name while the template is not DELETED, else NULL: unique, so live names never repeat",
    ),
    Column("status", String(16), nullable=False),
    Column("status_details", Text(), nullable=True),
    Column("template_type", String(32), nullable=False),
    Column("version", String(8), nullable=True),
    Column("document", json_text_type(), nullable=False, comment="the template as stored (parameters resolved)"),
    Column("params", json_text_type(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("live_name"),
    comment="Templates added at run time; the evaluator loads the ACTIVE ones.",
    **MYSQL_TABLE_OPTIONS,
)
"""Templates and their lifecycle (LOADING, ACTIVE, ERROR, DELETING, DELETED)."""

leadership = Table(
    "leadership",
    metadata,
    Column("name", String(64), primary_key=True, comment="what is led: 'graph'"),
    Column("epoch", BigInteger(), nullable=False, comment="+1 at every takeover; writes of older epochs are refused"),
    Column("holder", String(255), nullable=False, comment="host:pid of the leader that took this epoch"),
    Column("acquired_at", UTCDateTime(), nullable=False),
    comment="The fencing epoch of each led role: a leader that lost its lock cannot write.",
    **MYSQL_TABLE_OPTIONS,
)
"""One row per led role; the epoch is the fencing token every leader write checks."""

SNAPSHOT_FORMAT_LENGTH = 64

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", sequence_type(), primary_key=True, autoincrement=True),
    Column("sequence", BigInteger(), nullable=False, index=True, comment="the last event the snapshot includes"),
    Column("epoch", BigInteger(), nullable=False, comment="the leader epoch that took it"),
    Column("taken_at", UTCDateTime(), nullable=False, index=True),
    Column("format", String(SNAPSHOT_FORMAT_LENGTH), nullable=False, comment="encoding of the chunks, e.g. zlib+json"),
    Column("entities", BigInteger(), nullable=False),
    Column("relationships", BigInteger(), nullable=False),
    Column("raw_bytes", BigInteger(), nullable=False, comment="size of the processor state before compression"),
    Column("stored_bytes", BigInteger(), nullable=False, comment="size of the chunks"),
    Column("chunks", Integer(), nullable=False),
    comment="Full processor states (graph, rounds, recent ids, evaluator): snapshot + later events = graph.",
    **MYSQL_TABLE_OPTIONS,
)
"""What each snapshot holds; the bytes are in :data:`snapshot_chunks`."""

snapshot_chunks = Table(
    "snapshot_chunks",
    metadata,
    Column("snapshot_id", BigInteger(), primary_key=True),
    Column("chunk", Integer(), primary_key=True, autoincrement=False),
    Column("data", Blob(), nullable=False),
    comment="A snapshot's bytes in pieces (MySQL/MariaDB refuse packets beyond max_allowed_packet).",
    **MYSQL_TABLE_OPTIONS,
)
"""The bytes of each snapshot, in order of ``chunk``."""

DEAD_LETTER_SOURCE_LENGTH = 255

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", sequence_type(), primary_key=True, autoincrement=True),
    Column("created_at", UTCDateTime(), nullable=False, index=True),
    Column("source", String(DEAD_LETTER_SOURCE_LENGTH), nullable=False, comment="where it came from: a queue, a role"),
    Column("reason", Text(), nullable=False),
    Column("content_type", String(255), nullable=True),
    Column("body", Blob(), nullable=False, comment="the raw bytes as received"),
    Column("retries", Integer(), nullable=False, default=0),
    Column("retried_at", UTCDateTime(), nullable=True),
    comment="Messages and rows that could not be processed, kept for inspection and retry; never requeued.",
    **MYSQL_TABLE_OPTIONS,
)
"""Unparsable messages and rejected rows, with their raw bytes and the reason."""

VITRAGE_ID_LENGTH = 64
"""Vitrage ids are UUIDs (36 characters); room for other forms."""
NAME_LENGTH = 255
SHORT_LENGTH = 64

alarm_history = Table(
    "alarm_history",
    metadata,
    Column("id", sequence_type(), primary_key=True, autoincrement=True),
    Column("vitrage_id", String(VITRAGE_ID_LENGTH), nullable=False, comment="the alarm's id in the graph"),
    Column("start_sequence", BigInteger(), nullable=False, comment="the event that made it active"),
    Column("end_sequence", BigInteger(), nullable=True, comment="the event that ended it; NULL while active"),
    Column("start_time", UTCDateTime(), nullable=False),
    Column("end_time", UTCDateTime(), nullable=True),
    Column("name", String(NAME_LENGTH), nullable=True),
    Column("vitrage_type", String(SHORT_LENGTH), nullable=True, comment="its datasource; 'vitrage' when deduced"),
    Column("severity", String(SHORT_LENGTH), nullable=True, index=True, comment="operational severity, latest"),
    Column("aggregated_severity", String(SHORT_LENGTH), nullable=True),
    Column("state", String(SHORT_LENGTH), nullable=True),
    Column("project_id", String(SHORT_LENGTH), nullable=True),
    Column("resource_id", String(VITRAGE_ID_LENGTH), nullable=True, index=True),
    Column("resource_type", String(SHORT_LENGTH), nullable=True),
    Column("resource_name", String(NAME_LENGTH), nullable=True),
    Column("resource_project_id", String(SHORT_LENGTH), nullable=True),
    Column("deduced", Boolean(), nullable=False),
    Column("templates", json_text_type(), nullable=True, comment="JSON list: templates that raised a deduced alarm"),
    Column("payload", json_text_type(), nullable=False, comment="the alarm as the API showed it, latest"),
    UniqueConstraint("vitrage_id", "start_sequence"),
    Index("ix_alarm_history_start_time_vitrage_id", "start_time", "vitrage_id"),
    Index("ix_alarm_history_end_time_start_time", "end_time", "start_time"),
    comment="Every alarm that was active, with when it began and ended (alarm history, seed 002).",
    **MYSQL_TABLE_OPTIONS,
)
"""One row per time an alarm was active; ``end_time`` NULL while it still is."""

alarm_changes = Table(
    "alarm_changes",
    metadata,
    Column("id", sequence_type(), primary_key=True, autoincrement=True),
    Column("vitrage_id", String(VITRAGE_ID_LENGTH), nullable=False),
    Column("start_sequence", BigInteger(), nullable=False, comment="the alarm_history row: (vitrage_id, start)"),
    Column("sequence", BigInteger(), nullable=False),
    Column("time", UTCDateTime(), nullable=False),
    Column("severity", String(SHORT_LENGTH), nullable=True),
    Column("aggregated_severity", String(SHORT_LENGTH), nullable=True),
    Column("state", String(SHORT_LENGTH), nullable=True),
    Column("payload", json_text_type(), nullable=False),
    UniqueConstraint("vitrage_id", "sequence"),
    Index("ix_alarm_changes_vitrage_id_start_sequence", "vitrage_id", "start_sequence"),
    comment="Severity, state, name or resource changes of an active alarm.",
    **MYSQL_TABLE_OPTIONS,
)
"""What changed while an alarm was active (its start values are in ``alarm_history``)."""

cause_history = Table(
    "cause_history",
    metadata,
    Column("id", sequence_type(), primary_key=True, autoincrement=True),
    Column("source_id", String(VITRAGE_ID_LENGTH), nullable=False, index=True, comment="the causing alarm"),
    Column("target_id", String(VITRAGE_ID_LENGTH), nullable=False, index=True, comment="the alarm it causes"),
    Column("start_sequence", BigInteger(), nullable=False),
    Column("end_sequence", BigInteger(), nullable=True),
    Column("start_time", UTCDateTime(), nullable=False),
    Column("end_time", UTCDateTime(), nullable=True, index=True),
    UniqueConstraint("source_id", "target_id", "start_sequence"),
    comment="Every causal link between two alarms, with when it began and ended (RCA history, seed 002).",
    **MYSQL_TABLE_OPTIONS,
)
"""One row per time a ``causes`` edge existed; ``end_time`` NULL while it does."""

history_progress = Table(
    "history_progress",
    metadata,
    Column("name", String(64), primary_key=True, comment="what is recorded: 'alarms'"),
    Column("sequence", BigInteger(), nullable=False, comment="the history holds every record up to this event"),
    Column(
        "longest_alarm_s",
        Float(),
        nullable=False,
        comment="the longest an ended occurrence lasted (seconds): bounds time-frame queries",
    ),
    Column("updated_at", UTCDateTime(), nullable=False),
    comment="How far the alarm and RCA history is written, so a new graph leader continues it exactly.",
    **MYSQL_TABLE_OPTIONS,
)
"""The sequence number up to which the history is complete."""

TARGET_NAME_LENGTH = 255
TARGET_ADDRESS_LENGTH = 2048
TARGET_KIND_LENGTH = 16
TARGET_STATUS_LENGTH = 16

monitor_targets = Table(
    "monitor_targets",
    metadata,
    Column("id", String(36), primary_key=True, comment="uuid4; never reused (deletion is soft)"),
    Column("name", String(TARGET_NAME_LENGTH), nullable=False),
    Column(
        "live_name",
        ExactString(TARGET_NAME_LENGTH),
        nullable=True,
        comment="the name while the target is not deleted, else NULL: unique, compared byte for byte",
    ),
    Column("kind", String(TARGET_KIND_LENGTH), nullable=False, comment="tcp, http or vim"),
    Column("address", String(TARGET_ADDRESS_LENGTH), nullable=False, comment="host:port (tcp) or a URL (http, vim)"),
    Column("expected_status", Integer(), nullable=True, comment="http only: the status a well target answers"),
    Column("interval", Double(), nullable=False, comment="seconds between two probes"),
    Column("timeout", Double(), nullable=False, comment="seconds a probe may take; shorter than the interval"),
    Column("failure_threshold", Integer(), nullable=False, comment="failed probes in a row before unreachable"),
    Column(
        "entity_id",
        String(VITRAGE_ID_LENGTH),
        nullable=True,
        comment="vitrage_id of the entity it belongs to; NULL: a monitor.target entity of its own",
    ),
    Column(
        "action_id",
        BigInteger(),
        nullable=False,
        comment="fencing token: +1 when kind, address or expected_status change and at deletion",
    ),
    Column("status", String(TARGET_STATUS_LENGTH), nullable=False, comment="unknown, reachable or unreachable"),
    Column("status_changed_at", UTCDateTime(), nullable=True),
    Column("last_probe_at", UTCDateTime(), nullable=True),
    Column("detail", Text(), nullable=True, comment="the last probe's error"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("deleted_at", UTCDateTime(), nullable=True, comment="set at deletion; the row stays to fence old workers"),
    UniqueConstraint("live_name"),
    Index("ix_monitor_targets_created_at_id", "created_at", "id"),
    comment="Endpoints the reachability monitor probes (seed 003), with their last status.",
    **MYSQL_TABLE_OPTIONS,
)
"""Monitored endpoints; a worker's assignment carries ``action_id`` and is stale once it changed."""

__all__ = [
    "ACTION_LENGTH",
    "DATASOURCE_LENGTH",
    "DEAD_LETTER_SOURCE_LENGTH",
    "EVENT_ID_LENGTH",
    "MYSQL_DIALECTS",
    "MYSQL_TABLE_OPTIONS",
    "NAMING_CONVENTION",
    "SNAPSHOT_FORMAT_LENGTH",
    "TARGET_ADDRESS_LENGTH",
    "TARGET_NAME_LENGTH",
    "Blob",
    "ExactString",
    "UTCDateTime",
    "alarm_changes",
    "alarm_history",
    "cause_history",
    "dead_letters",
    "events",
    "history_progress",
    "json_text_type",
    "leadership",
    "metadata",
    "monitor_targets",
    "sequence_type",
    "snapshot_chunks",
    "snapshots",
    "templates",
]


@functools.lru_cache(maxsize=4096)
def _parse_stored_time(value: str) -> datetime:
    """A stored time (UTC, no zone) as an aware datetime; cached, since many rows share one time."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC)
