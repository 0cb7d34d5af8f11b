"""Snapshots encoded in a forked child: the state at the fork, no zombies, clear failures, a live loop."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape
from vitrail.datasources.state_tables import load_state_table
from vitrail.graph.events import Event
from vitrail.graph.gcpause import paused_gc
from vitrail.graph.processor import Processor
from vitrail.graph.snapshot import encode_state, restore_processor
from vitrail.services import snapshotting
from vitrail.services.snapshotting import (
    SnapshotChildError,
    SnapshotError,
    SnapshotTimeout,
    encode_in_child,
    encode_in_process,
    encode_snapshot,
    start_encoding_in_child,
)

pytestmark = pytest.mark.skipif(not snapshotting.FORK_AVAILABLE, reason="needs os.fork")

T0 = "2026-11-22 00:00:00.000000+00:00"


def _cloud(hosts: int, changes_per_poll: int = 50) -> tuple[Processor, SimulatorDriver]:
    driver = SimulatorDriver(
        SimulatorShape(hosts=hosts, instances_per_host=10, changes_per_poll=changes_per_poll, seed=5)
    )
    processor = Processor({"simulator": driver.transformer()}, load_state_table())
    with paused_gc():
        processor.process_many(driver.round_events(driver.get_all(), 1, T0))
    return processor, driver


def _changes(driver: SimulatorDriver, polls: int) -> list[list[Event]]:
    """``polls`` batches of change events, each later than the last."""
    return [
        driver.change_events(driver.get_changes(), f"c{n}", f"2026-11-22 00:01:{n:02d}.000000+00:00")
        for n in range(1, polls + 1)
    ]


def _reaped(pid: int) -> bool:
    """True once ``pid`` is neither running nor a zombie of ours (nothing left to wait for)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not os.path.exists(f"/proc/{pid}") if sys.platform == "linux" else True
    return False


async def _eventually_reaped(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if _reaped(pid):
            return True
        await asyncio.sleep(0.01)
    return False


# -- (a) the state at the fork -----------------------------------------------------------


async def test_snapshot_is_the_state_at_the_fork_whatever_happens_after() -> None:
    processor, driver = _cloud(50)
    at_fork = processor.dump()
    sequence = processor.sequence
    child = start_encoding_in_child(processor)
    for batch in _changes(driver, 3):  # the parent moves on at once
        processor.process_many(batch)
        await asyncio.sleep(0)
    assert processor.sequence > sequence and processor.dump() != at_fork
    result = await child.result()
    assert result.forked and result.pid == child.pid
    assert result.state.sequence == sequence
    assert zlib.decompress(result.state.data) == at_fork
    restored = restore_processor(result.state.data, result.state.format, processor.transformers, load_state_table())
    assert restored.dump() == at_fork


async def test_encode_in_child_snapshots_when_the_task_starts_while_the_parent_keeps_applying() -> None:
    processor, driver = _cloud(50)
    batches = _changes(driver, 20)
    at_start = processor.dump()
    task = asyncio.create_task(encode_in_child(processor))
    await asyncio.sleep(0)  # the task runs up to its first suspension: the fork is done
    applied = 0
    while not task.done() and batches:
        processor.process_many(batches.pop(0))
        applied += 1
        await asyncio.sleep(0)
    result = await task
    assert applied > 0
    assert zlib.decompress(result.state.data) == at_start
    assert processor.dump() != at_start


async def test_forked_and_in_process_encodings_are_the_same_bytes() -> None:
    processor, _ = _cloud(20)
    forked = await encode_in_child(processor)
    local = await encode_in_process(processor)
    chosen = await encode_snapshot(processor)
    assert forked.state == local.state == chosen.state == encode_state(processor)
    assert local.pid is None and not local.forked
    assert local.fork_seconds == local.total_seconds == local.encode_seconds
    assert 0 < forked.fork_seconds <= forked.total_seconds


# -- (b) no zombies ------------------------------------------------------------------


async def test_the_child_is_reaped_and_the_collector_thawed() -> None:
    processor, _ = _cloud(20)
    before = gc.get_freeze_count()
    result = await encode_in_child(processor)
    assert result.pid is not None
    assert _reaped(result.pid)  # at once: result() returns only after reaping
    assert gc.get_freeze_count() == before


async def test_concurrent_snapshots_all_complete_and_are_reaped() -> None:
    processor, _ = _cloud(20)
    expected = encode_state(processor)
    results = await asyncio.gather(*(encode_in_child(processor) for _ in range(3)))
    assert all(r.state == expected for r in results)
    assert len({r.pid for r in results}) == 3
    assert all(_reaped(r.pid) for r in results if r.pid is not None)
    assert gc.get_freeze_count() == 0


# -- (c) failures ----------------------------------------------------------------------


def _patch_encoder(monkeypatch: pytest.MonkeyPatch, encoder: Callable[[Processor], Any]) -> None:
    """Replace the encoder the child will run (the child inherits the patch)."""
    monkeypatch.setattr(snapshotting, "encode_state", encoder)


async def test_an_encoder_failure_in_the_child_is_raised_in_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(processor: Processor) -> Any:
        raise RuntimeError(f"cannot encode sequence {processor.sequence}")

    _patch_encoder(monkeypatch, broken)
    processor, _ = _cloud(5)
    child = start_encoding_in_child(processor)
    with pytest.raises(SnapshotChildError, match=r"failed in the child process: RuntimeError: cannot encode sequence"):
        await child.result()
    assert await _eventually_reaped(child.pid)
    assert gc.get_freeze_count() == 0
    with pytest.raises(SnapshotChildError) as raised:
        await start_encoding_in_child(processor).result()
    assert "in broken" in raised.value.child_traceback
    assert "RuntimeError: cannot encode sequence" in raised.value.child_traceback


async def test_a_child_that_takes_too_long_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_encoder(monkeypatch, lambda processor: time.sleep(60))
    processor, _ = _cloud(5)
    child = start_encoding_in_child(processor)
    started = time.perf_counter()
    with pytest.raises(SnapshotTimeout, match=r"did not finish within 0\.3 s"):
        await child.result(timeout=0.3)
    assert time.perf_counter() - started < 5
    assert await _eventually_reaped(child.pid)
    assert gc.get_freeze_count() == 0


async def test_a_child_killed_from_outside_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_encoder(monkeypatch, lambda processor: time.sleep(60))
    processor, _ = _cloud(5)
    child = start_encoding_in_child(processor)
    os.kill(child.pid, signal.SIGKILL)
    with pytest.raises(SnapshotError, match="was killed by SIGKILL without sending a snapshot"):
        await child.result(timeout=10)
    assert _reaped(child.pid)


async def test_cancelling_the_wait_kills_and_reaps_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_encoder(monkeypatch, lambda processor: time.sleep(60))
    processor, _ = _cloud(5)
    child = start_encoding_in_child(processor)
    task = asyncio.create_task(child.result())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _eventually_reaped(child.pid)
    assert gc.get_freeze_count() == 0


def test_kill_without_an_event_loop_reaps_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_encoder(monkeypatch, lambda processor: time.sleep(60))
    processor, _ = _cloud(5)
    child = start_encoding_in_child(processor)
    child.kill()
    assert _reaped(child.pid)
    assert gc.get_freeze_count() == 0


async def test_result_can_be_awaited_once() -> None:
    processor, _ = _cloud(5)
    child = start_encoding_in_child(processor)
    await child.result()
    with pytest.raises(RuntimeError, match="only once"):
        await child.result()


# -- (d) the event loop stays responsive ----------------------------------------------------

TICK = 0.005


async def _longest_tick(work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """Run ``work`` while a task ticks every 5 ms; the longest interval seen between ticks."""
    intervals: list[float] = []
    running = True

    async def ticker() -> None:
        last = time.perf_counter()
        while running:
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            intervals.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(4 * TICK)
    intervals.clear()
    try:
        outcome = await work()
        await asyncio.sleep(2 * TICK)
    finally:
        running = False
        await ticking
    return max(intervals), outcome


async def test_the_event_loop_keeps_ticking_while_the_child_encodes() -> None:
    processor, _ = _cloud(1000)  # 11,002 entities
    assert processor.graph.num_vertices == 11_002
    # On a busy machine one attempt can be descheduled at the wrong moment;
    # the claim is that the loop *can* keep ticking, so the best of three counts.
    attempts = []
    for _ in range(3):
        in_process, local = await _longest_tick(lambda: encode_in_process(processor))
        forked_gap, forked = await _longest_tick(lambda: encode_in_child(processor))
        attempts.append((forked_gap, in_process, forked, local))
        if forked_gap < in_process / 3:
            break
    forked_gap, in_process, forked, local = min(attempts, key=lambda a: a[0] / a[1])
    assert forked.state == local.state
    assert in_process >= local.encode_seconds  # the in-process encode stalls the loop for all of it
    assert forked.fork_seconds < local.encode_seconds / 5
    assert forked_gap < in_process / 3, (forked_gap, in_process)
