"""The graph at a past time T (seed ``002``): rebuilt on a separate processor, in a worker process.

*What T means.* The graph is a fold over the event log, so the graph at T is the
fold of a prefix of the log: the events 1..s where s is one less than the first
event received after T (:meth:`EventLog.sequence_at`), every event when none was.
``received_at`` is stamped where an event enters Vitrail and events are numbered
where the graph applies them, so the two orders can differ (a priority alarm
overtakes a bulk page stamped earlier); the prefix is what the graph had applied
of what it had received by T, exact whatever the disorder, and it only grows with T.

*How it is rebuilt.* The newest snapshot at or before s that loads
(:meth:`SnapshotStore.latest`), decoded into a processor built as the live one is
(:func:`vitrail.services.processors.processor_factory`), then the logged events
after it up to s replayed with their own numbers (:func:`vitrail.graph.replay.replay`:
gaps stepped over, rejected events passed over, as a standby does). Without a
snapshot at or before s, an empty processor and the log from its start, if the log
still starts at 1.

*Never the live graph.* All of that runs in a worker process (one by default,
started with ``forkserver``, or ``spawn`` where there is none, at the first
question), with its own database engine: a reconstruction neither shares the live
processor nor holds the live event loop or its interpreter lock. The worker keeps
the last ``history.reconstruction_cache`` rebuilt processors (least recently used
first out), keyed by s, runs the pure queries of :mod:`vitrail.graph.queries` on
them and sends back plain JSON data.

*The window.* From the later of ``now - history.retention_days`` and the earliest
moment that can be rebuilt, to now. The earliest moment: with the whole log (it
starts at event 1), the first event's reception; otherwise the oldest snapshot the
log continues, at the latest reception among its events still logged (the prefix of
any later moment reaches the snapshot), or when it was taken if they are pruned.

See docs/history.md for the measured cost and the snapshot policy that bounds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from vitrail.api.history import HistoryWindow, OutsideWindow, ReconstructionUnavailable
from vitrail.config import Settings
from vitrail.graph import queries
from vitrail.graph.entity_graph import EntityGraph
from vitrail.graph.events import format_timestamp
from vitrail.graph.gcpause import paused_gc
from vitrail.graph.processor import Processor
from vitrail.graph.queries import AlarmListRequest, NotFound, QueryError, TopologyRequest, Viewer
from vitrail.graph.replay import ReplayReport, replay
from vitrail.graph.snapshot import decode_state
from vitrail.services.graph_role import ProcessorFactory
from vitrail.services.processors import processor_factory
from vitrail.storage import EventLog, SnapshotInfo, SnapshotStore, create_engine

log = logging.getLogger(__name__)

#: Events read from the log per query while replaying.
READ_BATCH = 10_000
#: Seconds between two progress lines of a long reconstruction.
PROGRESS_EVERY = 2.0
#: Properties that change whenever an entity is reported again: not, alone, a change in a diff.
DIFF_IGNORED = frozenset({"vitrage_sample_timestamp", "update_timestamp"})


class _Unreachable(Exception):
    """No snapshot at or before the sequence can be continued by the log (the worker's refusal)."""


# -- the service the API uses (in the API's process) ----------------------------------------------


class TimeTravel:
    """The graph as it was at a time T, for the API (``app.state.time_travel``).

    Resolves times to sequence numbers and checks them against the window here (a
    few indexed queries), then asks the worker process for the rest.
    """

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        *,
        static_directory: Path | None = None,
        clock: Callable[[], datetime] | None = None,
        workers: int = 1,
    ) -> None:
        self.settings = settings
        self.event_log = EventLog(engine)
        self.snapshots = SnapshotStore(engine)
        self.static_directory = static_directory
        self.clock = clock or (lambda: datetime.now(UTC))
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    # -- the window and the sequence of a time -----------------------------------------------

    async def window(self, now: datetime | None = None) -> HistoryWindow:
        """The times the graph can be rebuilt for (see the module docstring)."""
        now = now or self.clock()
        retention_start = now - timedelta(days=self.settings.history.retention_days)
        first = await self.event_log.first_sequence()
        if first <= 1:
            earliest = await self.event_log.earliest_received()  # None: an empty log, nothing to rebuild
            start = retention_start if earliest is None else max(retention_start, earliest)
            return HistoryWindow(min(start, now), now)
        oldest = await self.snapshots.earliest(min_sequence=first - 1)
        if oldest is None:
            return HistoryWindow(None, now)
        earliest = None
        if oldest.sequence >= first:
            earliest = await self.event_log.latest_received_between(first, oldest.sequence)
        if earliest is None:
            earliest = oldest.taken_at
        return HistoryWindow(min(max(retention_start, earliest), now), now)

    async def resolve(self, at: datetime, parameter: str = "at") -> int:
        """The sequence number of the graph at ``at``; :class:`OutsideWindow` outside the window."""
        if at.tzinfo is None:
            raise ValueError(f"naive datetime {at.isoformat()}: give a time zone (UTC)")
        now = self.clock()
        window = await self.window(now)
        if at > now:
            raise OutsideWindow(f"{parameter}: {format_timestamp(at)} is in the future; {window.describe()}")
        if window.start is None or at < window.start:
            raise OutsideWindow(
                f"{parameter}: {format_timestamp(at)} is outside the history window; {window.describe()}"
            )
        return await self.event_log.sequence_at(at)

    # -- the queries ---------------------------------------------------------------------------

    async def topology(self, at: datetime, request: TopologyRequest, viewer: Viewer) -> dict[str, Any]:
        return await self._query(at, "topology", request, viewer)

    async def resources(
        self, at: datetime, viewer: Viewer, all_tenants: bool, resource_type: str | None, query: Any
    ) -> list[dict[str, Any]]:
        return await self._query(at, "resources", viewer, all_tenants, resource_type, query)

    async def resource(self, at: datetime, vitrage_id: str, viewer: Viewer) -> dict[str, Any]:
        return await self._query(at, "resource", vitrage_id, viewer)

    async def resource_count(
        self,
        at: datetime,
        viewer: Viewer,
        all_tenants: bool,
        resource_type: str | None,
        query: Any,
        group_by: str | None,
    ) -> dict[str, int]:
        return await self._query(at, "resource_count", viewer, all_tenants, resource_type, query, group_by)

    async def alarms(self, at: datetime, request: AlarmListRequest, viewer: Viewer) -> list[dict[str, Any]]:
        return await self._query(at, "alarms", request, viewer)

    async def alarm(self, at: datetime, vitrage_id: str, viewer: Viewer) -> dict[str, Any]:
        return await self._query(at, "alarm", vitrage_id, viewer)

    async def alarm_count(self, at: datetime, viewer: Viewer, all_tenants: bool) -> dict[str, int]:
        return await self._query(at, "alarm_count", viewer, all_tenants)

    async def rca(self, at: datetime, alarm_id: str, viewer: Viewer, all_tenants: bool) -> dict[str, Any]:
        return await self._query(at, "rca", alarm_id, viewer, all_tenants)

    async def diff(
        self, start: datetime, end: datetime, viewer: Viewer, all_tenants: bool = False, limit: int | None = None
    ) -> dict[str, Any]:
        """Resources and alarms added, removed and changed from ``start`` to ``end`` (docs/history.md)."""
        if start > end:
            raise OutsideWindow(f"from: {format_timestamp(start)} is after to: {format_timestamp(end)}")
        first = await self.resolve(start, "from")
        last = await self.resolve(end, "to")
        body = await self._ask(first, "diff", (last, viewer, all_tenants, limit), start, "from")
        return {
            "from": {"time": format_timestamp(start), "sequence": first},
            "to": {"time": format_timestamp(end), "sequence": last},
            **body,
        }

    async def _query(self, at: datetime, operation: str, *arguments: Any) -> Any:
        sequence = await self.resolve(at)
        return await self._ask(sequence, operation, arguments, at, "at")

    async def _ask(
        self, sequence: int, operation: str, arguments: tuple[Any, ...], at: datetime, parameter: str
    ) -> Any:
        pool = self._executor()
        try:
            outcome = await asyncio.wrap_future(pool.submit(_answer, sequence, operation, arguments))
        except BrokenProcessPool:
            self._discard(pool)
            raise ReconstructionUnavailable(
                "the reconstruction worker stopped (killed, out of memory, or it could not start: see the log); "
                "the next request starts another"
            ) from None
        kind = outcome[0]
        if kind == "ok":
            return outcome[1]
        if kind == "query":
            raise QueryError(outcome[1], outcome[2])
        if kind == "not_found":
            raise NotFound(outcome[1])
        if kind == "unreachable":
            window = await self.window()
            raise OutsideWindow(f"{parameter}: {format_timestamp(at)}: {outcome[1]}; {window.describe()}")
        raise ReconstructionUnavailable(f"the graph at {format_timestamp(at)} could not be rebuilt: {outcome[1]}")

    # -- the worker process ----------------------------------------------------------------------

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=_context(),
                initializer=_initialize,
                initargs=(self.settings, self.static_directory, _logging_config(self.settings)),
            )
        return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool:
            self._pool = None
        _stop_pool(pool)

    async def close(self) -> None:
        """Stop the worker (a reconstruction under way is abandoned)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(_stop_pool, pool)


def _context() -> BaseContext:
    """``forkserver``: workers forked from a small clean server process (never from this one, whose
    memory holds the live graph), with this module imported once; ``spawn`` where it does not exist."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def _stop_pool(pool: ProcessPoolExecutor, timeout: float = 5.0) -> None:
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:  # a reconstruction under way would otherwise run to its end
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout)


def _logging_config(settings: Settings) -> tuple[str, str] | None:
    """The worker logs as this process does, if this process configured Vitrail's logging."""
    if any(getattr(handler, "_vitrail", False) for handler in logging.getLogger().handlers):
        return settings.logging.level, settings.logging.format
    return None


# -- the worker's side ----------------------------------------------------------------------------

_reconstructor: Reconstructor | None = None


def _initialize(settings: Settings, static_directory: Path | None, logging_config: tuple[str, str] | None) -> None:
    global _reconstructor
    gc.set_threshold(50_000, 20, 100)  # as the graph's process: 100k+ long-lived objects, no cycles
    if logging_config is not None:
        from vitrail.logs import configure_logging

        configure_logging(*logging_config)
    _reconstructor = Reconstructor(settings, static_directory=static_directory)


def _answer(sequence: int, operation: str, arguments: tuple[Any, ...]) -> tuple[Any, ...]:
    assert _reconstructor is not None, "the reconstruction worker was not initialized"
    return _reconstructor.answer(sequence, operation, arguments)


def _diff_query(graph_at: Callable[[int], EntityGraph], first: int, arguments: tuple[Any, ...]) -> dict[str, Any]:
    last, viewer, all_tenants, limit = arguments
    before = _visible(graph_at(first), viewer, all_tenants)
    after = _visible(graph_at(last), viewer, all_tenants)
    body: dict[str, Any] = {"summary": {}}
    for kind in ("resources", "alarms"):
        compared = compare(before[kind], after[kind])
        body["summary"][kind] = {change: len(entries) for change, entries in compared.items()}
        body[kind] = {change: entries[:limit] if limit is not None else entries for change, entries in compared.items()}
    return body


def _visible(graph: EntityGraph, viewer: Viewer, all_tenants: bool) -> dict[str, dict[str, dict[str, Any]]]:
    """The resources and alarms the viewer sees, by vitrage_id, as the API shows them."""
    resources = queries.list_resources(graph, viewer, all_tenants)
    alarms = queries.list_alarms(graph, AlarmListRequest(all_tenants=all_tenants), viewer)
    return {
        "resources": {row["vitrage_id"]: row for row in resources},
        "alarms": {row["vitrage_id"]: row for row in alarms},
    }


def compare(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``{"added", "removed", "changed"}`` between two sets of entities keyed by vitrage_id, sorted by it.

    Added entries as they are ``after``, removed ones as they were ``before``; a changed one
    names each property that differs with its two values (:data:`DIFF_IGNORED` aside; a
    missing property reads as null).
    """
    changed = []
    for vitrage_id in sorted(before.keys() & after.keys()):
        old, new = before[vitrage_id], after[vitrage_id]
        if old == new:
            continue
        changes = {
            name: {"from": old.get(name), "to": new.get(name)}
            for name in sorted(old.keys() | new.keys())
            if name not in DIFF_IGNORED and old.get(name) != new.get(name)
        }
        if changes:
            changed.append(
                {
                    "vitrage_id": vitrage_id,
                    "vitrage_type": new.get("vitrage_type"),
                    "name": new.get("name"),
                    "changes": changes,
                }
            )
    return {
        "added": [after[key] for key in sorted(after.keys() - before.keys())],
        "removed": [before[key] for key in sorted(before.keys() - after.keys())],
        "changed": changed,
    }


_QUERIES: dict[str, Callable[..., Any]] = {
    "topology": queries.topology,
    "resources": queries.list_resources,
    "resource": lambda graph, vitrage_id, viewer: queries.show_resource(graph, vitrage_id, viewer),
    "resource_count": queries.count_resources,
    "alarms": queries.list_alarms,
    "alarm": lambda graph, vitrage_id, viewer: queries.show_alarm(graph, vitrage_id, viewer),
    "alarm_count": queries.count_alarms,
    "rca": queries.rca,
}


class Reconstructor:
    """Rebuilds processors at past sequence numbers, keeps the recent ones, answers queries on them.

    The worker process holds one; it owns an event loop and a database engine of its
    own. Usable in any process (the benchmark and the tests drive one directly).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        static_directory: Path | None = None,
        engine: AsyncEngine | None = None,
        factory: ProcessorFactory | None = None,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self._own_engine = engine is None
        self.engine = engine or create_engine(settings.database_url())
        self.event_log = EventLog(self.engine)
        self.snapshots = SnapshotStore(self.engine)
        self.factory = factory or processor_factory(settings, static_directory=static_directory)
        self.capacity = settings.history.reconstruction_cache
        self.cache: OrderedDict[int, Processor] = OrderedDict()
        #: What the last rebuild did (for the benchmark and the tests).
        self.last_rebuild: dict[str, Any] | None = None

    def answer(self, sequence: int, operation: str, arguments: tuple[Any, ...]) -> tuple[Any, ...]:
        """``("ok", result)``, or a refusal: ``("query", message, parameter)``, ``("not_found", message)``,
        ``("unreachable", message)``, ``("failed", message)``. Plain data, for the trip back."""
        try:
            if operation == "diff":
                return ("ok", _diff_query(self.graph_at, sequence, arguments))
            return ("ok", _QUERIES[operation](self.graph_at(sequence), *arguments))
        except QueryError as exc:
            return ("query", str(exc), exc.parameter)
        except NotFound as exc:
            return ("not_found", str(exc))
        except _Unreachable as exc:
            return ("unreachable", str(exc))
        except Exception as exc:
            log.exception("rebuilding the graph at a past time failed", extra={"sequence": sequence})
            return ("failed", f"{type(exc).__name__}: {exc}")

    def graph_at(self, sequence: int) -> EntityGraph:
        return self.processor_at(sequence).graph

    def processor_at(self, sequence: int) -> Processor:
        """The processor as it was after event ``sequence``: from the cache, or rebuilt (then cached)."""
        cached = self.cache.get(sequence)
        if cached is not None:
            self.cache.move_to_end(sequence)
            return cached
        # The collector stays paused for the whole rebuild: the graph has no reference cycles, and
        # collections walking a heap growing by 100k+ objects would double the time (measured).
        with paused_gc():
            processor = self.loop.run_until_complete(self.rebuild(sequence))
        if self.capacity > 0:
            self.cache[sequence] = processor
            while len(self.cache) > self.capacity:
                self.cache.popitem(last=False)
        return processor

    async def rebuild(self, sequence: int) -> Processor:
        """Snapshot at or before ``sequence`` + the logged events after it, up to ``sequence``."""
        started = time.perf_counter()
        first = await self.event_log.first_sequence()
        processor, snapshot = await self._start(sequence, first)
        loaded = time.perf_counter()
        report = ReplayReport()
        reported = loaded
        batches = self.event_log.replay_batches(after=processor.sequence, until=sequence, batch_size=READ_BATCH)
        async for batch in _read_ahead(batches):
            replay(processor, batch, report)
            if time.perf_counter() - reported >= PROGRESS_EVERY:
                reported = time.perf_counter()
                log.info(
                    "rebuilding the graph at a past time",
                    extra={
                        "sequence": sequence,
                        "replayed": report.replayed,
                        "to_replay": sequence - (snapshot.sequence if snapshot else 0),
                        "seconds": round(reported - started, 1),
                    },
                )
        done = time.perf_counter()
        self.last_rebuild = {
            "sequence": sequence,
            "snapshot_sequence": snapshot.sequence if snapshot else None,
            "replayed": report.replayed,
            "load_s": round(loaded - started, 3),
            "replay_s": round(done - loaded, 3),
            "seconds": round(done - started, 3),
        }
        log.info(
            "graph rebuilt at a past time",
            extra={
                **self.last_rebuild,
                "vertices": processor.graph.num_vertices,
                "gaps": len(report.gaps) or None,
                "skipped": report.skipped or None,
            },
        )
        return processor

    async def _start(self, sequence: int, first: int) -> tuple[Processor, SnapshotInfo | None]:
        """The newest loadable snapshot at or before ``sequence`` that the log continues, else empty
        (when the log starts at 1); :class:`_Unreachable` when neither can be."""
        limit = sequence
        while True:
            info = await self.snapshots.latest(max_sequence=limit)
            if info is None or (first > 1 and info.sequence < first - 1):
                break
            try:
                data = await self.snapshots.load(info.id)
                return self.factory.load(decode_state(data, info.format)), info
            except Exception as exc:
                log.error(
                    "a snapshot cannot be loaded to rebuild the graph; trying the one before it",
                    extra={"snapshot": info.id, "sequence": info.sequence, "error": f"{type(exc).__name__}: {exc}"},
                )
                limit = info.sequence - 1
        if first <= 1:
            return self.factory.fresh(), None
        raise _Unreachable(
            f"no loadable snapshot at or before event {sequence} is continued by the event log "
            f"(it starts at event {first})"
        )

    def close(self) -> None:
        self.cache.clear()
        if self._own_engine:
            self.loop.run_until_complete(self.engine.dispose())
        self.loop.close()


async def _read_ahead(batches: AsyncIterable[Sequence[Any]]) -> AsyncIterator[Sequence[Any]]:
    """``batches``, the next one read while the caller replays the current one (the driver reads in
    a thread of its own, so the reads overlap the fold)."""
    source = aiter(batches)
    upcoming = asyncio.ensure_future(anext(source, None))
    try:
        while (batch := await upcoming) is not None:
            upcoming = asyncio.ensure_future(anext(source, None))
            await asyncio.sleep(0)
            yield batch
    finally:
        upcoming.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await upcoming


__all__ = ["DIFF_IGNORED", "Reconstructor", "TimeTravel", "compare"]
