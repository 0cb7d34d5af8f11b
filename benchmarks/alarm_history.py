"""Alarm history: how fast the graph leader writes it, and query latency over a large history.

On a scratch database of each backend (PostgreSQL by default), ``rows`` alarm
occurrences are written the way the graph leader writes them
(:meth:`HistoryStore.write`, 5,000 records per transaction): each alarm
starts, a third of them change severity, and all but the last 2 % end, on
``resources`` resources over 30 days, with ``causes`` links between them.
Then each query the API serves is timed ``samples`` times (after a warm-up),
through :class:`~vitrail.services.alarm_history.AlarmHistory` as the route
calls it, rows decoded included:

* ``first page``: ``GET /v1/alarm/history/`` with the defaults (1,000 rows, oldest first);
* ``newest page``: sorted by start time descending (``--newest-first``);
* ``time frame``: active at some moment in a random 1-hour window, 1,000 rows;
* ``deep page``: the page after a random marker in the middle of the history;
* ``resource``: one resource's alarms (``?resource=``);
* ``active``: the alarms still active;
* ``tenant``: a project's alarms (a non-admin viewer);
* ``rca``: the RCA history of a random ended alarm that caused others.

Reported: p50 and p99 per query, rows returned, and the write rate. This
machine's PostgreSQL runs without autovacuum, so the benchmark runs ``ANALYZE``
every 200,000 records as autovacuum would.
Target (issue 6): p99 ≤ 50 ms over 1M rows on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.durability import fresh_store
from benchmarks.report import print_table, write_json

START = datetime(2026, 10, 1, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="microseconds")


def history_records(rows: int, resources: int, seed: int = 7) -> tuple[list[Any], list[str]]:
    """Records in sequence order for ``rows`` occurrences, and the ids of alarms that caused others."""
    from vitrail.graph.history import AlarmRecord, AlarmSummary, CauseRecord, RecordKind

    rng = random.Random(seed)
    span = timedelta(days=30).total_seconds()
    timeline: list[tuple[float, int, Any]] = []
    causing: list[str] = []
    severities = ("WARNING", "SEVERE", "CRITICAL")
    for n in range(rows):
        vitrage_id = f"alarm-{n:08d}"
        resource = n % resources
        begin = rng.random() * span
        summary = AlarmSummary(
            name=f"alert-{n % 50}",
            vitrage_type="prometheus" if n % 4 else "vitrage",
            severity=severities[n % 3],
            aggregated_severity=severities[n % 3],
            state="Active",
            project_id=f"project-{resource % 20}",
            resource_id=f"resource-{resource:06d}",
            resource_type="nova.instance",
            resource_name=f"instance-{resource:06d}",
            resource_project_id=f"project-{resource % 20}",
            deduced=n % 4 == 0,
            templates=("host_down",) if n % 4 == 0 else (),
            payload={"vitrage_id": vitrage_id, "name": f"alert-{n % 50}", "severity": "critical", "n": n},
        )
        timeline.append((begin, 0, ("start", vitrage_id, summary)))
        duration = rng.expovariate(1 / 3600)
        if n % 3 == 0:
            timeline.append((begin + duration / 2, 1, ("change", vitrage_id, summary)))
        if rng.random() > 0.02:
            timeline.append((begin + duration, 3, ("end", vitrage_id, None)))
        if n % 10 == 0 and n + 1 < rows:  # this alarm causes the next one, while both are active
            causing.append(vitrage_id)
            timeline.append((begin + 1, 2, ("cause", vitrage_id, f"alarm-{n + 1:08d}")))
            timeline.append((begin + duration / 3, 2, ("uncause", vitrage_id, f"alarm-{n + 1:08d}")))
    timeline.sort(key=lambda item: (item[0], item[1]))
    records: list[Any] = []
    for sequence, (offset, _, (kind, first, second)) in enumerate(timeline, start=1):
        when = _stamp(START + timedelta(seconds=offset))
        if kind == "start":
            records.append(AlarmRecord(RecordKind.STARTED, sequence, when, first, second))
        elif kind == "change":
            records.append(AlarmRecord(RecordKind.CHANGED, sequence, when, first, second))
        elif kind == "end":
            records.append(AlarmRecord(RecordKind.ENDED, sequence, when, first, None))
        elif kind == "cause":
            records.append(CauseRecord(RecordKind.STARTED, sequence, when, first, second))
        else:
            records.append(CauseRecord(RecordKind.ENDED, sequence, when, first, second))
    return records, causing


async def _measure(backend: str, rows: int, resources: int, samples: int) -> list[dict[str, Any]]:
    from vitrail.graph.queries import Viewer
    from vitrail.services.alarm_history import AlarmHistory
    from vitrail.storage.history import HistoryQuery, HistoryStore

    records, causing = history_records(rows, resources)
    results: list[dict[str, Any]] = []
    async with fresh_store(backend) as (engine, epoch):
        store = HistoryStore(engine)
        started = time.perf_counter()
        batch = 5000
        for index in range(0, len(records), batch):
            chunk = records[index : index + batch]
            await store.write(chunk, chunk[-1].sequence, epoch)
            if index and index % 200_000 < batch:
                print(f"  {backend}: {index:,} of {len(records):,} records written", flush=True)
                await _analyze(engine)
        write_seconds = time.perf_counter() - started
        await _analyze(engine)
        history = AlarmHistory(store)
        admin = Viewer()
        tenant = Viewer(project_id="project-3", is_admin=False, roles=frozenset({"member"}))
        rng = random.Random(11)
        middle_ids = [r["history_id"] for r in await store.query(HistoryQuery(limit=1000))]
        deep_markers = []
        for _ in range(20):
            moment = START + timedelta(days=rng.uniform(10, 20))
            page = await store.query(HistoryQuery(start=moment, end=moment + timedelta(minutes=1), limit=1))
            deep_markers.extend(str(r["history_id"]) for r in page)
        deep_markers = deep_markers or [str(i) for i in middle_ids]

        def window() -> HistoryQuery:
            moment = START + timedelta(days=rng.uniform(0, 29))
            return HistoryQuery(start=moment, end=moment + timedelta(hours=1))

        cases: list[tuple[str, Any]] = [
            ("first page", lambda: history.list(HistoryQuery(), admin, True)),
            ("newest page", lambda: history.list(HistoryQuery(sort_dirs=("desc", "desc")), admin, True)),
            ("time frame", lambda: history.list(window(), admin, True)),
            ("deep page", lambda: history.list(HistoryQuery(marker=rng.choice(deep_markers)), admin, True)),
            (
                "resource",
                lambda: history.list(HistoryQuery(resource_id=f"resource-{rng.randrange(resources):06d}"), admin, True),
            ),
            ("active", lambda: history.list(HistoryQuery(only_active=True), admin, True)),
            ("tenant", lambda: history.list(HistoryQuery(), tenant, False)),
            ("rca", lambda: history.rca(rng.choice(causing), admin, True, None)),
        ]
        for name, call in cases:
            for _ in range(5):
                await call()
            times: list[float] = []
            returned = 0
            for _ in range(samples):
                began = time.perf_counter()
                answer = await call()
                times.append(time.perf_counter() - began)
                returned += len(answer) if isinstance(answer, list) else len(answer["nodes"])
            times.sort()
            results.append(
                {
                    "backend": backend,
                    "rows": rows,
                    "query": name,
                    "p50_ms": statistics.median(times) * 1000,
                    "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
                    "mean_rows": returned / samples,
                    "write_records_per_s": len(records) / write_seconds,
                }
            )
            print(f"  {backend} {name}: p99 {results[-1]['p99_ms']:.1f} ms", flush=True)
    return results


async def _analyze(engine: Any) -> None:
    """What autovacuum does on a production server (this machine's PostgreSQL runs without it):
    fresh statistics, without which the planner takes a growing table for an empty one."""
    if engine.dialect.name != "postgresql":
        return
    from sqlalchemy import text

    async with engine.begin() as connection:
        await connection.execute(text("ANALYZE"))


def run(rows: int, resources: int, samples: int, backends: list[str], json_path: Path | None) -> None:
    results: list[dict[str, Any]] = []
    for backend in backends:
        results.extend(asyncio.run(_measure(backend, rows, resources, samples)))
    print_table(
        f"Alarm history queries over {rows:,} occurrences ({samples} samples each, after a warm-up)",
        results,
        [
            ("backend", "backend"),
            ("query", "query"),
            ("p50_ms", "p50 ms"),
            ("p99_ms", "p99 ms"),
            ("mean_rows", "rows"),
            ("write_records_per_s", "records written/s"),
        ],
    )
    write_json(json_path, "alarm_history", results, {"p99_ms": 50})
