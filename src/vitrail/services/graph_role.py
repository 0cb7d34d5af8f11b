"""The graph role: a standby until it holds the leadership, then the one active graph.

Exactly one graph process is active (seed ``001``: active-standby, the graph
stays in memory for speed). Leadership is a database session lock
(:class:`vitrail.storage.LeaderLock`, ``docs/ha.md``); each takeover bumps the
fencing epoch *before* reading anything, so from then on no write of the
former leader can land. Taking over:

1. load the latest usable snapshot (the processor state, evaluator included);
2. replay the event log after it: the graph as the former leader left it,
   to the last stored event;
3. load the templates (only new ones apply: the rest is in the state);
4. consume the bus: inputs the former leader applied but whose events were
   not stored come again (they were never acked) and are applied now; those
   whose events were stored are recognised as duplicates;
5. answer the API (RPC) and own the schedule. If the restored state is older
   than ``get_all_interval`` (a long downtime), ask every datasource at once.

The leader steps down when its lock is lost (the database ended its session)
or the watermark says it was fenced: it stops consuming, gives back what it
holds, and waits as a standby again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from vitrail import metrics
from vitrail.bus.base import EventBus, RpcServer
from vitrail.config import Settings
from vitrail.graph.events import format_timestamp
from vitrail.graph.history import HistoryRecorder
from vitrail.graph.processor import Processor
from vitrail.graph.snapshot import decode_state
from vitrail.services.dead_letters import DeadLetterSender
from vitrail.services.graph import CollectorClient, GraphService
from vitrail.services.history_writer import HistoryWriter, purge_alarm_history
from vitrail.services.processed import LEADERSHIP, LogWatermark, ProcessedPublisher
from vitrail.services.snapshots import Snapshotter, prune_history
from vitrail.services.templates import TemplateService
from vitrail.services.topics import DEAD_LETTERS, PERSISTOR_GROUP, PROCESSED_EVENTS
from vitrail.storage import EpochStore, EventLog, SnapshotInfo, SnapshotStore
from vitrail.storage.history import HistoryStore
from vitrail.storage.locks import LeaderLock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProcessorFactory:
    """How to build the processor: empty, or from a stored state document."""

    fresh: Callable[[], Processor]
    load: Callable[[dict[str, Any]], Processor]


@dataclass(slots=True)
class Takeover:
    """What the last takeover did (for logs, /v1/status and the failover benchmark)."""

    epoch: int
    snapshot_sequence: int | None
    replayed: int
    seconds: float
    state_age_s: float | None


class GraphRole:
    """Runs the graph whenever this process holds the leadership."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        bus: EventBus,
        processors: ProcessorFactory,
        collector: CollectorClient,
        datasources: list[str],
        changing_datasources: list[str],
        templates: TemplateService,
        serve_rpc: Callable[[GraphService], Any] | None = None,
        lock: LeaderLock | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.bus = bus
        self.processors = processors
        self.collector = collector
        self.datasources = datasources
        self.changing_datasources = changing_datasources
        self.templates = templates
        self.serve_rpc = serve_rpc
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.lock = lock or LeaderLock(
            settings.database_url(), LEADERSHIP, heartbeat_interval=settings.graph.leader_heartbeat
        )
        self.event_log = EventLog(engine)
        self.epochs = EpochStore(engine)
        self.snapshot_store = SnapshotStore(engine)
        self.history_store = HistoryStore(engine)
        self.history_recorder: HistoryRecorder | None = None
        self.dead_letters = DeadLetterSender(bus, "graph")
        self.service: GraphService | None = None
        self.snapshotter: Snapshotter | None = None
        self.takeover: Takeover | None = None
        #: Set while this process is the active graph.
        self.active = asyncio.Event()
        self._rpc: RpcServer | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, wait_active: float | None = 0.0) -> None:
        """Start competing for the leadership; wait up to ``wait_active`` s to become the leader."""
        metrics.GRAPH_LEADER.set(0)
        self._task = asyncio.create_task(self._run(), name="graph-leadership")
        if wait_active:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled(), wait_active)

    async def _settled(self) -> None:
        """Until this process is active, or the task ended (it failed)."""
        assert self._task is not None
        waiter = asyncio.ensure_future(self.active.wait())
        try:
            await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._task.done() and not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]

    async def stop(self) -> None:
        """A clean stop: hand over what was applied, release the leadership."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._step_down(clean=True)
        await self.lock.release()

    # -- the leadership loop ---------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self.lock.acquire()
            try:
                await self._take_over()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("taking over as the graph leader failed; releasing the leadership and retrying")
                await self._step_down(clean=False)
                await self.lock.release()
                await asyncio.sleep(1.0)
                continue
            reason = await self._wait_for_loss()
            log.error(
                "the graph leader steps down",
                extra={"reason": reason, "epoch": self.takeover.epoch if self.takeover else None},
            )
            await self._step_down(clean=False)
            await self.lock.release()

    async def _wait_for_loss(self) -> str:
        assert self.service is not None
        lost = asyncio.ensure_future(self.lock.lost.wait())
        fenced = asyncio.ensure_future(self.service.fenced.wait())
        try:
            done, _ = await asyncio.wait({lost, fenced}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            fenced.cancel()
        return "its database lock was lost" if lost in done else "another leader took over (fenced)"

    def describe(self) -> dict[str, Any]:
        """The leadership as ``/v1/status/?detailed=true`` shows it."""
        takeover = self.takeover
        snapshotter = self.snapshotter
        writer = self.service.history_writer if self.service is not None else None
        return {
            "holder": self.holder,
            "epoch": takeover.epoch if takeover else None,
            "took_over_in_s": round(takeover.seconds, 3) if takeover else None,
            "restored_from_snapshot": takeover.snapshot_sequence if takeover else None,
            "replayed_events": takeover.replayed if takeover else None,
            "snapshots_taken": snapshotter.taken if snapshotter else 0,
            "last_snapshot_sequence": snapshotter.last_sequence if snapshotter else None,
            "longest_snapshot_stall_ms": round(snapshotter.longest_stall * 1000, 1) if snapshotter else None,
            "history_complete_to": writer.written if writer else None,
            "history_backlog": writer.backlog if writer else None,
        }

    async def _take_over(self) -> None:
        started = time.perf_counter()
        epoch = await self.epochs.bump(LEADERSHIP, self.holder)  # fence first, then read
        metrics.GRAPH_EPOCH.set(epoch)
        history_written = await self.history_store.progress()
        processor, snapshot_sequence, state_time, replay = await load_latest_state(
            self.snapshot_store, self.event_log, self.processors, not_after=history_written
        )
        settings = self.settings
        watermark = LogWatermark(self.engine, epoch)
        history_writer = await self._continue_history(processor, epoch, watermark, history_written)
        service = GraphService(
            processor,
            self.bus,
            self.collector,
            self.datasources,
            self.changing_datasources,
            settings.graph,
            ProcessedPublisher(self.bus, epoch),
            self.templates.applied,
            watermark=watermark,
            dead_letters=self.dead_letters,
        )
        # The persistors' queues too: processed events published before any persistor
        # ever ran would otherwise be dropped by the broker, and their inputs never acked.
        await self.bus.declare(PROCESSED_EVENTS, PERSISTOR_GROUP)
        await self.bus.declare(DEAD_LETTERS, PERSISTOR_GROUP)
        service.history_recorder = self.history_recorder
        service.history_writer = history_writer
        history_writer.on_fenced = lambda _reason: service.fenced.set()
        await service.start_consuming()
        replayed = await service.restore(self.event_log.iter_batches(after=processor.sequence)) if replay else 0
        last_logged = await self._logged_time(processor.sequence)
        newest = max((t for t in (state_time, last_logged) if t is not None), default=None)
        age = None if newest is None else (datetime.now(UTC) - newest).total_seconds()
        service.initial_get_all = not replay or age is None or age > settings.graph.get_all_interval
        service.stored_sequence = processor.sequence
        snapshotter = Snapshotter(processor, self.snapshot_store, epoch, settings.graph, watermark.stored)
        service.snapshots = snapshotter
        self.service = service
        self.snapshotter = snapshotter
        restored_sequence, restored_vertices = processor.sequence, processor.graph.num_vertices
        await self.templates.load_all()
        await service.start()
        snapshotter.start()
        history_writer.start()
        self._pruner = asyncio.create_task(self._prune_periodically(), name="graph-history-pruning")
        if self.serve_rpc is not None:
            self._rpc = await self.serve_rpc(service)
        self.takeover = Takeover(epoch, snapshot_sequence, replayed, time.perf_counter() - started, age)
        self.active.set()
        metrics.GRAPH_LEADER.set(1)
        log.info(
            "this process is the graph leader",
            extra={
                "epoch": epoch,
                "holder": self.holder,
                "snapshot_sequence": snapshot_sequence,
                "replayed": replayed,
                "sequence": restored_sequence,
                "vertices": restored_vertices,
                "seconds": round(self.takeover.seconds, 3),
                "get_all_at_start": service.initial_get_all,
            },
        )

    async def _continue_history(
        self, processor: Processor, epoch: int, watermark: LogWatermark, written: int | None
    ) -> HistoryWriter:
        """A recorder on the restored processor and a writer that continues the stored alarm history.

        Restored from a snapshot at or before the history's progress (the usual
        case): the replay after it re-derives the records, and those already
        stored are skipped. Restored from a later state (the history never
        started, or fell behind every kept snapshot): the history is first made
        to agree with the restored graph, at its sequence number.
        """
        recorder = self.history_recorder = HistoryRecorder.follow(processor)
        restored = processor.sequence
        writer = HistoryWriter(
            self.history_store,
            epoch,
            watermark.stored,
            written=written or 0,
            poll_interval=self.settings.graph.ack_poll_interval,
        )
        if written is not None and restored < written:
            return writer
        open_alarms = await self.history_store.open_alarms()
        open_causes = await self.history_store.open_causes()
        moment = await self._logged_time(restored) or datetime.now(UTC)
        records = recorder.reconcile(open_alarms, open_causes, restored, format_timestamp(moment))
        if records:
            log.warning(
                "the alarm history is brought in line with the restored graph",
                extra={"sequence": restored, "records": len(records), "history_was_at": written},
            )
        writer.written = restored - 1 if records else restored
        writer.add(records, restored)
        return writer

    async def _logged_time(self, sequence: int) -> datetime | None:
        """When the event ``sequence`` (the last one restored) was received, if the log has it."""
        logged = await self.event_log.read(after=sequence - 1, limit=1)
        if not logged or logged[0].received_at is None:
            return None
        return datetime.fromisoformat(logged[0].received_at)

    async def _prune_periodically(self) -> None:
        """Keep ``history.retention_days`` of snapshots and events (the leader does it, once)."""
        history = self.settings.history
        while True:
            await asyncio.sleep(history.prune_interval)
            try:
                await prune_history(self.snapshot_store, self.event_log, history)
                await purge_alarm_history(self.history_store, history)
            except Exception as exc:
                log.warning("pruning the history failed; trying again later", extra={"error": str(exc)})

    async def _step_down(self, clean: bool) -> None:
        self.active.clear()
        metrics.GRAPH_LEADER.set(0)
        if self._pruner is not None:
            self._pruner.cancel()
            await asyncio.gather(self._pruner, return_exceptions=True)
            self._pruner = None
        if self._rpc is not None:
            with contextlib.suppress(Exception):
                await self._rpc.stop()
            self._rpc = None
        if self.snapshotter is not None:
            await self.snapshotter.stop()
            self.snapshotter = None
        if self.service is not None:
            await self.service.stop(flush=clean)
            writer = self.service.history_writer
            if writer is not None:
                await writer.stop(flush=clean)  # after the event log: only stored events' records go
            self.service = None
        if self.history_recorder is not None:
            self.history_recorder.detach()
            self.history_recorder = None


async def load_latest_state(
    snapshots: SnapshotStore, event_log: EventLog, processors: ProcessorFactory, not_after: int | None = None
) -> tuple[Processor, int | None, datetime | None, bool]:
    """The state to start from: (processor, snapshot sequence, snapshot time, replay the log after it?).

    The newest snapshot that loads and that the log continues, else an empty
    processor and the whole log. ``not_after``: prefer the newest such snapshot
    at or before this sequence (the alarm history is complete up to there, and
    replaying from it lets the history be finished); when there is none, the
    newest of all. When nothing can rebuild the graph (the log was pruned
    beyond every usable snapshot), the numbering continues after the log and the
    datasources are asked again: what only lived in the log (pushed alarms) is
    lost, and said so.
    """
    stored = await event_log.max_sequence()
    first = await event_log.first_sequence()
    limits = [stored] if not_after is None or not_after >= stored else [not_after, stored]
    for limit in limits:
        found = await _newest_usable_snapshot(snapshots, processors, limit, first)
        if found is not None:
            processor, info = found
            return processor, info.sequence, info.taken_at, True
    processor = processors.fresh()
    if first <= 1:
        return processor, None, None, True
    log.error(
        "no snapshot can be continued by the event log (it starts at a later event); starting empty and "
        "asking every datasource again: alarms that only the log held are lost",
        extra={"first_logged": first, "last_logged": stored},
    )
    processor.sequence = stored
    return processor, None, None, False


async def _newest_usable_snapshot(
    snapshots: SnapshotStore, processors: ProcessorFactory, limit: int, first_logged: int
) -> tuple[Processor, SnapshotInfo] | None:
    """The newest snapshot at or before ``limit`` that loads and that the log continues."""
    while True:
        info = await snapshots.latest(max_sequence=limit)
        if info is None:
            return None
        try:
            data = await snapshots.load(info.id)
            processor = processors.load(decode_state(data, info.format))
        except Exception as exc:
            log.error(
                "a snapshot cannot be loaded; trying the one before it",
                extra={"snapshot": info.id, "sequence": info.sequence, "error": f"{type(exc).__name__}: {exc}"},
            )
            limit = info.sequence - 1
            continue
        if first_logged and first_logged > info.sequence + 1:
            return None  # the events right after it were pruned
        return processor, info


__all__ = ["GraphRole", "ProcessorFactory", "Takeover", "load_latest_state"]
