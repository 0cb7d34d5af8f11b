"""The nova datasource against the real notifications in ``../shared/fixtures/openstack``.

Every file is used as it is stored (read as raw bytes, as the listener gets
them), run through :func:`parse_notification` and a real :class:`Processor`
with the built-in state tables. Versioned samples carry no ``message_id`` or
``timestamp`` (nova's sample tests strip them): their ids are digests and their
times the ``received_at`` each test passes, in the order it applies them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.upstream import FIXTURES as UPSTREAM
from vitrail.datasources.nova import (
    FORMATS,
    IGNORED_BINARY,
    IGNORED_EVENT_TYPE,
    IGNORED_FORMAT,
    LEGACY,
    VERSIONED,
    NovaDriver,
    NovaTransformer,
    PayloadError,
    host_state,
    instance_state,
    parse_notification,
    read_notification,
)
from vitrail.datasources.state_tables import load_state_table
from vitrail.graph.events import Event, EventAction
from vitrail.graph.identity import vitrage_id_for
from vitrail.graph.model import Vertex
from vitrail.graph.processor import EventRejected, Processor
from vitrail.graph.properties import Direction
from vitrail.graph.updates import EntityUpdate
from vitrail.services.topics import decode, encode

FIXTURES = UPSTREAM / "openstack"
FILES = sorted(FIXTURES.glob("*/*.json"))

RECEIVED = "2026-11-22T00:30:00Z"
RECEIVED_NORMALIZED = "2026-11-22 00:30:00.000000+00:00"

VM = "178b0921-8f85-4257-88b6-2e743b5a975c"  # every versioned instance sample
WATCHER_VM = "73b09e16-35b7-4922-804e-e8f5d9b740fc"  # legacy update/resize/delete samples and the envelope
WATCHER_VM0 = "c03c0bf9-f46e-4e4f-93f1-817568567ee2"  # legacy create-end sample
CEILOMETER_VM = "9f9d01b9-4a58-4271-9e27-398b21ab20d1"
SCHEDULE_ERROR_VM = "4b86f534-16db-4de8-8ce0-f1ee68894835"

ENVELOPE_DELETE = "envelope/nova__notifications.info__compute.instance.delete.end.json"
ENVELOPE_SERVICE = "envelope/nova__versioned_notifications.info__service.update.json"
CREATE_START = "versioned/nova__instance-create-start.json"
CREATE_END = "versioned/nova__instance-create-end.json"
DELETE_END = "versioned/nova__instance-delete-end.json"
INSTANCE_UPDATE = "versioned/nova__instance-update.json"
SHELVE_END = "versioned/nova__instance-shelve-end.json"
SERVICE_UPDATE = "versioned/nova__service-update.json"
SERVICE_CREATE = "versioned/nova__service-create.json"
SERVICE_DELETE = "versioned/nova__service-delete.json"
WATCHER_SERVICE = "versioned/watcher__scenario3_service-update-enabled.json"
LEGACY_CREATE = "legacy/watcher__scenario3_legacy_instance-create-end.json"
LEGACY_UPDATE = "legacy/watcher__scenario3_legacy_instance-update.json"
LEGACY_RESIZE = "legacy/watcher__scenario3_legacy_instance-resize-confirm-end.json"
LEGACY_DELETE = "legacy/watcher__scenario3_legacy_instance-delete-end.json"
SEARCHLIGHT_DELETE = "legacy/searchlight__compute.instance.delete.end.json"
SEARCHLIGHT_SCHEDULE_ERROR = "legacy/searchlight__compute.instance.update__instance-update-error-during-schedule.json"
CEILOMETER_CREATE = "legacy/ceilometer__compute.instance.create.end__instance_create_end.json"
CEILOMETER_DELETE_START = "legacy/ceilometer__compute.instance.delete.start__instance_delete_start.json"
CEILOMETER_RESIZE_REVERT = "legacy/ceilometer__compute.instance.resize.revert.end__instance_resize_revert_end.json"


# -- helpers ---------------------------------------------------------------------------------


def raw(name: str) -> bytes:
    """A fixture's bytes, exactly as stored (what the listener hands the parser)."""
    return (FIXTURES / name).read_bytes()


def load(name: str) -> Any:
    return json.loads(raw(name))


def at(minute: int) -> str:
    """A received time, minutes after 00:00 of the test day: later calls pass later times."""
    return f"2026-11-22T01:{minute:02d}:00Z"


class FakeInventory:
    """``{"id", "name"}`` → a nova.host, as a datasource that knows hosts by another id would."""

    def transform(self, event: Event) -> list[EntityUpdate]:
        p = event.payload
        return [EntityUpdate("RESOURCE", "nova.host", p["id"], {"name": p["name"], "state": "available"}, [])]


def make_processor() -> Processor:
    return Processor({"nova": NovaTransformer(), "inventory": FakeInventory()}, load_state_table())


def feed(proc: Processor, body: Any, received: str = RECEIVED) -> list[Event | None]:
    """What the graph does with a notification the listener parsed: process its events."""
    message = raw(body) if isinstance(body, str) else body
    return [proc.process(event) for event in parse_notification(message, received)]


def instance(proc: Processor, instance_id: str = VM) -> Vertex | None:
    return proc.graph.get_vertex(vitrage_id_for("RESOURCE", "nova.instance", instance_id))


def host(proc: Processor, host_id: str) -> Vertex | None:
    return proc.graph.get_vertex(vitrage_id_for("RESOURCE", "nova.host", host_id))


def hosts_of(proc: Processor, instance_id: str = VM) -> list[Vertex]:
    """The vertices that ``contain`` the instance (its host; never more than one)."""
    vertex = instance(proc, instance_id)
    assert vertex is not None
    assert not proc.graph.neighbors(vertex.vitrage_id, direction=Direction.OUT)
    return proc.graph.neighbors(vertex.vitrage_id, direction=Direction.IN, labels=["contains"])


def host_ids(proc: Processor, instance_id: str = VM) -> list[str | None]:
    return [v.id for v in hosts_of(proc, instance_id)]


def _with(body: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return body


def envelope(inner: dict[str, Any]) -> bytes:
    """An AMQP body as oslo.messaging's messagingv2 driver writes it."""
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}).encode()


def unwrapped(name: str) -> dict[str, Any]:
    return json.loads(load(name)["oslo.message"])


# -- every fixture ---------------------------------------------------------------------------

#: What each fixture is: ("instance"|"host", action) or ("ignored", reason).
EXPECTED: dict[str, tuple[str, str]] = {
    ENVELOPE_DELETE: ("instance", "delete"),
    ENVELOPE_SERVICE: ("host", "update"),
    **{f"legacy/{p.name}": ("ignored", IGNORED_EVENT_TYPE) for p in (FIXTURES / "legacy").glob("*.json")},
    **{f"versioned/{p.name}": ("instance", "update") for p in (FIXTURES / "versioned").glob("*instance-*.json")},
    CEILOMETER_CREATE: ("instance", "update"),
    CEILOMETER_DELETE_START: ("instance", "update"),
    "legacy/ceilometer__compute.instance.exists__instance_exists.json": ("instance", "update"),
    CEILOMETER_RESIZE_REVERT: ("instance", "update"),
    SEARCHLIGHT_DELETE: ("instance", "delete"),
    SEARCHLIGHT_SCHEDULE_ERROR: ("instance", "update"),
    LEGACY_CREATE: ("instance", "update"),
    LEGACY_DELETE: ("instance", "delete"),
    LEGACY_RESIZE: ("instance", "update"),
    LEGACY_UPDATE: ("instance", "update"),
    DELETE_END: ("instance", "delete"),
    "versioned/nova__aggregate-add_host-end.json": ("ignored", IGNORED_EVENT_TYPE),
    "versioned/nova__compute_task-build_instances-error.json": ("ignored", IGNORED_EVENT_TYPE),
    "versioned/nova__libvirt-connect-error.json": ("ignored", IGNORED_EVENT_TYPE),
    "versioned/nova__metrics-update.json": ("ignored", IGNORED_EVENT_TYPE),
    "versioned/nova__server_group-add_member.json": ("ignored", IGNORED_EVENT_TYPE),
    SERVICE_CREATE: ("host", "update"),
    SERVICE_DELETE: ("host", "delete"),
    SERVICE_UPDATE: ("host", "update"),
    WATCHER_SERVICE: ("host", "update"),
}


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_every_fixture_is_classified() -> None:
    assert {_name(p) for p in FILES} == set(EXPECTED)
    assert len(FILES) >= 60
    assert sum(kind == "instance" for kind, _ in EXPECTED.values()) >= 30


@pytest.mark.parametrize("path", FILES, ids=_name)
def test_every_fixture_parses_as_expected(path: Path) -> None:
    kind, detail = EXPECTED[_name(path)]
    notification = read_notification(path.read_bytes(), RECEIVED)
    assert notification.event_type
    # The decoded body gives exactly the same result as the raw bytes.
    assert read_notification(json.loads(path.read_bytes()), RECEIVED) == notification
    if kind == "ignored":
        assert notification.events == []
        assert notification.ignored == detail
        return
    assert notification.ignored is None
    (event,) = notification.events
    assert event.datasource == "nova"
    assert event.action.value == detail
    assert event.payload["kind"] == kind
    assert event.event_id.startswith("nova/")
    assert event.received_at == RECEIVED_NORMALIZED


@pytest.mark.parametrize("path", [p for p in FILES if EXPECTED[_name(p)][0] != "ignored"], ids=_name)
def test_every_nova_fixture_applies_to_a_real_processor(path: Path) -> None:
    proc = make_processor()
    kind, action = EXPECTED[_name(path)]
    (event,) = parse_notification(path.read_bytes(), RECEIVED)
    if action == "delete":
        # Something to delete first: the same entity, as an update one minute earlier.
        earlier = copy.deepcopy(event)
        earlier.event_id, earlier.action = "nova/earlier", EventAction.UPDATE
        earlier.sample_time = "2000-01-01 00:00:00.000000+00:00"
        proc.process(earlier)
    assert proc.process(event) is not None
    vtype = "nova.instance" if kind == "instance" else "nova.host"
    vertex = proc.graph.get_vertex(vitrage_id_for("RESOURCE", vtype, event.payload["id"]))
    if action == "delete":
        assert vertex is None
        assert len(proc.graph) == 0  # its host placeholder went with it
        return
    assert vertex is not None
    assert vertex.vitrage_datasource_name == "nova"
    assert not vertex.vitrage_is_placeholder
    assert vertex.vitrage_operational_state != "N/A", vertex.state
    if kind == "instance" and event.payload.get("host"):
        assert host_ids(proc, event.payload["id"]) == [event.payload["host"]]


# -- versioned instances ----------------------------------------------------------------------

LIFECYCLE = [
    ("instance-create-start", "BUILDING", "TRANSIENT", None),
    ("instance-create-end", "ACTIVE", "OK", "compute"),
    ("instance-update", "ACTIVE", "OK", "compute"),
    ("instance-pause-end", "PAUSED", "SUBOPTIMAL", "compute"),
    ("instance-unpause-end", "ACTIVE", "OK", "compute"),
    ("instance-power_off-start", "ACTIVE", "OK", "compute"),
    ("instance-power_off-end", "STOPPED", "SUBOPTIMAL", "compute"),
    ("instance-power_on-end", "ACTIVE", "OK", "compute"),
    ("instance-suspend-end", "SUSPENDED", "SUBOPTIMAL", "compute"),
    ("instance-resume-end", "ACTIVE", "OK", "compute"),
    ("instance-reboot-end", "ACTIVE", "OK", "compute"),
    ("instance-rebuild-end", "ACTIVE", "OK", "compute"),
    ("instance-resize_finish-end", "RESIZED", "SUBOPTIMAL", "compute"),
    ("instance-resize_confirm-end", "ACTIVE", "OK", "compute"),
    ("instance-live_migration_pre-start", "ACTIVE", "OK", "compute"),
    ("instance-live_migration_post-end", "ACTIVE", "OK", "compute"),
    ("instance-shelve-end", "SHELVED", "SUBOPTIMAL", "compute"),
    ("instance-unshelve-end", "ACTIVE", "OK", "compute"),
    ("instance-interface_attach-end", "ACTIVE", "OK", "compute"),
    ("instance-volume_attach-end", "ACTIVE", "OK", "compute"),
    ("instance-exists", "ACTIVE", "OK", "compute"),
    ("instance-restore-end", "ACTIVE", "OK", "compute"),
    ("instance-shutdown-end", "ACTIVE", "OK", "compute"),
    ("instance-delete-start", "ACTIVE", "OK", "compute"),
]


def test_versioned_lifecycle_create_act_delete() -> None:
    proc = make_processor()
    for minute, (sample, state, operational, host_id) in enumerate(LIFECYCLE):
        assert feed(proc, f"versioned/nova__{sample}.json", at(minute)) != [None], sample
        vertex = instance(proc)
        assert vertex is not None, sample
        assert (vertex.state, vertex.vitrage_operational_state) == (state, operational), sample
        assert vertex.get("host_id") == host_id, sample
        assert host_ids(proc) == ([host_id] if host_id else []), sample
        assert vertex.name == "some-server"
        assert vertex.project_id == "6f70656e737461636b20342065766572"
    vertex = instance(proc)
    assert vertex is not None
    assert vertex.get("instance_name") == "instance-00000001"  # only create payloads have it; it stays
    assert vertex.get("task_state") == "deleting"
    compute = host(proc, "compute")
    assert compute is not None and compute.vitrage_is_placeholder  # nobody reported the host itself
    feed(proc, DELETE_END, at(59))
    assert instance(proc) is None
    assert len(proc.graph) == 0  # the placeholder host left with its last instance


def test_instance_update_takes_the_instance_state_not_the_state_update_block() -> None:
    proc = make_processor()
    feed(proc, INSTANCE_UPDATE)
    vertex = instance(proc)
    assert vertex is not None
    assert vertex.state == "ACTIVE"  # payload state; state_update says building -> building
    assert vertex.get("task_state") == "scheduling"


def test_a_host_known_under_another_id_is_matched_by_name() -> None:
    proc = make_processor()
    proc.process(
        Event("inv/1", "inventory", EventAction.UPDATE, RECEIVED, {"id": "uuid-of-compute", "name": "compute"})
    )
    feed(proc, CREATE_END)
    assert host_ids(proc) == ["uuid-of-compute"]
    assert host(proc, "compute") is None  # no placeholder next to the real host


def test_never_scheduled_instance_has_no_host_and_a_later_null_host_withdraws_the_edge() -> None:
    proc = make_processor()
    feed(proc, CREATE_START, at(0))
    assert host_ids(proc) == []
    feed(proc, CREATE_END, at(1))
    assert host_ids(proc) == ["compute"]
    # Shelve offload: nova clears host and node.
    offloaded = _with(load(SHELVE_END), None, "payload", "nova_object.data", "host")
    offloaded = _with(offloaded, "shelved_offloaded", "payload", "nova_object.data", "state")
    feed(proc, offloaded, at(2))
    vertex = instance(proc)
    assert vertex is not None
    assert host_ids(proc) == []
    assert vertex.get("host_id") is None
    assert (vertex.state, vertex.vitrage_operational_state) == ("SHELVED_OFFLOADED", "DELETED")
    assert host(proc, "compute") is None  # the orphan placeholder went


def test_live_migration_moves_the_instance_to_the_new_host() -> None:
    proc = make_processor()
    feed(proc, CREATE_END, at(0))
    moved = _with(
        load("versioned/nova__instance-live_migration_post-end.json"), "host2", "payload", "nova_object.data", "host"
    )
    feed(proc, moved, at(1))
    assert host_ids(proc) == ["host2"]
    assert instance(proc).get("host_id") == "host2"  # type: ignore[union-attr]


def test_a_notification_saying_deleted_removes_the_instance() -> None:
    proc = make_processor()
    feed(proc, CREATE_END, at(0))
    deleted = _with(load(INSTANCE_UPDATE), "deleted", "payload", "nova_object.data", "state")
    (event,) = parse_notification(deleted, at(1))
    assert event.action is EventAction.DELETE
    proc.process(event)
    assert instance(proc) is None


def test_an_older_notification_does_not_roll_the_state_back() -> None:
    proc = make_processor()
    feed(proc, "versioned/nova__instance-pause-end.json", at(5))
    feed(proc, "versioned/nova__instance-unpause-end.json", at(4))  # delivered late
    assert instance(proc).state == "PAUSED"  # type: ignore[union-attr]


# -- hosts ------------------------------------------------------------------------------------


def test_service_update_makes_an_available_host() -> None:
    proc = make_processor()
    feed(proc, SERVICE_UPDATE)
    vertex = host(proc, "host1")
    assert vertex is not None
    assert (vertex.name, vertex.state, vertex.vitrage_operational_state) == ("host1", "available", "OK")
    assert (vertex.get("disabled"), vertex.get("forced_down")) == (False, False)


@pytest.mark.parametrize(
    ("disabled", "forced_down", "state", "operational"),
    [
        (False, False, "available", "OK"),
        (True, False, "unavailable", "ERROR"),
        (False, True, "unavailable", "ERROR"),
        (True, True, "unavailable", "ERROR"),
    ],
)
def test_disabled_or_forced_down_host_is_unavailable(
    disabled: bool, forced_down: bool, state: str, operational: str
) -> None:
    proc = make_processor()
    feed(proc, SERVICE_UPDATE, at(0))
    body = _with(load(SERVICE_UPDATE), disabled, "payload", "nova_object.data", "disabled")
    body = _with(body, forced_down, "payload", "nova_object.data", "forced_down")
    body = _with(body, "maintenance" if disabled else None, "payload", "nova_object.data", "disabled_reason")
    feed(proc, body, at(1))
    vertex = host(proc, "host1")
    assert vertex is not None
    assert (vertex.state, vertex.vitrage_operational_state) == (state, operational)
    assert vertex.get("disabled_reason") == ("maintenance" if disabled else None)
    assert host_state(disabled, forced_down) == state


def test_service_create_then_delete() -> None:
    proc = make_processor()
    feed(proc, SERVICE_CREATE, at(0))
    assert host(proc, "host2").state == "available"  # type: ignore[union-attr]
    feed(proc, SERVICE_DELETE, at(1))
    assert host(proc, "host2") is None


def test_the_payload_host_wins_over_the_publisher_id() -> None:
    proc = make_processor()
    feed(proc, WATCHER_SERVICE)  # publisher nova-compute:Node_0, payload host hostname_0
    assert host(proc, "hostname_0") is not None
    assert host(proc, "Node_0") is None


def test_other_binaries_are_ignored() -> None:
    body = _with(load(SERVICE_UPDATE), "nova-conductor", "payload", "nova_object.data", "binary")
    notification = read_notification(body, RECEIVED)
    assert (notification.events, notification.ignored) == ([], IGNORED_BINARY)


def test_the_host_report_completes_the_placeholder_its_instances_made() -> None:
    proc = make_processor()
    feed(proc, CREATE_END, at(0))
    assert host(proc, "compute").vitrage_is_placeholder  # type: ignore[union-attr]
    feed(proc, _with(load(SERVICE_UPDATE), "compute", "payload", "nova_object.data", "host"), at(1))
    compute = host(proc, "compute")
    assert compute is not None and not compute.vitrage_is_placeholder
    assert compute.state == "available"
    assert host_ids(proc) == ["compute"]
    forced = _with(load(SERVICE_UPDATE), "compute", "payload", "nova_object.data", "host")
    feed(proc, _with(forced, True, "payload", "nova_object.data", "forced_down"), at(2))
    assert host(proc, "compute").vitrage_operational_state == "ERROR"  # type: ignore[union-attr]
    assert host_ids(proc) == ["compute"]  # a host update leaves its edges alone


# -- legacy instances ------------------------------------------------------------------------------


def test_legacy_watcher_scenario_create_update_resize_delete() -> None:
    proc = make_processor()
    feed(proc, LEGACY_CREATE, at(0))
    assert instance(proc, WATCHER_VM0).state == "ACTIVE"  # type: ignore[union-attr]
    assert host_ids(proc, WATCHER_VM0) == ["Node_0"]
    feed(proc, LEGACY_UPDATE, at(1))
    vm = instance(proc, WATCHER_VM)
    assert vm is not None
    assert (vm.state, vm.name, vm.get("host_id")) == ("PAUSED", "NEW_INSTANCE0", "Node_0")
    assert host_ids(proc, WATCHER_VM) == ["Node_0"]
    feed(proc, LEGACY_RESIZE, at(2))  # confirmed on another host
    assert host_ids(proc, WATCHER_VM) == ["Node_1"]
    assert instance(proc, WATCHER_VM).state == "ACTIVE"  # type: ignore[union-attr]
    assert host(proc, "Node_0") is not None  # still holds the other instance
    feed(proc, LEGACY_DELETE, at(3))
    assert instance(proc, WATCHER_VM) is None
    assert host(proc, "Node_1") is None
    assert host_ids(proc, WATCHER_VM0) == ["Node_0"]


def test_legacy_update_failed_during_scheduling_has_no_host() -> None:
    proc = make_processor()
    feed(proc, SEARCHLIGHT_SCHEDULE_ERROR)
    vm = instance(proc, SCHEDULE_ERROR_VM)
    assert vm is not None
    assert (vm.state, vm.vitrage_operational_state) == ("ERROR", "ERROR")
    assert vm.name is None and vm.get("host_id") is None
    assert vm.project_id == "b1fbc598025841899f63333269abe1d2"
    assert host_ids(proc, SCHEDULE_ERROR_VM) == []
    assert len(proc.graph) == 1


def test_a_trimmed_payload_without_host_keeps_the_host_edge() -> None:
    proc = make_processor()
    feed(proc, LEGACY_UPDATE, at(0))
    trimmed = _without(_without(load(LEGACY_UPDATE), "payload", "host"), "payload", "display_name")
    trimmed = _with(trimmed, "active", "payload", "state")
    feed(proc, trimmed, at(1))
    vm = instance(proc, WATCHER_VM)
    assert vm is not None
    assert (vm.state, vm.name, vm.get("host_id")) == ("ACTIVE", "NEW_INSTANCE0", "Node_0")
    assert host_ids(proc, WATCHER_VM) == ["Node_0"]


def test_legacy_ceilometer_create_delete_start_and_resize_revert() -> None:
    proc = make_processor()
    feed(proc, CEILOMETER_CREATE)  # timestamps of 2012: the notification's own time is used
    vm = instance(proc, CEILOMETER_VM)
    assert vm is not None
    assert vm.vitrage_sample_timestamp == "2012-05-08 20:23:48.028195+00:00"
    assert (vm.state, vm.name, host_ids(proc, CEILOMETER_VM)) == ("ACTIVE", "testme", ["compute-host-name"])
    feed(proc, CEILOMETER_DELETE_START)
    vm = instance(proc, CEILOMETER_VM)
    assert vm is not None
    assert (vm.state, vm.get("task_state")) == ("ACTIVE", "deleting")  # not deleted before delete.end
    feed(proc, CEILOMETER_RESIZE_REVERT)
    assert instance(proc, "648e8963-6886-4c3c-98f9-4511c292f86b").state == "RESIZED"  # type: ignore[union-attr]


def test_listener_form_takes_id_and_time_from_metadata() -> None:
    (event,) = parse_notification(raw(SEARCHLIGHT_DELETE), RECEIVED)
    assert event.event_id == "nova/56428f7d-3f07-4b23-882d-612d8852e422"
    assert event.sample_time == "2016-03-14 00:44:57.126816+00:00"
    assert event.payload["host"] == "zhenyu-dev"  # not "devstack" of publisher_id network.devstack


# -- the envelope ------------------------------------------------------------------------------


def test_envelope_service_update() -> None:
    proc = make_processor()
    (event,) = parse_notification(raw(ENVELOPE_SERVICE), RECEIVED)
    assert event.event_id == "nova/97936277-8923-450f-9bae-b3f5df9aad39"  # message_id, not _unique_id
    assert event.sample_time == "2026-11-22 00:20:32.304618+00:00"
    assert event.received_at == RECEIVED_NORMALIZED
    proc.process(event)
    assert host(proc, "host1").state == "available"  # type: ignore[union-attr]


def test_envelope_legacy_delete_removes_the_instance() -> None:
    proc = make_processor()
    feed(proc, LEGACY_UPDATE, "2026-11-22T00:10:00Z")  # before the envelope's own timestamp
    assert instance(proc, WATCHER_VM) is not None
    (event,) = feed(proc, ENVELOPE_DELETE)
    assert event is not None and event.action is EventAction.DELETE
    assert instance(proc, WATCHER_VM) is None
    assert len(proc.graph) == 0


def test_delete_of_an_unknown_instance_is_harmless() -> None:
    proc = make_processor()
    assert feed(proc, ENVELOPE_DELETE) != [None]
    assert len(proc.graph) == 0


def test_unique_id_then_digest_when_there_is_no_message_id() -> None:
    inner = unwrapped(ENVELOPE_SERVICE)
    (event,) = parse_notification(envelope(_without(inner, "message_id")), RECEIVED)
    assert event.event_id == "nova/cec03ce760d14e1e9f549f0f85c8249a"
    bare = _without(_without(inner, "message_id"), "_unique_id")
    (first,) = parse_notification(envelope(bare), RECEIVED)
    (second,) = parse_notification(bare, "2026-11-22T02:00:00Z")  # v1: the bare dict, received later
    assert first.event_id == second.event_id
    assert first.event_id.startswith("nova/digest-")


# -- duplicates and replay -------------------------------------------------------------------------


@pytest.mark.parametrize("name", [ENVELOPE_SERVICE, CREATE_END, LEGACY_CREATE, SEARCHLIGHT_SCHEDULE_ERROR])
def test_a_redelivered_notification_is_a_duplicate(name: str) -> None:
    proc = make_processor()
    assert feed(proc, name, at(0)) != [None]
    before = proc.dump()
    assert feed(proc, name, at(5)) == [None]  # parsed again, as after a redelivery
    assert proc.dump() == before
    assert proc.stats.duplicates == 1


def test_replaying_the_logged_events_rebuilds_the_same_graph() -> None:
    live = make_processor()
    applied = []
    for minute, name in enumerate(
        [CREATE_START, CREATE_END, SERVICE_UPDATE, LEGACY_CREATE, LEGACY_UPDATE, LEGACY_RESIZE, ENVELOPE_SERVICE]
    ):
        applied += [e for e in parse_notification(raw(name), at(minute))]
    for event in applied:
        live.process(event)
    replayed = make_processor()
    for event in decode(orjson.loads(orjson.dumps(encode(applied)))):
        replayed.process(event)
    assert replayed.graph_dump() == live.graph_dump()
    assert len(live.graph) > 5


# -- formats, states, driver ------------------------------------------------------------------------


def test_formats_can_be_restricted() -> None:
    versioned_only = read_notification(raw(LEGACY_CREATE), RECEIVED, formats={VERSIONED})
    assert (versioned_only.events, versioned_only.ignored) == ([], IGNORED_FORMAT)
    legacy_only = read_notification(raw(CREATE_END), RECEIVED, formats={LEGACY})
    assert legacy_only.ignored == IGNORED_FORMAT
    assert len(read_notification(raw(CREATE_END), RECEIVED, formats=FORMATS).events) == 1


@pytest.mark.parametrize(
    ("vm_state", "state"),
    [
        ("active", "ACTIVE"),
        ("building", "BUILDING"),
        ("stopped", "STOPPED"),
        ("soft-delete", "SOFT_DELETED"),
        ("shelved_offloaded", "SHELVED_OFFLOADED"),
        ("error", "ERROR"),
        (None, None),
    ],
)
def test_instance_state_names_the_state_table_entries(vm_state: str | None, state: str | None) -> None:
    assert instance_state(vm_state) == state
    if state is not None:
        assert load_state_table().aggregate("nova.instance", state)[1] != "N/A"


def test_push_driver_has_nothing_to_poll() -> None:
    driver = NovaDriver()
    assert (driver.name, driver.has_get_all, driver.has_changes) == ("nova", False, False)
    assert set(driver.entity_types) == {"nova.instance", "nova.host"}
    assert driver.get_all() == ()
    assert isinstance(driver.transformer(), NovaTransformer)
    assert driver.parse(raw(CREATE_END), RECEIVED)[0].payload["id"] == VM
    assert NovaDriver({VERSIONED}).read(raw(LEGACY_CREATE), RECEIVED).ignored == IGNORED_FORMAT
    with pytest.raises(ValueError, match="formats"):
        NovaDriver({"json"})
    with pytest.raises(ValueError, match="formats"):
        NovaDriver(set())


# -- errors ---------------------------------------------------------------------------------------

CREATE = load(CREATE_END)
LEGACY_BODY = load(LEGACY_UPDATE)
SERVICE = load(SERVICE_UPDATE)
LISTENER_FORM = load(SEARCHLIGHT_DELETE)
INNER = unwrapped(ENVELOPE_DELETE)
DATA = ("payload", "nova_object.data")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"", "body"),
        ("[1, 2]", "body"),
        ([CREATE], "body"),
        (None, "body"),
        ({"oslo.version": "2.0", "oslo.message": "{not json"}, "oslo.message"),
        ({"oslo.version": "2.0", "oslo.message": 5}, "oslo.message"),
        ({"oslo.version": "2.0", "oslo.message": "[]"}, "oslo.message"),
        ({"oslo.version": "1.0", "oslo.message": "{}"}, "oslo.version"),
        ({"oslo.version": 2, "oslo.message": "{}"}, "oslo.version"),
        (envelope({}), "oslo.message.event_type"),
        (envelope(_without(INNER, "payload")), "oslo.message.payload"),
        (envelope(_without(INNER, "payload", "instance_id")), "oslo.message.payload.instance_id"),
        (envelope(_with(INNER, "soon", "timestamp")), "oslo.message.timestamp"),
        (envelope(_with(INNER, 7, "message_id")), "oslo.message.message_id"),
        (_without(CREATE, "event_type"), "event_type"),
        (_with(CREATE, 5, "event_type"), "event_type"),
        (_with(CREATE, "", "event_type"), "event_type"),
        (_without(CREATE, "payload"), "payload"),
        (_with(CREATE, [], "payload"), "payload"),
        (_without(CREATE, "payload", "nova_object.data"), "payload.nova_object.data"),
        (_with(CREATE, "x", *DATA), "payload.nova_object.data"),
        (_without(CREATE, *DATA, "uuid"), "payload.nova_object.data.uuid"),
        (_with(CREATE, "", *DATA, "uuid"), "payload.nova_object.data.uuid"),
        (_with(CREATE, 42, *DATA, "uuid"), "payload.nova_object.data.uuid"),
        (_with(CREATE, 1, *DATA, "state"), "payload.nova_object.data.state"),
        (_with(CREATE, ["compute"], *DATA, "host"), "payload.nova_object.data.host"),
        (_with(CREATE, {}, *DATA, "tenant_id"), "payload.nova_object.data.tenant_id"),
        (_with(CREATE, 1, *DATA, "instance_name"), "payload.nova_object.data.instance_name"),
        (_with(CREATE, "yesterday", "timestamp"), "timestamp"),
        (_with(CREATE, 1700000000, "timestamp"), "timestamp"),
        (_with(CREATE, "", "message_id"), "message_id"),
        (_with(CREATE, 5, "_unique_id"), "_unique_id"),
        (_without(LEGACY_BODY, "payload", "instance_id"), "payload.instance_id"),
        (_with(LEGACY_BODY, None, "payload", "instance_id"), "payload.instance_id"),
        (_with(LEGACY_BODY, 3, "payload", "host"), "payload.host"),
        (_with(LEGACY_BODY, True, "payload", "display_name"), "payload.display_name"),
        (_with(LISTENER_FORM, "x", "metadata"), "metadata"),
        (_with(LISTENER_FORM, "14 March", "metadata", "timestamp"), "metadata.timestamp"),
        (_with(LISTENER_FORM, 5, "metadata", "message_id"), "metadata.message_id"),
        (_without(SERVICE, *DATA, "binary"), "payload.nova_object.data.binary"),
        (_without(SERVICE, *DATA, "host"), "payload.nova_object.data.host"),
        (_with(SERVICE, "yes", *DATA, "disabled"), "payload.nova_object.data.disabled"),
        (_with(SERVICE, 1, *DATA, "forced_down"), "payload.nova_object.data.forced_down"),
        (_with(SERVICE, 1, *DATA, "disabled_reason"), "payload.nova_object.data.disabled_reason"),
    ],
)
def test_errors_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        read_notification(body, RECEIVED)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_other_services_are_ignored_even_when_malformed() -> None:
    """A notification of another service is not inspected beyond its event type."""
    notification = read_notification({"event_type": "port.create.end", "payload": "anything"}, RECEIVED)
    assert (notification.event_type, notification.events, notification.ignored) == (
        "port.create.end",
        [],
        IGNORED_EVENT_TYPE,
    )


def test_transformer_rejects_an_unusable_logged_payload() -> None:
    proc = make_processor()
    (event,) = parse_notification(raw(CREATE_END), RECEIVED)
    event.payload["kind"] = "volume"
    with pytest.raises(EventRejected, match=r"payload\.kind"):
        proc.process(event)
    event.payload["kind"] = "instance"
    del event.payload["id"]
    with pytest.raises(EventRejected, match=r"payload\.id"):
        proc.process(event)
    event.payload.update(id=VM, host=5)
    with pytest.raises(EventRejected, match=r"payload\.host"):
        proc.process(event)
    assert len(proc.graph) == 0
