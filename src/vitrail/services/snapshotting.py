"""Processor snapshots encoded in a forked child, so event processing barely pauses.

Encoding the whole processor (:func:`vitrail.graph.snapshot.encode_state`)
takes 0.6-0.7 s at 110k entities, all of it CPU-bound Python that would hold
the event loop: no event would be processed and the API would not answer.
Instead the graph process forks. The child's memory is a copy-on-write image of
the parent at the instant of the fork, so it sees the processor exactly as it
was, a consistent point-in-time state, without any copy being made up front or
any lock taken; it encodes that state, writes the bytes to a pipe and exits.
The parent is blocked only for the fork itself (3.5-5 ms at 110k entities: the
kernel copies page tables, not pages) and goes on processing events while it
reads the pipe from the event loop. ``benchmarks/snapshots.py`` measures the
result: at 110k entities, with events applied all along, the longest event
loop gap is a few tens of milliseconds instead of the whole encode.

Why not the alternatives:

* a thread would run the encoder under the GIL, taking turns with the event
  loop (the stall is spread, not removed), and would need a deep copy of the
  state first, or a lock, to see a consistent one; the copy costs as much as
  the encode;
* a subprocess started afresh (``spawn``) has none of the state: it would have
  to be sent over, which is the serialisation we are trying to keep out of the
  loop.

Costs and rules, measured at 110k entities:

* memory: while the child works, every page either process writes to is copied.
  The child writes to nearly all of them (reading an object updates its
  reference count), about 140 MiB, released when it exits; the parent copies
  the pages it changes, and those first writes fault: event chunks run up to
  two or three times slower while the child lives;
* CPU: the child lowers its priority (``nice`` 10), so that when the CPUs are
  contended the event loop goes first; on a busy two-CPU machine this cut the
  worst gap seen from 53 to 41 ms;
* :func:`gc.freeze` is called before the fork (and :func:`gc.unfreeze` once the
  child is reaped): a full collection in the parent while the child works
  otherwise writes to the header of every tracked object, copying 109 MiB of
  pages and taking 119 ms; with the objects frozen it copies nothing and takes
  ~0 ms. The child disables the collector altogether. (The unfreeze also
  releases anything the application froze itself; Vitrail freezes nothing
  else.)
* the child runs only the encoder, ``os.write`` and ``os._exit``: it never
  touches asyncio, logging handlers or locks that the parent's other threads
  (database drivers) may have held at the fork, and it resets signal handling
  so that a signal sent to it neither runs the parent's handlers nor wakes the
  parent's event loop through the shared wakeup file descriptor. ``os._exit``
  skips ``atexit`` hooks and buffered-output flushing, which belong to the
  parent;
* the parent reads the pipe through the event loop (see :class:`_PipeDrain`)
  and reaps the child with non-blocking ``waitpid`` polls, so no zombie
  remains; a child that outlives its timeout, or whose reader is cancelled, is
  killed and reaped. One snapshot at a time is the intended use: each child
  holds its own copy of the pages it touches.

Where ``os.fork`` does not exist, :func:`encode_in_process` encodes in the
event loop and reports the whole encode as the stall; :func:`encode_snapshot`
picks whichever is available.

Wire format on the pipe: an 8-byte big-endian length, a JSON header of that
length (``ok``, then either the snapshot's metadata or the child's error), then
the compressed snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import struct
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson

from vitrail.graph.processor import Processor
from vitrail.graph.snapshot import EncodedState, encode_state

#: True where snapshots can be encoded in a forked child.
FORK_AVAILABLE = hasattr(os, "fork")

_LENGTH = struct.Struct(">Q")
#: Child reaping polls: first after 0.5 ms, doubling up to 50 ms. The child has
#: usually exited by the time its pipe reaches end of file.
_FIRST_POLL = 0.0005
_LAST_POLL = 0.05
#: Pipe capacity asked for (Linux allows up to 1 MiB unprivileged; the default is 64 KiB).
_PIPE_SIZE = 1 << 20
#: Most bytes read from the pipe in one wake-up of the event loop (about 1 ms of copying).
_READ_BUDGET = 4 << 20
#: The child is background work: when the CPUs are contended, the event loop goes first.
_CHILD_NICENESS = 10
#: How much of the child's traceback travels back in the error header.
_TRACEBACK_CHARS = 8000


class SnapshotError(RuntimeError):
    """A snapshot could not be taken."""


class SnapshotChildError(SnapshotError):
    """The encoder raised in the child; ``child_traceback`` is its traceback."""

    def __init__(self, message: str, child_traceback: str) -> None:
        super().__init__(message)
        self.child_traceback = child_traceback


class SnapshotTimeout(SnapshotError, TimeoutError):
    """The child did not deliver the snapshot in time (it has been killed)."""


@dataclass(frozen=True, slots=True)
class ForkedEncoding:
    """An encoded snapshot and what taking it cost the caller."""

    state: EncodedState
    #: How long the caller (the event loop) was blocked: the fork, or the whole
    #: encode when encoded in process.
    fork_seconds: float
    #: From the call to the snapshot in hand.
    total_seconds: float
    #: How long the encoder itself ran (in the child, or in process).
    encode_seconds: float
    #: The child's process id; None when encoded in process.
    pid: int | None = None

    @property
    def forked(self) -> bool:
        return self.pid is not None


# -- the parent's collector --------------------------------------------------------

_frozen_children = 0

_KILL_REAP_TRIES = 50
"""Milliseconds :meth:`ChildEncoding.kill` waits at most for a killed child before polling from the loop."""


def _freeze_gc() -> None:
    """Move every tracked object out of the collector's reach while a child shares the pages."""
    global _frozen_children
    if _frozen_children == 0:
        gc.freeze()
    _frozen_children += 1


def _thaw_gc() -> None:
    global _frozen_children
    _frozen_children -= 1
    if _frozen_children == 0:
        gc.unfreeze()


# -- the child ---------------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _frame(header: dict[str, Any]) -> bytes:
    encoded = orjson.dumps(header)
    return _LENGTH.pack(len(encoded)) + encoded


def _detach_signals() -> None:
    # The parent's handlers are Python callables and its event loop's wakeup fd
    # is shared with the child: a SIGINT or SIGTERM reaching the child must just
    # end it (the parent then reports the child killed), not run them.
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signum, signal.SIG_DFL)


def _child_main(processor: Processor, read_fd: int, write_fd: int) -> NoReturn:
    """Encode, send, exit: whatever happens, this process ends here."""
    status = 1
    try:
        gc.disable()
        _detach_signals()
        os.close(read_fd)
        with contextlib.suppress(OSError):
            os.nice(_CHILD_NICENESS)
        started = time.perf_counter()
        try:
            state = encode_state(processor)
        except BaseException as exc:
            formatted = "".join(traceback.format_exception(exc))[-_TRACEBACK_CHARS:]
            _write_all(write_fd, _frame({"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": formatted}))
        else:
            header = {
                "ok": True,
                "format": state.format,
                "raw_bytes": state.raw_bytes,
                "sequence": state.sequence,
                "entities": state.entities,
                "relationships": state.relationships,
                "data_bytes": len(state.data),
                "encode_seconds": time.perf_counter() - started,
            }
            _write_all(write_fd, _frame(header))
            _write_all(write_fd, state.data)
            status = 0
    finally:
        os._exit(status)


# -- the parent --------------------------------------------------------------------


class _PipeDrain:
    """Reads the child's pipe from the event loop until end of file; resolves ``done`` with the bytes.

    Each wake-up drains what the pipe holds, up to :data:`_READ_BUDGET`: a
    transport reading one buffer per loop iteration took 0.75 s to move 7.7 MB
    while the loop was busy applying events (one 64 KiB pipe-full per 6 ms
    iteration); draining a 1 MiB pipe takes a few iterations.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, done: asyncio.Future[bytes]) -> None:
        self._loop = loop
        self._fd: int | None = fd
        self._done = done
        self._chunks: list[bytes] = []
        try:
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._read)
        except BaseException:
            self._fd = None
            os.close(fd)
            raise

    def _read(self) -> None:
        budget = _READ_BUDGET
        try:
            while budget > 0 and self._fd is not None:
                chunk = os.read(self._fd, _PIPE_SIZE)
                if not chunk:
                    self._finish(None)
                    return
                self._chunks.append(chunk)
                budget -= len(chunk)
        except BlockingIOError:
            return
        except OSError as exc:
            self._finish(exc)

    def _finish(self, exc: OSError | None) -> None:
        self.close()
        if self._done.done():
            return
        if exc is not None:
            self._done.set_exception(SnapshotError(f"reading the snapshot pipe failed: {exc}"))
        else:
            self._done.set_result(b"".join(self._chunks))
        self._chunks = []

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            self._loop.remove_reader(fd)
            os.close(fd)


def _enlarge_pipe(fd: int) -> None:
    """Ask for a :data:`_PIPE_SIZE` pipe (Linux; elsewhere, or if refused, the default stays)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setpipe is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, setpipe, _PIPE_SIZE)


def _describe_exit(exit_code: int | None) -> str:
    if exit_code is None:
        return "ended (its exit status was collected elsewhere)"
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"was killed by {name}"
    return f"exited with status {exit_code}"


class ChildEncoding:
    """A snapshot being encoded by a forked child.

    Await :meth:`result` exactly once (or call :meth:`kill`): until then the
    child may be blocked writing to the pipe, holding its copy of the heap.
    """

    def __init__(self, pid: int, read_fd: int, started: float, fork_seconds: float) -> None:
        self.pid = pid
        self.fork_seconds = fork_seconds
        self._started = started
        self._read_fd: int | None = read_fd
        self._reaped: asyncio.Future[int | None] | None = None
        self._exit_code: int | None = None
        self._done = False
        self._awaited = False

    async def result(self, timeout: float = 120.0) -> ForkedEncoding:  # noqa: ASYNC109 - bounds the child's life
        """The snapshot, once the child has sent it and been reaped.

        Raises :class:`SnapshotChildError` when the encoder raised in the
        child, :class:`SnapshotTimeout` after ``timeout`` seconds (a parameter,
        not left to the caller's ``asyncio.timeout``, because it bounds the
        child's life: on expiry the child is killed), :class:`SnapshotError`
        when the child died without sending a complete snapshot. In every case,
        cancellation included, the child is gone (killed if need be) and
        reaped: before this returns or raises, or after a kill by polls the
        loop runs shortly after.
        """
        if self._awaited:
            raise RuntimeError("ChildEncoding.result() can be awaited only once")
        self._awaited = True
        loop = asyncio.get_running_loop()
        received: asyncio.Future[bytes] = loop.create_future()
        drain: _PipeDrain | None = None
        try:
            async with asyncio.timeout(timeout):
                drain = _PipeDrain(loop, self._take_read_fd(), received)
                payload = await received
                exit_code = await self._reap(loop)
        except TimeoutError:
            raise SnapshotTimeout(
                f"the snapshot child {self.pid} did not finish within {timeout:g} s and was killed"
            ) from None
        finally:
            if not received.done():
                received.cancel()
            if drain is not None:
                drain.close()
            self.kill()
        return self._decode(payload, exit_code, time.perf_counter() - self._started)

    def kill(self) -> None:
        """End the child now (if it is still running) and see that it is reaped."""
        self._close_read_fd()
        if self._done:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # No event loop to poll from: a SIGKILLed process exits at once.
            try:
                self._collect(os.waitpid(self.pid, 0)[1])
            except ChildProcessError:
                self._collect(None)
        else:
            # A SIGKILLed child is gone within a millisecond or two: reap it now, so a
            # loop that closes right after this (a stopping graph) leaves no zombie and
            # no frozen collector behind; poll from the loop only if it lingers.
            for _ in range(_KILL_REAP_TRIES):
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    self._collect(None)
                    return
                if pid != 0:
                    self._collect(status)
                    return
                time.sleep(0.001)
            self._reap(loop)

    def _take_read_fd(self) -> int:
        fd, self._read_fd = self._read_fd, None
        if fd is None:
            raise RuntimeError("the snapshot pipe is closed")
        return fd

    def _close_read_fd(self) -> None:
        if self._read_fd is not None:
            os.close(self._take_read_fd())

    def _reap(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[int | None]:
        """Future of the child's exit code, polled with ``WNOHANG`` from the loop."""
        if self._reaped is not None:
            return self._reaped
        self._reaped = future = loop.create_future()
        delay = _FIRST_POLL

        def poll() -> None:
            nonlocal delay
            if not self._done:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:  # reaped by someone waiting on any child
                    self._collect(None)
                else:
                    if pid == 0:
                        delay = min(delay * 2, _LAST_POLL)
                        loop.call_later(delay, poll)
                        return
                    self._collect(status)
            if not future.done():
                future.set_result(self._exit_code)

        poll()
        return future

    def _collect(self, status: int | None) -> None:
        if self._done:
            return
        self._done = True
        self._exit_code = None if status is None else os.waitstatus_to_exitcode(status)
        _thaw_gc()

    def _decode(self, payload: bytes, exit_code: int | None, total_seconds: float) -> ForkedEncoding:
        what = f"the snapshot child {self.pid} {_describe_exit(exit_code)}"
        if len(payload) < _LENGTH.size:
            raise SnapshotError(f"{what} without sending a snapshot")
        (length,) = _LENGTH.unpack_from(payload)
        start = _LENGTH.size + length
        try:
            header = orjson.loads(payload[_LENGTH.size : start])
        except orjson.JSONDecodeError:
            raise SnapshotError(f"{what} after sending an incomplete header") from None
        if not isinstance(header, dict):
            raise SnapshotError(f"{what} after sending a header that is not an object")
        if not header.get("ok"):
            raise SnapshotChildError(
                f"encoding the snapshot failed in the child process: {header.get('error')}",
                str(header.get("traceback", "")),
            )
        data = payload[start:]
        if len(data) != header["data_bytes"] or exit_code not in (0, None):
            raise SnapshotError(f"{what} after sending {len(data)} of {header['data_bytes']} snapshot bytes")
        state = EncodedState(
            data=data,
            raw_bytes=int(header["raw_bytes"]),
            sequence=int(header["sequence"]),
            entities=int(header["entities"]),
            relationships=int(header["relationships"]),
            format=str(header["format"]),
        )
        return ForkedEncoding(state, self.fork_seconds, total_seconds, float(header["encode_seconds"]), self.pid)


def start_encoding_in_child(processor: Processor) -> ChildEncoding:
    """Fork now: the child encodes ``processor`` as it is at this instant.

    Synchronous, so the snapshot's point in time is exactly the caller's: the
    processor may change as soon as this returns. Await the handle's
    :meth:`ChildEncoding.result` for the bytes.
    """
    if not FORK_AVAILABLE:
        raise SnapshotError("os.fork is not available on this platform; use encode_in_process")
    started = time.perf_counter()
    read_fd, write_fd = os.pipe()
    _enlarge_pipe(write_fd)
    _freeze_gc()
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns on fork in a process with threads, because the
            # child may inherit locks held by them; the child takes none (see
            # the module docstring).
            warnings.filterwarnings("ignore", message=r".*multi-threaded.*fork", category=DeprecationWarning)
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child; it reports through the pipe
                _child_main(processor, read_fd, write_fd)
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        _thaw_gc()
        raise SnapshotError(f"could not fork the snapshot child: {exc}") from exc
    os.close(write_fd)
    return ChildEncoding(pid, read_fd, started, time.perf_counter() - started)


async def encode_in_child(processor: Processor, *, timeout: float = 120.0) -> ForkedEncoding:  # noqa: ASYNC109
    """Snapshot ``processor`` in a forked child; the event loop is blocked only for the fork.

    The snapshot is the state when the coroutine starts: awaited directly, that
    is the call (a coroutine runs at once up to its first suspension, which is
    after the fork); wrapped in a task, it is when the task first runs. Use
    :func:`start_encoding_in_child` to fork at an exact point and collect the
    bytes later. See :meth:`ChildEncoding.result` for errors.
    """
    return await start_encoding_in_child(processor).result(timeout)


async def encode_in_process(processor: Processor) -> ForkedEncoding:
    """Snapshot ``processor`` in the event loop (where fork is not available): all of it is stall."""
    started = time.perf_counter()
    state = encode_state(processor)
    elapsed = time.perf_counter() - started
    return ForkedEncoding(state, elapsed, elapsed, elapsed)


async def encode_snapshot(processor: Processor, *, timeout: float = 120.0) -> ForkedEncoding:  # noqa: ASYNC109
    """Snapshot ``processor`` in a forked child where possible, else in process."""
    if FORK_AVAILABLE:
        return await encode_in_child(processor, timeout=timeout)
    return await encode_in_process(processor)
