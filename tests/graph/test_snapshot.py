"""Compressed processor snapshots: exact round trips and clear refusals."""

from __future__ import annotations

import zlib

import orjson
import pytest
from hypothesis import given, settings

from tests.graph.fake import FAKE, FakeTransformer, snapshot, update
from tests.graph.test_processor import event_streams, make
from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
from vitrail.datasources.state_tables import load_state_table
from vitrail.graph.events import Event
from vitrail.graph.processor import Processor, ProcessorConfig
from vitrail.graph.snapshot import (
    SNAPSHOT_FORMAT,
    EncodedState,
    SnapshotFormatError,
    decode_state,
    encode_state,
    restore_processor,
)

T0 = "2026-11-22 00:00:00.000000+00:00"


def _copies(events: list[Event]) -> list[Event]:
    """Fresh events: the processor stamps sequence numbers on the ones it applies."""
    return [Event(e.event_id, e.datasource, e.action, e.sample_time, dict(e.payload), e.round) for e in events]


def _simulated(hosts: int = 20) -> Processor:
    """A simulator cloud after a round, some changes, and a second round left open."""
    driver = SimulatorDriver(
        SimulatorShape(hosts=hosts, instances_per_host=3, switches=2, networks=2, changes_per_poll=5, seed=3)
    )
    processor = Processor({"simulator": driver.transformer()}, load_state_table())
    processor.process_many(driver.round_events(driver.get_all(), 1, T0))
    processor.process_many(driver.change_events(driver.get_changes(), "c1", "2026-11-22 00:00:01.000000+00:00"))
    entities = list(driver.get_all())
    processor.process_many(
        driver.snapshot_events(entities[: len(entities) // 2], 2, "2026-11-22 00:00:02.000000+00:00")
    )
    return processor


def test_snapshot_decodes_to_the_dump_byte_for_byte() -> None:
    processor = _simulated()
    assert processor.open_rounds, "the fixture should leave a round open"
    encoded = encode_state(processor)
    assert zlib.decompress(encoded.data) == processor.dump()
    assert encoded.raw_bytes == len(processor.dump())
    assert len(encoded.data) < encoded.raw_bytes
    assert encoded.format == SNAPSHOT_FORMAT
    assert encoded.sequence == processor.sequence
    assert encoded.entities == processor.graph.num_vertices
    assert encoded.relationships == processor.graph.num_edges


def test_restored_processor_dumps_identically_and_carries_on() -> None:
    processor = _simulated()
    encoded = encode_state(processor)
    restored = restore_processor(encoded.data, encoded.format, processor.transformers, load_state_table())
    assert restored.dump() == processor.dump()
    # The restored fold continues exactly as the original does.
    driver = SimulatorDriver(SimulatorShape(hosts=20, instances_per_host=3, switches=2, networks=2, seed=3))
    rest = driver.round_end_event(2, "2026-11-22 00:00:02.000000+00:00", 0)
    processor.process(_copies([rest])[0])
    restored.process(_copies([rest])[0])
    assert restored.dump() == processor.dump()


def test_equal_states_give_equal_snapshots() -> None:
    one, two = _simulated(), _simulated()
    assert encode_state(one) == encode_state(two)


def test_encoded_state_is_immutable() -> None:
    encoded = encode_state(make())
    assert isinstance(encoded, EncodedState)
    with pytest.raises(AttributeError):
        encoded.sequence = 5  # type: ignore[misc]


@settings(max_examples=100, deadline=None)
@given(event_streams())
def test_any_state_round_trips_through_a_snapshot(events: list[Event]) -> None:
    live = make(consistency_rounds=2, dedup_window=7)
    live.process_many(_copies(events))
    encoded = encode_state(live)
    restored = Processor.load(
        decode_state(encoded.data, encoded.format),
        {FAKE: FakeTransformer(), "other": FakeTransformer()},
        load_state_table(),
        ProcessorConfig(2, 7),
    )
    assert restored.dump() == live.dump()
    assert encode_state(restored) == encoded


# -- refusals ---------------------------------------------------------------------


def _small() -> EncodedState:
    processor = make()
    processor.process(update("u1", {"id": "a", "parent": "b"}, 1))
    processor.process(snapshot("s1", {"id": "c"}, 1, 2))
    return encode_state(processor)


def test_unknown_format_is_refused() -> None:
    encoded = _small()
    with pytest.raises(SnapshotFormatError, match=r"unknown snapshot format 'vitrail\.state\+json\+lz4/1'"):
        decode_state(encoded.data, "vitrail.state+json+lz4/1")


def test_refusals_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown snapshot format"):
        decode_state(b"", "pickle")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:-4] + bytes(b ^ 0xFF for b in data[-4:]), id="bad-checksum"),
        pytest.param(lambda data: data[:20] + bytes([data[20] ^ 0x55]) + data[21:], id="flipped-byte"),
        pytest.param(lambda data: b"not zlib at all", id="garbage"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_corrupt_data_is_refused(damage) -> None:  # type: ignore[no-untyped-def]
    encoded = _small()
    with pytest.raises(SnapshotFormatError, match="corrupt snapshot"):
        decode_state(damage(encoded.data), encoded.format)


def test_data_that_is_not_json_is_refused() -> None:
    with pytest.raises(SnapshotFormatError, match="not JSON"):
        decode_state(zlib.compress(b"{not json"), SNAPSHOT_FORMAT)


@pytest.mark.parametrize("document", [[1, 2], {"format": "vitrail.graph"}, {"sequence": 3}])
def test_json_that_is_not_a_processor_state_is_refused(document: object) -> None:
    with pytest.raises(SnapshotFormatError, match=r"not a 'vitrail\.processor' state document"):
        decode_state(zlib.compress(orjson.dumps(document)), SNAPSHOT_FORMAT)
