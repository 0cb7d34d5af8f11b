"""The static datasource, driven through the real processor.

Every test writes files into a temporary directory, runs the driver's
``get_all`` / ``get_changes`` the way the collector does, applies the events
with :class:`Processor` and looks at the resulting graph.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from vitrail.datasources import static
from vitrail.datasources.base import DatasourceError, RawChange
from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
from vitrail.datasources.static import StaticDriver, StaticTransformer, typed_scalar
from vitrail.graph.events import Event, EventAction
from vitrail.graph.identity import vitrage_id_for
from vitrail.graph.model import Vertex
from vitrail.graph.processor import Processor, ProcessorConfig
from vitrail.graph.states import StateTable
from vitrail.graph.updates import EntityUpdate, TransformError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "static"
RESOURCE = "RESOURCE"

# The same topology as Vitrage's test resource switch_to_host.yaml, written anew:
# three switches and a router (without a state) in front of four nova hosts.
SWITCH_TO_HOST = """\
metadata:
  name: switches in front of hosts
  description: three switches, one router, four compute hosts
definitions:
  entities:
    - static_id: s1
      type: switch
      id: 12345
      name: switch-1
      state: available
    - static_id: s2
      type: switch
      id: 23456
      name: switch-2
      state: available
    - static_id: s3
      type: switch
      id: 34567
      name: switch-3
      state: available
    - static_id: r1
      type: router
      id: 45678
      name: router-1
    - static_id: h1
      type: nova.host
      id: 1
    - static_id: h2
      type: nova.host
      id: 2
    - static_id: h3
      type: nova.host
      id: 3
    - static_id: h4
      type: nova.host
      id: 4
  relationships:
    - {source: s1, target: r1, relationship_type: attached}
    - {source: s2, target: r1, relationship_type: attached}
    - {source: s3, target: r1, relationship_type: attached}
    - {source: s1, target: h1, relationship_type: attached}
    - {source: s1, target: h2, relationship_type: attached}
    - {source: s2, target: h2, relationship_type: attached}
    - {source: s2, target: h3, relationship_type: attached}
    - {source: s3, target: h3, relationship_type: attached}
    - {source: s3, target: h4, relationship_type: attached}
"""

# A small file the change tests edit: a switch, a router and a host.
SMALL = """\
definitions:
  entities:
    - static_id: s1
      type: switch
      id: sw-1
      name: switch-1
      state: {state}
      rack: 7
    - static_id: r1
      type: router
      id: rt-1
      name: router-1
    - static_id: h1
      type: nova.host
      id: host-1
  relationships:
{relationships}
"""
BOTH_LINKS = """\
    - {source: s1, target: r1, relationship_type: attached}
    - {source: s1, target: h1, relationship_type: attached}"""

SWITCH_VALUES = {
    "category": "RESOURCE",
    "values": [
        {"aggregated values": {"priority": 40, "original values": [{"name": "ERROR", "operational_value": "ERROR"}]}},
        {"aggregated values": {"priority": 10, "original values": [{"name": "AVAILABLE", "operational_value": "OK"}]}},
    ],
}


# -- harness -------------------------------------------------------------------------


_mtime = [1_800_000_000_000_000_000]


def write(directory: Path, name: str, text: str) -> Path:
    """Write a file with a fresh modification time.

    A rewrite within one tick of a coarse file system clock keeps its mtime;
    setting it explicitly keeps the change detection tests deterministic.
    """
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    _mtime[0] += 1_000_000_000
    os.utime(path, ns=(_mtime[0], _mtime[0]))
    return path


def small(state: str = "available", relationships: str = BOTH_LINKS) -> str:
    return SMALL.format(state=state, relationships=relationships)


class Harness:
    """The collector and graph service in miniature: rounds, batches and times."""

    def __init__(self, driver: StaticDriver, processor: Processor | None = None, **config: Any) -> None:
        self.driver = driver
        self.processor = processor or Processor({"static": driver.transformer()}, config=ProcessorConfig(**config))
        self.round = 0
        self.batch = 0
        self.tick = 0
        self.log: list[Event] = []

    def now(self) -> str:
        self.tick += 1
        return f"2026-11-22 00:{self.tick // 60:02d}:{self.tick % 60:02d}.000000+00:00"

    def get_all(self) -> None:
        self.round += 1
        events = self.driver.round_events(self.driver.get_all(), self.round, self.now())
        self.log += self.processor.process_many(events)

    def get_changes(self) -> list[RawChange]:
        self.batch += 1
        changes = list(self.driver.get_changes())
        self.log += self.processor.process_many(self.driver.change_events(changes, str(self.batch), self.now()))
        return changes

    def vertex(self, vitrage_type: str, entity_id: str, category: str = RESOURCE) -> Vertex | None:
        return self.processor.graph.get_vertex(vitrage_id_for(category, vitrage_type, entity_id))

    def edges(self) -> set[tuple[str, str, str]]:
        """Every edge as ``(source type:id, label, target type:id)``."""
        graph = self.processor.graph

        def name(vitrage_id: str) -> str:
            vertex = graph.vertex(vitrage_id)
            return f"{vertex.vitrage_type}:{vertex.id}"

        return {(name(e.source), e.label, name(e.target)) for e in graph.edges()}


class OtherTransformer:
    """A stand-in for a datasource that owns ``nova.host`` (nova, the simulator)."""

    def transform(self, event: Event) -> list[EntityUpdate]:
        p = event.payload
        return [EntityUpdate(RESOURCE, "nova.host", p["id"], {"name": p["name"], "state": p["state"]}, [])]


def other_host(host_id: str, name: str, time: str) -> Event:
    return Event(
        f"other/{host_id}/{time}",
        "other",
        EventAction.UPDATE,
        time,
        {"id": host_id, "name": name, "state": "available"},
    )


@pytest.fixture
def topology(tmp_path: Path) -> Path:
    directory = tmp_path / "static"
    directory.mkdir()
    return directory


# -- loading Vitrage files -------------------------------------------------------------


def test_vitrage_file_builds_vertices_and_edges(topology: Path) -> None:
    write(topology, "switch_to_host.yaml", SWITCH_TO_HOST)
    harness = Harness(StaticDriver(topology))
    harness.get_all()

    assert harness.driver.errors == {}
    graph = harness.processor.graph
    expected = {
        ("switch", "12345"), ("switch", "23456"), ("switch", "34567"), ("router", "45678"),
        ("nova.host", "1"), ("nova.host", "2"), ("nova.host", "3"), ("nova.host", "4"),
    }  # fmt: skip
    assert {(v.vitrage_type, v.id) for v in graph.vertices()} == expected
    for vitrage_type, entity_id in expected:
        vertex = harness.vertex(vitrage_type, entity_id)
        assert vertex is not None
        assert vertex.vitrage_id == vitrage_id_for(RESOURCE, vitrage_type, entity_id)
        assert vertex.vitrage_category == RESOURCE
        assert vertex.vitrage_datasource_name == "static"
        assert not vertex.vitrage_is_placeholder
    switch = harness.vertex("switch", "12345")
    assert switch is not None
    assert (switch.name, switch.state, switch.get("static_id")) == ("switch-1", "available", "s1")
    router = harness.vertex("router", "45678")
    assert router is not None
    assert router.state is None  # Vitrage's transformer crashed on this entity
    assert harness.edges() == {
        ("switch:12345", "attached", "router:45678"),
        ("switch:23456", "attached", "router:45678"),
        ("switch:34567", "attached", "router:45678"),
        ("switch:12345", "attached", "nova.host:1"),
        ("switch:12345", "attached", "nova.host:2"),
        ("switch:23456", "attached", "nova.host:2"),
        ("switch:23456", "attached", "nova.host:3"),
        ("switch:34567", "attached", "nova.host:3"),
        ("switch:34567", "attached", "nova.host:4"),
    }


def test_payload_is_self_contained_and_keyed_by_category_type_id(topology: Path) -> None:
    write(topology, "switch_to_host.yaml", SWITCH_TO_HOST)
    entities = {e.key: e.payload for e in StaticDriver(topology, {"nova.host"}).get_all()}

    assert entities["RESOURCE:switch:12345"] == {
        "category": RESOURCE,
        "type": "switch",
        "id": "12345",
        "name": "switch-1",
        "state": "available",
        "properties": {"static_id": "s1"},
        "reference": False,
        "relationships": [
            {
                "category": RESOURCE,
                "type": "router",
                "id": "45678",
                "relationship_type": "attached",
                "name": "router-1",
            },
            {"category": RESOURCE, "type": "nova.host", "id": "1", "relationship_type": "attached"},
            {"category": RESOURCE, "type": "nova.host", "id": "2", "relationship_type": "attached"},
        ],
    }
    assert entities["RESOURCE:nova.host:1"]["reference"] is True
    assert entities["RESOURCE:router:45678"]["relationships"] == []


def test_scalar_fields_are_text_and_extra_properties_keep_types(topology: Path) -> None:
    write(
        topology,
        "types.yaml",
        """\
        definitions:
          entities:
            - static_id: 7
              type: switch
              id: 012
              name: 3.0
              state: yes
              ports: 48
              ratio: 0.5
              monitored: true
              uplink: on
              mode: 0755
              version: "16"
              built: 2024-01-02
              nothing:
              tags: [a, 1, false]
              location: {row: 3, rack: B}
        """,
    )
    harness = Harness(StaticDriver(topology))
    harness.get_all()

    vertex = harness.vertex("switch", "012")
    assert vertex is not None
    assert (vertex.name, vertex.state, vertex.get("static_id")) == ("3.0", "yes", "7")
    assert vertex.get("ports") == 48
    assert vertex.get("ratio") == 0.5
    assert vertex.get("monitored") is True
    assert vertex.get("uplink") == "on"
    assert vertex.get("mode") == "0755"
    assert vertex.get("version") == "16"
    assert vertex.get("built") == "2024-01-02"
    assert "nothing" not in vertex
    assert vertex.get("tags") == ["a", 1, False]
    assert vertex.get("location") == {"row": 3, "rack": "B"}


SCALARS = [
    ("12", 12), ("-3", -3), ("1e3", 1000.0), ("1.0e3", 1000.0), (".5", 0.5), ("False", False),
    ("~", None), ("NULL", None),
    # YAML 1.1 would type these; here they stay the text written
    ("yes", "yes"), ("off", "off"), ("0x1F", "0x1F"), ("1:30", "1:30"), ("007", "007"), ("2024-01-02", "2024-01-02"),
    (".inf", ".inf"), ("1e999", "1e999"), ("99999999999999999999", "99999999999999999999"),
    # quoted or explicitly tagged: text
    ("'5'", "5"), ("!!str 5", "5"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), SCALARS)
def test_typed_scalar_follows_yaml_1_2_core(text: str, expected: Any) -> None:
    node = static._compose(f"v: {text}", "t.yaml")[0].value[0][1]
    assert typed_scalar(node) == expected
    assert type(typed_scalar(node)) is type(expected)


def test_example_files_load_without_errors_next_to_the_simulator() -> None:
    simulator = SimulatorDriver(SimulatorShape(hosts=4, instances_per_host=1))
    driver = StaticDriver(EXAMPLES, simulator.entity_types)
    processor = Processor({"simulator": simulator.transformer(), "static": driver.transformer()})
    harness = Harness(driver, processor)
    processor.process_many(simulator.round_events(simulator.get_all(), 1, harness.now()))
    harness.get_all()

    assert driver.errors == {}
    assert driver.warnings == {}
    assert len(driver.get_all()) == 9
    host = harness.vertex("nova.host", "host-00001")
    assert host is not None
    assert host.vitrage_datasource_name == "simulator"  # the static reference did not take it over
    assert host.get("static_id") is None
    assert ("switch:tor-a1.rack-a", "attached", "nova.host:host-00001") in harness.edges()
    assert ("nova.host:host-00002", "contains", "application:billing") in harness.edges()
    assert ("application:billing", "uses", "database:billing-db") in harness.edges()
    app = harness.vertex("application", "billing")
    assert app is not None
    assert (app.get("tier"), app.get("public"), app.get("owner")) == (1, True, "payments-team")


def test_yml_files_are_read_and_other_files_ignored(topology: Path) -> None:
    write(topology, "a.yml", "definitions: {entities: [{static_id: a, type: switch}]}")
    write(topology, "b.json", "definitions: {entities: [{static_id: b, type: switch}]}")
    write(topology, "c.yaml.orig", "definitions: {entities: [{static_id: c, type: switch}]}")
    write(topology, "notes.txt", "not yaml: [")
    (topology / "sub").mkdir()
    write(topology / "sub", "d.yaml", "definitions: {entities: [{static_id: d, type: switch}]}")
    (topology / "dir.yaml").mkdir()

    driver = StaticDriver(topology)
    assert [e.key for e in driver.get_all()] == ["RESOURCE:switch:a"]
    assert driver.errors == {}


# -- changes ---------------------------------------------------------------------------


def test_removed_relationship_disappears_and_the_rest_stays(topology: Path) -> None:
    write(topology, "small.yaml", small())
    harness = Harness(StaticDriver(topology))
    harness.get_all()
    assert harness.edges() == {
        ("switch:sw-1", "attached", "router:rt-1"),
        ("switch:sw-1", "attached", "nova.host:host-1"),
    }

    write(topology, "small.yaml", small(relationships="    - {source: s1, target: r1, relationship_type: attached}"))
    changes = harness.get_changes()

    assert [c.key for c in changes] == ["RESOURCE:switch:sw-1"]
    assert harness.edges() == {("switch:sw-1", "attached", "router:rt-1")}
    # host-1 was only a neighbour of the removed edge, but it is an entity of the file too
    assert harness.vertex("nova.host", "host-1") is not None
    assert harness.processor.graph.num_vertices == 3


def test_changed_state_updates_state_and_aggregated_state(topology: Path) -> None:
    write(topology, "small.yaml", small())
    driver = StaticDriver(topology)
    processor = Processor({"static": driver.transformer()}, StateTable.from_documents({"switch": SWITCH_VALUES}))
    harness = Harness(driver, processor)
    harness.get_all()
    switch = harness.vertex("switch", "sw-1")
    assert switch is not None
    assert (switch.vitrage_aggregated_state, switch.vitrage_operational_state) == ("AVAILABLE", "OK")

    write(topology, "small.yaml", small(state="error"))
    changes = harness.get_changes()

    assert [c.key for c in changes] == ["RESOURCE:switch:sw-1"]
    assert switch.state == "error"
    assert (switch.vitrage_aggregated_state, switch.vitrage_operational_state) == ("ERROR", "ERROR")


def test_changes_compare_every_property_and_removed_properties_are_unset(topology: Path) -> None:
    write(topology, "small.yaml", small())
    harness = Harness(StaticDriver(topology))
    harness.get_all()

    write(topology, "small.yaml", small().replace("      rack: 7\n", "      vendor: acme\n"))
    changes = harness.get_changes()

    assert [c.key for c in changes] == ["RESOURCE:switch:sw-1"]  # Vitrage would not have noticed
    switch = harness.vertex("switch", "sw-1")
    assert switch is not None
    assert switch.get("vendor") == "acme"
    assert "rack" not in switch


def test_removed_entity_is_deleted_by_get_changes(topology: Path) -> None:
    write(topology, "small.yaml", small())
    harness = Harness(StaticDriver(topology))
    harness.get_all()

    write(
        topology,
        "small.yaml",
        small(relationships="    - {source: s1, target: h1, relationship_type: attached}").replace(
            "    - static_id: r1\n      type: router\n      id: rt-1\n      name: router-1\n", ""
        ),
    )
    changes = harness.get_changes()

    assert sorted((c.key, c.deleted) for c in changes) == [
        ("RESOURCE:router:rt-1", True),
        ("RESOURCE:switch:sw-1", False),
    ]
    assert harness.vertex("router", "rt-1") is None
    assert harness.edges() == {("switch:sw-1", "attached", "nova.host:host-1")}


def test_only_changed_files_are_parsed_again(topology: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(topology, "a.yaml", small())
    write(topology, "b.yaml", "definitions: {entities: [{static_id: x, type: switch}]}")
    driver = StaticDriver(topology)
    driver.get_all()
    parsed: list[str] = []
    real_parse = static.parse_bytes
    monkeypatch.setattr(static, "parse_bytes", lambda data, name: parsed.append(name) or real_parse(data, name))

    assert driver.get_changes() == []
    assert parsed == []
    write(topology, "b.yaml", "definitions: {entities: [{static_id: x, type: switch, state: up}]}")
    assert [c.key for c in driver.get_changes()] == ["RESOURCE:switch:x"]
    assert parsed == ["b.yaml"]
    write(topology, "a.yaml", small())  # saved again, same bytes
    assert driver.get_changes() == []
    driver.get_all()  # reads every file, parses none: nothing changed
    assert parsed == ["b.yaml"]


def test_payloads_handed_out_are_copies(topology: Path) -> None:
    write(topology, "small.yaml", small())
    driver = StaticDriver(topology)
    for entity in driver.get_all():
        entity.payload["vitrage_sample_date"] = "whatever a caller adds"
        entity.payload["relationships"].clear()

    assert driver.get_changes() == []
    write(topology, "small.yaml", small(state="error"))
    (change,) = driver.get_changes()
    assert change.payload["state"] == "error"
    assert len(change.payload["relationships"]) == 2


def test_deleted_file_removes_its_entities(topology: Path) -> None:
    write(topology, "small.yaml", small())
    write(topology, "other.yaml", "definitions: {entities: [{static_id: x, type: switch}]}")
    harness = Harness(StaticDriver(topology))
    harness.get_all()

    (topology / "small.yaml").unlink()
    changes = harness.get_changes()

    assert sorted(c.key for c in changes if c.deleted) == [
        "RESOURCE:nova.host:host-1", "RESOURCE:router:rt-1", "RESOURCE:switch:sw-1",
    ]  # fmt: skip
    assert [(v.vitrage_type, v.id) for v in harness.processor.graph.vertices()] == [("switch", "x")]
    assert changes[0].payload.keys() == {"category", "type", "id"}


def test_consistency_deletes_an_entity_missing_from_two_get_all_rounds(topology: Path) -> None:
    write(topology, "small.yaml", small())
    harness = Harness(StaticDriver(topology), consistency_rounds=2)
    harness.get_all()
    write(topology, "small.yaml", small(relationships="    - {source: s1, target: r1, relationship_type: attached}"))
    write(topology, "small.yaml", (topology / "small.yaml").read_text().replace("id: host-1", "id: host-2"))

    harness.get_all()
    assert harness.vertex("nova.host", "host-1") is not None  # missing from one round only
    assert harness.vertex("nova.host", "host-2") is not None
    harness.get_all()
    assert harness.vertex("nova.host", "host-1") is None
    assert harness.vertex("switch", "sw-1") is not None


def test_replaying_the_event_log_rebuilds_the_same_graph(topology: Path) -> None:
    write(topology, "switch_to_host.yaml", SWITCH_TO_HOST)
    write(topology, "small.yaml", small())
    harness = Harness(StaticDriver(topology, {"nova.host"}))
    harness.get_all()
    write(topology, "small.yaml", small(state="error", relationships=""))
    harness.get_changes()

    records = [orjson.loads(orjson.dumps(e.to_record())) for e in harness.log]
    replica = Processor({"static": StaticTransformer()})  # no driver, no configuration
    replica.process_many(Event.from_record(r) for r in records)
    assert replica.graph_dump() == harness.processor.graph_dump()


# -- entities of other datasources -----------------------------------------------------


def test_reference_entity_never_overwrites_the_owner_but_is_created_when_absent(topology: Path) -> None:
    write(
        topology,
        "hosts.yaml",
        """\
        definitions:
          entities:
            - {static_id: s1, type: switch, id: sw-1}
            - {static_id: h1, type: nova.host, id: host-1, name: from-static, state: ERROR, rack: 9}
            - {static_id: h2, type: nova.host, id: host-2, name: from-static-2, state: available}
          relationships:
            - {source: s1, target: h1, relationship_type: attached}
            - {source: h2, target: s1, relationship_type: attached}
        """,
    )
    driver = StaticDriver(topology, foreign_types={"nova.host"})
    processor = Processor({"static": driver.transformer(), "other": OtherTransformer()})
    harness = Harness(driver, processor)
    processor.process(other_host("host-1", "compute-1", harness.now()))
    harness.get_all()

    host1 = harness.vertex("nova.host", "host-1")
    assert host1 is not None
    assert (host1.name, host1.state, host1.vitrage_datasource_name) == ("compute-1", "available", "other")
    assert "rack" not in host1
    assert "static_id" not in host1
    host2 = harness.vertex("nova.host", "host-2")
    assert host2 is not None
    assert (host2.name, host2.state, host2.vitrage_datasource_name) == ("from-static-2", "available", "static")
    assert harness.edges() == {
        ("switch:sw-1", "attached", "nova.host:host-1"),
        ("nova.host:host-2", "attached", "switch:sw-1"),
    }

    write(topology, "hosts.yaml", "definitions: {entities: [{static_id: s1, type: switch, id: sw-1}]}")
    harness.get_changes()

    assert harness.vertex("nova.host", "host-1") is host1  # owned by "other": stays
    assert harness.vertex("nova.host", "host-2") is None  # created by the file: goes
    assert harness.edges() == set()


def test_reference_edges_survive_an_owner_sample_newer_than_the_static_round(topology: Path) -> None:
    write(
        topology,
        "apps.yaml",
        """\
        definitions:
          entities:
            - {static_id: app, type: application, id: billing}
            - {static_id: h1, type: nova.host, id: host-1}
          relationships:
            - {source: h1, target: app, relationship_type: contains}
        """,
    )
    driver = StaticDriver(topology, foreign_types={"nova.host"})
    processor = Processor({"static": driver.transformer(), "other": OtherTransformer()})
    harness = Harness(driver, processor)
    static_time = harness.now()
    processor.process(other_host("host-1", "compute-1", harness.now()))  # sampled after the static round
    processor.process_many(driver.round_events(driver.get_all(), 1, static_time))

    assert ("nova.host:host-1", "contains", "application:billing") in harness.edges()


# -- bad files ---------------------------------------------------------------------------


def test_malformed_yaml_keeps_the_last_good_version(topology: Path) -> None:
    write(topology, "small.yaml", small())
    harness = Harness(StaticDriver(topology))
    harness.get_all()
    before = harness.processor.graph_dump()

    write(topology, "small.yaml", small().replace("      rack: 7\n", "      rack: [7\n"))
    assert harness.get_changes() == []
    assert harness.processor.graph_dump() == before

    errors = harness.driver.errors
    assert list(errors) == ["small.yaml"]
    assert len(errors["small.yaml"]) == 1
    (message,) = errors["small.yaml"]
    # the wording is libyaml's or PyYAML's, whichever parses; the place is the same
    assert message.startswith("small.yaml:9: yaml: while parsing a flow sequence (line 8), ")
    assert message.endswith("(column 16)")
    assert [e.key for e in harness.driver.get_all()] == [
        "RESOURCE:switch:sw-1", "RESOURCE:router:rt-1", "RESOURCE:nova.host:host-1",
    ]  # fmt: skip
    harness.get_all()
    harness.get_all()  # even across consistency rounds
    assert harness.processor.graph.num_vertices == 3
    assert harness.edges() == {
        ("switch:sw-1", "attached", "router:rt-1"),
        ("switch:sw-1", "attached", "nova.host:host-1"),
    }

    write(topology, "small.yaml", small(state="error"))
    assert [c.key for c in harness.get_changes()] == ["RESOURCE:switch:sw-1"]
    assert harness.driver.errors == {}


def test_invalid_file_logs_once(topology: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(topology, "bad.yaml", "definitions: {entities: [{type: switch}]}")
    driver = StaticDriver(topology)
    with caplog.at_level("INFO", logger="vitrail.datasources.static"):
        driver.get_all()
        driver.get_all()
        driver.get_changes()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "bad.yaml:1: definitions.entities[0].static_id: required" in messages[0]
    assert "contributes no entities" in messages[0]


def test_a_file_never_valid_contributes_nothing_and_others_still_load(topology: Path) -> None:
    write(topology, "a.yaml", "definitions: {entities: [{static_id: x, type: switch}]}")
    write(topology, "b.yaml", "definitions: {entities: [{static_id: y}]}")
    driver = StaticDriver(topology)
    assert [e.key for e in driver.get_all()] == ["RESOURCE:switch:x"]
    assert list(driver.errors) == ["b.yaml"]


BAD_FILES = [
    pytest.param(
        """\
        definitions:
          entities:
            - static_id: a
              type: switch
            - type: switch
              id: b
        """,
        {},
        ["bad.yaml:5: definitions.entities[1].static_id: required"],
        id="missing-static-id",
    ),
    pytest.param(
        """\
        definitions:
          entities:
            - static_id: a
              id: 1
        """,
        {},
        ["bad.yaml:3: definitions.entities[0].type: required"],
        id="missing-type",
    ),
    pytest.param(
        """\
        definitions:
          entities:
            - {static_id: a, type: switch}
          relationships:
            - source: a
              target: b
              relationship_type: attached
        """,
        {},
        ["bad.yaml:6: definitions.relationships[0].target: unknown static_id 'b'"],
        id="unknown-relationship-target",
    ),
    pytest.param(
        """\
        definitions:
          entities:
            - {static_id: a, type: switch}
            - {static_id: a, type: router}
        """,
        {},
        ["bad.yaml:4: definitions.entities[1].static_id: duplicate static_id 'a' (first at line 3)"],
        id="duplicate-static-id",
    ),
    pytest.param(
        "- static_id: a\n  type: switch\n",
        {},
        ["bad.yaml:1: document: expected a mapping, got a list"],
        id="not-a-mapping",
    ),
    pytest.param(
        "definitions: {entities: [{static_id: a, type: switch, name: " + "x" * 200 + "}]}\n",
        {"max_file_size": 100},
        ["bad.yaml:1: file: larger than the limit of 100 bytes"],
        id="file-too-large",
    ),
    pytest.param(
        """\
        definitions:
          entities:
            - static_id: a
              type: [switch]
              id: {x: 1}
              category: monitor
        """,
        {},
        [
            "bad.yaml:4: definitions.entities[0].type: expected a string, got a list",
            "bad.yaml:5: definitions.entities[0].id: expected a string, got a mapping",
            "bad.yaml:6: definitions.entities[0].category: must be one of RESOURCE, ALARM, got 'monitor'",
        ],
        id="wrong-types",
    ),
    pytest.param(
        """\
        definitions:
          entities:
            - static_id: a
              type: switch
              state: up
              state: down
        """,
        {},
        ["bad.yaml:6: definitions.entities[0].state: duplicate key (first at line 5)"],
        id="duplicate-key",
    ),
    pytest.param(
        "metadata: {name: x}\nentities: []\n",
        {},
        ["bad.yaml:1: definitions: required (top-level 'entities' is the legacy static_physical format)"],
        id="legacy-format",
    ),
    pytest.param(
        "",
        {},
        ["bad.yaml:1: document: the file is empty; expected a mapping with 'definitions'"],
        id="empty",
    ),
    pytest.param(
        "definitions:\n  entities:\n    - {static_id: a, type: switch, deep: &x [*x]}\n",
        {},
        ["bad.yaml:3: definitions.entities[0].deep"],
        id="recursive-alias",
    ),
    pytest.param(
        "definitions:\n  entities: [{static_id: a, type: switch}]\n---\nmore: 1\n",
        {},
        ["bad.yaml:3: yaml: expected a single document in the stream (line 1), but found another document (column 1)"],
        id="two-documents",
    ),
    pytest.param(
        "definitions:\n  entities: [{static_id: a, type: \xff}]\n".encode("latin-1"),
        {},
        ["bad.yaml:2: file: not UTF-8"],
        id="not-utf8",
    ),
]


@pytest.mark.parametrize(("content", "options", "expected"), BAD_FILES)
def test_validation_errors_name_file_line_and_field(
    topology: Path, content: str | bytes, options: dict[str, Any], expected: list[str]
) -> None:
    if isinstance(content, bytes):
        (topology / "bad.yaml").write_bytes(content)
    else:
        write(topology, "bad.yaml", content)
    driver = StaticDriver(topology, **options)

    assert driver.get_all() == []
    messages = driver.errors["bad.yaml"]
    assert len(messages) == len(expected), messages
    for message, prefix in zip(messages, expected, strict=True):
        assert message.startswith(prefix), message


def test_every_error_of_a_file_is_reported_in_line_order(topology: Path) -> None:
    write(
        topology,
        "bad.yaml",
        """\
        definitions:
          entities:
            - {static_id: a}
            - {type: switch}
            - {static_id: c, type: switch, category: x}
          relationships:
            - {source: c, target: zz, relationship_type: attached}
            - source: c
              target: yy
        """,
    )
    driver = StaticDriver(topology)
    driver.get_all()
    assert driver.errors["bad.yaml"] == [
        "bad.yaml:3: definitions.entities[0].type: required",
        "bad.yaml:4: definitions.entities[1].static_id: required",
        "bad.yaml:5: definitions.entities[2].category: must be one of RESOURCE, ALARM, got 'x'",
        "bad.yaml:7: definitions.relationships[0].target: unknown static_id 'zz'",
        "bad.yaml:8: definitions.relationships[1].relationship_type: required",
        "bad.yaml:9: definitions.relationships[1].target: unknown static_id 'yy'",
    ]


def test_deeply_nested_file_is_rejected_quickly(topology: Path) -> None:
    depth = 200_000  # libyaml's own composer would crash the process on this
    write(topology, "deep.yaml", "definitions: " + "[" * depth + "]" * depth + "\n")
    driver = StaticDriver(topology)

    assert driver.get_all() == []
    assert driver.errors == {
        "deep.yaml": [f"deep.yaml:1: yaml: nested more than {static.MAX_NESTING} levels (column 53)"]
    }


def test_aliases_cannot_expand_a_file_without_limit(topology: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(static, "MAX_NODES", 1000)
    levels = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 6)]
    write(
        topology,
        "laughs.yaml",
        "\n".join(levels) + "\ndefinitions:\n  entities:\n    - {static_id: a, type: switch, lol: *l5}\n",
    )
    driver = StaticDriver(topology)

    assert driver.get_all() == []
    (message,) = driver.errors["laughs.yaml"]
    assert "the file expands to more than 1000 YAML nodes" in message


def test_unreadable_directory_is_a_datasource_failure(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    driver = StaticDriver(not_a_directory)

    with pytest.raises(DatasourceError, match="cannot list the static directory"):
        driver.get_all()
    assert list(driver.errors) == [str(not_a_directory)]


def test_missing_directory_gives_no_entities_and_one_error(tmp_path: Path) -> None:
    directory = tmp_path / "nowhere"
    driver = StaticDriver(directory)

    assert driver.get_all() == []
    assert driver.get_changes() == []
    (message,) = driver.errors[str(directory)]
    assert list(driver.errors) == [str(directory)]
    assert message.startswith(f"{directory}: the static directory does not exist")
    assert "static.directory" in message  # says how to fix it

    directory.mkdir()
    write(directory, "a.yaml", "definitions: {entities: [{static_id: a, type: switch}]}")
    assert [c.key for c in driver.get_changes()] == ["RESOURCE:switch:a"]
    assert driver.errors == {}


# -- several files -----------------------------------------------------------------------


def test_the_same_entity_in_two_files_is_merged_and_static_ids_are_per_file(topology: Path) -> None:
    write(
        topology,
        "a.yaml",
        """\
        definitions:
          entities:
            - {static_id: h, type: nova.host, id: host-1}
            - {static_id: s, type: switch, id: sw-a, state: available}
          relationships:
            - {source: s, target: h, relationship_type: attached}
        """,
    )
    write(
        topology,
        "b.yaml",
        """\
        definitions:
          entities:
            - {static_id: h, type: nova.host, id: host-1, name: compute-1}
            - {static_id: s, type: switch, id: sw-b}
            - {static_id: other, type: switch, id: sw-a, state: error, vendor: acme}
          relationships:
            - {source: s, target: h, relationship_type: attached}
        """,
    )
    harness = Harness(StaticDriver(topology))
    harness.get_all()

    assert harness.driver.errors == {}
    assert [e.key for e in harness.driver.get_all()].count("RESOURCE:nova.host:host-1") == 1
    host = harness.vertex("nova.host", "host-1")
    assert host is not None
    assert host.name == "compute-1"  # only b.yaml names it
    switch = harness.vertex("switch", "sw-a")
    assert switch is not None
    assert (switch.state, switch.get("vendor")) == ("available", "acme")  # a.yaml wins the conflict
    assert harness.driver.warnings["b.yaml"] == [
        "b.yaml:5: definitions.entities[2]: state 'error' ignored; a.yaml:4 also defines switch 'sw-a' "
        "and its value is kept"
    ]
    assert harness.edges() == {
        ("switch:sw-a", "attached", "nova.host:host-1"),
        ("switch:sw-b", "attached", "nova.host:host-1"),
    }


def test_yaml_merge_keys_share_properties(topology: Path) -> None:
    write(
        topology,
        "merge.yaml",
        """\
        defaults: &switch {type: switch, state: available, vendor: acme}
        definitions:
          entities:
            - {<<: *switch, static_id: s1}
            - {<<: *switch, static_id: s2, state: error}
        """,
    )
    harness = Harness(StaticDriver(topology))
    harness.get_all()

    assert harness.driver.errors == {}
    s1, s2 = harness.vertex("switch", "s1"), harness.vertex("switch", "s2")
    assert s1 is not None
    assert s2 is not None
    assert (s1.state, s1.get("vendor"), s2.state) == ("available", "acme", "error")


def test_graph_owned_properties_are_ignored_with_a_warning(topology: Path) -> None:
    write(topology, "a.yaml", "definitions: {entities: [{static_id: a, type: switch, vitrage_state: ERROR}]}")
    harness = Harness(StaticDriver(topology))
    harness.get_all()

    vertex = harness.vertex("switch", "a")
    assert vertex is not None
    assert vertex.vitrage_state is None
    assert harness.driver.warnings == {
        "a.yaml": ["a.yaml:1: definitions.entities[0].vitrage_state: ignored: the graph sets this property itself"]
    }


def test_alarm_category_is_accepted(topology: Path) -> None:
    write(topology, "a.yaml", "definitions: {entities: [{static_id: a, type: manual.alarm, category: alarm}]}")
    harness = Harness(StaticDriver(topology))
    harness.get_all()
    assert harness.vertex("manual.alarm", "a", category="ALARM") is not None


# -- the transformer -------------------------------------------------------------------


def _event(payload: dict[str, Any], action: EventAction = EventAction.UPDATE) -> Event:
    return Event("e1", "static", action, "2026-11-22 00:00:01.000000+00:00", payload)


def test_transformer_builds_the_update() -> None:
    payload = {
        "category": RESOURCE,
        "type": "nova.host",
        "id": "h-1",
        "name": "h",
        "state": None,
        "properties": {"static_id": "h1", "rack": 3},
        "reference": True,
        "relationships": [{"category": RESOURCE, "type": "switch", "id": "s", "relationship_type": "attached"}],
        "unset": ["old"],
    }
    (update,) = StaticTransformer().transform(_event(payload))

    assert (update.category, update.vitrage_type, update.id, update.weak, update.delete) == (
        RESOURCE, "nova.host", "h-1", True, False,
    )  # fmt: skip
    assert update.properties == {"old": None, "static_id": "h1", "rack": 3, "name": "h", "state": None}
    assert update.neighbors is not None
    (ref,) = update.neighbors
    assert (ref.category, ref.vitrage_type, ref.id, ref.label, ref.outgoing, ref.properties) == (
        RESOURCE, "switch", "s", "attached", True, None,
    )  # fmt: skip


def test_transformer_delete_event() -> None:
    payload = {"category": RESOURCE, "type": "switch", "id": "s"}
    (update,) = StaticTransformer().transform(_event(payload, EventAction.DELETE))
    assert update.delete
    assert (update.vitrage_type, update.id) == ("switch", "s")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"id": "x"}, "payload.type"),
        ({"type": "switch"}, "payload.id"),
        ({"type": "switch", "id": "x", "category": "THING"}, "payload.category"),
        ({"type": "switch", "id": "x", "name": 3}, "payload.name"),
        ({"type": "switch", "id": "x", "properties": []}, "payload.properties"),
        ({"type": "switch", "id": "x", "reference": "yes"}, "payload.reference"),
        ({"type": "switch", "id": "x", "relationships": {}}, "payload.relationships"),
        ({"type": "switch", "id": "x", "relationships": [{"type": "t", "relationship_type": "a"}]},
         "payload.relationships[0].id"),
        ({"type": "switch", "id": "x", "unset": "rack"}, "payload.unset"),
    ],
)  # fmt: skip
def test_transformer_names_the_bad_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(TransformError, match="^" + re.escape(field) + ":"):
        StaticTransformer().transform(_event(payload))
