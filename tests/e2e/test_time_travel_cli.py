"""``--at`` and ``vitrail history`` against a running ``vitrail serve --demo``: the real worker process,
the real event log and snapshots of the embedded mode."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from typer.testing import CliRunner

from tests.e2e.conftest import ServerProcess
from vitrail.cli.main import app

runner = CliRunner()
HOST = "host-00007"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def json_of(*args: str) -> Any:
    code, out, err = run(*args, "-f", "json")
    assert code == 0, err
    return json.loads(out)


def _host_alarms(server: ServerProcess, *at: str) -> list[dict[str, Any]]:
    rows = json_of("alarm", "list", "--url", server.url, *(("--at", at[0]) if at else ()))
    instances = f"vm-{HOST.removeprefix('host-')}-"  # the demo's instance names: vm-00007-03
    return [a for a in rows if str(a.get("vitrage_resource_name")).startswith((HOST, instances))]


def _now() -> str:
    time.sleep(0.05)  # strictly after what was received so far
    moment = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    return moment


def _until(check: Any, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.2)


def test_at_and_history_diff_in_the_cli(demo_server: ServerProcess) -> None:
    url = demo_server.url
    window = json_of("history", "window", "--url", url)
    assert window["start"] and window["end"]
    before = _now()
    details = json.dumps({"hostname": HOST, "status": "down"})
    code, _, err = run("event", "post", "--type", "compute.host.down", "--details", details, "--url", url)
    assert code == 0, err
    try:
        _until(lambda: len(_host_alarms(demo_server)) >= 2)  # the host's alarm and its instances'
        # Stored in the event log too (the persistor lags a little behind the graph).
        down = _now()
        _until(lambda: len(_host_alarms(demo_server, down)) == len(_host_alarms(demo_server)))
        assert _host_alarms(demo_server, before) == []
        host_alarm = next(a for a in _host_alarms(demo_server, down) if a["vitrage_type"] == "doctor")
        deduced = next(a for a in _host_alarms(demo_server, down) if a["vitrage_type"] == "vitrage")

        code, out, _ = run("rca", "show", deduced["vitrage_id"], "--at", down, "--url", url)
        assert code == 0 and "compute.host.down" in out and "← asked" in out
        code, _, err = run("rca", "show", deduced["vitrage_id"], "--at", before, "--url", url)
        assert code == 1 and "(HTTP 404)" in err
        assert json_of("alarm", "show", host_alarm["vitrage_id"], "--at", down, "--url", url) == host_alarm
        counts = json_of("alarm", "count", "--at", down, "--url", url)
        assert counts["CRITICAL"] > json_of("alarm", "count", "--at", before, "--url", url)["CRITICAL"]
        topology = json_of("topology", "show", "--at", before, "--url", url)
        hosts = [n for n in topology["nodes"] if n.get("name") == HOST]
        assert len(hosts) == 1 and hosts[0]["vitrage_aggregated_state"] != "ERROR"
        host_then = json_of("resource", "show", hosts[0]["vitrage_id"], "--at", down, "--url", url)
        assert host_then["vitrage_aggregated_state"] == "ERROR"
        assert json_of("resource", "count", "--at", before, "--url", url)["nova.host"] == 8
        listed = json_of("resource", "list", "--type", "nova.host", "--at", down, "--url", url)
        assert {r["name"] for r in listed} >= {HOST}

        diff = json_of("history", "diff", "--from", before, "--to", down, "--url", url)
        added = {a["vitrage_id"] for a in diff["alarms"]["added"]}
        assert {host_alarm["vitrage_id"], deduced["vitrage_id"]} <= added
        assert any(c["name"] == HOST for c in diff["resources"]["changed"])
        code, out, _ = run("history", "diff", "--from", before, "--to", down, "--url", url)
        assert code == 0 and "alarms:" in out and "added" in out and "vitrage_aggregated_state" in out

        code, out, _ = run("alarm", "list", "--at", down, "--url", url)
        assert code == 0 and "active alarms at" in out
    finally:
        details = json.dumps({"hostname": HOST, "status": "up"})
        run("event", "post", "--type", "compute.host.down", "--details", details, "--url", url)
        _until(lambda: _host_alarms(demo_server) == [])


def test_at_refusals_in_the_cli(demo_server: ServerProcess) -> None:
    url = demo_server.url
    code, _, err = run("alarm", "list", "--at", "yesterday", "--url", url)
    assert code == 2 and "--at: 'yesterday' is not an ISO-8601 time" in err
    code, _, err = run("topology", "show", "--at", "2999-01-01T00:00:00Z", "--url", url)
    assert code == 1 and "is in the future; the graph can be rebuilt from" in err and "(HTTP 400)" in err
    code, _, err = run("history", "diff", "--from", "2000-01-01", "--to", "2000-01-02", "--url", url)
    assert code == 1 and "outside the history window" in err
    code, _, err = run("history", "diff", "--from", "soon", "--to", "2000-01-02", "--url", url)
    assert code == 2 and "--from:" in err
