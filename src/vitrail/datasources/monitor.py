"""The ``monitor`` datasource: reachability of the monitor's targets, as entities and alarms.

The monitor's conductor publishes an event whenever a target's status changes
(``docs/monitor.md``). Each becomes:

* a ``monitor.target`` resource (``id``: the target's id) whose ``state`` is
  ``REACHABLE``, ``UNREACHABLE`` or ``UNKNOWN``, named after the target, with
  its kind and address; linked ``monitors`` to the graph entity it belongs to
  (``entity_id``, a vitrage_id) when there is one and it exists;
* while it is unreachable, an alarm of type ``monitor`` named ``unreachable``
  ``on`` that resource (cleared when it answers again or is deleted), so
  templates can use it: ``examples/templates/vim_unreachable.yaml`` makes a VIM's
  unreachability the cause of its hosts' alarms.

A deleted target's event removes the resource and its alarm. As for every
datasource, the transformer reads nothing but the event (replays rebuild the
same graph), and :func:`status_event` is the only way events are made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vitrail.datasources.base import Driver, RawEntity
from vitrail.graph.events import Event, EventAction
from vitrail.graph.properties import Category, EdgeLabel
from vitrail.graph.updates import EntityUpdate, NeighborRef, TransformError

NAME = "monitor"
TARGET_TYPE = "monitor.target"
ALARM_TYPE = "monitor"
ALARM_NAME = "unreachable"
MONITORS = "monitors"
"""Label of the edge from a target to the entity it belongs to."""
STATES = {"reachable": "REACHABLE", "unreachable": "UNREACHABLE", "unknown": "UNKNOWN"}
ALARM_SEVERITY = "critical"


def status_event(
    target: dict[str, Any], status: str, action_id: int, changed_at: str, *, deleted: bool = False
) -> Event:
    """The event of a target's new status (or its deletion), as the conductor publishes it.

    ``target``: ``id``, ``name``, ``kind``, ``address``, ``entity_id`` (and
    ``detail``, the last probe's error). The event id names the target, its
    assignment and the change, so a status re-sent after a retry is a duplicate.
    """
    if status not in STATES:
        raise ValueError(f"status: expected one of {', '.join(STATES)}, got {status!r}")
    payload = {
        "target_id": target["id"],
        "name": target["name"],
        "kind": target["kind"],
        "address": target["address"],
        "entity_id": target.get("entity_id"),
        "status": status,
        "detail": target.get("detail"),
        "action_id": action_id,
        "changed_at": changed_at,
    }
    action = EventAction.DELETE if deleted else EventAction.UPDATE
    event_id = f"{NAME}/{target['id']}/{action_id}/{'deleted' if deleted else status}/{changed_at}"
    return Event(event_id, NAME, action, changed_at, payload, received_at=changed_at)


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise TransformError(f"payload.{name}: expected a non-empty string")
    return value


class MonitorTransformer:
    """Status events → the target's resource and its ``unreachable`` alarm. Pure."""

    def transform(self, event: Event) -> list[EntityUpdate]:
        payload = event.payload
        target_id = _text(payload, "target_id")
        alarm_id = f"{target_id}:{ALARM_NAME}"
        if event.action is EventAction.DELETE:
            return [
                EntityUpdate(Category.ALARM, ALARM_TYPE, alarm_id, {}, None, delete=True),
                EntityUpdate(Category.RESOURCE, TARGET_TYPE, target_id, {}, None, delete=True),
            ]
        status = payload.get("status")
        if status not in STATES:
            raise TransformError(f"payload.status: expected one of {', '.join(STATES)}, got {status!r}")
        neighbors: list[NeighborRef] = []
        entity_id = payload.get("entity_id")
        if entity_id is not None:
            if not isinstance(entity_id, str) or not entity_id:
                raise TransformError("payload.entity_id: expected a vitrage_id or null")
            neighbors.append(NeighborRef(Category.RESOURCE, "", "", MONITORS, outgoing=True, vitrage_id=entity_id))
        resource = EntityUpdate(
            Category.RESOURCE,
            TARGET_TYPE,
            target_id,
            {
                "name": _text(payload, "name"),
                "state": STATES[status],
                "kind": payload.get("kind"),
                "address": payload.get("address"),
                "detail": payload.get("detail"),
            },
            neighbors,
        )
        if status != "unreachable":
            return [resource, EntityUpdate(Category.ALARM, ALARM_TYPE, alarm_id, {}, None, delete=True)]
        target = NeighborRef(Category.RESOURCE, TARGET_TYPE, target_id, EdgeLabel.ON, outgoing=True)
        alarm = EntityUpdate(
            Category.ALARM,
            ALARM_TYPE,
            alarm_id,
            {
                "name": ALARM_NAME,
                "severity": ALARM_SEVERITY,
                "state": "Active",
                "detail": payload.get("detail"),
                "target_name": payload.get("name"),
            },
            [target],
        )
        return [resource, alarm]


class MonitorDriver(Driver):
    """Push-only: the conductor publishes status changes; there is nothing to poll."""

    name = NAME
    entity_types = (TARGET_TYPE, ALARM_TYPE)
    has_changes = False
    has_get_all = False

    def transformer(self) -> MonitorTransformer:
        return MonitorTransformer()

    def get_all(self) -> Sequence[RawEntity]:
        return ()


__all__ = [
    "ALARM_NAME",
    "ALARM_TYPE",
    "MONITORS",
    "NAME",
    "TARGET_TYPE",
    "MonitorDriver",
    "MonitorTransformer",
    "status_event",
]
