"""Monitor targets (table ``monitor_targets``): definitions, fencing tokens, last status.

Every target carries an ``action_id``, the fencing token of the workers that
probe it: it starts at 1 and grows by one whenever what is probed changes
(``kind``, ``address``, ``expected_status``) and when the target is deleted. A
worker reports a status with the ``action_id`` of its assignment, and
:meth:`TargetStore.record_status` stores it only while that is still the
current one: a worker that probes an old address, or a deleted target, is
answered ``bad_action`` and drops it. Changing the interval, timeout,
threshold, name or entity keeps the ``action_id``: the same endpoint is probed.

Deletion is soft: the row stays (``deleted_at`` set), so a stale worker's
report is told ``bad_action`` rather than ``not_found``, and an id is never
reused. The name is freed (``live_name`` NULL): a new target may take it.
Names are compared byte for byte on every backend (``ExactString``), so
``Keystone`` and ``keystone `` are two names even on MariaDB.

The store checks no definition: :mod:`vitrail.monitor.targets` does, before.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vitrail.storage.leadership import writer_engine
from vitrail.storage.models import monitor_targets

UNKNOWN, REACHABLE, UNREACHABLE = "unknown", "reachable", "unreachable"
STATUSES = (UNKNOWN, REACHABLE, UNREACHABLE)

DEFINITION_FIELDS = (
    "name",
    "kind",
    "address",
    "expected_status",
    "interval",
    "timeout",
    "failure_threshold",
    "entity_id",
)
"""What :meth:`TargetStore.update` may change."""
PROBED_FIELDS = ("kind", "address", "expected_status")
"""A change of one of these bumps the ``action_id`` (old assignments become stale)."""

RecordResult = Literal["ok", "bad_action", "not_found"]

_MAX_UPDATE_ATTEMPTS = 5
DETAIL_MAX_CHARS = 4_000
"""A probe's error is cut to this (MySQL's TEXT holds 64 KiB; an error page may be larger)."""


class DuplicateTarget(ValueError):
    """Another target (not deleted) has this name."""


class TargetNotFound(LookupError):
    """No target (that is not deleted) has this id."""


class UnknownMarker(ValueError):
    """A page marker that is the id of no target."""


@dataclass(frozen=True, slots=True)
class Target:
    """A stored target (a ``monitor_targets`` row)."""

    id: str
    name: str
    kind: str
    address: str
    expected_status: int | None
    interval: float
    timeout: float
    failure_threshold: int
    entity_id: str | None
    action_id: int
    """The fencing token of the assignments of this target (see the module)."""
    status: str
    status_changed_at: datetime | None
    last_probe_at: datetime | None
    detail: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def assignment(self) -> dict[str, Any]:
        """What probing it takes, with its fencing token and last status (plain data, for the
        API and for the workers)."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "address": self.address,
            "expected_status": self.expected_status,
            "interval": self.interval,
            "timeout": self.timeout,
            "failure_threshold": self.failure_threshold,
            "entity_id": self.entity_id,
            "action_id": self.action_id,
            "status": self.status,
        }


class TargetFields(Protocol):
    """What :meth:`TargetStore.add` stores: any object with these attributes
    (``vitrail.monitor.targets.TargetDraft``, validated)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def expected_status(self) -> int | None: ...
    @property
    def interval(self) -> float: ...
    @property
    def timeout(self) -> float: ...
    @property
    def failure_threshold(self) -> int: ...
    @property
    def entity_id(self) -> str | None: ...


def _target(row: Any) -> Target:
    return Target(
        id=row.id,
        name=row.name,
        kind=row.kind,
        address=row.address,
        expected_status=None if row.expected_status is None else int(row.expected_status),
        interval=float(row.interval),
        timeout=float(row.timeout),
        failure_threshold=int(row.failure_threshold),
        entity_id=row.entity_id,
        action_id=int(row.action_id),
        status=row.status,
        status_changed_at=row.status_changed_at,
        last_probe_at=row.last_probe_at,
        detail=row.detail,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


def _now(at: datetime | None = None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at  # naive: UTC, as everywhere in Vitrail


def _storable_detail(detail: str) -> str:
    """``detail`` as every backend stores it: NUL escaped (PostgreSQL refuses it), lone
    surrogates escaped (no UTF-8 for them), cut to :data:`DETAIL_MAX_CHARS`."""
    text = detail.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= DETAIL_MAX_CHARS else text[: DETAIL_MAX_CHARS - 3] + "..."


_live = monitor_targets.c.deleted_at.is_(None)


class TargetStore:
    """Monitor targets, in the order they were added."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer_engine(engine)  # update reads the target, then writes it

    async def add(self, draft: TargetFields) -> Target:
        """Store a new target (``action_id`` 1, status unknown); :class:`DuplicateTarget`
        when a target that is not deleted has its name."""
        now = _now()
        values = {
            "id": str(uuid.uuid4()),
            "name": draft.name,
            "live_name": draft.name,
            "kind": draft.kind,
            "address": draft.address,
            "expected_status": draft.expected_status,
            "interval": float(draft.interval),
            "timeout": float(draft.timeout),
            "failure_threshold": int(draft.failure_threshold),
            "entity_id": draft.entity_id,
            "action_id": 1,
            "status": UNKNOWN,
            "status_changed_at": None,
            "last_probe_at": None,
            "detail": None,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
        }
        try:
            async with self._engine.begin() as connection:
                await connection.execute(monitor_targets.insert().values(**values))
                return await _read(connection, values["id"])
        except IntegrityError:
            raise DuplicateTarget(f"a target named {draft.name!r} exists already") from None

    async def get(self, id_or_name: str, include_deleted: bool = False) -> Target | None:
        """A target by id, else by name; deleted ones only with ``include_deleted``
        (and then by id: a deleted target has given its name up)."""
        by_id = monitor_targets.c.id == id_or_name
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(select(monitor_targets).where(by_id if include_deleted else by_id & _live))
            ).first()
            if row is None:
                by_name = select(monitor_targets).where(monitor_targets.c.live_name == id_or_name)
                row = (await connection.execute(by_name)).first()
        return None if row is None else _target(row)

    async def list(
        self, include_deleted: bool = False, limit: int | None = None, marker: str | None = None
    ) -> builtins.list[Target]:
        """Targets in the order they were added, at most ``limit``; the page starts after
        ``marker`` (the id of the last target of the previous page, even if it was deleted
        since). :class:`UnknownMarker` when no target has that id."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        query = select(monitor_targets)
        if not include_deleted:
            query = query.where(_live)
        async with self._engine.connect() as connection:
            if marker is not None:
                after = (
                    await connection.execute(select(monitor_targets.c.created_at).where(monitor_targets.c.id == marker))
                ).first()
                if after is None:
                    raise UnknownMarker(f"marker: no target has the id {marker!r}")
                created = monitor_targets.c.created_at
                query = query.where(
                    or_(created > after.created_at, and_(created == after.created_at, monitor_targets.c.id > marker))
                )
            query = query.order_by(monitor_targets.c.created_at, monitor_targets.c.id)
            if limit is not None:
                query = query.limit(limit)
            return [_target(row) for row in await connection.execute(query)]

    async def update(self, target_id: str, changes: Mapping[str, Any]) -> Target:
        """Change the definition fields of a target that is not deleted; return it.

        ``changes`` maps :data:`DEFINITION_FIELDS` to their new values (validated
        before: the store checks none). When kind, address or expected_status end
        up different, the ``action_id`` grows by one and the status is unknown
        again: it described another endpoint. :class:`TargetNotFound`,
        :class:`DuplicateTarget` (the new name is taken).
        """
        unknown = set(changes) - set(DEFINITION_FIELDS)
        if unknown:
            raise ValueError(f"not definition fields of a target: {', '.join(sorted(unknown))}")
        try:
            for _ in range(_MAX_UPDATE_ATTEMPTS):
                async with self._writer.begin() as connection:
                    current = await _read(connection, target_id, lock=True)
                    if current.deleted:
                        raise TargetNotFound(f"no target {target_id}")
                    now = _now()
                    values: dict[str, Any] = {
                        field: value for field, value in changes.items() if getattr(current, field) != value
                    }
                    if "name" in values:
                        values["live_name"] = values["name"]
                    if any(field in values for field in PROBED_FIELDS):
                        values.update(
                            action_id=current.action_id + 1,
                            status=UNKNOWN,
                            status_changed_at=now if current.status != UNKNOWN else current.status_changed_at,
                            detail=None,
                        )
                    values["updated_at"] = now
                    # Conditional on the action_id read: the lock makes it hold, this proves it.
                    statement = (
                        update(monitor_targets)
                        .where(
                            (monitor_targets.c.id == target_id)
                            & _live
                            & (monitor_targets.c.action_id == current.action_id)
                        )
                        .values(**values)
                    )
                    if (await connection.execute(statement)).rowcount == 1:
                        return await _read(connection, target_id)
            raise RuntimeError(f"target {target_id} kept changing while it was updated")
        except IntegrityError:
            raise DuplicateTarget(f"a target named {changes.get('name')!r} exists already") from None

    async def delete(self, target_id: str) -> Target:
        """Delete a target (softly): its name is freed, its ``action_id`` grows by one, so
        every assignment of it is stale. Return it as deleted; :class:`TargetNotFound`."""
        now = _now()
        statement = (
            update(monitor_targets)
            .where((monitor_targets.c.id == target_id) & _live)
            .values(
                deleted_at=now,
                live_name=None,
                action_id=monitor_targets.c.action_id + 1,
                updated_at=now,
            )
        )
        async with self._engine.begin() as connection:
            if (await connection.execute(statement)).rowcount != 1:
                raise TargetNotFound(f"no target {target_id}")
            return await _read(connection, target_id)

    async def record_status(
        self,
        target_id: str,
        status: str,
        action_id: int,
        detail: str | None = None,
        at: datetime | None = None,
    ) -> RecordResult:
        """Store a probe's outcome if ``action_id`` is the target's current one.

        ``"ok"``: stored (``status_changed_at`` moves only when the status changes);
        ``"bad_action"``: the assignment is stale (the target changed or was
        deleted), nothing stored; ``"not_found"``: no target ever had this id. The
        check and the write are one conditional UPDATE: a change committed
        meanwhile cannot be overwritten by an old assignment.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown target status {status!r}; one of {', '.join(STATUSES)}")
        when = _now(at)
        statement = (
            update(monitor_targets)
            .where(
                (monitor_targets.c.id == target_id) & (monitor_targets.c.action_id == action_id) & _live,
            )
            # status_changed_at first: MySQL/MariaDB evaluate SET left to right, with the new values.
            .ordered_values(
                (
                    monitor_targets.c.status_changed_at,
                    case((monitor_targets.c.status == status, monitor_targets.c.status_changed_at), else_=when),
                ),
                (monitor_targets.c.status, status),
                (monitor_targets.c.last_probe_at, when),
                (monitor_targets.c.detail, None if detail is None else _storable_detail(detail)),
            )
        )
        async with self._engine.begin() as connection:
            if (await connection.execute(statement)).rowcount == 1:
                return "ok"
            exists = await connection.scalar(select(monitor_targets.c.id).where(monitor_targets.c.id == target_id))
        return "not_found" if exists is None else "bad_action"


async def _read(connection: AsyncConnection, target_id: str, lock: bool = False) -> Target:
    query = select(monitor_targets).where(monitor_targets.c.id == target_id)
    if lock:
        query = query.with_for_update()
    row = (await connection.execute(query)).first()
    if row is None:
        raise TargetNotFound(f"no target {target_id}")
    return _target(row)


__all__ = [
    "DEFINITION_FIELDS",
    "PROBED_FIELDS",
    "REACHABLE",
    "STATUSES",
    "UNKNOWN",
    "UNREACHABLE",
    "DuplicateTarget",
    "RecordResult",
    "Target",
    "TargetFields",
    "TargetNotFound",
    "TargetStore",
    "UnknownMarker",
]
