"""The graph leader's alarm and RCA history writer.

The :class:`~vitrail.graph.history.HistoryRecorder` derives records from the
fold; this writer stores them. A record is stored only once the event it
derives from is in the event log (storage first, seed ``004``): a record of an
event that a crash lost would describe a graph the next leader never rebuilds.
Each write stores its records and ``history_progress`` (the sequence up to
which the history is complete) in one transaction, fenced by the leader's
epoch. A new leader starts from a snapshot at or before that progress and
replays the log after it with its own recorder, so what its predecessor had
not written is written now, and what it had is skipped (``docs/history.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from vitrail import metrics
from vitrail.config import HistorySettings
from vitrail.graph.history import HistoryRecord
from vitrail.storage import Fenced
from vitrail.storage.history import HistoryStore, Purged

log = logging.getLogger(__name__)


class HistoryWriter:
    """Stores history records in order, each once its event is stored; one writer per leader term."""

    #: Most records stored in one transaction.
    BATCH = 5000
    #: Seconds between two progress-only writes (no records, the log moved on).
    PROGRESS_INTERVAL = 2.0

    def __init__(
        self,
        store: HistoryStore,
        epoch: int,
        stored: Callable[[], Awaitable[int]],
        *,
        written: int,
        poll_interval: float = 0.2,
        on_fenced: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.epoch = epoch
        self.stored = stored
        #: The history is complete up to this sequence number (in the database).
        self.written = written
        self.poll_interval = poll_interval
        self.on_fenced = on_fenced
        #: The last sequence number handed to the writer: every record up to it is queued.
        self.handed = written
        self._queue: deque[HistoryRecord] = deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0

    def add(self, records: Sequence[HistoryRecord], up_to: int) -> None:
        """Queue the records of the events up to ``up_to`` (records at or before :attr:`written` are
        already stored and skipped)."""
        written = self.written
        self._queue.extend(record for record in records if record.sequence > written)
        self.handed = max(self.handed, up_to)
        self._arrived.set()

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="graph-history-writer")

    #: Seconds a clean stop waits for the history to be stored.
    FLUSH_TIMEOUT = 10.0

    async def stop(self, flush: bool = True) -> None:
        """Stop; with ``flush`` store what the event log already holds first (within :attr:`FLUSH_TIMEOUT`)."""
        if self._task is None:
            return
        if flush:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flush(), self.FLUSH_TIMEOUT)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _flush(self) -> None:
        while self.written < self.handed:
            stored = await self.stored()
            if stored <= self.written:
                return  # the rest is not in the event log: the next leader writes it
            await self._write_up_to(stored)

    async def _run(self) -> None:
        backoff = 0.5
        last_progress = time.monotonic()
        while True:
            if self.written >= self.handed:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            try:
                stored = await self.stored()
                target = min(stored, self.handed)
                due = self._queue and self._queue[0].sequence <= target
                if due or (target > self.written and time.monotonic() - last_progress >= self.PROGRESS_INTERVAL):
                    await self._write_up_to(target)
                    last_progress = time.monotonic()
                backoff = 0.5
            except Fenced as exc:
                log.error("this graph is no longer the leader; the history writer stops", extra={"reason": str(exc)})
                if self.on_fenced is not None:
                    self.on_fenced(str(exc))
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                metrics.HISTORY_WRITE_FAILURES.inc()
                log.warning(
                    "writing the alarm history failed; retrying (nothing is lost: the records wait here)",
                    extra={"error": f"{type(exc).__name__}: {exc}", "records": len(self._queue), "retry_in_s": backoff},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            await asyncio.sleep(self.poll_interval)

    async def _write_up_to(self, target: int) -> None:
        """Store the queued records of events up to ``target`` (in batches) and the progress."""
        while True:
            batch: list[HistoryRecord] = []
            queue = self._queue
            while queue and queue[0].sequence <= target and len(batch) < self.BATCH:
                batch.append(queue.popleft())
            more = bool(queue) and queue[0].sequence <= target
            # A batch that stops inside one event's records marks progress before that event.
            up_to = target if not more else batch[-1].sequence - 1
            try:
                await self.store.write(batch, max(up_to, self.written), self.epoch)
            except BaseException:
                queue.extendleft(reversed(batch))
                raise
            self.written = max(self.written, up_to)
            metrics.HISTORY_RECORDS.inc(len(batch))
            metrics.HISTORY_SEQUENCE.set(self.written)
            if not more:
                return


async def purge_alarm_history(store: HistoryStore, history: HistorySettings, now: datetime | None = None) -> Purged:
    """Remove the alarms and causal links that ended more than ``history.retention_days`` ago."""
    before = (now or datetime.now(UTC)) - timedelta(days=history.retention_days)
    purged = await store.purge(before)
    for table, count in (
        ("alarm_history", purged.alarms),
        ("alarm_changes", purged.changes),
        ("cause_history", purged.causes),
    ):
        if count:
            metrics.HISTORY_PURGED.labels(table).inc(count)
    if purged.alarms or purged.causes:
        log.info(
            "alarm history purged",
            extra={
                "before": before.isoformat(),
                "alarms": purged.alarms,
                "changes": purged.changes,
                "causes": purged.causes,
            },
        )
    return purged


__all__ = ["HistoryWriter", "purge_alarm_history"]
