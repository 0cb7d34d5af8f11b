"""Leader election on the database's session locks (vitrail.storage.locks), on every backend.

The hand-over tests run a real leader in a child process and kill it (SIGKILL) or
freeze it (SIGSTOP): that the server frees a dead process's lock is the whole point
of using session locks, and only a real process death shows it. Each prints the
measured hand-over time (``pytest -s`` shows it; docs/ha.md quotes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.servers import BACKENDS, MARIADB, POSTGRESQL
from vitrail.storage import create_engine
from vitrail.storage.locks import LeaderLock, advisory_key, lock_file_path, mysql_lock_name

SERVER_BACKENDS = [param for param in BACKENDS if param.id != "sqlite"]
SQLITE_ONLY = [param for param in BACKENDS if param.id == "sqlite"]
HEARTBEAT = 0.2
"""Short heartbeats: a lost lock is noticed within a fraction of a second."""

LEADER_CHILD = """
import asyncio, sys
from vitrail.storage.locks import LeaderLock

async def main() -> None:
    lock = LeaderLock(sys.argv[1], sys.argv[2], heartbeat_interval=0.2, server_timeout=float(sys.argv[3]))
    await lock.acquire(timeout=30)
    print("LEADER", flush=True)
    await lock.lost.wait()
    print("LOST", flush=True)

asyncio.run(main())
"""
"""A leader process: says LEADER once it holds the lock, LOST when it loses it."""


@pytest.fixture
def name() -> str:
    """A leadership name of this test alone: nothing another test left can interfere."""
    return f"t{secrets.token_hex(4)}"


@pytest.fixture
async def make_lock(database_url: str, name: str) -> AsyncIterator[Callable[..., LeaderLock]]:
    """Makes locks of ``name`` on the test database; releases them all at the end."""
    made: list[LeaderLock] = []

    def make(**options: Any) -> LeaderLock:
        lock = LeaderLock(database_url, name, **{"heartbeat_interval": HEARTBEAT, **options})
        made.append(lock)
        return lock

    yield make
    for lock in made:
        await lock.release()


async def _server_scalar(url: str, statement: str, **params: Any) -> Any:
    """Run ``statement`` on a connection of its own (an operator's session); its first value, if any."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            result = await autocommit.execute(text(statement), params)
            return result.scalar() if result.returns_rows else None
    finally:
        await engine.dispose()


async def _session_count(backend: str, url: str, session_id: int) -> int:
    if backend == "postgresql":
        return int(await _server_scalar(url, "SELECT count(*) FROM pg_stat_activity WHERE pid = :id", id=session_id))
    return int(
        await _server_scalar(url, "SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID = :id", id=session_id)
    )


async def _end_session(backend: str, url: str, session_id: int) -> None:
    """What an operator (or a failover) does to the leader's session."""
    if backend == "postgresql":
        assert await _server_scalar(url, "SELECT pg_terminate_backend(:pid)", pid=session_id)
    else:
        await _server_scalar(url, f"KILL {int(session_id)}")


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record with its fields (``extra``), as text."""
    return "\n".join(f"{record.levelname} {record.getMessage()} {record.__dict__}" for record in caplog.records)


async def _eventually(check: Callable[[], Any], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {within} s")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def leader_child(url: str, name: str, server_timeout: float = 10.0) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child process that holds the leadership ``name`` (it has said LEADER); killed at the end."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LEADER_CHILD,
        url,
        name,
        str(server_timeout),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    try:
        try:
            line = await asyncio.wait_for(child.stdout.readline(), 30)
        except TimeoutError:
            line = b""
        if line != b"LEADER\n":
            child.kill()
            pytest.fail(f"the leader child did not take the lock: {line!r}\n{(await child.stderr.read()).decode()}")
        yield child
    finally:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGCONT)
                child.kill()
        await child.wait()


# -- one leader -------------------------------------------------------------------------------


async def test_one_leader_at_a_time(make_lock: Callable[..., LeaderLock]) -> None:
    first, second = make_lock(), make_lock()
    await first.acquire(timeout=5)
    assert first.held

    with pytest.raises(TimeoutError, match=r"not free within 0\.5 s"):
        await second.acquire(timeout=0.5)
    assert not second.held

    waiting = asyncio.create_task(second.acquire(timeout=5))
    await asyncio.sleep(0.3)  # a standby polling
    assert not waiting.done()
    await first.release()
    released = time.monotonic()
    await waiting
    took = time.monotonic() - released
    assert second.held and not first.held
    assert took < 0.5, f"the standby took {took:.3f} s to take a released lock"


async def test_acquire_is_idempotent_and_one_release_frees_the_lock(make_lock: Callable[..., LeaderLock]) -> None:
    # Advisory locks and GET_LOCK count re-entries: a second lock call on the same
    # session would need a second unlock, and the lock would outlive release().
    first, second = make_lock(), make_lock()
    await first.acquire(timeout=5)
    session = first.session_id
    await first.acquire(timeout=5)
    await first.acquire()
    assert first.held and first.session_id == session
    await first.release()
    assert not first.held
    await second.acquire(timeout=0.5)
    assert second.held


async def test_context_manager_holds_the_lock_for_the_block(make_lock: Callable[..., LeaderLock]) -> None:
    lock, other = make_lock(), make_lock()
    async with lock as entered:
        assert entered is lock and lock.held
        with pytest.raises(TimeoutError):
            await other.acquire(timeout=0.3)
    assert not lock.held
    await other.acquire(timeout=0.5)


# -- hand-over --------------------------------------------------------------------------------


async def test_a_standby_takes_over_when_the_leader_is_killed(
    backend: str, database_url: str, name: str, make_lock: Callable[..., LeaderLock]
) -> None:
    standby = make_lock()  # the default poll interval: the hand-over time a deployment gets
    async with leader_child(database_url, name) as child:
        with pytest.raises(TimeoutError):
            await standby.acquire(timeout=0.3)
        waiting = asyncio.create_task(standby.acquire(timeout=15))
        await asyncio.sleep(0.3)  # polling, as a standby does
        assert not waiting.done()
        child.kill()  # SIGKILL: no release, no goodbye to the server
        killed = time.monotonic()
        await waiting
        took = time.monotonic() - killed
    print(f"\n[{backend}] hand-over after SIGKILL of the leader: {took * 1000:.0f} ms")
    assert standby.held
    assert took < 3.0


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
async def test_a_standby_takes_over_from_a_frozen_leader_which_then_steps_down(
    backend: str, database_url: str, name: str, make_lock: Callable[..., LeaderLock]
) -> None:
    """A stopped process (or a dead host, a cut network) never closes its socket: the
    server ends the silent session after ``server_timeout``, freeing the lock."""
    server_timeout = 1.0
    standby = make_lock()
    async with leader_child(database_url, name, server_timeout) as child:
        assert child.stdout is not None
        waiting = asyncio.create_task(standby.acquire(timeout=15))
        await asyncio.sleep(0.3)
        child.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        await waiting
        took = time.monotonic() - frozen
        print(f"\n[{backend}] hand-over from a frozen leader (server_timeout={server_timeout:g} s): {took:.2f} s")
        assert took < server_timeout + 2.0

        child.send_signal(signal.SIGCONT)
        line = await asyncio.wait_for(child.stdout.readline(), 5)
        assert line == b"LOST\n", "the former leader did not notice it lost the lock"
    assert standby.held


# -- losing the lock -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
async def test_lost_when_the_server_ends_the_session(
    backend: str, database_url: str, make_lock: Callable[..., LeaderLock], caplog: pytest.LogCaptureFixture
) -> None:
    lock, successor = make_lock(), make_lock()
    await lock.acquire(timeout=5)
    session = lock.session_id
    assert session is not None

    with caplog.at_level(logging.ERROR, logger="vitrail.storage.locks"):
        await _end_session(backend, database_url, session)
        ended = time.monotonic()
        await asyncio.wait_for(lock.lost.wait(), 3)
    noticed = time.monotonic() - ended
    print(f"\n[{backend}] loss of the lock noticed after {noticed * 1000:.0f} ms")
    assert not lock.held
    assert lock.session_id is None
    assert any("must step down" in record.getMessage() for record in caplog.records)

    await successor.acquire(timeout=1)  # the server freed it with the session
    await successor.release()
    await lock.release()  # harmless after a loss
    await lock.acquire(timeout=1)  # a new term
    assert lock.held and not lock.lost.is_set()


@pytest.mark.parametrize("backend", SQLITE_ONLY, indirect=True)
@pytest.mark.parametrize("change", ["removed", "replaced"])
async def test_lost_when_the_lock_file_is_removed_or_replaced(
    change: str, database_url: str, name: str, make_lock: Callable[..., LeaderLock]
) -> None:
    """There is no server session to kill on SQLite; the lock file is the session. Once
    it is gone or swapped, another process can lock the file now at the path: the
    holder must consider itself no longer the leader."""
    lock, successor = make_lock(), make_lock()
    await lock.acquire(timeout=5)
    path = lock_file_path(Path(make_url(database_url).database or ""), name)
    waiting = asyncio.create_task(successor.acquire(timeout=5))  # polling on the file as it was
    await asyncio.sleep(0.3)
    if change == "removed":
        path.unlink()
    else:
        replacement = path.with_name(path.name + ".new")
        replacement.write_text("")
        os.replace(replacement, path)

    await asyncio.wait_for(lock.lost.wait(), 2)
    assert not lock.held
    await waiting  # on the file now at the path
    assert successor.held
    assert _descriptors_of(path) == 1


# -- standbys ---------------------------------------------------------------------------------


def _descriptors_of(path: Path) -> int:
    """How many descriptors of this process are open on ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


async def test_cancelling_a_waiting_acquire_leaves_no_lock_and_no_connection(
    backend: str, database_url: str, name: str, make_lock: Callable[..., LeaderLock]
) -> None:
    holder, standby, later = make_lock(), make_lock(), make_lock()
    await holder.acquire(timeout=5)
    waiting = asyncio.create_task(standby.acquire())
    await asyncio.sleep(0.5)
    standby_session = standby.session_id  # the connection it polls on
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not standby.held
    assert standby.session_id is None

    if backend == "sqlite":
        assert _descriptors_of(lock_file_path(Path(make_url(database_url).database or ""), name)) == 1
    else:
        assert standby_session is not None and standby_session != holder.session_id

        async def closed() -> bool:
            return await _session_count(backend, database_url, standby_session) == 0

        await _eventually(closed, 3, "the cancelled standby's connection is still open on the server")

    await holder.release()
    await later.acquire(timeout=0.5)  # the cancelled standby did not take it on its way out
    assert later.held


# -- the database down ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def tcp_proxy(listen_port: int, target_port: int) -> AsyncIterator[None]:
    """Forward 127.0.0.1:listen_port to 127.0.0.1:target_port while the block runs."""
    writers: list[asyncio.StreamWriter] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        writers.extend((client_writer, server_writer))
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    server = await asyncio.start_server(serve, "127.0.0.1", listen_port)
    try:
        yield
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
async def test_a_standby_waits_while_the_database_is_down(
    backend: str, database_url: str, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = _free_port()  # nothing listens there until the proxy starts: the database is "down"
    real_port = POSTGRESQL.port if backend == "postgresql" else MARIADB.port
    url = make_url(database_url).set(port=port).render_as_string(hide_password=False)
    lock = LeaderLock(url, name, poll_interval=0.05, heartbeat_interval=HEARTBEAT)
    with caplog.at_level(logging.DEBUG, logger="vitrail.storage.locks"):
        waiting = asyncio.create_task(lock.acquire(timeout=15))
        await asyncio.sleep(1.0)
        assert not waiting.done()
        async with tcp_proxy(port, real_port):
            back = time.monotonic()
            await waiting
            took = time.monotonic() - back
            assert lock.held
            await lock.release()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, _logged(caplog)  # once per outage, not once per attempt
    assert "cannot reach" in warnings[0].getMessage()
    assert warnings[0].target.endswith(f"127.0.0.1:{port}")  # type: ignore[attr-defined]
    retries = [r for r in caplog.records if r.levelno == logging.DEBUG and "still unreachable" in r.getMessage()]
    assert [r.retry_in_s for r in retries][:3] == [0.1, 0.2, 0.4]  # type: ignore[attr-defined]
    assert len(retries) <= 6
    assert any("answers again" in r.getMessage() for r in caplog.records)
    assert took < 2.0


@pytest.mark.parametrize(
    "url", ["postgresql://postgres:s3cr3t@127.0.0.1:1/vitrail", "mysql://root:s3cr3t@127.0.0.1:1/vitrail"]
)
async def test_acquire_times_out_while_the_database_is_down(url: str, caplog: pytest.LogCaptureFixture) -> None:
    lock = LeaderLock(url, poll_interval=0.05)
    with pytest.raises(TimeoutError, match=r"127\.0\.0\.1:1 was not free within 0\.5 s"):
        await lock.acquire(timeout=0.5)
    assert not lock.held
    logged = _logged(caplog)
    assert "s3cr3t" not in logged
    assert "cannot reach" in logged


# -- names and scopes --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
async def test_leaderships_of_two_databases_on_one_server_are_independent(
    backend: str, database_url: str, name: str, make_lock: Callable[..., LeaderLock]
) -> None:
    # PostgreSQL scopes advisory locks to the database; MariaDB's GET_LOCK is server-wide,
    # so its lock name carries the database name.
    other_database = POSTGRESQL.admin_url if backend == "postgresql" else MARIADB.admin_url
    here, there = make_lock(), LeaderLock(other_database, name, heartbeat_interval=HEARTBEAT)
    try:
        await here.acquire(timeout=5)
        await there.acquire(timeout=1)
        assert here.held and there.held
    finally:
        await there.release()


def test_lock_names_and_keys_are_stable() -> None:
    assert advisory_key("graph") == advisory_key("graph") != advisory_key("other")
    assert -(2**63) <= advisory_key("graph") < 2**63
    assert mysql_lock_name("vitrail", "graph") == "vitrail.leader.vitrail.graph"
    assert mysql_lock_name(None, "graph") == "vitrail.leader.graph"
    long = mysql_lock_name("d" * 64, "graph")
    assert len(long) <= 64 and long == mysql_lock_name("d" * 64, "graph") != mysql_lock_name("e" * 64, "graph")
    assert lock_file_path(Path("/var/lib/vitrail/vitrail.db")) == Path("/var/lib/vitrail/vitrail.db.leader.lock")
    assert lock_file_path(Path("/v/x.db"), "api") == Path("/v/x.db.leader.api.lock")
    with pytest.raises(ValueError, match="invalid leadership name"):
        LeaderLock("sqlite://", "a b")


async def test_sqlite_lock_file_is_next_to_the_database_and_names_its_holder(tmp_path: Path) -> None:
    database = tmp_path / "data" / "vitrail.db"
    async with LeaderLock(f"sqlite:///{database}") as lock:
        assert lock.held
        holder = await asyncio.to_thread(Path(f"{database}.leader.lock").read_text)
        assert holder.strip().endswith(f":{os.getpid()}")


async def test_in_memory_sqlite_elects_within_the_process() -> None:
    first, second = LeaderLock("sqlite://", "memory-test"), LeaderLock("sqlite:///:memory:", "memory-test")
    async with first:
        with pytest.raises(TimeoutError):
            await second.acquire(timeout=0.3)
    await second.acquire(timeout=0.5)
    await second.release()
