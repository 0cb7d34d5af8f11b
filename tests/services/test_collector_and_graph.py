"""The collector and the graph service together, on the in-process bus and a real SQLite event log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from vitrail.bus import InProcessBus
from vitrail.bus.base import BusUnavailable
from vitrail.config import GraphSettings
from vitrail.datasources.base import DatasourceError, Driver, RawEntity
from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
from vitrail.datasources.state_tables import load_state_table
from vitrail.graph.events import Event, EventAction
from vitrail.graph.processor import Processor
from vitrail.services.collector import Collector
from vitrail.services.graph import GraphService
from vitrail.services.topics import BULK_EVENTS, decode
from vitrail.storage import EventLog, create_engine, upgrade


class BrokenDriver(Driver):
    name = "broken"

    def transformer(self):  # type: ignore[no-untyped-def]
        return SimulatorDriver().transformer()

    def get_all(self) -> Sequence[RawEntity]:
        raise DatasourceError("the source is down")


class FlakySink:
    """The real event log behind a connection that fails the first ``failures`` writes."""

    def __init__(self, log: EventLog, failures: int) -> None:
        self.log = log
        self.failures = failures
        self.attempts = 0

    async def append(self, events: Sequence[Event]) -> int:
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("database unreachable")
        return await self.log.append(events)


@pytest.fixture
async def event_log(tmp_path: Path) -> AsyncIterator[EventLog]:
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    await upgrade(engine)
    yield EventLog(engine)
    await engine.dispose()


def make_service(drivers: dict[str, Driver], sink: object, **settings: float) -> tuple[GraphService, Collector]:
    bus = InProcessBus()
    collector = Collector(drivers, bus, page_size=50)
    processor = Processor({n: d.transformer() for n, d in drivers.items()}, load_state_table())
    service = GraphService(
        processor,
        bus,
        collector,
        list(drivers),
        [n for n, d in drivers.items() if d.has_changes],
        GraphSettings(batch_size=40, **settings),
        sink,  # type: ignore[arg-type]
    )
    return service, collector


async def test_a_fresh_graph_loads_every_datasource_and_logs_every_event(event_log: EventLog) -> None:
    shape = SimulatorShape(hosts=20, instances_per_host=5, seed=1)
    service, _ = make_service({"simulator": SimulatorDriver(shape)}, event_log)
    await service.start()
    await asyncio.wait_for(service.ready.wait(), 10)
    assert service.processor.graph.num_vertices == shape.entity_count
    assert service.progress.applied == service.progress.expected == shape.entity_count
    await service.stop()
    logged = await event_log.read()
    assert len(logged) == shape.entity_count + 1  # and the round end
    assert [e.sequence for e in logged] == list(range(1, len(logged) + 1))
    assert logged[-1].action is EventAction.ROUND_END


async def test_a_failing_datasource_does_not_block_readiness(event_log: EventLog) -> None:
    drivers: dict[str, Driver] = {"simulator": SimulatorDriver(SimulatorShape(hosts=2)), "broken": BrokenDriver()}
    service, collector = make_service(drivers, event_log)
    await service.start()
    await asyncio.wait_for(service.ready.wait(), 10)
    assert service.progress.errors == {"broken": "the source is down"}
    summary = await collector.get_all(["broken"], 99)
    assert summary.errors == {"broken": "the source is down"}
    with pytest.raises(ValueError, match="unknown datasource"):
        await collector.get_all(["nagios"], 100)
    await service.stop()


async def test_the_event_log_is_retried_until_the_database_answers(event_log: EventLog) -> None:
    sink = FlakySink(event_log, failures=2)
    service, _ = make_service({"simulator": SimulatorDriver(SimulatorShape(hosts=3))}, sink)
    await service.start()
    await asyncio.wait_for(service.ready.wait(), 10)
    await service.stop()
    assert sink.attempts > 2
    assert await event_log.count() == service.processor.sequence


async def test_bad_events_are_counted_and_the_rest_applied(event_log: EventLog) -> None:
    service, _ = make_service({"simulator": SimulatorDriver(SimulatorShape(hosts=1))}, event_log)
    t = "2026-11-22 00:00:00.000000+00:00"
    accepted = await service.apply(
        [
            Event("ok-1", "simulator", EventAction.UPDATE, t, {"kind": "zone", "id": "z"}),
            Event("bad", "simulator", EventAction.UPDATE, t, {"kind": "spaceship"}),
            Event("ok-2", "simulator", EventAction.UPDATE, t, {"kind": "host", "id": "h", "zone": "z"}),
            Event("ok-1", "simulator", EventAction.UPDATE, t, {"kind": "zone", "id": "z"}),  # duplicate
        ]
    )
    assert [e.event_id for e in accepted] == ["ok-1", "ok-2"]
    assert service.processor.stats.rejected == 1
    assert service.processor.stats.duplicates == 1


async def test_the_schedule_asks_for_changes_and_new_rounds(event_log: EventLog) -> None:
    driver = SimulatorDriver(SimulatorShape(hosts=4, instances_per_host=2, changes_per_poll=1, seed=3))
    service, _ = make_service({"simulator": driver}, event_log, changes_interval=0.05, get_all_interval=0.2)
    await service.start()
    await asyncio.wait_for(service.ready.wait(), 10)
    await asyncio.sleep(0.6)
    await service.stop()
    actions = [e.action for e in await event_log.read()]
    assert actions.count(EventAction.ROUND_END) >= 2  # the first round and at least one more
    assert EventAction.UPDATE in actions  # changes arrived between rounds


async def test_published_pages_hold_the_round_and_its_end() -> None:
    bus = InProcessBus()
    await bus.declare(BULK_EVENTS, "probe")
    collector = Collector({"simulator": SimulatorDriver(SimulatorShape(hosts=2, instances_per_host=1))}, bus, 2)
    summary = await collector.get_all(None, 7)
    await collector.drain()
    assert summary.to_dict() == {"round": 7, "counts": {"simulator": 6}, "errors": {}}
    events: list[Event] = []
    while await bus.pending(BULK_EVENTS, "probe"):
        events.extend(decode((await bus.get(BULK_EVENTS, "probe")).body))
    assert len(events) == 7
    assert {e.round for e in events} == {7}
    assert events[-1].action is EventAction.ROUND_END and events[-1].payload == {"count": 6}
    assert all(e.received_at for e in events)


async def test_a_restarted_graph_is_restored_from_the_event_log(event_log: EventLog) -> None:
    def driver() -> SimulatorDriver:
        return SimulatorDriver(SimulatorShape(hosts=4, instances_per_host=3, changes_per_poll=2, seed=8))

    first, _ = make_service({"simulator": driver()}, event_log, changes_interval=0.05, get_all_interval=0.2)
    await first.start()
    await asyncio.wait_for(first.ready.wait(), 10)
    await asyncio.sleep(0.5)  # rounds and changes: creations, updates and deletions
    await first.stop()
    before = first.processor.dump()

    second, _ = make_service({"simulator": driver()}, event_log)
    replayed = await second.restore(event_log.iter_batches(batch_size=7))
    assert replayed == first.processor.sequence
    assert second.processor.dump() == before  # the graph, the rounds and the recent event ids
    redelivered = (await event_log.read(after=replayed - 5))[:5]
    for event in redelivered:
        event.sequence = None  # as the bus would carry it again
    assert await second.apply([e for e in redelivered if e.action is EventAction.UPDATE]) == []
    assert second._next_round > first.processor.sequence  # round ids never repeat


async def test_a_gap_in_the_event_log_is_reported_and_the_replay_goes_on(
    event_log: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    t = "2026-11-22 00:00:00.000000+00:00"
    events = [
        Event("zone", "simulator", EventAction.UPDATE, t, {"kind": "zone", "id": "z"}, sequence=1),
        Event("host", "simulator", EventAction.UPDATE, t, {"kind": "host", "id": "h", "zone": "z"}, sequence=4),
        Event("gone", "nagios", EventAction.UPDATE, t, {"anything": 1}, sequence=5),
    ]
    await event_log.append(events)
    service, _ = make_service({"simulator": SimulatorDriver(SimulatorShape(hosts=1))}, event_log)
    assert await service.restore(event_log.iter_batches()) == 3
    assert service.processor.sequence == 5
    ids = {(v.vitrage_type, v.id) for v in service.processor.graph.vertices()}
    assert {("nova.zone", "z"), ("nova.host", "h")} <= ids  # both sides of the gap were applied
    gap = next(r for r in caplog.records if r.getMessage().startswith("the event log has a gap"))
    assert (gap.expected, gap.found) == (2, 4)  # type: ignore[attr-defined]
    skipped = next(r for r in caplog.records if r.getMessage() == "a logged event cannot be replayed")
    assert "no datasource named 'nagios'" in skipped.reason  # type: ignore[attr-defined]


async def test_a_failed_publish_is_logged_and_the_collector_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    class DownBus(InProcessBus):
        async def publish(self, topic: str, body: object) -> None:
            raise BusUnavailable("RabbitMQ is not reachable on mq:5672")

    collector = Collector({"simulator": SimulatorDriver(SimulatorShape(hosts=2))}, DownBus())
    summary = await collector.get_all(None, 3)
    assert summary.counts["simulator"] > 0  # the caller got its answer; the round will never end
    await collector.drain()
    failed = next(r for r in caplog.records if r.getMessage() == "publishing failed")
    assert failed.round == 3 and "not reachable on mq:5672" in failed.error  # type: ignore[attr-defined]
    assert (await collector.get_all(None, 4)).round == 4  # still answering
