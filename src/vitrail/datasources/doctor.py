"""The ``doctor`` datasource: host events posted to Vitrage's event API (``POST /v1/event``).

OPNFV Doctor and other external monitors tell Vitrage that a compute host went
down (and came back) with a body like::

    {"type": "compute.host.down",
     "time": "2016-04-12T08:00:00",             # optional here (Vitrage: utcnow)
     "details": {"hostname": "compute-1", "status": "down",
                 "source": "sample_monitor", "severity": "critical", ...}}

``status: down`` raises an alarm of ``vitrage_type`` ``doctor`` named after
``type``, ``on`` the ``nova.host`` called ``hostname``; ``status: up`` clears
it. The datasource name and the alarm type are Vitrage's, so templates written
for Vitrage's doctor datasource match.

The same endpoint receives Alertmanager webhooks (Vitrage told them apart by
the ``User-Agent``): :func:`is_alertmanager` says which parser a body needs.

As for Alertmanager, the API calls the pure :func:`parse_event` (which rejects
the whole body, naming the field, when anything is wrong) and the processor
calls :class:`DoctorTransformer` on the resulting events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vitrail.datasources.base import Driver, RawEntity
from vitrail.datasources.payload import PayloadError, json_kind, required_text
from vitrail.graph.events import Event, EventAction, EventError, normalize_timestamp
from vitrail.graph.properties import Category, EdgeLabel
from vitrail.graph.updates import EntityUpdate, NeighborRef, TransformError

__all__ = [
    "ALARM_TYPE",
    "DEFAULT_SEVERITY",
    "NAME",
    "DoctorDriver",
    "DoctorTransformer",
    "PayloadError",
    "is_alertmanager",
    "parse_event",
]

#: The datasource name (``vitrage_datasource_name``), as in Vitrage.
NAME = "doctor"
#: ``vitrage_type`` of the alarms, as in Vitrage.
ALARM_TYPE = "doctor"
HOST_TYPE = "nova.host"
DOWN = "down"
UP = "up"
#: Severity of an event without ``details.severity``: Vitrage's doctor transformer default.
DEFAULT_SEVERITY = "critical"
#: ``state`` of a raised alarm (Vitrage's ``AlarmProps.ACTIVE_STATE``).
ACTIVE = "Active"
#: The event type Vitrage's API gives an Alertmanager body; bodies that carry it are Alertmanager's too.
PROMETHEUS_EVENT_TYPE = "prometheus.alarm"

#: ``details`` keys that do not become alarm properties: the graph and the API own them, and
#: an open event API must not decide an alarm's tenant (``project_id``) or its deduced values.
_NOT_FROM_DETAILS = frozenset(("id", "update_timestamp", "project_id", "is_deleted", "is_placeholder"))


def is_alertmanager(user_agent: str | None, body: Any = None) -> bool:
    """Does a ``POST /v1/event`` body come from Alertmanager (→ the ``prometheus`` parser)?

    Vitrage's rule: the ``User-Agent`` starts with ``Alertmanager`` (it sends
    ``Alertmanager/<version>``). A body that names its type
    ``prometheus.alarm`` (what Vitrage made of such a request, so what a replaying
    client may send) is one too.
    """
    if user_agent is not None and user_agent.startswith("Alertmanager"):
        return True
    return isinstance(body, dict) and body.get("type") == PROMETHEUS_EVENT_TYPE


# -- parsing the event body ---------------------------------------------------------------


def parse_event(body: Any, received_at: str) -> list[Event]:
    """The event of a Vitrage event API body: one raise (``down``) or clear (``up``).

    ``received_at`` is when the API accepted the request; it stands in for a
    missing ``time``. Times without a zone are UTC. Raises :class:`PayloadError`
    naming the first wrong field.
    """
    received = normalize_timestamp(received_at, "received_at")
    if not isinstance(body, dict):
        raise PayloadError("body", f"expected a JSON object, got {json_kind(body)}")
    event_type = required_text(body, "type", "type")
    details = body.get("details")
    if details is None:
        raise PayloadError("details", "required: an object with hostname and status")
    if not isinstance(details, dict):
        raise PayloadError("details", f"expected an object, got {json_kind(details)}")
    hostname = required_text(details, "hostname", "details.hostname")
    status = details.get("status")
    if status not in (DOWN, UP):
        raise PayloadError("details.status", f"expected 'down' or 'up', got {status!r}")
    for field in ("severity", "source"):
        if details.get(field) is not None:
            required_text(details, field, f"details.{field}")
    time = _time(body.get("time"), received)
    alarm_id = f"{event_type}:{hostname}"
    payload = {
        "alarm_id": alarm_id,
        "type": event_type,
        "hostname": hostname,
        "status": status,
        "time": time,
        "details": details,
    }
    action = EventAction.UPDATE if status == DOWN else EventAction.DELETE
    return [Event(f"{NAME}/{alarm_id}/{status}/{time}", NAME, action, time, payload, received_at=received)]


def _time(value: Any, received: str) -> str:
    """The event time in Vitrail's format; ``received`` when absent (Vitrage used utcnow)."""
    if value is None:
        return received
    if not isinstance(value, str):
        raise PayloadError("time", f"expected an ISO 8601 time, got {json_kind(value)}")
    try:
        return normalize_timestamp(value, "time")
    except (EventError, OverflowError):
        raise PayloadError("time", f"{value!r} is not an ISO 8601 time") from None


# -- the transformer ---------------------------------------------------------------------


def _payload_text(payload: dict[str, Any], field: str) -> str:
    value = payload.get(field)
    if not isinstance(value, str) or not value:
        raise TransformError(f"payload.{field}: expected a non-empty string, got {value!r}")
    return value


def _alarm_properties(payload: dict[str, Any]) -> dict[str, Any]:
    """Every detail (as Vitrage keeps them), then the properties the alarm must have."""
    details = payload.get("details", {})
    if not isinstance(details, dict):
        raise TransformError("payload.details: expected an object")
    properties = {
        key: value
        for key, value in details.items()
        if isinstance(key, str) and key not in _NOT_FROM_DETAILS and not key.startswith("vitrage_")
    }
    properties.update(
        name=_payload_text(payload, "type"),
        severity=details.get("severity") or DEFAULT_SEVERITY,
        state=ACTIVE,
        status=DOWN,
        hostname=_payload_text(payload, "hostname"),
        time=payload.get("time"),
    )
    return properties


class DoctorTransformer:
    """Event API events → alarm updates. Pure: it reads nothing but the event."""

    def transform(self, event: Event) -> list[EntityUpdate]:
        payload = event.payload
        alarm_id = _payload_text(payload, "alarm_id")
        if event.action is EventAction.DELETE or payload.get("status") == UP:
            return [EntityUpdate(Category.ALARM, ALARM_TYPE, alarm_id, {}, None, delete=True)]
        properties = _alarm_properties(payload)
        hostname = properties["hostname"]
        host = NeighborRef(
            Category.RESOURCE,
            HOST_TYPE,
            hostname,
            EdgeLabel.ON,
            outgoing=True,
            match=("name", hostname),  # no name on a placeholder: see alertmanager._neighbor
        )
        return [
            EntityUpdate(Category.ALARM, ALARM_TYPE, alarm_id, properties, [host], update_timestamp=properties["time"])
        ]


class DoctorDriver(Driver):
    """Push-only: monitors post to the event API; there is nothing to poll.

    ``get_all`` reports nothing. The graph service must not run consistency
    rounds for this datasource: an empty round would delete every alarm.
    """

    name = NAME
    entity_types = (ALARM_TYPE,)
    has_changes = False
    has_get_all = False

    def transformer(self) -> DoctorTransformer:
        return DoctorTransformer()

    def get_all(self) -> Sequence[RawEntity]:
        return ()

    def parse(self, body: Any, received_at: str) -> list[Event]:
        """:func:`parse_event`, for symmetry with the Alertmanager driver."""
        return parse_event(body, received_at)
