"""Failover: the graph leader is SIGKILLed; how long until the API answers again, from the standby.

For each N, real ``vitrail serve --role ...`` processes on this machine's
RabbitMQ (a fresh namespace: ``?prefix=`` in the transport URL) and a fresh
PostgreSQL database, as docs/ha.md deploys them: a persistor, a collector (the
simulator: a zone, N hosts, 10 instances each: 11N+2 entities), an API, and
two graph processes. Graph A starts first; once it is the leader, its graph
is ready and the snapshot taken after the get_all round is stored ("snapshot
stored" with every entity), graph B starts and waits as a standby. Then A is
SIGKILLed and the API is asked ``GET /v1/resources/count/?all_tenants=true``
every ``POLL`` s (a new request each time while fewer than ``OUTSTANDING``
are unanswered: a request waits on the broker until a graph serves it) until
one returns the full entity count, which only B can give since every request
was sent after the kill. Reported, from the kill:

* ``answer_s``: the first full answer received by the client (the target);
* ``lock_s`` / ``leader_s``: when B's log said it took the lock, and that it
  is the graph leader (its takeover done: snapshot loaded, log replayed,
  consuming and serving RPC), as the lines reached this process;
* B's own ``this process is the graph leader`` fields: ``seconds`` (from the
  lock to serving), ``replayed`` events, ``snapshot_sequence``.

With ``--replay R``, the simulator also reports instance state changes
(``CHANGES_PER_POLL`` every ``CHANGES_INTERVAL`` s, 5,000 events/s, still
flowing during the failover) and A is killed once the log holds at least R
events after that snapshot: B replays them (``replayed`` says how many).

Best of ``repeat`` runs per size (the fastest answer; each run's numbers are
kept in the JSON). Every process is stopped, the namespace's queues and
exchange deleted and the database dropped after each run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.durability import quiet
from benchmarks.report import print_table, write_json

AMQP_URL = os.environ.get("VITRAIL_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
#: Seconds between two requests to the API after the kill.
POLL = 0.025
#: With ``--replay``: instance changes the simulator reports every CHANGES_INTERVAL s.
CHANGES_PER_POLL = 500
CHANGES_INTERVAL = 0.1
#: Requests in flight at most: a request waits on the broker until a graph serves it, and a
#: pile of them would make the standby run that many queries before the first answer leaves.
OUTSTANDING = 2
#: Longest wait for the standby to answer after the kill.
ANSWER_TIMEOUT = 60.0
STARTED = re.compile(r"Vitrail \([a-z, ]+\) is (listening on (?P<url>http://[\d.]+:\d+)|running)")
TARGETS = {"answer_s": "<= 3 s at 110k entities (SIGKILL of the leader -> the standby answers the API)"}


@dataclass
class Role:
    """One ``vitrail serve --role`` process, its output lines and when each arrived."""

    name: str
    process: subprocess.Popen[str]
    lines: list[tuple[float, str]] = field(default_factory=list)
    url: str | None = None
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._arrived:
                self.lines.append((time.perf_counter(), line))
                self._arrived.notify_all()
        with self._arrived:
            self._arrived.notify_all()

    def wait_for(self, pattern: str, timeout: float, after: int = 0) -> tuple[float, re.Match[str], str]:
        """(arrival time, match, line) of the first line from ``after`` on that matches ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = after
        with self._arrived:
            while True:
                for arrived, line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return arrived, match, line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and seen == len(self.lines)):
                    tail = "".join(line for _, line in self.lines[-40:])
                    raise RuntimeError(f"{self.name}: no line matching {pattern!r} within {timeout} s:\n{tail}")
                self._arrived.wait(min(left, 0.5))

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _record(line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


class Deployment:
    """The processes of one run, sharing a broker namespace and a database."""

    def __init__(self, directory: Path, database_url: str, hosts: int, changes: bool) -> None:
        self.directory = directory
        self.prefix = f"vt-bench-fo-{uuid.uuid4().hex[:10]}"
        separator = "&" if "?" in AMQP_URL else "?"
        self.env = {
            "VITRAIL_TRANSPORT_URL": f"{AMQP_URL}{separator}prefix={self.prefix}",
            "VITRAIL_DATABASE__URL": database_url,
            "VITRAIL_LOGGING__FORMAT": "json",
            "VITRAIL_LOGGING__LEVEL": "INFO",
            "VITRAIL_API__PORT": "0",
            "VITRAIL_API__HOST": "127.0.0.1",
            "VITRAIL_DATASOURCES": "simulator",
            "VITRAIL_SIMULATOR__HOSTS": str(hosts),
            "VITRAIL_SIMULATOR__INSTANCES_PER_HOST": "10",
            "VITRAIL_SIMULATOR__SEED": "1",
            "VITRAIL_COLLECTOR__PAGE_SIZE": "1000",
        }
        if changes:
            # Instance state changes keep coming, so the log grows after the snapshot.
            self.env["VITRAIL_SIMULATOR__CHANGES_PER_POLL"] = str(CHANGES_PER_POLL)
            self.env["VITRAIL_GRAPH__CHANGES_INTERVAL"] = str(CHANGES_INTERVAL)
        self.roles: list[Role] = []

    def start(self, name: str, role: str, timeout: float = 120.0) -> Role:
        env = {**os.environ, **self.env, "VITRAIL_DATA_DIR": str(self.directory / name)}
        env.pop("VITRAIL_CONFIG", None)
        command = [sys.executable, "-m", "vitrail.cli.main", "serve", "--role", role]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        running = Role(name, process)
        self.roles.append(running)
        threading.Thread(target=running.pump, daemon=True, name=f"pump-{name}").start()
        _, started, _ = running.wait_for(STARTED.pattern, timeout)
        running.url = started.group("url")
        return running

    def stop(self) -> None:
        for role in reversed(self.roles):
            role.stop()
        asyncio.run(self._delete_broker_objects())

    async def _delete_broker_objects(self) -> None:
        import aio_pika

        queues = [
            f"{self.prefix}.{name}"
            for name in (
                "events.bulk.graph",
                "events.priority.graph",
                "events.processed.persistor",
                "dead_letters.persistor",
                "rpc.collector",
                "rpc.graph",
            )
        ]
        connection = await aio_pika.connect(AMQP_URL, timeout=10)
        async with connection:
            channel = await connection.channel()
            for name in queues:
                with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                    await channel.queue_delete(name)
                if channel.is_closed:
                    channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await channel.exchange_delete(self.prefix)


def _wait_for_snapshot(graph: Role, entities: int, timeout: float) -> dict[str, Any]:
    """The fields of the first "snapshot stored" line of ``graph`` with ``entities`` entities."""
    deadline = time.monotonic() + timeout
    after = 0
    while True:
        _, _, line = graph.wait_for("snapshot stored", max(0.1, deadline - time.monotonic()), after)
        record = _record(line)
        if record.get("entities") == entities:
            return record
        after = next(i for i, (_, seen) in enumerate(graph.lines) if seen is line) + 1


async def _count(client: Any, url: str) -> tuple[int, int | None]:
    """(HTTP status, entities counted) of one count request."""
    answer = await client.get(f"{url}/v1/resources/count/", params={"all_tenants": "true"})
    if answer.status_code != 200:
        return answer.status_code, None
    return 200, sum(answer.json().values())


async def _ready(client: Any, url: str, expected: int, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if (await _count(client, url)) == (200, expected):
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the API did not count {expected} entities within {within} s")


async def _first_full_answer(url: str, expected: int, killed: float) -> tuple[float, int]:
    """Seconds from ``killed`` to the first answer counting ``expected`` entities; requests sent."""
    import httpx

    answered = asyncio.get_running_loop().create_future()
    sent = 0

    async def ask(client: httpx.AsyncClient) -> None:
        with contextlib.suppress(Exception):
            status, counted = await _count(client, url)
            if status == 200 and counted == expected and not answered.done():
                answered.set_result(time.perf_counter() - killed)

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=ANSWER_TIMEOUT, limits=limits) as client:
        tasks: set[asyncio.Task[None]] = set()
        deadline = killed + ANSWER_TIMEOUT
        try:
            while not answered.done():
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"no full answer within {ANSWER_TIMEOUT} s of the kill")
                if len(tasks) < OUTSTANDING:
                    task = asyncio.create_task(ask(client))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    sent += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(answered), POLL)
            return answered.result(), sent
        finally:
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _log_reaches(database_url: str, sequence: int, within: float) -> None:
    from benchmarks.durability import _stored_end
    from vitrail.storage import create_engine

    engine = create_engine(database_url)
    try:
        async with _stored_end(engine) as stored_end:
            deadline = time.monotonic() + within
            while await stored_end() < sequence:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the event log did not reach sequence {sequence} within {within} s")
                await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


async def measure(hosts: int, replay: int = 0) -> dict[str, Any]:
    """One run; ``replay``: events the log holds after the snapshot when the leader is killed."""
    import httpx

    from benchmarks.durability import scratch_database

    expected_entities = 11 * hosts + 2
    async with scratch_database("postgresql") as database_url:
        with tempfile.TemporaryDirectory(prefix="vitrail-failover-") as directory:
            deployment = Deployment(Path(directory), database_url, hosts, changes=replay > 0)
            try:
                deployment.start("persistor", "persistor")
                deployment.start("collector", "collector")
                api = deployment.start("api", "api")
                assert api.url is not None
                graph_a = deployment.start("graph-a", "graph")
                await asyncio.to_thread(graph_a.wait_for, "this process is the graph leader", 60)
                # The snapshot after the get_all round: every entity in it.
                snapshot = await asyncio.to_thread(_wait_for_snapshot, graph_a, expected_entities, 300)
                async with httpx.AsyncClient(timeout=30) as client:
                    await _ready(client, api.url, expected_entities, 60)
                graph_b = deployment.start("graph-b", "graph")
                await asyncio.to_thread(graph_b.wait_for, "waiting as a standby", 30)
                await asyncio.sleep(1.0)  # B polls the lock; A idle with everything stored
                if replay:
                    await _log_reaches(database_url, snapshot["sequence"] + replay, 120)
                after = len(graph_b.lines)
                killed = time.perf_counter()
                graph_a.process.kill()
                answer_s, requests = await _first_full_answer(api.url, expected_entities, killed)
                lock_at, _, _ = graph_b.wait_for("took the leader lock", 10, after)
                leader_at, _, line = graph_b.wait_for("this process is the graph leader", 10, after)
                graph_a.process.wait()
                takeover = _record(line)
            finally:
                await asyncio.to_thread(deployment.stop)
    return {
        "hosts": hosts,
        "entities": expected_entities,
        "replay_wanted": replay,
        "answer_s": round(answer_s, 3),
        "lock_s": round(lock_at - killed, 3),
        "leader_s": round(leader_at - killed, 3),
        "takeover_s": takeover.get("seconds"),
        "replayed": takeover.get("replayed"),
        "snapshot_sequence": takeover.get("snapshot_sequence"),
        "sequence": takeover.get("sequence"),
        "requests": requests,
    }


COLUMNS = [
    ("hosts", "hosts"),
    ("entities", "entities"),
    ("replay_wanted", "logged after snapshot"),
    ("answer_s", "kill -> API answers s"),
    ("answer_worst_s", "worst run s"),
    ("lock_s", "kill -> B has lock s"),
    ("leader_s", "kill -> B leader s"),
    ("takeover_s", "B takeover s (its log)"),
    ("replayed", "replayed"),
    ("snapshot_sequence", "snapshot seq"),
]


def _one_run(hosts: int, replay: int, attempts: int = 3) -> dict[str, Any]:
    """One run in a fresh interpreter, tried again if it failed (other work on this machine restarts the
    database and broker servers now and then); what failed goes to stderr."""
    for number in range(1, attempts + 1):
        quiet()
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.failover", str(hosts), str(replay)], capture_output=True, text=True
        )
        if out.returncode == 0:
            return dict(json.loads(out.stdout))
        print(f"hosts {hosts}: run failed (attempt {number}):\n{out.stderr[-3000:]}", file=sys.stderr)
    raise RuntimeError(f"hosts {hosts}: {attempts} failed runs")


def run(
    hosts: list[int], repeat: int, json_path: Path | None, replays: list[int] | None = None
) -> list[dict[str, Any]]:
    rows = []
    for n, replay in ((n, replay) for n in hosts for replay in replays or [0]):
        samples = []
        for attempt in range(repeat):
            sample = _one_run(n, replay)
            samples.append(sample)
            print(
                f"hosts {n} replay {replay} run {attempt + 1}: API answers {sample['answer_s']} s after the kill "
                f"(replayed {sample['replayed']})",
                flush=True,
            )
        best = dict(min(samples, key=lambda r: r["answer_s"]))
        best["answer_worst_s"] = max(r["answer_s"] for r in samples)
        best["runs"] = samples
        rows.append(best)
    print_table(
        "Failover: graph leader SIGKILLed -> the standby serves the API (RabbitMQ + PostgreSQL, separate "
        f"processes; best of {repeat}; times from the kill)",
        rows,
        COLUMNS,
    )
    write_json(json_path, "failover", rows, TARGETS)
    return rows


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0))))
