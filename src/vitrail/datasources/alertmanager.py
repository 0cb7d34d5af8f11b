"""The ``prometheus`` datasource: Prometheus Alertmanager webhook notifications as alarms.

Alertmanager pushes; nothing is polled. The API hands the decoded JSON body of a
webhook call to :func:`parse_webhook`, which validates the whole body and turns
every alert in it into one :class:`~vitrail.graph.events.Event`;
:class:`AlertmanagerTransformer` turns those events into alarm vertices, each
linked ``on`` the resource its labels name. The datasource and the alarms'
``vitrage_type`` are both ``prometheus``, as in OpenStack Vitrage, so existing
Vitrage templates match these alarms unchanged.

Why the work is split this way:

* **Everything that depends on configuration happens in the parser.** Which
  resource an alert is about is decided by :data:`RESOURCE_RULES` (an operator
  may change them) and written into the event payload, so replaying the event
  log after a configuration change rebuilds the same graph.
* **The transformer only reads the payload**, so the processor can run it again
  on replay and get the same updates.
* **One event per alert, each alert's own status decides.** A ``firing`` group
  can hold ``resolved`` alerts, and ``truncatedAlerts`` only says some were not
  sent; neither changes what the alerts that *were* sent mean.
* **Event ids make redelivery harmless.** Alertmanager re-sends a group at every
  ``repeat_interval`` and an HA pair sends it twice; the id depends only on the
  alert's identity, status and start (or end) time, so the copies are
  duplicates the processor ignores, while the same alert firing again after it
  was resolved (a new ``startsAt``) is a new event.

See ``docs/alarms.md`` for the mapping with the fixture files as examples.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vitrail.datasources.base import Driver, RawEntity
from vitrail.datasources.payload import PayloadError, json_kind
from vitrail.graph.events import Event, EventAction, EventError, normalize_timestamp
from vitrail.graph.properties import Category, EdgeLabel
from vitrail.graph.updates import EntityUpdate, NeighborRef, TransformError

#: The datasource name (``vitrage_datasource_name``), as in Vitrage.
NAME = "prometheus"
#: ``vitrage_type`` of the alarms, as in Vitrage.
ALARM_TYPE = "prometheus"
#: ``vitrage_type`` of the placeholder resource an alert is put on when no rule names one.
TARGET_TYPE = "prometheus.target"
HOST_TYPE = "nova.host"
INSTANCE_TYPE = "nova.instance"

FIRING = "firing"
RESOLVED = "resolved"
#: ``state`` of a raised alarm (Vitrage's ``AlarmProps.ACTIVE_STATE``).
ACTIVE = "Active"
#: Severity of an alert without a ``severity`` label: it fires, so something is wrong,
#: and ``warning`` is the mildest severity that says so (Vitrage left it empty: ``N/A``).
DEFAULT_SEVERITY = "warning"
#: Go's zero ``time.Time``: what Alertmanager sends as ``endsAt`` of an alert with no end yet.
_GO_ZERO_TIME = "0001-01-01 00:00:00.000000+00:00"

# FNV-1a, 64 bits, as Prometheus' ``model.LabelSet.Fingerprint`` uses it.
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_FNV_MASK = (1 << 64) - 1
_LABEL_SEPARATOR = 0xFF


# -- which resource an alert is on ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResourceRule:
    """One way to find, from an alert's labels, the resource the alert is ``on``.

    The rule applies when ``label`` (and ``type_label`` when set) is present
    and not empty. The resource is of ``vitrage_type`` (or the value of
    ``type_label``). With ``match_property`` it is the existing vertex of that
    type whose property equals the value (an alert knows a host by name, not by
    Vitrail id); when none exists, a placeholder with the value as its id. With
    ``match_property=None`` the value is the resource id itself. ``address``
    rules take the host part of a ``host:port`` value (``instance`` holds the
    exporter's address).
    """

    name: str
    label: str
    vitrage_type: str = HOST_TYPE
    match_property: str | None = "name"
    type_label: str | None = None
    address: bool = False

    def value(self, labels: Mapping[str, str]) -> str | None:
        """The label value this rule maps, or None when the rule does not apply."""
        raw = labels.get(self.label)
        if not raw:
            return None
        if self.type_label is not None and not labels.get(self.type_label):
            return None
        return host_of_address(raw) if self.address else raw

    def resource(self, labels: Mapping[str, str]) -> dict[str, Any] | None:
        """The payload description of the resource, or None when the rule does not apply."""
        value = self.value(labels)
        if value is None:
            return None
        vitrage_type = labels[self.type_label] if self.type_label is not None else self.vitrage_type
        match = [self.match_property, value] if self.match_property is not None else None
        return {"rule": self.name, "type": vitrage_type, "id": value, "match": match}


#: The rules in the order they are tried; the first that applies wins (see docs/alarms.md).
#: ``hostname``-like labels come before ``instance`` because nearly every Prometheus alert
#: has an ``instance`` (the scrape address), while a host-name label is set on purpose.
RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule("explicit", "resource_id", vitrage_type="", match_property=None, type_label="resource_type"),
    ResourceRule("domain", "domain", INSTANCE_TYPE, match_property="instance_name"),
    ResourceRule("hostname", "hostname"),
    ResourceRule("host", "host"),
    ResourceRule("node", "node"),
    ResourceRule("nodename", "nodename"),
    ResourceRule("instance", "instance", address=True),
)


def host_of_address(value: str) -> str | None:
    """The host of an exporter address: ``10.0.0.5:9100`` → ``10.0.0.5``, ``[::1]:9100`` → ``::1``.

    None when the value is not a ``host[:port]`` address: a URL (blackbox probes
    put the probed URL in ``instance``: it names a service, not a host), an empty
    host or a port that is not a number.
    """
    text = value.strip()
    if not text or "://" in text or "/" in text:
        return None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not host or (rest and not _is_port_suffix(rest)):
            return None
        return host
    if text.count(":") > 1:  # a bare IPv6 address, no port
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            return None
        return text
    host, colon, port = text.partition(":")
    if not host or (colon and not port.isdigit()):
        return None
    return host


def _is_port_suffix(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit()


def resolve_resource(labels: Mapping[str, str], identity: str, rules: Sequence[ResourceRule]) -> dict[str, Any]:
    """The resource an alert is on: the first rule that applies, else a ``prometheus.target``.

    The fallback keeps every alert in the graph: a placeholder named after the
    scrape target (``instance``, a URL here since the address rule did not take
    it), else the ``job``, else the alert itself.
    """
    for rule in rules:
        found = rule.resource(labels)
        if found is not None:
            return found
    target = labels.get("instance") or labels.get("job") or identity
    return {"rule": "fallback", "type": TARGET_TYPE, "id": target, "match": None}


# -- identity ----------------------------------------------------------------------------


def alertmanager_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's own fingerprint of a label set (16 hex digits).

    Prometheus hashes the labels sorted by name, each name and value followed
    by a 0xFF byte, with 64-bit FNV-1a. Computing the same value means an alert
    posted without ``fingerprint`` (older Alertmanager, Vitrage's test data)
    gets the identity it would have had with one.
    """
    digest = _FNV_OFFSET
    for name in sorted(labels):
        for text in (name, labels[name]):
            for byte in text.encode("utf-8"):
                digest = ((digest ^ byte) * _FNV_PRIME) & _FNV_MASK
            digest = ((digest ^ _LABEL_SEPARATOR) * _FNV_PRIME) & _FNV_MASK
    return f"{digest:016x}"


# -- parsing the webhook body ------------------------------------------------------------


def parse_webhook(body: Any, received_at: str, rules: Sequence[ResourceRule] = RESOURCE_RULES) -> list[Event]:
    """The events of an Alertmanager webhook body (version 4), one per alert, in body order.

    ``body`` is the decoded JSON: the webhook payload itself, or that payload
    nested under ``details`` (how Vitrage's ``POST /v1/event`` passes it on).
    ``received_at`` is when the API accepted the request; it stands in for a
    missing ``startsAt``/``endsAt``. Raises :class:`PayloadError` naming the
    first wrong field; then no event is returned for any alert.
    """
    received = normalize_timestamp(received_at, "received_at")
    group, prefix = _unwrap(body)
    alerts = group.get("alerts")
    if alerts is None:
        raise PayloadError(f"{prefix}alerts", "required: the list of alerts")
    if not isinstance(alerts, list):
        raise PayloadError(f"{prefix}alerts", f"expected a list, got {json_kind(alerts)}")
    context = _group_context(group, prefix)
    return [
        _alert_event(alert, f"{prefix}alerts[{index}]", context, received, rules) for index, alert in enumerate(alerts)
    ]


def _unwrap(body: Any) -> tuple[dict[str, Any], str]:
    """The webhook payload and the path prefix of its fields."""
    if not isinstance(body, dict):
        raise PayloadError("body", f"expected a JSON object, got {json_kind(body)}")
    if "alerts" not in body and "details" in body:
        details = body["details"]
        if not isinstance(details, dict):
            raise PayloadError("details", f"expected an object, got {json_kind(details)}")
        return details, "details."
    return body, ""


def _group_context(group: dict[str, Any], prefix: str) -> dict[str, str]:
    """The group fields worth keeping with each alert (where it came from)."""
    context = {}
    for field, key in (("receiver", "receiver"), ("groupKey", "group_key"), ("externalURL", "external_url")):
        value = _optional_text(group, field, prefix.rstrip("."))
        if value:
            context[key] = value
    return context


def _alert_event(alert: Any, path: str, context: dict[str, str], received: str, rules: Sequence[ResourceRule]) -> Event:
    if not isinstance(alert, dict):
        raise PayloadError(path, f"expected an object, got {json_kind(alert)}")
    status = alert.get("status")
    if status not in (FIRING, RESOLVED):
        raise PayloadError(f"{path}.status", f"expected 'firing' or 'resolved', got {status!r}")
    labels = _string_map(alert, "labels", path, required=True)
    if not labels.get("alertname"):
        raise PayloadError(f"{path}.labels.alertname", "required: the name of the alert")
    annotations = _string_map(alert, "annotations", path, required=False)
    fingerprint = _optional_text(alert, "fingerprint", path)
    starts_at = _time(alert, "startsAt", path)
    ends_at = _time(alert, "endsAt", path)
    generator_url = _optional_text(alert, "generatorURL", path)
    identity = fingerprint or alertmanager_fingerprint(labels)
    firing = status == FIRING
    sample_time = (starts_at if firing else ends_at) or received
    payload: dict[str, Any] = {
        "alarm_id": identity,
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "starts_at": starts_at or received,
        "resource": resolve_resource(labels, identity, rules),
        **context,
    }
    if ends_at is not None:
        payload["ends_at"] = ends_at
    if generator_url:
        payload["generator_url"] = generator_url
    return Event(
        f"{NAME}/{identity}/{status}/{sample_time}",
        NAME,
        EventAction.UPDATE if firing else EventAction.DELETE,
        sample_time,
        payload,
        received_at=received,
    )


def _optional_text(obj: dict[str, Any], field: str, path: str) -> str | None:
    value = obj.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(_join(path, field), f"expected a string, got {json_kind(value)}")
    return value


def _string_map(obj: dict[str, Any], field: str, path: str, required: bool) -> dict[str, str]:
    """``labels``/``annotations``: Alertmanager's ``map[string]string``."""
    value = obj.get(field)
    if value is None:
        if required:
            raise PayloadError(f"{path}.{field}", "required: an object of strings")
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{path}.{field}", f"expected an object of strings, got {json_kind(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{path}.{field}.{key}", f"expected a string, got {json_kind(item)}")
    return dict(value)


def _time(obj: dict[str, Any], field: str, path: str) -> str | None:
    """A time field in Vitrail's format; None when absent or Go's zero time."""
    value = obj.get(field)
    if value is None:
        return None
    where = f"{path}.{field}"
    if not isinstance(value, str):
        raise PayloadError(where, f"expected an RFC 3339 time, got {json_kind(value)}")
    try:
        normalized = normalize_timestamp(value, where)
    except (EventError, OverflowError):  # OverflowError: a time at year 1 with a negative offset
        raise PayloadError(where, f"{value!r} is not an RFC 3339 time") from None
    return None if normalized == _GO_ZERO_TIME else normalized


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


# -- the transformer ---------------------------------------------------------------------


def _payload_text(payload: dict[str, Any], field: str, where: str = "payload") -> str:
    value = payload.get(field)
    if not isinstance(value, str) or not value:
        raise TransformError(f"{where}.{field}: expected a non-empty string, got {value!r}")
    return value


def _payload_map(payload: dict[str, Any], field: str) -> dict[str, Any]:
    value = payload.get(field, {})
    if not isinstance(value, dict):
        raise TransformError(f"payload.{field}: expected an object, got {type(value).__name__}")
    return value


def _neighbor(resource: Any) -> NeighborRef:
    """The ``alarm -on-> resource`` edge described by the payload's ``resource``.

    A placeholder made for a matched resource deliberately does not get the
    matched property: otherwise, once the real resource appears, two vertices
    would carry that value and later alerts could land on the placeholder.
    Without it, later alerts find the real vertex, and until then they reach the
    placeholder through its id (the value). Placeholders of the fallback carry
    a ``name`` for display; nothing matches on them.
    """
    if not isinstance(resource, dict):
        raise TransformError("payload.resource: expected an object")
    vitrage_type = _payload_text(resource, "type", "payload.resource")
    resource_id = _payload_text(resource, "id", "payload.resource")
    raw = resource.get("match")
    if raw is None:
        return NeighborRef(
            Category.RESOURCE, vitrage_type, resource_id, EdgeLabel.ON, outgoing=True, properties={"name": resource_id}
        )
    if not (isinstance(raw, list | tuple) and len(raw) == 2 and isinstance(raw[0], str)):
        raise TransformError("payload.resource.match: expected [property, value]")
    return NeighborRef(
        Category.RESOURCE, vitrage_type, resource_id, EdgeLabel.ON, outgoing=True, match=(raw[0], raw[1])
    )


def _alarm_properties(payload: dict[str, Any]) -> dict[str, Any]:
    labels = _payload_map(payload, "labels")
    annotations = _payload_map(payload, "annotations")
    name = labels.get("alertname")
    if not isinstance(name, str) or not name:
        raise TransformError("payload.labels.alertname: expected a non-empty string")
    return {
        "name": name,
        "severity": labels.get("severity") or DEFAULT_SEVERITY,
        "state": ACTIVE,
        "status": FIRING,
        "fingerprint": payload.get("alarm_id"),
        "labels": labels,
        "annotations": annotations,
        "summary": annotations.get("summary") or annotations.get("title"),
        "description": annotations.get("description"),
        "generator_url": payload.get("generator_url"),
        "external_url": payload.get("external_url"),
        "receiver": payload.get("receiver"),
        "start_timestamp": payload.get("starts_at"),
    }


class AlertmanagerTransformer:
    """Alert events → alarm updates. Pure: it reads nothing but the event."""

    def transform(self, event: Event) -> list[EntityUpdate]:
        payload = event.payload
        alarm_id = _payload_text(payload, "alarm_id")
        if event.action is EventAction.DELETE or payload.get("status") == RESOLVED:
            return [EntityUpdate(Category.ALARM, ALARM_TYPE, alarm_id, {}, None, delete=True)]
        properties = _alarm_properties(payload)
        return [
            EntityUpdate(
                Category.ALARM,
                ALARM_TYPE,
                alarm_id,
                properties,
                [_neighbor(payload.get("resource"))],
                update_timestamp=properties["start_timestamp"],
            )
        ]


class AlertmanagerDriver(Driver):
    """Push-only: Alertmanager posts to the API; there is nothing to poll.

    ``get_all`` reports nothing. The graph service must not run consistency
    rounds for this datasource: an empty round would delete every alarm.
    """

    name = NAME
    entity_types = (ALARM_TYPE,)
    has_changes = False
    has_get_all = False

    def __init__(self, rules: Sequence[ResourceRule] = RESOURCE_RULES) -> None:
        self.rules = tuple(rules)

    def transformer(self) -> AlertmanagerTransformer:
        return AlertmanagerTransformer()

    def get_all(self) -> Sequence[RawEntity]:
        return ()

    def parse(self, body: Any, received_at: str) -> list[Event]:
        """:func:`parse_webhook` with this driver's rules."""
        return parse_webhook(body, received_at, self.rules)
