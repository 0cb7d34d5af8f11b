"""The Doctor / Vitrage event API datasource against the real ``POST /v1/event`` bodies.

Every file in ``../shared/fixtures/vitrage-events`` is used as it is stored.
A fake nova datasource loads hosts whose ids differ from their names, so a test
can tell "linked to the real host" from "linked to a placeholder".
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.upstream import FIXTURES as UPSTREAM
from vitrail.datasources import alertmanager
from vitrail.datasources.doctor import (
    DoctorDriver,
    DoctorTransformer,
    PayloadError,
    is_alertmanager,
    parse_event,
)
from vitrail.datasources.state_tables import load_state_table
from vitrail.graph.events import Event, EventAction
from vitrail.graph.identity import vitrage_id_for
from vitrail.graph.model import Vertex
from vitrail.graph.processor import EventRejected, Processor
from vitrail.graph.properties import Direction
from vitrail.graph.updates import EntityUpdate

FIXTURES = UPSTREAM / "vitrage-events"
FILES = sorted(FIXTURES.glob("*.json"))
API_DOC = "vitrage-api-doc__compute.host.down.json"
DOWN_COMPUTE = "vitrage-manual-tests__compute.host.down__status_down_compute-0-0__no_time.json"
DOWN_DEVSTACK = "vitrage-manual-tests__compute.host.down__status_down_my-devstack__no_time.json"
UP_DEVSTACK = "vitrage-manual-tests__compute.host.down__status_up_my-devstack__no_time.json"

RECEIVED = "2026-11-22T00:30:00Z"
RECEIVED_NORMALIZED = "2026-11-22 00:30:00.000000+00:00"
LATER = "2026-11-22T00:35:00.5Z"
T_LOAD = "2026-11-22 00:00:00.000000+00:00"
#: host id -> name, as a nova datasource would report them.
HOSTS = {"c0-uuid": "compute-0-0", "devstack-uuid": "my-devstack"}


def load(name: str) -> Any:
    """A fixture, decoded, exactly as stored."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


class FakeNovaHosts:
    """``{"id", "name"}`` → a nova.host, as a nova datasource would report it."""

    def transform(self, event: Event) -> list[EntityUpdate]:
        p = event.payload
        return [EntityUpdate("RESOURCE", "nova.host", p["id"], {"name": p["name"], "state": "available"}, [])]


def make_processor(with_hosts: bool = True) -> Processor:
    proc = Processor({"fakenova": FakeNovaHosts(), "doctor": DoctorTransformer()}, load_state_table())
    if with_hosts:
        for host_id, name in HOSTS.items():
            proc.process(
                Event(f"fakenova/{host_id}", "fakenova", EventAction.UPDATE, T_LOAD, {"id": host_id, "name": name})
            )
    return proc


def post(proc: Processor, body: Any, received: str = RECEIVED) -> Event | None:
    (event,) = parse_event(body, received)
    return proc.process(event)


def alarm(proc: Processor, hostname: str, event_type: str = "compute.host.down") -> Vertex | None:
    return proc.graph.get_vertex(vitrage_id_for("ALARM", "doctor", f"{event_type}:{hostname}"))


def host_of(proc: Processor, vertex: Vertex) -> Vertex:
    """The one vertex the alarm is ``on``; the edge must go alarm → host."""
    targets = proc.graph.neighbors(vertex.vitrage_id, direction=Direction.OUT, labels=["on"])
    assert len(targets) == 1, targets
    assert not proc.graph.neighbors(vertex.vitrage_id, direction=Direction.IN)
    return targets[0]


# -- every fixture -------------------------------------------------------------------------------


def test_every_fixture_is_used() -> None:
    assert [f.name for f in FILES] == sorted([API_DOC, DOWN_COMPUTE, DOWN_DEVSTACK, UP_DEVSTACK])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_fixture_parses_and_applies(path: Path) -> None:
    body = json.loads(path.read_text(encoding="utf-8"))
    (event,) = parse_event(body, RECEIVED)
    assert event.datasource == "doctor"
    assert event.received_at == RECEIVED_NORMALIZED
    down = body["details"]["status"] == "down"
    assert event.action is (EventAction.UPDATE if down else EventAction.DELETE)
    assert event.sample_time == (RECEIVED_NORMALIZED if "time" not in body else "2016-04-12 08:00:00.000000+00:00")
    again = Event.from_record(orjson.loads(orjson.dumps(event.to_record())))
    assert again.payload == event.payload
    proc = make_processor()
    assert proc.process(event) is not None
    vertex = alarm(proc, body["details"]["hostname"])
    assert (vertex is not None) is down


def test_api_doc_sample_raises_an_alarm_with_every_detail() -> None:
    proc = make_processor()
    post(proc, load(API_DOC))
    vertex = alarm(proc, "compute-1")
    assert vertex is not None
    props = vertex.properties()
    assert props["name"] == "compute.host.down"
    assert props["vitrage_type"] == "doctor"
    assert props["vitrage_datasource_name"] == "doctor"
    assert props["severity"] == "critical"
    assert props["vitrage_aggregated_severity"] == "CRITICAL"
    assert props["vitrage_operational_severity"] == "CRITICAL"
    assert props["state"] == "Active"
    assert props["status"] == "down"
    assert props["hostname"] == "compute-1"
    assert props["source"] == "sample_monitor"
    assert props["cause"] == "link-down"
    assert props["monitor_id"] == "monitor-1"
    assert props["monitor_event_id"] == "123"
    assert props["time"] == "2016-04-12 08:00:00.000000+00:00"
    assert props["vitrage_sample_timestamp"] == "2016-04-12 08:00:00.000000+00:00"
    assert props["update_timestamp"] == "2016-04-12 08:00:00.000000+00:00"
    # compute-1 is not a known host: a placeholder nova.host carries the alarm.
    host = host_of(proc, vertex)
    assert (host.vitrage_type, host.id, host.vitrage_is_placeholder) == ("nova.host", "compute-1", True)


def test_host_down_is_on_the_host_with_that_name() -> None:
    proc = make_processor()
    post(proc, load(DOWN_COMPUTE))
    vertex = alarm(proc, "compute-0-0")
    assert vertex is not None
    assert host_of(proc, vertex).id == "c0-uuid"  # matched by name, not a placeholder 'compute-0-0'
    assert not any(v.vitrage_is_placeholder for v in proc.graph.vertices())
    assert vertex.get("time") == RECEIVED_NORMALIZED  # no 'time' in the body


def test_down_then_up_raises_then_clears() -> None:
    proc = make_processor()
    assert post(proc, load(DOWN_DEVSTACK)) is not None
    vertex = alarm(proc, "my-devstack")
    assert vertex is not None
    assert host_of(proc, vertex).id == "devstack-uuid"
    assert post(proc, load(UP_DEVSTACK), received=LATER) is not None
    assert alarm(proc, "my-devstack") is None
    host = proc.graph.get_vertex(vitrage_id_for("RESOURCE", "nova.host", "devstack-uuid"))
    assert host is not None
    assert not host.in_edges and not host.out_edges
    # Down again later: a new alarm.
    assert post(proc, load(DOWN_DEVSTACK), received="2026-11-22T00:40:00Z") is not None
    assert alarm(proc, "my-devstack") is not None


def test_up_and_down_at_the_same_instant_are_distinct_events() -> None:
    """Both no-time fixtures posted within one clock tick: the up still clears."""
    proc = make_processor()
    post(proc, load(DOWN_DEVSTACK))
    assert post(proc, load(UP_DEVSTACK)) is not None
    assert alarm(proc, "my-devstack") is None


def test_reposting_the_same_body_is_a_duplicate() -> None:
    proc = make_processor()
    assert post(proc, load(API_DOC)) is not None
    assert post(proc, load(API_DOC), received=LATER) is None  # it carries its own time
    assert post(proc, load(DOWN_COMPUTE)) is not None
    assert post(proc, load(DOWN_COMPUTE)) is None  # same received_at: the same delivery


def test_same_type_and_host_is_one_alarm() -> None:
    proc = make_processor()
    post(proc, load(DOWN_COMPUTE))
    post(proc, load(DOWN_COMPUTE), received=LATER)
    alarms = [v for v in proc.graph.vertices() if v.vitrage_category == "ALARM"]
    assert len(alarms) == 1
    assert alarms[0].get("time") == "2026-11-22 00:35:00.500000+00:00"
    other = load(DOWN_COMPUTE)
    other["type"] = "compute.host.nic.down"
    post(proc, other)
    assert alarm(proc, "compute-0-0", "compute.host.nic.down") is not None
    assert len([v for v in proc.graph.vertices() if v.vitrage_category == "ALARM"]) == 2


def test_missing_severity_is_critical_as_in_vitrage() -> None:
    body = load(DOWN_COMPUTE)
    del body["details"]["severity"]
    proc = make_processor()
    post(proc, body)
    vertex = alarm(proc, "compute-0-0")
    assert vertex is not None
    assert vertex.get("severity") == "critical"
    assert vertex.get("vitrage_operational_severity") == "CRITICAL"


def test_other_severities_use_the_doctor_table() -> None:
    body = load(DOWN_COMPUTE)
    body["details"]["severity"] = "major"
    proc = make_processor()
    post(proc, body)
    vertex = alarm(proc, "compute-0-0")
    assert vertex is not None
    assert vertex.get("vitrage_aggregated_severity") == "MAJOR"
    assert vertex.get("vitrage_operational_severity") == "SEVERE"


def test_details_cannot_set_what_the_graph_owns() -> None:
    body = load(DOWN_COMPUTE)
    body["details"].update(
        vitrage_severity="OK", vitrage_resource_id="x", project_id="p1", id="spoof", name="spoof", state="ok"
    )
    proc = make_processor()
    post(proc, body)
    vertex = alarm(proc, "compute-0-0")
    assert vertex is not None
    props = vertex.properties()
    assert "vitrage_severity" not in props and "vitrage_resource_id" not in props and "project_id" not in props
    assert (props["id"], props["name"], props["state"]) == (
        "compute.host.down:compute-0-0",
        "compute.host.down",
        "Active",
    )
    assert props["vitrage_operational_severity"] == "CRITICAL"


@pytest.mark.parametrize(
    ("time", "expected"),
    [
        ("2016-04-12T08:00:00.12345", "2016-04-12 08:00:00.123450+00:00"),
        ("2016-04-12T08:00:00.123456789", "2016-04-12 08:00:00.123456+00:00"),
        ("2016-04-12 08:00:00", "2016-04-12 08:00:00.000000+00:00"),
        ("2016-04-12T10:00:00+02:00", "2016-04-12 08:00:00.000000+00:00"),
        ("2016-04-12T08:00:00Z", "2016-04-12 08:00:00.000000+00:00"),
        (None, RECEIVED_NORMALIZED),
    ],
)
def test_time_any_fraction_naive_is_utc(time: str | None, expected: str) -> None:
    body = load(API_DOC)
    body["time"] = time
    (event,) = parse_event(body, RECEIVED)
    assert event.sample_time == expected
    assert event.payload["time"] == expected


# -- telling Alertmanager bodies apart ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "body", "expected"),
    [
        ("Alertmanager/0.25.0", None, True),
        ("Alertmanager", {}, True),
        ("python-vitrageclient", load(API_DOC), False),
        ("curl/8.0", {"type": "prometheus.alarm", "details": {"alerts": []}}, True),
        (None, load(API_DOC), False),
        ("alertmanager/0.25.0", None, False),  # Vitrage's test is case-sensitive
        ("", None, False),
    ],
)
def test_is_alertmanager(user_agent: str | None, body: Any, expected: bool) -> None:
    assert is_alertmanager(user_agent, body) is expected


def test_an_alertmanager_body_is_rejected_here_with_a_field() -> None:
    """Posted without the User-Agent, an Alertmanager body is not a Doctor event: 400 naming 'type'."""
    body = json.loads((UPSTREAM / "alertmanager" / "am025__firing_single_HighInodeUsage.json").read_text())
    with pytest.raises(PayloadError) as caught:
        parse_event(body, RECEIVED)
    assert caught.value.field == "type"


def test_one_payload_error_class_for_both_parsers() -> None:
    assert PayloadError is alertmanager.PayloadError


def test_push_driver_has_nothing_to_poll() -> None:
    driver = DoctorDriver()
    assert driver.name == "doctor"
    assert driver.get_all() == ()
    assert driver.has_changes is False
    assert isinstance(driver.transformer(), DoctorTransformer)
    assert driver.parse(load(API_DOC), RECEIVED)[0].event_id == parse_event(load(API_DOC), RECEIVED)[0].event_id


# -- errors --------------------------------------------------------------------------------------


def _edit(name: str, change: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A fixture with dotted keys set (``change``) or removed (``drop``)."""
    body = copy.deepcopy(load(name))
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        target = body
        for key in parents:
            target = target[key]
        target[last] = value
    for dotted in drop:
        *parents, last = dotted.split(".")
        target = body
        for key in parents:
            target = target[key]
        del target[last]
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([load(API_DOC)], "body"),
        ("compute.host.down", "body"),
        (None, "body"),
        (_edit(API_DOC, {}, drop=("type",)), "type"),
        (_edit(API_DOC, {"type": 3}), "type"),
        (_edit(API_DOC, {"type": " "}), "type"),
        (_edit(API_DOC, {}, drop=("details",)), "details"),
        (_edit(API_DOC, {"details": "compute-1 down"}), "details"),
        (_edit(API_DOC, {}, drop=("details.hostname",)), "details.hostname"),
        (_edit(API_DOC, {"details.hostname": ""}), "details.hostname"),
        (_edit(API_DOC, {"details.hostname": ["compute-1"]}), "details.hostname"),
        (_edit(API_DOC, {}, drop=("details.status",)), "details.status"),
        (_edit(API_DOC, {"details.status": "DOWN"}), "details.status"),
        (_edit(API_DOC, {"details.status": "degraded"}), "details.status"),
        (_edit(API_DOC, {"details.severity": 5}), "details.severity"),
        (_edit(API_DOC, {"details.source": {"name": "x"}}), "details.source"),
        (_edit(API_DOC, {"time": "April 12th"}), "time"),
        (_edit(API_DOC, {"time": 1460448000}), "time"),
        (_edit(API_DOC, {"time": ""}), "time"),
        (_edit(API_DOC, {"time": "0001-01-01T00:00:00+05:00"}), "time"),
    ],
)
def test_errors_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_event(body, RECEIVED)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_transformer_rejects_an_unusable_logged_payload() -> None:
    proc = make_processor()
    (event,) = parse_event(load(API_DOC), RECEIVED)
    del event.payload["hostname"]
    with pytest.raises(EventRejected, match=r"payload\.hostname"):
        proc.process(event)
    assert proc.sequence == 2  # the two hosts; the bad event got no number
