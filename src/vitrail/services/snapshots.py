"""When the graph leader takes snapshots, and how it stores them.

Seed ``001`` (fast failover): "after every get_all, vitrage-graph stores a full
entity graph snapshot in the db, so the majority of events do not need to be
replayed". Vitrail takes one after every ``get_all`` round, and otherwise by a
policy: every ``snapshot_interval`` seconds if at least
``snapshot_min_events`` events came since the last one, and at once after
``snapshot_max_events`` events (which bounds a standby's replay).

A snapshot is the whole processor state (graph, rounds, recent event ids,
evaluator) at one sequence number, encoded in a forked child
(:mod:`vitrail.services.snapshotting`) so event processing stops only for the
fork. It is stored only once the event log holds every event up to its
sequence: a snapshot ahead of the log would describe events whose inputs may
still be redelivered, and the log after it could not be replayed onto it.
Stores are fenced by the leader's epoch, like the event log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from vitrail import metrics
from vitrail.config import GraphSettings, HistorySettings
from vitrail.graph.events import Event, EventAction
from vitrail.graph.processor import Processor
from vitrail.services.snapshotting import encode_snapshot
from vitrail.storage import EventLog, Fenced, SnapshotInfo, SnapshotStore

log = logging.getLogger(__name__)


class Snapshotter:
    """The leader's snapshot policy and writer (one snapshot at a time)."""

    #: Longest wait for the event log to catch up with a snapshot before it is dropped.
    STORE_PATIENCE = 120.0

    def __init__(
        self,
        processor: Processor,
        store: SnapshotStore,
        epoch: int,
        settings: GraphSettings,
        stored: Callable[[], Awaitable[int]],
    ) -> None:
        self.processor = processor
        self.store = store
        self.epoch = epoch
        self.settings = settings
        self.stored = stored
        self.last_sequence = processor.sequence
        self.last_taken = time.monotonic()
        self.taken = 0
        self.longest_stall = 0.0
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- policy ----------------------------------------------------------------------

    def applied(self, events: Sequence[Event]) -> None:
        """The graph applied ``events``: a round end or too many events since the last snapshot ask for one."""
        round_ended = any(event.action is EventAction.ROUND_END for event in events)
        if round_ended or self.processor.sequence - self.last_sequence >= self.settings.snapshot_max_events:
            self._wanted.set()

    def due(self) -> bool:
        """The periodic rule: interval passed and enough events came."""
        return (
            time.monotonic() - self.last_taken >= self.settings.snapshot_interval
            and self.processor.sequence - self.last_sequence >= self.settings.snapshot_min_events
        )

    # -- running ---------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="graph-snapshots")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wanted.wait(), timeout=min(5.0, self.settings.snapshot_interval))
            except TimeoutError:
                if not self.due():
                    continue
            self._wanted.clear()
            if self.processor.sequence == self.last_sequence:
                continue
            try:
                await self.take()
            except Fenced:
                log.error("a snapshot was refused: this graph is no longer the leader")
                return
            except Exception as exc:
                metrics.SNAPSHOT_FAILURES.inc()
                log.warning(
                    "a snapshot could not be taken; the next one is tried later",
                    extra={"error": f"{type(exc).__name__}: {exc}"},
                )
                self.last_taken = time.monotonic()  # the interval applies to retries too

    async def take(self) -> SnapshotInfo | None:
        """Encode the state now (forked), wait for the log to hold it, and store it."""
        forked = await encode_snapshot(self.processor)
        state = forked.state
        self.longest_stall = max(self.longest_stall, forked.fork_seconds)
        metrics.SNAPSHOT_STALL_SECONDS.observe(forked.fork_seconds)
        deadline = time.monotonic() + self.STORE_PATIENCE
        while await self.stored() < state.sequence:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the event log did not reach sequence {state.sequence} in {self.STORE_PATIENCE} s")
            await asyncio.sleep(self.settings.ack_poll_interval)
        started = time.perf_counter()
        info = await self.store.save_state(state, self.epoch)
        self.last_sequence = state.sequence
        self.last_taken = time.monotonic()
        self.taken += 1
        metrics.SNAPSHOTS_TAKEN.inc()
        log.info(
            "snapshot stored",
            extra={
                "sequence": state.sequence,
                "entities": state.entities,
                "stored_bytes": len(state.data),
                "stall_ms": round(forked.fork_seconds * 1000, 1),
                "encode_s": round(forked.total_seconds, 3),
                "store_s": round(time.perf_counter() - started, 3),
            },
        )
        return info


async def prune_history(
    snapshots: SnapshotStore, event_log: EventLog, history: HistorySettings, now: datetime | None = None
) -> tuple[int, int]:
    """Thin the snapshots and drop the events no kept snapshot needs; return (snapshots, events) removed.

    Events older than the oldest kept snapshot are removed: every moment of the
    retention window can still be rebuilt from a snapshot and the events after it.
    Thinning keeps the snapshots that bound such a rebuild to
    ``history.max_replay_events`` events (see :func:`~vitrail.storage.thinning_plan`).
    """
    now = now or datetime.now(UTC)
    removed = await snapshots.thin(
        now,
        timedelta(days=history.retention_days),
        max_replay_events=history.max_replay_events,
        log_end=await event_log.max_sequence(),
    )
    kept = await snapshots.list(limit=100_000)
    pruned = 0
    if kept:
        # The last stored event always stays: the persistors continue the log after it.
        before = min(min(info.sequence for info in kept) + 1, await event_log.max_sequence())
        pruned = await event_log.prune(before_sequence=before)
    if removed or pruned:
        log.info("history pruned", extra={"snapshots": len(removed), "events": pruned})
    return len(removed), pruned


__all__ = ["Snapshotter", "prune_history"]
