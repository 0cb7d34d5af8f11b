"""A small cloud's history, logged as a running graph would have logged it (for the time-travel tests).

The live processor is built exactly as the runtime and the reconstruction
worker build theirs (:func:`processor_factory` from the same settings): a
simulator cloud, doctor host alarms and the demo's host-down template. Each
step is applied, its accepted events stamped with the step's reception time and
appended to the event log; :attr:`HistoryScenario.moments` records the live
processor's canonical dump and a few answers just after each step, so a test
can ask for the graph at that moment and compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vitrail.config import Settings
from vitrail.datasources import doctor
from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
from vitrail.evaluator import templates
from vitrail.evaluator.engine import DEDUCED_TYPE, TEMPLATES_DATASOURCE
from vitrail.graph import queries
from vitrail.graph.events import Event, EventAction, format_timestamp
from vitrail.graph.processor import Processor
from vitrail.graph.snapshot import encode_state
from vitrail.services.processors import processor_factory
from vitrail.storage import EpochStore, EventLog, SnapshotStore, create_engine, upgrade

HOST_DOWN = Path(__file__).resolve().parent.parent / "src" / "vitrail" / "demo" / "templates" / "host_down.yaml"
SHAPE = {"hosts": 4, "instances_per_host": 2, "projects": 2, "changes_per_poll": 3, "seed": 3}


def scenario_settings(data_dir: Path, **history: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        datasources=["simulator", "doctor"],
        simulator=SHAPE,
        history={"retention_days": 30, **history},
    )


@dataclass
class Moment:
    """The live graph just after a step: when (a time between this step and the next), its state."""

    label: str
    at: datetime
    sequence: int
    dump: bytes
    alarms: list[dict[str, Any]]
    resources: list[dict[str, Any]]


@dataclass
class HistoryScenario:
    settings: Settings
    start: datetime
    live: Processor = field(init=False)
    moments: dict[str, Moment] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.live = processor_factory(self.settings).fresh()
        self.driver = SimulatorDriver(SimulatorShape(**SHAPE))

    async def build(self) -> None:
        """Template, get_all (then a snapshot), host down, instance changes, host up, a second host down."""
        engine = create_engine(self.settings.database_url())
        try:
            await upgrade(engine)
            epoch = await EpochStore(engine).bump("graph", "scenario")
            log, snapshots = EventLog(engine), SnapshotStore(engine)
            clock = self.start

            async def step(label: str, events: list[Event]) -> None:
                nonlocal clock
                clock += timedelta(minutes=1)
                stamp = format_timestamp(clock)
                for event in events:
                    event.received_at = stamp
                await log.append(self.live.process_many(events), epoch=epoch)
                viewer = queries.Viewer()
                self.moments[label] = Moment(
                    label,
                    clock + timedelta(seconds=30),
                    self.live.sequence,
                    self.live.dump(),
                    queries.list_alarms(self.live.graph, queries.AlarmListRequest(), viewer),
                    queries.list_resources(self.live.graph, viewer),
                )

            document = templates.load(HOST_DOWN.read_text(encoding="utf-8")).document
            await step(
                "template",
                [
                    Event(
                        "template/host_down",
                        TEMPLATES_DATASOURCE,
                        EventAction.UPDATE,
                        format_timestamp(self.start),
                        {"name": "host_down", "document": document, "params": {}},
                    )
                ],
            )
            await step("get_all", self.driver.round_events(self.driver.get_all(), 1, format_timestamp(clock)))
            state = encode_state(self.live)
            await snapshots.save_state(state, epoch, taken_at=clock + timedelta(seconds=10))
            await step("host_down", self.host_event("host-00001", "down", clock))
            changes = self.driver.get_changes()
            await step("changes", self.driver.change_events(changes, "c1", format_timestamp(clock)))
            await step("host_up", self.host_event("host-00001", "up", clock))
            await step("other_host_down", self.host_event("host-00002", "down", clock))
        finally:
            await engine.dispose()

    @staticmethod
    def host_event(host: str, status: str, when: datetime) -> list[Event]:
        body = {
            "type": "compute.host.down",
            "time": when.isoformat(),
            "details": {"hostname": host, "status": status, "severity": "critical"},
        }
        return doctor.parse_event(body, format_timestamp(when))

    def deduced_alarm(self, label: str) -> dict[str, Any]:
        return next(a for a in self.moments[label].alarms if a["vitrage_type"] == DEDUCED_TYPE)


def recent_start() -> datetime:
    """A start an hour ago: the whole scenario is within the retention and in the past."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
