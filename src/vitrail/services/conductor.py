"""The monitor's conductor: the only part of the monitor that touches the database (seed ``003``).

Monitor workers never open the database: they ask a conductor, over the bus's
RPC, for the targets to probe and tell it what they found. Any number of
conductors answer behind one RPC queue (``conductor``), all stateless: a
conductor that dies leaves its calls to the others (an RPC request is acked
only once answered, ``docs/bus.md``).

``update_target(target_id, status, action_id)`` stores a status only while the
worker's ``action_id`` is the target's current one
(:meth:`vitrail.storage.monitor_targets.TargetStore.record_status`, one
conditional UPDATE); otherwise it answers ``bad_action`` and the worker drops
the target at once: it was deleted, or what it probes changed
(``docs/monitor.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from vitrail.bus.base import EventBus, RpcHandler, RpcMethodError
from vitrail.datasources.monitor import status_event
from vitrail.graph.events import Event, EventError, format_timestamp, normalize_timestamp
from vitrail.services.rpc import process_identity
from vitrail.services.topics import CONDUCTOR_SERVICE
from vitrail.storage.monitor_targets import STATUSES, TargetStore

log = logging.getLogger(__name__)

#: Targets per ``targets`` page at most.
MAX_PAGE = 10_000
#: Characters of a probe's error detail a worker may send.
MAX_DETAIL = 4_000


class Conductor:
    """What the conductor does, whatever carries the calls.

    ``publish``: where a status *change* goes as a ``monitor`` event (the graph:
    :mod:`vitrail.datasources.monitor`); stored first, then published, so the
    graph never shows a status the database does not hold.
    """

    def __init__(self, store: TargetStore, publish: Callable[[list[Event]], Awaitable[None]] | None = None) -> None:
        self.store = store
        self.publish = publish

    async def update_target(
        self, target_id: str, status: str, action_id: int, detail: str | None = None, at: datetime | None = None
    ) -> str:
        """``ok``, ``bad_action`` (stale assignment: drop the target) or ``not_found``."""
        before = await self.store.get(target_id) if self.publish is not None else None
        result = await self.store.record_status(target_id, status, action_id, detail, at)
        if result != "ok":
            log.info(
                "a monitor worker's status was refused",
                extra={"target": target_id, "action_id": action_id, "result": result},
            )
            return result
        # The definition read before the write is the one the write was fenced by (same action_id).
        if (
            self.publish is not None
            and before is not None
            and before.action_id == action_id
            and before.status != status
        ):
            moment = format_timestamp(at or datetime.now(UTC))
            await self.publish([status_event(before.assignment() | {"detail": detail}, status, action_id, moment)])
        return result

    async def targets(self, limit: int = 1000, marker: str | None = None) -> list[dict[str, Any]]:
        """One page of the live targets, each with what a worker needs to probe it."""
        return [t.assignment() for t in await self.store.list(limit=limit, marker=marker)]


def conductor_handler(conductor: Conductor) -> RpcHandler:
    """The conductor's RPC face: ``update_target``, ``targets``, ``ping``; bad parameters name the field."""
    identity = process_identity("conductor")

    async def handle(method: str, params: dict[str, Any]) -> Any:
        if method == "update_target":
            target_id = _text(params, "target_id")
            status = params.get("status")
            if status not in STATUSES:
                raise RpcMethodError(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
            action_id = params.get("action_id")
            if not isinstance(action_id, int) or isinstance(action_id, bool) or action_id < 1:
                raise RpcMethodError(f"action_id: expected a positive integer, got {action_id!r}")
            detail = params.get("detail")
            if detail is not None and not isinstance(detail, str):
                raise RpcMethodError("detail: expected a string or null")
            at = params.get("at")
            moment = None
            if at is not None:
                try:
                    moment = datetime.fromisoformat(normalize_timestamp(at, "at"))
                except EventError as exc:
                    raise RpcMethodError(str(exc)) from None
            result = await conductor.update_target(
                target_id, status, action_id, None if detail is None else detail[:MAX_DETAIL], moment
            )
            return {"result": result}
        if method == "targets":
            limit = params.get("limit", 1000)
            if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
                raise RpcMethodError(f"limit: expected an integer from 1 to {MAX_PAGE}, got {limit!r}")
            marker = params.get("marker")
            if marker is not None and not isinstance(marker, str):
                raise RpcMethodError("marker: expected a target id or null")
            try:
                return {"targets": await conductor.targets(limit, marker)}
            except ValueError as exc:  # an unknown marker (the message names it)
                raise RpcMethodError(str(exc)) from None
        if method == "ping":
            return identity
        raise RpcMethodError(f"unknown method {method!r}; a conductor answers update_target, targets, ping")

    return handle


class RemoteConductor:
    """A monitor worker's client of the conductors (any of them answers)."""

    def __init__(self, bus: EventBus, within: float = 10.0) -> None:
        self.bus = bus
        self.within = within

    async def update_target(
        self, target_id: str, status: str, action_id: int, detail: str | None = None, at: str | None = None
    ) -> str:
        params = {"target_id": target_id, "status": status, "action_id": action_id, "detail": detail, "at": at}
        reply = await self.bus.call(CONDUCTOR_SERVICE, "update_target", params, within=self.within)
        return str(reply["result"])

    async def targets(self, limit: int = 1000, marker: str | None = None) -> list[dict[str, Any]]:
        reply = await self.bus.call(CONDUCTOR_SERVICE, "targets", {"limit": limit, "marker": marker}, self.within)
        return list(reply["targets"])


def _text(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise RpcMethodError(f"{name}: expected a non-empty string, got {value!r}")
    return value


__all__ = ["Conductor", "RemoteConductor", "conductor_handler"]
