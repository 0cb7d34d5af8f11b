"""The ``nova`` datasource: OpenStack compute notifications as instances and hosts.

Nova publishes a notification on its RabbitMQ exchange for every change of an
instance and of a compute service. The listener
(:mod:`vitrail.services.listener`) hands each message body to the pure
:func:`parse_notification`, which validates it and turns it into at most one
:class:`~vitrail.graph.events.Event`; :class:`NovaTransformer` turns those
events into ``nova.instance`` and ``nova.host`` vertices::

    nova.host(<service host>) -contains-> nova.instance(<uuid>)

Accepted shapes (see ``../shared/fixtures/README.md``):

* the oslo.messaging v2 envelope ``{"oslo.version": "2.0", "oslo.message": "<json>"}``
  and the bare v1 dict it wraps (``message_id``, ``timestamp``, ``_context_*``...),
  as a decoded object or as the raw bytes/str of the AMQP body;
* the notification-listener form ``{event_type, payload, publisher_id, ctxt, metadata}``;
* the trimmed form ``{publisher_id, event_type, payload}``.

What maps to what (``docs/notifications.md`` has the full table):

* versioned ``instance.*`` and legacy ``compute.instance.*``: every one of them
  carries the whole instance (nova builds them all from the instance object), so
  every one updates the instance: its state, name, project and host. Matching by
  prefix rather than a list (Vitrage kept a list) means a nova release that adds
  an action needs no Vitrail release. ``*.delete.end`` and any notification
  whose state is ``deleted`` remove it.
* versioned ``service.create``/``service.update``/``service.delete`` of the
  ``nova-compute`` binary: the host's state (``available`` unless the service is
  disabled or forced down, then ``unavailable``, as Vitrage's zone transformer
  decided it); ``service.delete`` removes the host.
* anything else (neutron, cinder, ``metrics.update``, other nova binaries...) is
  not an error: :func:`read_notification` says why it was ignored, so the
  listener can count it.

Design choices, and why:

* **The parser decides, the transformer only reads.** The event payload is a
  small normalised record (not nova's 3 KB payload), so the event log stays
  small and replaying it gives the same graph whatever the parser becomes.
* **Absent and null differ.** A field the notification carries sets the
  property, null clears it; a field it lacks (trimmed payloads) leaves it as
  it is. For the host that means: ``host: null`` (never scheduled, or shelved
  offloaded) withdraws the host edge, a missing ``host`` keeps it.
* **Event ids come from the message.** ``message_id`` (the same on every topic
  the notification went to), else ``_unique_id``, else a digest of the
  message, so a redelivered notification is a duplicate the processor ignores.
* **The host link matches by name.** An instance names its host by service
  host name; ``match=("name", host)`` links it to the ``nova.host`` of that
  name even when another datasource (a static file) knows it under another id.

Interplay with the simulator (and any datasource owning ``nova.host`` or
``nova.instance``): vertices are keyed by ``(category, type, id)``, so a nova
host named like a simulator host *is* the simulator's vertex. The processor lets
the last datasource to report an entity own it (properties, deletion,
consistency): a ``service.update`` takes a simulator host over until the
simulator's next ``get_all`` takes it back, and each overwrites the other's
state. Running both on the same names is for demos only; in production the
simulator is off. Because this datasource has no ``get_all`` rounds, nothing it
created is ever removed by consistency: an instance whose delete notification
was lost stays until a later notification deletes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from vitrail.datasources.base import Driver, RawEntity
from vitrail.datasources.payload import PayloadError, json_kind, required_text
from vitrail.graph.events import Event, EventAction, EventError, normalize_timestamp
from vitrail.graph.properties import Category, EdgeLabel
from vitrail.graph.updates import EntityUpdate, NeighborRef, TransformError

__all__ = [
    "AVAILABLE",
    "FORMATS",
    "HOST_TYPE",
    "INSTANCE_TYPE",
    "LEGACY",
    "NAME",
    "UNAVAILABLE",
    "VERSIONED",
    "Notification",
    "NovaDriver",
    "NovaTransformer",
    "PayloadError",
    "host_state",
    "instance_state",
    "parse_notification",
    "read_notification",
]

#: The datasource name (``vitrage_datasource_name`` of what it reports).
NAME = "nova"
INSTANCE_TYPE = "nova.instance"
HOST_TYPE = "nova.host"

#: Notification formats (nova ``[notifications] notification_format``).
VERSIONED = "versioned"
LEGACY = "legacy"
FORMATS: frozenset[str] = frozenset((VERSIONED, LEGACY))

#: The only service binary whose state is a host's state.
COMPUTE_BINARY = "nova-compute"
AVAILABLE = "available"
UNAVAILABLE = "unavailable"

#: Why a notification was ignored (the ``reason`` label of the listener's counter).
IGNORED_EVENT_TYPE = "event_type"
IGNORED_FORMAT = "format"
IGNORED_BINARY = "binary"

_ENVELOPE_VERSION = "oslo.version"
_ENVELOPE_MESSAGE = "oslo.message"
_VERSIONED_DATA = "nova_object.data"
_INSTANCE_DELETES = frozenset(("instance.delete.end", "compute.instance.delete.end"))
_SERVICE_ACTIONS = {
    "service.create": EventAction.UPDATE,
    "service.update": EventAction.UPDATE,
    "service.delete": EventAction.DELETE,
}
#: Event payload fields copied as they are to the instance's properties.
_INSTANCE_PROPERTIES = ("name", "task_state", "project_id", "instance_name")
#: nova vm_states whose upper-case form is not the state-table name.
_STATE_ALIASES = {"SOFT-DELETE": "SOFT_DELETED"}

# Instance fields: (name in the event payload, versioned field, legacy field).
_INSTANCE_FIELDS = (
    ("name", "display_name", "display_name"),
    ("state", "state", "state"),
    ("task_state", "task_state", "state_description"),
    ("project_id", "tenant_id", "tenant_id"),
    ("host", "host", "host"),
    ("instance_name", "instance_name", None),
)


@dataclass(frozen=True, slots=True)
class Notification:
    """What one notification means: its events, or why it has none.

    ``ignored`` is one of the ``IGNORED_*`` reasons when the notification is
    valid but describes nothing this datasource maps; ``events`` is then empty.
    """

    event_type: str
    events: list[Event] = field(default_factory=list)
    ignored: str | None = None


# -- unwrapping --------------------------------------------------------------------------


def _decode(message: Any) -> Any:
    """The JSON value of a raw AMQP body; a decoded value is returned as it is."""
    if not isinstance(message, bytes | bytearray | memoryview | str):
        return message
    try:
        return orjson.loads(message)
    except orjson.JSONDecodeError as exc:
        raise PayloadError("body", f"not valid JSON: {exc}") from None


def _unwrap(message: Any) -> tuple[dict[str, Any], str]:
    """The notification dict and the path prefix of its fields.

    oslo.messaging's ``deserialize_msg`` treats a dict as an envelope only when
    it has both keys; any other dict is a v1 message, used as it is.
    """
    body = _decode(message)
    if not isinstance(body, dict):
        raise PayloadError("body", f"expected a JSON object, got {json_kind(body)}")
    if _ENVELOPE_VERSION not in body or _ENVELOPE_MESSAGE not in body:
        return body, ""
    version = body[_ENVELOPE_VERSION]
    if not isinstance(version, str) or version.split(".", 1)[0] != "2":
        raise PayloadError(_ENVELOPE_VERSION, f"expected a 2.x envelope version, got {version!r}")
    raw = body[_ENVELOPE_MESSAGE]
    if not isinstance(raw, str):
        raise PayloadError(_ENVELOPE_MESSAGE, f"expected a JSON string, got {json_kind(raw)}")
    try:
        inner = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(_ENVELOPE_MESSAGE, f"not valid JSON: {exc}") from None
    if not isinstance(inner, dict):
        raise PayloadError(_ENVELOPE_MESSAGE, f"expected a JSON object, got {json_kind(inner)}")
    return inner, f"{_ENVELOPE_MESSAGE}."


# -- field readers -----------------------------------------------------------------------


def _object(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """A required JSON object."""
    value = obj.get(key)
    if value is None:
        raise PayloadError(where, "required: an object")
    if not isinstance(value, dict):
        raise PayloadError(where, f"expected an object, got {json_kind(value)}")
    return value


def _optional_text(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise PayloadError(where, f"expected a string or null, got {json_kind(value)}")
    return value


def _optional_flag(obj: dict[str, Any], key: str, where: str) -> bool:
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        raise PayloadError(where, f"expected a boolean, got {json_kind(value)}")
    return bool(value)


def _metadata(inner: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``metadata`` of the notification-listener form (``{}`` in the other shapes)."""
    value = inner.get("metadata")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{prefix}metadata", f"expected an object, got {json_kind(value)}")
    return value


# -- identity and time -------------------------------------------------------------------


def _message_id(inner: dict[str, Any], metadata: dict[str, Any], prefix: str) -> str:
    """The id a redelivery keeps: ``message_id``, ``_unique_id``, else a digest of the message.

    ``message_id`` comes first: oslo sets it once per notification, while
    ``_unique_id`` is drawn again for every topic the notification is sent to.
    """
    for obj, key, where in (
        (inner, "message_id", "message_id"),
        (metadata, "message_id", "metadata.message_id"),
        (inner, "_unique_id", "_unique_id"),
    ):
        if obj.get(key) is not None:
            return required_text(obj, key, f"{prefix}{where}")
    canonical = json.dumps(inner, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "digest-" + hashlib.blake2b(canonical.encode("utf-8"), digest_size=16).hexdigest()


def _sample_time(inner: dict[str, Any], metadata: dict[str, Any], prefix: str, received: str) -> str:
    """When nova sent it (``timestamp``, naive = UTC), else when Vitrail received it."""
    for obj, where in ((inner, "timestamp"), (metadata, "metadata.timestamp")):
        value = obj.get("timestamp")
        if value is None:
            continue
        path = f"{prefix}{where}"
        if not isinstance(value, str):
            raise PayloadError(path, f"expected a time, got {json_kind(value)}")
        try:
            return normalize_timestamp(value, path)
        except EventError:
            raise PayloadError(path, f"{value!r} is not an ISO 8601 time") from None
    return received


# -- classification ----------------------------------------------------------------------


def _classify(event_type: str) -> tuple[str, str] | None:
    """``(format, kind)`` of an event type this datasource maps, None for the others."""
    if event_type.startswith("compute.instance."):
        return LEGACY, "instance"
    if event_type.startswith("instance."):
        return VERSIONED, "instance"
    if event_type in _SERVICE_ACTIONS:
        return VERSIONED, "host"
    return None


def _versioned_data(payload: dict[str, Any], where: str) -> dict[str, Any]:
    return _object(payload, _VERSIONED_DATA, f"{where}.{_VERSIONED_DATA}")


# -- records -----------------------------------------------------------------------------


def _instance_record(event_type: str, fmt: str, payload: dict[str, Any], where: str) -> dict[str, Any]:
    """The normalised instance of one notification; only fields the notification carries."""
    legacy = fmt == LEGACY
    data = payload if legacy else _versioned_data(payload, where)
    path = where if legacy else f"{where}.{_VERSIONED_DATA}"
    id_field = "instance_id" if legacy else "uuid"
    instance_id = required_text(data, id_field, f"{path}.{id_field}")
    record: dict[str, Any] = {"kind": "instance", "event_type": event_type, "id": instance_id}
    for name, versioned_field, legacy_field in _INSTANCE_FIELDS:
        source = legacy_field if legacy else versioned_field
        if source is not None and source in data:
            record[name] = _optional_text(data, source, f"{path}.{source}") or None
    return record


def _is_delete(record: dict[str, Any]) -> bool:
    state = record.get("state")
    return record["event_type"] in _INSTANCE_DELETES or (state is not None and state.lower() == "deleted")


def _host_record(event_type: str, payload: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The normalised compute service of a ``service.*`` notification; None for other binaries."""
    data = _versioned_data(payload, where)
    path = f"{where}.{_VERSIONED_DATA}"
    binary = required_text(data, "binary", f"{path}.binary")
    if binary != COMPUTE_BINARY:
        return None
    record: dict[str, Any] = {
        "kind": "host",
        "event_type": event_type,
        "id": required_text(data, "host", f"{path}.host"),
        "binary": binary,
        "disabled": _optional_flag(data, "disabled", f"{path}.disabled"),
        "forced_down": _optional_flag(data, "forced_down", f"{path}.forced_down"),
    }
    if "disabled_reason" in data:
        record["disabled_reason"] = _optional_text(data, "disabled_reason", f"{path}.disabled_reason")
    return record


# -- parsing -----------------------------------------------------------------------------


def read_notification(message: Any, received_at: str, formats: Collection[str] = FORMATS) -> Notification:
    """What one notification means for the graph.

    ``message`` is the AMQP body (bytes or str) or its decoded JSON, in any of
    the accepted shapes. ``received_at`` stands in for a missing timestamp.
    ``formats`` are the notification formats to map (both by default; see
    ``docs/notifications.md`` for nova's ``notification_format = both``).
    Raises :class:`PayloadError` naming the first wrong field; an event type
    this datasource does not map is not an error (``ignored`` says why).
    """
    received = normalize_timestamp(received_at, "received_at")
    inner, prefix = _unwrap(message)
    event_type = required_text(inner, "event_type", f"{prefix}event_type")
    classified = _classify(event_type)
    if classified is None:
        return Notification(event_type, ignored=IGNORED_EVENT_TYPE)
    fmt, kind = classified
    if fmt not in formats:
        return Notification(event_type, ignored=IGNORED_FORMAT)
    payload = _object(inner, "payload", f"{prefix}payload")
    where = f"{prefix}payload"
    if kind == "instance":
        record = _instance_record(event_type, fmt, payload, where)
        action = EventAction.DELETE if _is_delete(record) else EventAction.UPDATE
    else:
        host = _host_record(event_type, payload, where)
        if host is None:
            return Notification(event_type, ignored=IGNORED_BINARY)
        record, action = host, _SERVICE_ACTIONS[event_type]
    publisher = inner.get("publisher_id")
    if isinstance(publisher, str):
        record["publisher_id"] = publisher
    metadata = _metadata(inner, prefix)
    event = Event(
        f"{NAME}/{_message_id(inner, metadata, prefix)}",
        NAME,
        action,
        _sample_time(inner, metadata, prefix, received),
        record,
        received_at=received,
    )
    return Notification(event_type, [event])


def parse_notification(message: Any, received_at: str, formats: Collection[str] = FORMATS) -> list[Event]:
    """The events of one notification: one, or none when it is not about instances or compute hosts.

    See :func:`read_notification`, which also says why a notification was ignored.
    """
    return read_notification(message, received_at, formats).events


# -- the transformer ---------------------------------------------------------------------


def instance_state(state: str | None) -> str | None:
    """nova's vm_state as the ``nova.instance`` state table names it: ``active`` → ``ACTIVE``."""
    if state is None:
        return None
    upper = state.upper()
    return _STATE_ALIASES.get(upper, upper)


def host_state(disabled: bool, forced_down: bool) -> str:
    """A compute host is available when its nova-compute service is enabled and not forced down.

    Vitrage's rule (its zone transformer: ``available`` and ``active``). Nova
    sends no notification when a service merely stops reporting, so "down
    without being forced down" never reaches this datasource.
    """
    return UNAVAILABLE if disabled or forced_down else AVAILABLE


def _payload_text(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise TransformError(f"payload.{key}: expected a non-empty string, got {value!r}")
    return value


def _host_neighbors(payload: dict[str, Any]) -> list[NeighborRef] | None:
    """``host -contains-> instance``; ``[]`` when the instance is on no host, None when unknown."""
    if "host" not in payload:
        return None
    host = payload["host"]
    if host is None:
        return []
    if not isinstance(host, str):
        raise TransformError(f"payload.host: expected a string, got {host!r}")
    return [NeighborRef(Category.RESOURCE, HOST_TYPE, host, EdgeLabel.CONTAINS, outgoing=False, match=("name", host))]


def _instance_update(event: Event) -> EntityUpdate:
    payload = event.payload
    instance_id = _payload_text(payload, "id")
    if event.action is EventAction.DELETE:
        return EntityUpdate(Category.RESOURCE, INSTANCE_TYPE, instance_id, {}, None, delete=True)
    properties: dict[str, Any] = {key: payload[key] for key in _INSTANCE_PROPERTIES if key in payload}
    if "state" in payload:
        properties["state"] = instance_state(payload["state"])
    if "host" in payload:
        properties["host_id"] = payload["host"]
    return EntityUpdate(Category.RESOURCE, INSTANCE_TYPE, instance_id, properties, _host_neighbors(payload))


def _host_update(event: Event) -> EntityUpdate:
    payload = event.payload
    host = _payload_text(payload, "id")
    if event.action is EventAction.DELETE:
        return EntityUpdate(Category.RESOURCE, HOST_TYPE, host, {}, None, delete=True)
    disabled = bool(payload.get("disabled"))
    forced_down = bool(payload.get("forced_down"))
    properties: dict[str, Any] = {
        "name": host,
        "state": host_state(disabled, forced_down),
        "disabled": disabled,
        "forced_down": forced_down,
    }
    if "disabled_reason" in payload:
        properties["disabled_reason"] = payload["disabled_reason"]
    return EntityUpdate(Category.RESOURCE, HOST_TYPE, host, properties, None)


_UPDATES = {"instance": _instance_update, "host": _host_update}


class NovaTransformer:
    """Nova notification events → instance and host updates. Pure: it reads nothing but the event."""

    def transform(self, event: Event) -> list[EntityUpdate]:
        kind = event.payload.get("kind")
        build = _UPDATES.get(kind) if isinstance(kind, str) else None
        if build is None:
            raise TransformError(f"payload.kind: expected one of {sorted(_UPDATES)}, got {kind!r}")
        return [build(event)]


class NovaDriver(Driver):
    """Push-only: nova publishes notifications; the listener receives them.

    ``get_all`` reports nothing and the graph service must not run consistency
    rounds for it: an empty round would delete every instance.
    """

    name = NAME
    entity_types = (INSTANCE_TYPE, HOST_TYPE)
    has_changes = False
    has_get_all = False

    def __init__(self, formats: Collection[str] = FORMATS) -> None:
        unknown = set(formats) - FORMATS
        if unknown or not formats:
            raise ValueError(f"nova formats must be a non-empty subset of {sorted(FORMATS)}, got {sorted(formats)}")
        self.formats = frozenset(formats)

    def transformer(self) -> NovaTransformer:
        return NovaTransformer()

    def get_all(self) -> Sequence[RawEntity]:
        return ()

    def read(self, message: Any, received_at: str) -> Notification:
        """:func:`read_notification` with this driver's formats."""
        return read_notification(message, received_at, self.formats)

    def parse(self, message: Any, received_at: str) -> list[Event]:
        """:func:`parse_notification` with this driver's formats."""
        return read_notification(message, received_at, self.formats).events
