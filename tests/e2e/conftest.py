"""A real ``vitrail serve --demo`` process on a free port, shared by the end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

VITRAIL = [sys.executable, "-m", "vitrail.cli.main"]


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    url: str
    data_dir: Path
    output: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "".join(self.output)


def start_server(
    data_dir: Path, *args: str, timeout: float = 60.0, env_extra: dict[str, str] | None = None
) -> ServerProcess:
    env = {**os.environ, "VITRAIL_DATA_DIR": str(data_dir), "VITRAIL_LOGGING__FORMAT": "json", **(env_extra or {})}
    env.pop("VITRAIL_CONFIG", None)
    process = subprocess.Popen(
        [*VITRAIL, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    found: dict[str, str] = {}
    listening = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = re.search(r"listening on (http://[\d.]+:\d+)", line)
            if match:
                found["url"] = match.group(1)
                listening.set()
        listening.set()

    threading.Thread(target=pump, daemon=True).start()
    if not listening.wait(timeout) or "url" not in found:
        process.kill()
        raise AssertionError("vitrail serve did not start:\n" + "".join(lines))
    server = ServerProcess(process, found["url"], data_dir, lines)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.url}/v1/status/", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise AssertionError("vitrail serve never became ready:\n" + server.log())


def stop_server(server: ServerProcess, timeout: float = 30.0) -> int:
    return terminate(server.process, timeout)


def terminate(process: subprocess.Popen[str], timeout: float = 30.0) -> int:
    """SIGTERM, as systemd stops a unit (SIGKILL after ``timeout``); the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("vitrail-demo"), "--demo")
    yield server
    stop_server(server)
