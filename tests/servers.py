"""The real servers the tests use, and how to reach, prepare and clean them.

PostgreSQL, MariaDB and RabbitMQ run on this machine (see the README). A server
that is down fails its tests with the command that starts it: a suite that
silently skipped its servers would prove nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import subprocess
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import aio_pika
import pytest
from sqlalchemy import text
from yarl import URL

from vitrail.storage import DatabaseUnavailable, check_connection, create_engine

T = TypeVar("T")


@dataclass(frozen=True)
class Server:
    """A database server the suite needs, and how to bring it up."""

    name: str
    host: str
    port: int
    admin_url: str
    """URL of an existing database, to create and drop the test databases from."""
    url_prefix: str
    start_command: str
    create_database: str
    drop_database: str

    def unreachable_message(self, detail: str) -> str:
        return (
            f"{self.name} is not reachable on {self.host}:{self.port} — start it with: {self.start_command}\n({detail})"
        )


POSTGRESQL = Server(
    name="PostgreSQL",
    host="127.0.0.1",
    port=5432,
    admin_url="postgresql://postgres@127.0.0.1:5432/postgres",
    url_prefix="postgresql://postgres@127.0.0.1:5432/",
    start_command="pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    create_database="CREATE DATABASE {name}",
    drop_database="DROP DATABASE IF EXISTS {name} WITH (FORCE)",
)
MARIADB = Server(
    name="MariaDB",
    host="127.0.0.1",
    port=3306,
    admin_url="mysql://root@127.0.0.1:3306/test",
    url_prefix="mysql://root@127.0.0.1:3306/",
    start_command="start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    # latin1 on purpose: the tables must not depend on the database default charset.
    create_database="CREATE DATABASE {name} CHARACTER SET latin1",
    drop_database="DROP DATABASE IF EXISTS {name}",
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on a private event loop in a worker thread.

    Session fixtures are synchronous (a session-wide engine would be tied to one
    test's event loop); the thread keeps this working even if called while a loop
    is running.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _admin(server: Server, statement: str) -> None:
    engine = create_engine(server.admin_url)
    try:
        await check_connection(engine, within=5)
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(statement))
    finally:
        await engine.dispose()


def require_server(server: Server, statement: str) -> None:
    """Run an admin statement, failing the test with the start command when the server is down."""
    try:
        run_sync(_admin(server, statement))
    except DatabaseUnavailable as exc:
        detail = str(exc)
    else:
        return
    # Outside the except block: the report shows this message, not a chain of tracebacks.
    pytest.fail(server.unreachable_message(detail), pytrace=False)


@contextlib.contextmanager
def fresh_database(server: Server) -> Iterator[str]:
    """A new, empty database on ``server`` (``vitrail_test_<hex>``), dropped afterwards."""
    name = f"vitrail_test_{secrets.token_hex(6)}"
    require_server(server, server.create_database.format(name=name))
    try:
        yield server.url_prefix + name
    finally:
        run_sync(_admin(server, server.drop_database.format(name=name)))


# -- RabbitMQ -------------------------------------------------------------------------------

RABBITMQ_HOST = "127.0.0.1"
RABBITMQ_PORT = 5672
RABBITMQ_URL = f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/"
RABBITMQ_DOWN = (
    f"RabbitMQ is not reachable on {RABBITMQ_HOST}:{RABBITMQ_PORT} — start it with: rabbitmq-server -detached"
)


def rabbitmq_reachable(timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((RABBITMQ_HOST, RABBITMQ_PORT), timeout=timeout):
            return True
    except OSError:
        return False


def require_rabbitmq() -> None:
    if not rabbitmq_reachable():
        pytest.fail(RABBITMQ_DOWN, pytrace=False)


def bus_url(prefix: str, **options: Any) -> str:
    query = {"prefix": prefix, **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}}
    return str(URL(RABBITMQ_URL).with_query(query))


async def delete_namespace(prefix: str, queues: set[str]) -> None:
    """Delete ``queues`` and the namespace's exchange (tests leave nothing on the broker)."""
    if not rabbitmq_reachable():
        return  # the test that stopped it has already failed; nothing can be deleted now
    connection = await aio_pika.connect(RABBITMQ_URL, timeout=5)
    async with connection:
        channel = await connection.channel()
        for name in sorted(queues):
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await channel.queue_delete(name)
            if channel.is_closed:
                channel = await connection.channel()
        with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
            await channel.exchange_delete(prefix)


def rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()}")


def start_rabbitmq_app() -> None:
    """``rabbitmqctl start_app`` (retried), then wait until the broker accepts connections."""
    for attempt in range(3):
        try:
            rabbitmqctl("start_app")
            break
        except (RuntimeError, subprocess.TimeoutExpired):
            if attempt == 2:
                raise
            time.sleep(1)
    deadline = time.monotonic() + 30
    while not rabbitmq_reachable():
        if time.monotonic() > deadline:
            pytest.fail("RabbitMQ did not come back after start_app; run: rabbitmqctl start_app")
        time.sleep(0.1)


@contextlib.contextmanager
def rabbitmq_stopped() -> Iterator[None]:
    """The RabbitMQ application stopped for the block (every connection drops); started again whatever happens."""
    rabbitmqctl("stop_app")
    try:
        yield
    finally:
        start_rabbitmq_app()
