"""Vitrail in the distributed mode for the end-to-end tests: one subprocess per role.

Every process of a :class:`Cluster` shares one RabbitMQ namespace (a random
prefix on the broker of this machine) and one fresh PostgreSQL database, exactly
as the machines of ``docs/deploy.md`` do; only ``--role`` differs. The cluster
kills its processes and deletes its queues, exchanges and database afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import httpx

from tests.e2e.conftest import terminate
from tests.servers import POSTGRESQL, RABBITMQ_URL, bus_url, delete_namespace, fresh_database, require_rabbitmq

VITRAIL = [sys.executable, "-m", "vitrail.cli.main"]
STARTED = re.compile(r"Vitrail \((?P<roles>[a-z, ]+)\) is (listening on (?P<url>http://[\d.]+:\d+)|running)")


@dataclass
class RoleProcess:
    """One ``vitrail serve --role ...`` subprocess and everything it printed."""

    name: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    url: str | None = None
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def log(self) -> str:
        return "".join(self.lines)

    def pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._arrived:
                self.lines.append(line)
                self._arrived.notify_all()
        with self._arrived:
            self._arrived.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60.0, after: int = 0) -> re.Match[str]:
        """The first line (from line ``after`` on) matching ``pattern``; fails with the log when none comes."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = after
        with self._arrived:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and seen == len(self.lines)):
                    raise AssertionError(f"{self.name}: no line matching {pattern!r}:\n{self.log()[-6000:]}")
                self._arrived.wait(min(left, 0.5))

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, as systemd stops a unit; the exit code."""
        return terminate(self.process, timeout)

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Cluster:
    def __init__(self, tmp_path: Path, database_url: str, settings: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.prefix = f"vt-e2e-{uuid.uuid4().hex[:10]}"
        self.transport_url = bus_url(self.prefix)
        self.database_url = database_url
        self.nova_exchange = f"{self.prefix}-nova"
        self.listener_queue = f"{self.prefix}.notifications"
        self.env = {
            "VITRAIL_TRANSPORT_URL": self.transport_url,
            "VITRAIL_DATABASE__URL": database_url,
            "VITRAIL_LOGGING__FORMAT": "json",
            "VITRAIL_API__PORT": "0",
            "VITRAIL_LISTENER__URL": RABBITMQ_URL,
            "VITRAIL_LISTENER__EXCHANGE": self.nova_exchange,
            "VITRAIL_LISTENER__QUEUE": self.listener_queue,
            **settings,
        }
        self.processes: list[RoleProcess] = []

    def start(self, name: str, *roles: str, timeout: float = 60.0) -> RoleProcess:
        """Start ``vitrail serve --role ...`` and wait until it says it runs."""
        env = {**os.environ, **self.env, "VITRAIL_DATA_DIR": str(self.tmp_path / name)}
        env.pop("VITRAIL_CONFIG", None)
        command = [*VITRAIL, "serve", *(arg for role in roles for arg in ("--role", role))]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        role = RoleProcess(name, process)
        self.processes.append(role)
        threading.Thread(target=role.pump, daemon=True, name=f"pump-{name}").start()
        started = role.wait_for(STARTED.pattern, timeout)
        role.url = started.group("url")
        return role

    def api(self, role: RoleProcess, path: str, **params: str) -> httpx.Response:
        assert role.url is not None, f"{role.name} does not serve the API"
        return httpx.get(f"{role.url}{path}", params=params, timeout=30)

    def stop(self) -> None:
        for role in self.processes:
            role.terminate(timeout=15)
        asyncio.run(self._delete_broker_objects())

    async def _delete_broker_objects(self) -> None:
        queues = {
            f"{self.prefix}.events.bulk.graph",
            f"{self.prefix}.events.priority.graph",
            f"{self.prefix}.events.processed.persistor",
            f"{self.prefix}.dead_letters.persistor",
            f"{self.prefix}.rpc.collector",
            f"{self.prefix}.rpc.graph",
            self.listener_queue,
        }
        await delete_namespace(self.prefix, queues)
        with contextlib.suppress(Exception):
            connection = await aio_pika.connect(RABBITMQ_URL, timeout=5)
            async with connection:
                channel = await connection.channel()
                await channel.exchange_delete(self.nova_exchange)


@contextlib.contextmanager
def cluster(tmp_path: Path, **settings: str) -> Iterator[Cluster]:
    """A cluster on this machine's RabbitMQ and a fresh PostgreSQL database; all cleaned up afterwards."""
    require_rabbitmq()
    with fresh_database(POSTGRESQL) as database_url:
        running = Cluster(tmp_path, database_url, settings)
        try:
            yield running
        finally:
            running.stop()


def eventually(check: Callable[[], bool], timeout: float, what: str, diagnose: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s\n{diagnose()}")
        time.sleep(0.2)
