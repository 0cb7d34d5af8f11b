"""``vitrail serve`` as a user runs it: a subprocess on a free port, asked over HTTP."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import ServerProcess, start_server, stop_server


def test_demo_topology_and_resources_over_http(demo_server: ServerProcess) -> None:
    topology = httpx.get(f"{demo_server.url}/v1/topology").json()
    types = {node["vitrage_type"] for node in topology["nodes"]}
    assert {"openstack.cluster", "nova.zone", "nova.host", "nova.instance", "switch", "router"} <= types
    hosts = [n for n in topology["nodes"] if n["vitrage_type"] == "nova.host"]
    assert len(hosts) == 8
    assert sum(1 for h in hosts if h["state"] == "ERROR") == 1  # the simulator's injected failure
    # static switches are attached to the simulator's hosts, not to copies of them
    switch = next(n for n in topology["nodes"] if n["name"] == "tor-a")
    index = topology["nodes"].index(switch)
    attached = [topology["nodes"][link["target"]] for link in topology["links"] if link["source"] == index]
    assert sorted(n["name"] for n in attached if n["vitrage_type"] == "nova.host") == [
        "host-00000",
        "host-00001",
        "host-00002",
        "host-00003",
    ]
    resources = httpx.post(f"{demo_server.url}/v1/resources/", json={"resource_type": "nova.host"}).json()
    assert sorted(r["name"] for r in resources) == [f"host-{i:05d}" for i in range(8)]
    one = httpx.get(f"{demo_server.url}/v1/resources/{resources[0]['vitrage_id']}").json()
    assert one["vitrage_id"] == resources[0]["vitrage_id"]
    missing = httpx.get(f"{demo_server.url}/v1/resources/not-a-vertex")
    assert missing.status_code == 404
    assert missing.json()["code"] == 404


def test_sigterm_stops_cleanly_and_the_event_log_is_on_disk(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--demo")

    def resources(server: ServerProcess) -> int:  # alarms come and go with the demo's story; resources stay
        nodes = httpx.get(f"{server.url}/v1/topology/").json()["nodes"]
        return sum(1 for n in nodes if n["vitrage_category"] == "RESOURCE")

    vertices = resources(server)
    # An alarm that only the event log knows of (no datasource will report it again).
    posted = httpx.post(
        f"{server.url}/v1/event",
        json={
            "type": "compute.host.down",
            "time": "2026-11-22T01:00:00Z",
            "details": {"hostname": "host-00005", "source": "e2e", "status": "down", "severity": "critical"},
        },
    )
    assert posted.status_code in (200, 204), posted.text
    # The demo raises its own alarm after the first topology: wait for both, whichever comes first.
    alarms = _poll(lambda: _alarm_hosts(server), lambda hosts: {"host-00002", "host-00005"} <= set(hosts))
    assert {"host-00002", "host-00005"} <= set(alarms)  # the demo's failed host and ours
    assert stop_server(server) == 0, server.log()
    assert "vitrail stopped" in server.log()
    with sqlite3.connect(tmp_path / "vitrail.db") as db:
        logged, first, last = db.execute("select count(*), min(sequence), max(sequence) from events").fetchone()
    assert logged >= vertices  # every entity of the first round, plus the round ends
    assert (first, last) == (1, logged)

    assert "snapshot stored" in server.log()  # after the first get_all round

    # A second run on the same data starts from the snapshot and the log after it, and continues
    # the log: new sequence numbers, no conflicts. Its state being recent, it asks no new get_all
    # at start (seed 001: a failover initialises "without requesting updates").
    again = start_server(tmp_path, "--demo")
    assert resources(again) == vertices
    leader = next(line for line in again.log().splitlines() if "this process is the graph leader" in line)
    assert re.search(r'"snapshot_sequence": \d+', leader), leader
    assert '"get_all_at_start": false' in leader, leader
    assert _alarm_hosts(again) == alarms  # restored, not lost; the demo's own alarm not doubled
    assert stop_server(again) == 0, again.log()
    assert "refused" not in again.log()
    with sqlite3.connect(tmp_path / "vitrail.db") as db:
        total, first, last = db.execute("select count(*), min(sequence), max(sequence) from events").fetchone()
    assert logged < total < logged + vertices  # the demo's new alarm event, not a whole new round
    assert (first, last) == (1, total)


def test_a_busy_port_is_a_clear_error(demo_server: ServerProcess, tmp_path: Path) -> None:
    import subprocess
    import sys

    port = demo_server.url.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "vitrail.cli.main", "serve", "--port", port],
        capture_output=True,
        text=True,
        env={"VITRAIL_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def _wait_for(predicate: object, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_a_broken_static_file_is_reported_and_its_last_good_version_kept(tmp_path: Path) -> None:
    static = tmp_path / "static"
    static.mkdir()
    topology = static / "rack.yaml"
    topology.write_text(
        "definitions:\n"
        "  entities:\n"
        "    - {static_id: s1, type: switch, id: sw-1, name: tor-1, state: available}\n"
        "  relationships: []\n"
    )
    server = start_server(
        tmp_path,
        env_extra={"VITRAIL_STATIC__DIRECTORY": str(static), "VITRAIL_GRAPH__CHANGES_INTERVAL": "0.3"},
    )
    try:

        def names() -> set[str]:
            nodes = httpx.get(f"{server.url}/v1/topology/").json()["nodes"]
            return {n["name"] for n in nodes}

        assert names() == {"tor-1"}
        topology.write_text(
            "definitions:\n"
            "  entities:\n"
            "    - {static_id: s1, type: switch, id: sw-1, name: tor-1, state: available}\n"
            "    - {type: switch, id: sw-2}\n"
            "  relationships: []\n"
        )

        def reported() -> list[str]:
            details = httpx.get(f"{server.url}/v1/status/", params={"detailed": "true"}).json()["details"]
            return details["datasource_problems"].get("static", {}).get("rack.yaml", [])

        _wait_for(lambda: any("rack.yaml:4" in p and "static_id" in p for p in reported()))
        assert names() == {"tor-1"}  # the last good version is still the topology
        topology.write_text(
            "definitions:\n"
            "  entities:\n"
            "    - {static_id: s1, type: switch, id: sw-1, name: tor-1, state: available}\n"
            "    - {static_id: s2, type: switch, id: sw-2, name: tor-2, state: ERROR}\n"
            "  relationships:\n"
            "    - {source: s2, target: s1, relationship_type: attached}\n"
        )
        _wait_for(lambda: names() == {"tor-1", "tor-2"})
        assert reported() == []
    finally:
        assert stop_server(server) == 0, server.log()


def test_a_terminal_gets_a_progress_bar_while_the_topology_loads(tmp_path: Path) -> None:
    import os
    import pty
    import select
    import signal
    import subprocess
    import sys
    import time

    leader, follower = pty.openpty()
    env = {**os.environ, "VITRAIL_DATA_DIR": str(tmp_path), "COLUMNS": "120", "TERM": "xterm"}
    env.pop("VITRAIL_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "vitrail.cli.main", "serve", "--demo", "--hosts", "3000", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 90
        while b"Topology loaded" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(leader, 65536)
                except OSError:
                    break
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        os.close(leader)
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode("utf-8", "replace"))
    assert "loading topology" in text, text[-2000:]
    assert re.search(r"\d+/33013", text), text[-2000:]  # 33,002 simulated + 11 static entities to load
    assert "Topology loaded: 33005 entities" in text, text[-2000:]
    assert process.returncode == 0


def _alarm_hosts(server: ServerProcess) -> list[str]:
    """The host names of the host alarms, one entry per alarm."""
    found = httpx.get(f"{server.url}/v1/alarm/", params={"vitrage_id": "all", "all_tenants": True}).json()
    return sorted(a["vitrage_resource_name"] for a in found if a.get("vitrage_resource_type") == "nova.host")


def _poll(read: Any, done: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)
