"""Durability: how fast the persistor stores what the graph processed, per database.

For each backend (SQLite file in WAL mode, PostgreSQL, MariaDB), batch size and
message size, on a fresh database (``vitrail.storage.upgrade``) whose graph
epoch was bumped as a leader's takeover does:

* **persistor**: N processed events, numbered 1..N as the graph leader numbers
  them, are published beforehand on an in-process bus as processed-events
  messages ``{"epoch": E, "events": [record, ...]}`` of ``message`` events
  (1,000: the graph publishes what it applied in messages of up to 5,000;
  1: alarms arrive one by one). Then a real :class:`~vitrail.services.persistor.Persistor`
  (``PersistorSettings(batch_size=batch)``, default timeout) is started and
  timed from its first ``get`` to the moment another connection sees the
  last event stored (``max_sequence`` polled every ``POLL`` s). events/s = N /
  that time. ``batches`` and ``mean batch ms`` are the persistor's
  ``EventLog.append`` calls; ``append share`` is the part of the time spent
  inside them (the rest is the bus, decoding, batching, acks).
* **append ceiling**: the same events, already decoded, written with
  ``EventLog.append(batch, epoch=E, contiguous=True)`` one batch after the
  other, no bus: the most the persistor could do with batches of that size.
  A persistor batch holds whole messages, so with 1,000-event messages every
  batch is 1,000 events whatever ``batch`` says (``events/batch`` column).

The events are the simulator cloud's get_all round folded by a processor
(what the graph leader publishes at start), their payloads padded with
Nova-like fields to ``record_bytes`` per JSON record (0: as the simulator
makes them, about 310 B). Everything runs on this machine, the database
servers included; scratch databases are dropped afterwards.

Also here, for :func:`benchmarks.snapshots.measure_storage`: the save and load
time of an encoded processor state with :class:`~vitrail.storage.SnapshotStore`
on each backend (:func:`snapshot_storage`).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import functools
import io
import os
import pstats
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from benchmarks.report import print_table, write_json

if TYPE_CHECKING:
    from vitrail.graph.events import Event
    from vitrail.graph.snapshot import EncodedState

#: Servers of this machine; a scratch database is created on each and dropped afterwards.
POSTGRESQL_URL = os.environ.get("VITRAIL_BENCH_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/")
MARIADB_URL = os.environ.get("VITRAIL_BENCH_MARIADB_URL", "mysql://root@127.0.0.1:3306/")
BACKENDS = ("sqlite", "postgresql", "mariadb")
#: Longest run of one case (a hang is reported with the tasks' stacks, then the case runs again).
RUN_TIMEOUT = 120.0
#: Seconds between two reads of the stored end of the log while a persistor runs.
POLL = 0.005
SAMPLE_TIME = "2026-11-22 00:00:00.000000+00:00"
TARGETS = {"events_per_s": ">= 20,000 on PostgreSQL"}


def quiet(busy_percent: float = 25.0, within: float = 30.0) -> float:
    """Wait up to ``within`` s for the machine to be idle (others' CPU use below ``busy_percent``,
    over 0.5 s); the CPU use last seen. Other work on a 2-vCPU machine would be measured too."""
    import psutil

    deadline = time.monotonic() + within
    while True:
        used = psutil.cpu_percent(interval=0.5)
        if used < busy_percent or time.monotonic() > deadline:
            return used


# -- scratch databases ------------------------------------------------------------------------


def _server_url(backend: str) -> str:
    return {"postgresql": POSTGRESQL_URL, "mariadb": MARIADB_URL}[backend].rstrip("/") + "/"


async def _admin(backend: str, statement: str) -> None:
    from sqlalchemy import text

    from vitrail.storage import create_engine

    engine = create_engine(_server_url(backend) + ("postgres" if backend == "postgresql" else "mysql"))
    try:
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(statement))
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def scratch_database(backend: str) -> AsyncIterator[str]:
    """The URL of a new, empty database on ``backend`` (a SQLite file in a temporary directory), dropped after."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="vitrail-bench-") as directory:
            yield f"sqlite:///{Path(directory) / 'vitrail.db'}"
        return
    name = f"vitrail_bench_{secrets.token_hex(6)}"
    await _admin(backend, f"CREATE DATABASE {name}")
    try:
        yield _server_url(backend) + name
    finally:
        drop = f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if backend == "postgresql" else "")
        await _admin_when_up(backend, drop)


async def _admin_when_up(backend: str, statement: str, within: float = 180.0) -> None:
    """``statement``, retried while the server is away (other work on this machine restarts it)."""
    deadline = time.monotonic() + within
    while True:
        try:
            await _admin(backend, statement)
            return
        except (OSError, DBAPIError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(2.0)


async def again(what: str, attempt: Callable[[], Awaitable[Any]], attempts: int = 3) -> Any:
    """``attempt()``, run again when it fails on a database that went away meanwhile, or takes more
    than ``RUN_TIMEOUT`` s (other work on this machine stops and restarts the servers, and may drop
    databases); what failed goes to stderr, with the stacks of every task for a run that hung."""
    for number in range(1, attempts + 1):
        task = asyncio.ensure_future(attempt())
        done, _ = await asyncio.wait({task}, timeout=RUN_TIMEOUT)
        if done:
            try:
                return task.result()
            except (OSError, DBAPIError) as exc:
                failure = f"{type(exc).__name__}: {exc}"
        else:
            failure = f"no result within {RUN_TIMEOUT} s; the tasks:\n{_task_stacks()}"
            task.cancel()
            await asyncio.wait({task}, timeout=30)
        if number == attempts:
            raise RuntimeError(f"{what}: {failure}")
        print(f"{what}: {failure}\nwaiting for the servers, then again", file=sys.stderr, flush=True)
        for backend in ("postgresql", "mariadb"):
            await _admin_when_up(backend, "SELECT 1")
    raise AssertionError("unreachable")


def _task_stacks() -> str:
    out = io.StringIO()
    for task in asyncio.all_tasks():
        print(f"--- {task!r}", file=out)
        task.print_stack(file=out)
    return out.getvalue()


@contextlib.asynccontextmanager
async def fresh_store(backend: str) -> AsyncIterator[tuple[Any, int]]:
    """(engine, epoch): a scratch database at the head revision whose graph epoch was bumped once."""
    from vitrail.storage import EpochStore, create_engine, upgrade
    from vitrail.storage.leadership import GRAPH

    async with scratch_database(backend) as url:
        engine = create_engine(url)
        try:
            await upgrade(engine)
            epoch = await EpochStore(engine).bump(GRAPH, "benchmark")
            yield engine, epoch
        finally:
            await engine.dispose()


# -- the events -------------------------------------------------------------------------------


def processed_records(count: int, record_bytes: int) -> list[dict[str, Any]]:
    """``count`` records as the graph leader publishes them: simulator get_all events numbered 1..count."""
    import orjson

    from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
    from vitrail.datasources.state_tables import load_state_table
    from vitrail.graph.gcpause import paused_gc
    from vitrail.graph.processor import Processor
    from vitrail.services.topics import encode

    hosts = max(1, -(-(count - 2) // 11))  # 11 entities per host, a zone and the round end
    driver = SimulatorDriver(SimulatorShape(hosts=hosts, instances_per_host=10, seed=1))
    processor = Processor({"simulator": driver.transformer()}, load_state_table())
    with paused_gc():
        accepted = processor.process_many(driver.round_events(driver.get_all(), 1, SAMPLE_TIME))
    records = encode(accepted[:count])
    if len(records) != count or records[-1]["sequence"] != count:
        raise AssertionError(f"expected {count} events numbered from 1, got {len(records)}")
    if record_bytes:
        for index, record in enumerate(records):
            payload = record["payload"]
            payload.update(
                {
                    "flavor": "m1.small",
                    "image": "cirros-0.6.2-x86_64-disk",
                    "created_at": "2026-11-21T23:59:58.123456+00:00",
                    "addresses": {"private": [f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"]},
                }
            )
            missing = record_bytes - len(orjson.dumps(record)) - len(',"metadata":{"note":""}')
            if missing > 0:
                payload["metadata"] = {"note": "n" * missing}
    return records


def record_size(records: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """Mean bytes of a JSON record and of its payload alone."""
    import orjson

    sample = records[:: max(1, len(records) // 1000)]
    return (
        round(sum(len(orjson.dumps(r)) for r in sample) / len(sample)),
        round(sum(len(orjson.dumps(r["payload"])) for r in sample) / len(sample)),
    )


# -- the persistor ------------------------------------------------------------------------------


async def persistor_run(
    backend: str, records: list[dict[str, Any]], batch: int, message: int, profile: bool = False
) -> dict[str, Any]:
    """A real persistor storing ``records`` published beforehand in messages of ``message`` events."""
    from vitrail.bus import InProcessBus
    from vitrail.config import PersistorSettings
    from vitrail.services.persistor import Persistor
    from vitrail.services.topics import PROCESSED_EVENTS
    from vitrail.storage import DeadLetterStore, EventLog

    count = len(records)

    class TimedBus(InProcessBus):
        first_get: float | None = None

        async def get(self, topic: str, group: str) -> Any:
            if topic == PROCESSED_EVENTS and self.first_get is None:
                self.first_get = time.perf_counter()
            return await super().get(topic, group)

    class TimedLog(EventLog):
        seconds = 0.0
        calls = 0

        async def append(self, batch: Sequence[Event], **options: Any) -> int:
            started = time.perf_counter()
            try:
                return await super().append(batch, **options)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1

    async with fresh_store(backend) as (engine, epoch):
        from vitrail.storage import create_engine

        messages = [{"epoch": epoch, "events": records[i : i + message]} for i in range(0, count, message)]
        bus = TimedBus(max_pending=len(messages) + 1)
        event_log = TimedLog(engine)
        persistor = Persistor(bus, event_log, DeadLetterStore(engine), PersistorSettings(batch_size=batch))
        await persistor.start_consuming()
        for body in messages:
            await bus.publish(PROCESSED_EVENTS, body)
        probe = create_engine(engine.url.render_as_string(hide_password=False))
        profiler = cProfile.Profile() if profile else None
        try:
            async with _stored_end(probe) as stored_end:
                await stored_end()  # connected before the clock starts
                if profiler is not None:
                    profiler.enable()
                await persistor.start()
                while True:  # the end of the log, as another connection sees it
                    if await stored_end() >= count:
                        break
                    await asyncio.sleep(POLL)
                ended = time.perf_counter()
                if profiler is not None:
                    profiler.disable()
            # The last commit is seen; let the persistor finish that batch (count it, ack it).
            for _ in range(1000):
                if persistor.stats.stored >= count:
                    break
                await asyncio.sleep(0.005)
            stored = await EventLog(probe).count()
        finally:
            await persistor.stop()
            await bus.close()
            await probe.dispose()
    assert bus.first_get is not None
    elapsed = ended - bus.first_get
    stats = persistor.stats
    if stored != count or stats.stored != count or stats.dead_letters or stats.fenced:
        raise AssertionError(f"{backend}: stored {stored} (persistor says {stats}), expected {count}")
    row = {
        "backend": backend,
        "batch": batch,
        "message": message,
        "events": count,
        "seconds": round(elapsed, 3),
        "events_per_s": round(count / elapsed),
        "batches": stats.batches,
        "events_per_batch": round(count / stats.batches),
        "mean_batch_ms": round(event_log.seconds / event_log.calls * 1000, 2),
        "append_share": round(event_log.seconds / elapsed, 3),
    }
    if profiler is not None:
        row["profile"] = _profile_text(profiler)
    return row


@contextlib.asynccontextmanager
async def _stored_end(engine: Any) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """A cheap reader of the highest stored sequence: one held connection, one statement per read.

    Not ``EventLog.max_sequence``: its pool checkout pings the server first, and the
    poll shares this process's CPU with the persistor it measures.
    """
    from sqlalchemy import func, select

    from vitrail.storage import events

    query = select(func.coalesce(func.max(events.c.sequence), 0))
    async with engine.connect() as connection:
        if engine.dialect.name != "sqlite":
            await connection.execution_options(isolation_level="AUTOCOMMIT")

        async def read() -> int:
            value = int(await connection.scalar(query) or 0)
            if connection.in_transaction():
                await connection.rollback()  # the next read sees what was committed meanwhile
            return value

        yield read


def _profile_text(profiler: cProfile.Profile, lines: int = 35) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


async def append_ceiling(backend: str, events: list[Event], batch: int) -> dict[str, Any]:
    """``EventLog.append`` alone, batch after batch, with the persistor's arguments."""
    from vitrail.storage import EventLog

    async with fresh_store(backend) as (engine, epoch):
        event_log = EventLog(engine)
        await event_log.max_sequence()  # the pool holds a connection before the clock starts
        started = time.perf_counter()
        for start in range(0, len(events), batch):
            await event_log.append(events[start : start + batch], epoch=epoch, contiguous=True)
        elapsed = time.perf_counter() - started
        stored = await event_log.count()
    if stored != len(events):
        raise AssertionError(f"{backend}: stored {stored}, expected {len(events)}")
    return {
        "ceiling_s": round(elapsed, 3),
        "ceiling_events_per_s": round(len(events) / elapsed),
        "ceiling_batch_ms": round(elapsed / -(-len(events) // batch) * 1000, 2),
    }


async def measure_persistor(
    events: int, batches: list[int], repeat: int, record_bytes: int, backends: Sequence[str], profile: bool
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    from vitrail.graph.events import Event

    records = processed_records(events, record_bytes)
    record_b, payload_b = record_size(records)
    decoded = [Event.from_record(record) for record in records]
    # (batch, message): messages of 1,000 events for every batch size, 1-event messages too.
    plans = [(batch, message) for batch in batches for message in (1000, 1)]
    rows: list[dict[str, Any]] = []
    profiles: dict[str, str] = {}
    for backend in backends:
        ceilings: dict[int, dict[str, Any]] = {}
        for batch, message in plans:
            samples = []
            for _ in range(repeat):
                quiet()
                samples.append(
                    await again(
                        f"{backend} persistor", functools.partial(persistor_run, backend, records, batch, message)
                    )
                )
            best = dict(max(samples, key=lambda r: r["events_per_s"]))
            best["mean_batch_ms"] = min(r["mean_batch_ms"] for r in samples)
            per_batch = message * -(-batch // message)  # whole messages per batch
            if per_batch not in ceilings:
                runs = []
                for _ in range(repeat):
                    quiet()
                    runs.append(
                        await again(
                            f"{backend} ceiling", functools.partial(append_ceiling, backend, decoded, per_batch)
                        )
                    )
                ceilings[per_batch] = max(runs, key=lambda r: r["ceiling_events_per_s"])
            best.update(ceilings[per_batch])
            best["persistor_vs_ceiling"] = round(best["events_per_s"] / best["ceiling_events_per_s"], 3)
            best.update({"record_bytes": record_b, "payload_bytes": payload_b, "runs": repeat})
            rows.append(best)
            print(
                f"{backend:>10} batch {batch:>5} message {message:>5}: {best['events_per_s']:>7,} events/s "
                f"(ceiling {best['ceiling_events_per_s']:,})",
                flush=True,
            )
        if profile:
            for batch, message in plans:
                if batch == max(batches) or message == 1:
                    run = await persistor_run(backend, records, batch, message, profile=True)
                    profiles[f"{backend} batch {batch} message {message}"] = run["profile"]
    return rows, profiles


COLUMNS = [
    ("backend", "backend"),
    ("batch", "batch"),
    ("message", "msg events"),
    ("events_per_batch", "events/batch"),
    ("batches", "batches"),
    ("seconds", "s"),
    ("events_per_s", "events/s"),
    ("mean_batch_ms", "mean batch ms"),
    ("append_share", "append share"),
    ("ceiling_events_per_s", "append ceiling ev/s"),
    ("ceiling_batch_ms", "ceiling batch ms"),
    ("persistor_vs_ceiling", "persistor/ceiling"),
]


def run(
    events: int,
    batches: list[int],
    repeat: int,
    json_path: Path | None,
    record_bytes: int = 500,
    backends: Sequence[str] = BACKENDS,
    profile: bool = False,
) -> list[dict[str, Any]]:
    rows, profiles = asyncio.run(measure_persistor(events, batches, repeat, record_bytes, backends, profile))
    for name, text in profiles.items():
        print(f"\n== cProfile of the persistor: {name} ==\n{text}")
    print_table(
        f"Persistor: {events:,} processed events pre-published on an in-process bus -> event log "
        f"(JSON record {rows[0]['record_bytes']} B, payload {rows[0]['payload_bytes']} B; best of {repeat})",
        rows,
        COLUMNS,
    )
    write_json(json_path, "persistor", rows, TARGETS)
    return rows


# -- snapshots in the database ----------------------------------------------------------------------


async def snapshot_storage(state: EncodedState, backends: Sequence[str] = BACKENDS, repeat: int = 3) -> dict[str, Any]:
    """``SnapshotStore.save`` then ``load`` of ``state`` on each backend (best of ``repeat``), bytes checked."""
    row: dict[str, Any] = {}
    for backend in backends:
        row.update(await again(f"{backend} snapshot", functools.partial(_snapshot_storage, state, backend, repeat)))
    return row


async def _snapshot_storage(state: EncodedState, backend: str, repeat: int) -> dict[str, Any]:
    from vitrail.storage import SnapshotStore

    saves: list[float] = []
    loads: list[float] = []
    async with fresh_store(backend) as (engine, epoch):
        store = SnapshotStore(engine)
        for _ in range(repeat):
            started = time.perf_counter()
            info = await store.save_state(state, epoch)
            saves.append(time.perf_counter() - started)
            started = time.perf_counter()
            data = await store.load(info.id)
            loads.append(time.perf_counter() - started)
            if data != state.data:
                raise AssertionError(f"{backend}: the loaded snapshot differs from the saved one")
    return {
        f"{backend}_save_s": round(min(saves), 3),
        f"{backend}_load_s": round(min(loads), 3),
        "stored_bytes": info.stored_bytes,
        "chunks": info.chunks,
    }
