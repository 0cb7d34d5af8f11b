"""The persistor: writes what the graph processed to the event log, in batches.

Seed ``004`` (batch consumption) and the persistence half of seed ``002``.
Any number of persistors run (``vitrail serve --role persistor``, active-active);
each takes processed-events messages from its group's queue until it holds
``batch_size`` events or ``batch_timeout`` passed, then writes them in ONE
transaction and acks the messages after the commit. So:

* **Idempotent.** A batch redelivered after a crash between commit and ack is
  an already-stored prefix: the event log inserts nothing and the messages are
  acked (:meth:`vitrail.storage.EventLog.append`).
* **In order, gapless.** The log must stay the exact order of handling, since
  the graph is a fold over it. A batch must start right after the stored
  sequence (``contiguous``); a batch that starts further on is waiting for
  another persistor's batch: it is retried briefly, then given back to the bus.
* **Fenced.** Each message carries the epoch of the leader that processed it;
  the write checks it against the leadership row in the same transaction, so
  the events of a former leader are discarded once a new one took over (their
  inputs were never acked and the new leader applies them).
* **Back-pressure.** When the database does not answer, the batch is given
  back to the bus, consumption pauses, the database is probed with backoff,
  and consumption resumes when it answers (``vitrail_persistor_paused``).
* **Dead letters.** A message that is not processed events is stored as a
  dead letter and acked, never requeued; an event the database cannot hold is
  stored as a dead letter and a tombstone takes its sequence number, so the
  rest of the batch commits and the log keeps no hole. Dead letters published
  by other roles (:mod:`vitrail.services.dead_letters`) are stored here too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from vitrail import metrics
from vitrail.bus.base import BusClosed, Delivery, EventBus, Undecodable
from vitrail.config import PersistorSettings
from vitrail.graph.events import Event, EventAction, utc_now
from vitrail.services.dead_letters import from_message, raw_bytes
from vitrail.services.processed import decode_processed
from vitrail.services.topics import DEAD_LETTERS, PERSISTOR_GROUP, PROCESSED_EVENTS
from vitrail.storage import DeadLetterStore, EventLog, EventLogConflict, EventLogGap, Fenced, NewDeadLetter

log = logging.getLogger(__name__)

#: The datasource of a tombstone: an event the database refused, kept as a dead letter.
#: No datasource has this name, so a replay passes over it and keeps its sequence number.
TOMBSTONE_DATASOURCE = "vitrail.dead_letter"

_FIRST_BACKOFF = 0.25


@dataclass(slots=True)
class PersistorStats:
    stored: int = 0
    batches: int = 0
    fenced: int = 0
    dead_letters: int = 0
    retries: int = 0
    paused_seconds: float = 0.0


@dataclass(slots=True)
class _Batch:
    deliveries: list[Delivery] = field(default_factory=list)
    events: int = 0


class Persistor:
    """Consumes processed events and dead letters, and stores them."""

    #: How long a batch that does not follow the stored log waits for the batch before it.
    GAP_PATIENCE = 5.0

    def __init__(
        self, bus: EventBus, event_log: EventLog, dead_letters: DeadLetterStore, settings: PersistorSettings
    ) -> None:
        self.bus = bus
        self.event_log = event_log
        self.dead_letters = dead_letters
        self.settings = settings
        self.stats = PersistorStats()
        self.paused = False
        self._inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._busy = False  # a batch is being written

    # -- lifecycle -------------------------------------------------------------------

    async def start_consuming(self) -> None:
        """Declare the persistors' queues, so nothing published from now on is missed."""
        await self.bus.declare(PROCESSED_EVENTS, PERSISTOR_GROUP)
        await self.bus.declare(DEAD_LETTERS, PERSISTOR_GROUP)

    async def start(self) -> None:
        await self.start_consuming()
        self._tasks = [
            asyncio.create_task(self._receive(), name="persistor-receive"),
            asyncio.create_task(self._write_events(), name="persistor-events"),
            asyncio.create_task(self._write_dead_letters(), name="persistor-dead-letters"),
        ]

    async def drain(self, within: float = 15.0) -> bool:
        """Wait until nothing is waiting in this process or on the bus (for a clean stop)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            waiting = self._inbox.qsize() + await self.bus.pending(PROCESSED_EVENTS, PERSISTOR_GROUP)
            if not waiting and not self._busy:
                return True
            await asyncio.sleep(0.02)
        return False

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        waiting = []
        while not self._inbox.empty():
            waiting.append(self._inbox.get_nowait())
        for delivery in reversed(waiting):
            await self.bus.nack(delivery)

    # -- consuming -------------------------------------------------------------------

    async def _receive(self) -> None:
        """Move processed-events deliveries into the inbox, while consumption is not paused."""
        while True:
            await self._resumed.wait()
            if self._inbox.qsize() >= 2 * max(1, self.settings.batch_size):
                await asyncio.sleep(0.01)
                continue
            try:
                delivery = await self.bus.get(PROCESSED_EVENTS, PERSISTOR_GROUP)
            except BusClosed:
                return
            await self._inbox.put(delivery)

    async def _next_batch(self) -> _Batch:
        batch = _Batch()
        first = await self._inbox.get()
        self._busy = True
        batch.deliveries.append(first)
        batch.events += _count(first.body)
        try:
            await self._fill(batch)
        except asyncio.CancelledError:
            for delivery in reversed(batch.deliveries):  # stopping: what was taken goes back
                await self.bus.nack(delivery)
            raise
        return batch

    async def _fill(self, batch: _Batch) -> None:
        """Add deliveries to ``batch`` until it holds ``batch_size`` events or ``batch_timeout`` passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.batch_timeout
        while batch.events < self.settings.batch_size:
            if self._inbox.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                    # that races with the get (CPython gh-86296), and stop() would wait forever.
                    async with asyncio.timeout(remaining):
                        delivery = await self._inbox.get()
                except TimeoutError:
                    break
            else:
                delivery = self._inbox.get_nowait()  # what already waits: no task, no timer
            batch.deliveries.append(delivery)
            batch.events += _count(delivery.body)

    async def _write_events(self) -> None:
        while True:
            batch = await self._next_batch()
            try:
                await self._store(batch)
            except asyncio.CancelledError:
                for delivery in reversed(batch.deliveries):
                    await self.bus.nack(delivery)
                raise
            finally:
                self._busy = False

    async def _store(self, batch: _Batch) -> None:
        """Write one batch, or give it back to the bus and wait for the database."""
        gap_since: float | None = None
        while True:
            try:
                await self._write(batch.deliveries)
            except EventLogGap as exc:
                now = time.monotonic()
                gap_since = gap_since or now
                if now - gap_since < self.GAP_PATIENCE:
                    await asyncio.sleep(0.02)  # another persistor is writing the batch before it
                    continue
                log.warning(
                    "a batch does not follow the stored event log; giving it back to the bus",
                    extra={"reason": str(exc), "waited_s": round(now - gap_since, 2)},
                )
                await self._give_back(batch.deliveries)
                await asyncio.sleep(0.5)
                return
            except Exception as exc:
                log.warning(
                    "the database did not take a batch; it goes back to the bus and consumption pauses",
                    extra={"events": batch.events, "error": f"{type(exc).__name__}: {exc}"},
                )
                await self._give_back(batch.deliveries)
                await self._wait_for_database()
                return
            for delivery in batch.deliveries:
                await self.bus.ack(delivery)
            return

    async def _give_back(self, deliveries: Sequence[Delivery]) -> None:
        """Requeue ``deliveries`` and what came after them, last first: a bus that requeues at the
        head (the in-process one) then hands them out again in their order."""
        self.stats.retries += 1
        metrics.PERSISTOR_RETRIES.inc()
        returned = list(deliveries)
        while not self._inbox.empty():
            returned.append(self._inbox.get_nowait())
        for delivery in reversed(returned):
            await self.bus.nack(delivery)

    async def _wait_for_database(self) -> None:
        """Pause consumption and probe the database with backoff until it answers."""
        self.paused = True
        self._resumed.clear()
        metrics.PERSISTOR_PAUSED.set(1)
        started = time.monotonic()
        backoff = _FIRST_BACKOFF
        while True:
            await asyncio.sleep(backoff)
            try:
                await self.event_log.max_sequence()
                break
            except Exception as exc:
                log.info(
                    "the database still does not answer",
                    extra={
                        "error": f"{type(exc).__name__}: {exc}",
                        "retry_in_s": min(backoff * 2, self.settings.retry_max),
                    },
                )
                backoff = min(backoff * 2, self.settings.retry_max)
        paused = time.monotonic() - started
        self.stats.paused_seconds += paused
        self.paused = False
        metrics.PERSISTOR_PAUSED.set(0)
        self._resumed.set()
        log.info("the database answers again; consumption resumed", extra={"paused_s": round(paused, 2)})

    # -- writing ---------------------------------------------------------------------

    async def _write(self, deliveries: Sequence[Delivery]) -> None:
        """Store the events of ``deliveries`` (one transaction per epoch run) and their dead letters."""
        letters: list[NewDeadLetter] = []
        decoded: list[tuple[int, list[Event]]] = []
        for delivery in deliveries:
            if isinstance(delivery.body, Undecodable):
                letters.append(_letter(delivery, delivery.body.reason))
                continue
            try:
                decoded.append(decode_processed(delivery.body))
            except ValueError as exc:
                letters.append(_letter(delivery, str(exc)))
        # One transaction per stretch of consecutive sequence numbers of one epoch, lowest first:
        # RabbitMQ hands the messages of the one queue to the persistors in turn, so a batch may
        # lack the messages another persistor holds. The stretches that follow the log are stored
        # (a retry finds them stored and inserts nothing); the first that does not raises the gap.
        runs: list[tuple[int, list[Event]]] = []
        for epoch, events in sorted(decoded, key=lambda item: (item[0], _first(item[1]))):
            last = runs[-1] if runs else None
            if last is not None and last[0] == epoch and _first(events) <= _first(last[1][-1:]) + 1:
                last[1].extend(events)
            else:
                runs.append((epoch, list(events)))

        def stand_in(event: Event, reason: str) -> Event:
            """An event the database cannot hold: a dead letter, and a tombstone keeps its number."""
            letters.append(
                NewDeadLetter(
                    PROCESSED_EVENTS, f"the event log cannot store this event: {reason}", *raw_bytes(event.to_record())
                )
            )
            return _tombstone(event, reason)

        for epoch, events in runs:
            started = time.perf_counter()
            try:
                await self.event_log.append(events, epoch=epoch, contiguous=True, replace_invalid=stand_in)
            except Fenced as exc:
                self.stats.fenced += len(events)
                metrics.PERSISTOR_FENCED.inc(len(events))
                log.warning(
                    "discarded the events of a former graph leader (their inputs go to the new leader)",
                    extra={"epoch": epoch, "events": len(events), "reason": str(exc)},
                )
                continue
            except EventLogConflict as exc:
                # Retrying cannot help: keep the whole run for a human, and go on.
                log.error("the event log refused a batch that contradicts it", extra={"error": str(exc)})
                letters.append(_run_letter(epoch, events, str(exc)))
                continue
            metrics.PERSISTOR_BATCH_SECONDS.observe(time.perf_counter() - started)
            metrics.PERSISTOR_BATCHES.inc()
            metrics.PERSISTOR_EVENTS.inc(len(events))
            self.stats.batches += 1
            self.stats.stored += len(events)
        if letters:
            await self.dead_letters.add_many(letters)
            self.stats.dead_letters += len(letters)
            metrics.DEAD_LETTERS.labels("persistor").inc(len(letters))
            for letter in letters:
                log.error(
                    "kept a dead letter",
                    extra={"source": letter.source, "reason": letter.reason, "bytes": len(letter.body)},
                )

    # -- dead letters from other roles ---------------------------------------------------

    async def _write_dead_letters(self) -> None:
        while True:
            try:
                delivery = await self.bus.get(DEAD_LETTERS, PERSISTOR_GROUP)
            except BusClosed:
                return
            try:
                record = from_message(delivery.body)
            except ValueError as exc:
                record = _letter(delivery, f"a dead letter that is not one: {exc}")
            while True:
                try:
                    await self.dead_letters.add_many([record])
                    break
                except Exception as exc:
                    log.warning("could not store a dead letter; retrying", extra={"error": str(exc)})
                    await asyncio.sleep(1.0)
            self.stats.dead_letters += 1
            await self.bus.ack(delivery)


def _first(events: Sequence[Event]) -> int:
    return events[0].sequence or 0


def _count(body: object) -> int:
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        return len(body["events"])
    return 1


def _letter(delivery: Delivery, reason: str) -> NewDeadLetter:
    data, content_type = raw_bytes(delivery.body)
    return NewDeadLetter(f"{delivery.topic}/{delivery.group}", reason, data, content_type)


def _run_letter(epoch: int, events: list[Event], reason: str) -> NewDeadLetter:
    data, content_type = raw_bytes({"epoch": epoch, "events": [e.to_record() for e in events]})
    return NewDeadLetter(PROCESSED_EVENTS, reason, data, content_type)


def _tombstone(event: Event, reason: str) -> Event:
    """An event in place of one the database cannot hold: same sequence number, nothing to apply."""
    assert event.sequence is not None
    digest = hashlib.sha256(str(event.event_id).encode("utf-8", "replace")).hexdigest()[:32]
    return Event(
        event_id=f"{TOMBSTONE_DATASOURCE}:{event.sequence}:{digest}",
        datasource=TOMBSTONE_DATASOURCE,
        action=EventAction.UPDATE,
        sample_time=utc_now(),
        payload={"reason": reason[:1000]},
        sequence=event.sequence,
    )


__all__ = ["TOMBSTONE_DATASOURCE", "Persistor", "PersistorStats"]
