"""The ``vitrail`` CLI against a running service, and the real python-vitrageclient."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.e2e.conftest import ServerProcess
from vitrail.cli.main import app
from vitrail.datasources import doctor
from vitrail.graph.events import utc_now
from vitrail.services.topics import encode
from vitrail.storage import DeadLetterStore, NewDeadLetter, create_engine

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_topology_show_formats(demo_server: ServerProcess) -> None:
    code, out, _ = run("topology", "show", "--url", demo_server.url, "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert len(data["nodes"]) > 70
    code, out, _ = run("topology", "show", "--url", demo_server.url, "--format", "tree")
    assert code == 0
    assert "openstack.cluster" in out and "host-00003" in out and "vm-00007-03" in out
    code, out, _ = run("topology", "show", "--url", demo_server.url)
    assert code == 0
    assert "entities" in out and "tor-b" in out


def test_topology_show_root_depth_and_filter(demo_server: ServerProcess) -> None:
    code, out, _ = run(
        "topology",
        "show",
        "--url",
        demo_server.url,
        "-f",
        "json",
        "--filter",
        '{"==": {"vitrage_type": "nova.host"}}',
    )
    assert code == 0
    assert {n["vitrage_type"] for n in json.loads(out)["nodes"]} == {"nova.host"}
    code, _, err = run("topology", "show", "--url", demo_server.url, "--filter", "{bad")
    assert code == 2 and "--filter is not valid JSON" in err


def test_resource_list_show_count(demo_server: ServerProcess) -> None:
    code, out, _ = run("resource", "list", "--url", demo_server.url, "--type", "nova.host", "-f", "json")
    assert code == 0
    hosts = json.loads(out)
    assert len(hosts) == 8
    code, out, _ = run("resource", "show", hosts[0]["vitrage_id"], "--url", demo_server.url)
    assert code == 0 and hosts[0]["name"] in out
    code, out, _ = run("resource", "list", "--url", demo_server.url)
    assert code == 0 and "resources" in out
    code, out, _ = run("resource", "count", "--url", demo_server.url, "-f", "json")
    assert json.loads(out)["nova.host"] == 8
    code, _, err = run("resource", "show", "missing-id", "--url", demo_server.url)
    assert code == 1 and "(HTTP 404)" in err


def test_status_and_unreachable_service(demo_server: ServerProcess) -> None:
    code, out, _ = run("status", "--url", demo_server.url)
    assert code == 0 and "OK" in out
    code, _, err = run("status", "--url", "http://127.0.0.1:1")
    assert code == 1 and "cannot reach Vitrail" in err


def test_config_show_reflects_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "vitrail.toml"
    config.write_text("[api]\nport = 9100\n[graph]\nconsistency_rounds = 3\n")
    monkeypatch.setenv("VITRAIL_GRAPH__CONSISTENCY_ROUNDS", "4")
    code, out, _ = run("config", "show", "--config", str(config))
    assert code == 0
    shown = yaml.safe_load(out)
    assert shown["api"]["port"] == 9100
    assert shown["graph"]["consistency_rounds"] == 4  # the environment beats the file
    monkeypatch.setenv("VITRAIL_TRANSPORT_URL", "amqp://vitrail:s3cret@mq:5672/vitrail?quorum=true")
    _, out, _ = run("config", "show", "--config", str(config))
    assert yaml.safe_load(out)["transport_url"] == "amqp://vitrail:***@mq:5672/vitrail?quorum=true"
    _, out, _ = run("config", "show", "--config", str(config), "--show-secrets")
    assert "s3cret" in out
    monkeypatch.delenv("VITRAIL_TRANSPORT_URL")
    config.write_text("[graph]\nconsistency_rounds = 0\n")
    monkeypatch.delenv("VITRAIL_GRAPH__CONSISTENCY_ROUNDS")
    code, _, err = run("config", "show", "--config", str(config))
    assert code == 2 and "graph.consistency_rounds" in err


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    code, out, _ = run("db", "upgrade", "--database-url", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 0 and "revision 0005" in out
    code, _, err = run("db", "upgrade", "--database-url", "oracle://x")
    assert code == 1 and "oracle" in err


VITRAGE = shutil.which("vitrage", path=os.path.dirname(sys.executable))


class VitrageCli:
    """The real python-vitrageclient against ``url``, without Keystone (its vitrage-noauth plugin)."""

    def __init__(self, url: str) -> None:
        self.base = [VITRAGE or "vitrage", "--os-auth-type", "vitrage-noauth", "--user-id", "operator",
                     "--project-id", "project-0", "--endpoint", url]  # fmt: skip

    def __call__(self, *args: str) -> str:
        result = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.mark.skipif(VITRAGE is None, reason="python-vitrageclient is part of the test extras")
def test_python_vitrageclient_topology_and_resources(demo_server: ServerProcess) -> None:
    vitrage = VitrageCli(demo_server.url)

    topology = json.loads(vitrage("topology", "show", "--all-tenants"))
    assert any(n["vitrage_type"] == "nova.host" for n in topology["nodes"])
    tree = json.loads(vitrage("topology", "show", "--graph-type", "tree"))
    assert tree["vitrage_type"] == "openstack.cluster"
    hosts = json.loads(vitrage("resource", "list", "--type", "nova.host", "--all-tenants", "-f", "json"))
    assert len(hosts) == 8 and {"ID", "Type", "Data Source ID", "State", "Metadata"} <= set(hosts[0])
    shown = json.loads(vitrage("resource", "show", hosts[0]["ID"], "-f", "json"))
    assert shown["vitrage_id"] == hosts[0]["ID"]
    counts = json.loads(vitrage("resource", "count", "--all-tenants"))
    assert counts["nova.host"] == 8
    services = json.loads(vitrage("service", "list", "-f", "json"))
    assert {s["Name"] for s in services} == {"vitrail-api", "vitrail-collector", "vitrail-graph", "vitrail-persistor"}
    assert "OK" in vitrage("status")
    failed = subprocess.run([*vitrage.base, "resource", "show", "nope"], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "(HTTP 404)" in failed.stderr


def _demo_alarms(server: ServerProcess) -> list[dict[str, Any]]:
    import time

    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the demo adds its templates and its host failure after the load
        alarms = httpx.get(f"{server.url}/v1/alarm/").json()
        if sum(1 for a in alarms if a["name"] == "Instance down") == 4:
            return alarms
        time.sleep(0.2)
    raise AssertionError("the demo's host failure never showed")


def test_demo_alarms_rca_and_templates_in_the_cli(demo_server: ServerProcess) -> None:
    alarms = _demo_alarms(demo_server)
    code, out, _ = run("alarm", "list", "--url", demo_server.url)
    assert code == 0 and "Instance down" in out and "compute.host.down" in out
    code, out, _ = run("alarm", "count", "--url", demo_server.url, "-f", "json")
    assert json.loads(out)["CRITICAL"] >= 5
    deduced = next(a for a in alarms if a["name"] == "Instance down")
    code, out, _ = run("rca", "show", deduced["vitrage_id"], "--url", demo_server.url)
    assert code == 0
    lines = out.splitlines()
    assert "root cause" in lines[0] and "compute.host.down" in lines[1]  # the cause is at the top
    assert "← asked" in out
    code, out, _ = run("alarm", "show", deduced["vitrage_id"], "--url", demo_server.url)
    assert code == 0 and "Instance down" in out
    code, out, _ = run("template", "list", "--url", demo_server.url)
    assert code == 0 and "host_down" in out and "ACTIVE" in out
    code, out, _ = run("template", "show", "host_down", "--url", demo_server.url)
    assert code == 0 and "host_down_alarm [on] host" in out


def test_template_validate_add_delete_and_event_post_in_the_cli(demo_server: ServerProcess, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "metadata: {version: 3, name: bad, type: standard}\n"
        "entities:\n  host: {category: RESOURCE, type: nova.host}\n"
        "scenarios:\n  - condition: ghost [on] host\n    actions:\n      - set_state: {target: host}\n"
    )
    code, out, _ = run("template", "validate", str(bad), "--url", demo_server.url)
    assert code == 1 and "validation failed" in out and "line 5" in out and "line 7" in out
    good = tmp_path / "quiet.yaml"
    good.write_text(
        "metadata: {version: 3, name: cli_marks, type: standard}\n"
        "entities:\n  alarm: {category: ALARM, type: doctor, name: disk.full}\n"
        "  host: {category: RESOURCE, type: nova.host}\n"
        "scenarios:\n  - condition: alarm [on] host\n    actions:\n      - mark_down: {target: host}\n"
    )
    code, out, _ = run("template", "add", str(good), "--url", demo_server.url)
    assert code == 0 and "cli_marks" in out
    code, _, err = run("template", "add", str(good), "--url", demo_server.url)
    assert code == 1 and "exists already" in err
    details = '{"hostname": "host-00005", "status": "down"}'
    code, out, _ = run("event", "post", "--type", "disk.full", "--details", details, "--url", demo_server.url)
    assert code == 0
    code, _, err = run("event", "post", "--type", "disk.full", "--details", "{}", "--url", demo_server.url)
    assert code == 1 and "hostname" in err
    code, out, _ = run("template", "delete", "cli_marks", "--url", demo_server.url)
    assert code == 0


@pytest.mark.skipif(VITRAGE is None, reason="python-vitrageclient is part of the test extras")
def test_python_vitrageclient_alarms_rca_templates_and_events(demo_server: ServerProcess, tmp_path: Path) -> None:
    alarms = _demo_alarms(demo_server)
    vitrage = VitrageCli(demo_server.url)

    listed = json.loads(vitrage("alarm", "list", "--all-tenants", "-f", "json"))
    assert {a["Name"] for a in listed} >= {"compute.host.down", "Instance down"}
    assert {"ID", "Type", "Name", "Resource Type", "Resource ID", "Severity", "Update Time"} <= set(listed[0])
    deduced = next(a for a in alarms if a["name"] == "Instance down")
    shown = json.loads(vitrage("alarm", "show", deduced["vitrage_id"], "-f", "json"))
    assert shown["name"] == "Instance down"
    counts = json.loads(vitrage("alarm", "count", "--all-tenants"))
    assert counts["CRITICAL"] >= 5 and set(counts) == {"CRITICAL", "SEVERE", "WARNING", "OK", "N/A"}
    rca = json.loads(vitrage("rca", "show", deduced["vitrage_id"], "--all-tenants"))
    names = {n["name"] for n in rca["nodes"]}
    assert "compute.host.down" in names and rca["nodes"][rca["inspected_index"]]["vitrage_id"] == deduced["vitrage_id"]
    templates = json.loads(vitrage("template", "list", "-f", "json"))
    assert {t["Name"] for t in templates} >= {"host_down", "switch_down"}
    shown_template = vitrage("template", "show", "host_down")
    assert "host_down_alarm [on] host" in shown_template
    examples = Path(__file__).resolve().parents[2] / "examples" / "templates"
    validated = json.loads(vitrage("template", "validate", "--path", str(examples / "v2_host_high_cpu.yaml")))
    assert validated["results"][0]["status code"] == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "metadata: {version: 3, name: bad, type: standard}\n"
        "entities:\n  host: {category: RESOURCE, type: nova.host}\n"
        "scenarios:\n  - condition: ghost [on] host\n    actions:\n      - mark_down: {target: host}\n"
    )
    rejected = json.loads(vitrage("template", "validate", "--path", str(bad)))
    assert rejected["results"][0]["status code"] == 10200  # Vitrage's code: unknown entity in the condition
    vitrage("template", "add", "--path", str(examples / "v2_host_high_cpu.yaml"))
    assert "host_high_cpu" in vitrage("template", "list") or "high_cpu" in vitrage("template", "list")
    added = next(t for t in json.loads(vitrage("template", "list", "-f", "json")) if "cpu" in t["Name"])
    vitrage("template", "delete", added["UUID"])
    vitrage(
        "event",
        "post",
        "--type",
        "compute.host.down",
        "--details",
        '{"hostname": "host-00006", "status": "down", "source": "client"}',
    )
    import time

    import httpx

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        hosts = {
            a["vitrage_resource_name"]
            for a in httpx.get(f"{demo_server.url}/v1/alarm/").json()
            if a["name"] == "compute.host.down"
        }
        if "host-00006" in hosts:
            break
        time.sleep(0.2)
    assert "host-00006" in hosts


def _demo_history(server: ServerProcess) -> list[dict[str, Any]]:
    import time

    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the history is written once the events are stored
        rows = httpx.get(f"{server.url}/v1/alarm/history/", params={"all_tenants": "True"}).json()
        if sum(1 for r in rows if r["name"] == "Instance down") >= 4:
            return rows  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError("the demo's alarms never reached the history")


def test_alarm_history_in_the_cli(demo_server: ServerProcess, tmp_path: Path) -> None:
    rows = _demo_history(demo_server)
    code, out, _ = run("alarm", "history", "--url", demo_server.url, "--all-tenants", "-f", "json")
    assert code == 0
    listed = json.loads(out)
    assert {r["name"] for r in listed} >= {"compute.host.down", "Instance down"}
    # Other tests post alarms to the same server meanwhile: what the API listed is still there.
    assert {r["history_id"] for r in rows} <= {r["history_id"] for r in listed}
    starts = [(r["history_start"], r["vitrage_id"]) for r in listed]
    assert starts == sorted(starts)  # oldest first, as Vitrage
    code, out, _ = run("alarm", "history", "--url", demo_server.url, "--type", "vitrage", "--active")
    assert code == 0 and "Instance down" in out and "compute.host.down" not in out and "active" in out
    code, out, _ = run("alarm", "history", "--url", demo_server.url, "--start", "yesterday")
    assert code == 1 and "start" in out + _
    code, out, _ = run("db", "purge", "--database-url", f"sqlite:///{tmp_path / 'purge.db'}")
    assert code == 0 and "removed 0 alarm occurrences" in out


@pytest.mark.skipif(VITRAGE is None, reason="python-vitrageclient is part of the test extras")
def test_python_vitrageclient_alarm_history(demo_server: ServerProcess) -> None:
    _demo_history(demo_server)
    vitrage = VitrageCli(demo_server.url)
    history = json.loads(vitrage("alarm", "history", "--all-tenants", "-f", "json"))
    assert {"ID", "Type", "Name", "Resource Type", "Resource ID", "Severity", "Start Time", "End Time"} <= set(
        history[0]
    )
    assert {r["Name"] for r in history} >= {"compute.host.down", "Instance down"}
    page = json.loads(vitrage("alarm", "history", "--all-tenants", "--limit", "2", "-f", "json"))
    assert [r["ID"] for r in page] == [r["ID"] for r in history[:2]]
    later = json.loads(vitrage("alarm", "history", "--all-tenants", "--start", "2999-01-01T00:00:00", "-f", "json"))
    assert later and all(not r["End Time"] for r in later)  # only what is still active then


def test_serve_refuses_roles_that_cannot_meet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VITRAIL_DATA_DIR", str(tmp_path))
    code, _, err = run("serve", "--role", "api")
    assert code == 2
    assert "need a shared bus" in err and "amqp://" in err
    code, _, err = run("serve", "--role", "api", "--role", "scheduler")
    assert code == 2 and "unknown role(s) ['scheduler']" in err
    assert not list(tmp_path.iterdir())  # refused before anything was created


# -- dead letters ---------------------------------------------------------------------------
# The server keeps dead letters in its SQLite database; the tests put theirs there directly
# (nothing in the API creates one), each test under sources of its own.


def _add_dead_letters(server: ServerProcess, *letters: tuple[str, bytes]) -> list[int]:
    async def add() -> list[int]:
        engine = create_engine(f"sqlite:///{server.data_dir / 'vitrail.db'}")
        try:
            drafts = [NewDeadLetter(source, f"e2e letter {n}", body) for n, (source, body) in enumerate(letters)]
            return await DeadLetterStore(engine).add_many(drafts)
        finally:
            await engine.dispose()

    return asyncio.run(add())


def _host_alarm_records(alarm: str, hostname: str, status: str) -> bytes:
    body = {"type": alarm, "details": {"hostname": hostname, "status": status}}
    return json.dumps(encode(doctor.parse_event(body, utc_now()))).encode()


def test_dead_letter_list_show_delete_and_purge_in_the_cli(demo_server: ServerProcess) -> None:
    source = "events.bulk/cli-e2e"
    binary = bytes(range(256))
    text_id, binary_id, other_id = _add_dead_letters(
        demo_server, (source, "événement {".encode()), (source, binary), (source, b"third")
    )
    url = ("--url", demo_server.url)
    code, out, _ = run("dead-letter", "list", "--source", source, "-f", "json", *url)
    assert code == 0
    assert [row["id"] for row in json.loads(out)] == [other_id, binary_id, text_id]  # newest first
    code, out, err = run("dead-letter", "list", "--source", source, "--limit", "2", *url)
    assert code == 0 and "e2e letter 2" in out and "e2e letter 1" in out and "e2e letter 0" not in out
    assert f"--marker {binary_id}" in err
    code, out, _ = run("dead-letter", "list", "--source", source, "--marker", str(binary_id), "-f", "json", *url)
    assert [row["id"] for row in json.loads(out)] == [text_id]

    code, out, _ = run("dead-letter", "show", str(text_id), *url)
    assert code == 0 and "événement {" in out and source in out
    code, out, _ = run("dead-letter", "show", str(binary_id), *url)
    assert code == 0 and "256 bytes, not UTF-8" in out
    result = runner.invoke(app, ["dead-letter", "show", str(binary_id), "-f", "raw", *url], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout_bytes == binary  # byte for byte
    code, out, _ = run("dead-letter", "show", str(binary_id), "-f", "json", *url)
    assert base64.b64decode(json.loads(out)["body_base64"]) == binary

    code, out, _ = run("dead-letter", "delete", str(text_id), *url)
    assert code == 0 and f"dead letter {text_id} deleted" in out
    for args in (("show", str(text_id)), ("delete", str(text_id))):
        code, _, err = run("dead-letter", *args, *url)
        assert code == 1 and f"dead letter {text_id} does not exist" in err and "(HTTP 404)" in err

    code, _, err = run("dead-letter", "purge", *url)
    assert code == 2 and "--before, --source, or --all" in err
    code, _, err = run("dead-letter", "purge", "--all", "--source", source, *url)
    assert code == 2 and "--all" in err
    code, _, err = run("dead-letter", "purge", "--before", "last tuesday", *url)
    assert code == 2 and "--before" in err
    result = runner.invoke(app, ["dead-letter", "purge", "--source", source, *url], input="n\n")
    assert result.exit_code == 1 and f"Delete the dead letters from {source}?" in result.stdout
    code, out, _ = run("dead-letter", "list", "--source", source, "-f", "json", *url)
    assert len(json.loads(out)) == 2  # refused at the prompt: nothing purged
    result = runner.invoke(app, ["dead-letter", "purge", "--source", source, *url], input="y\n")
    assert result.exit_code == 0 and "purged 2 dead letter(s)" in result.stdout
    code, out, _ = run("dead-letter", "list", "--source", source, "-f", "json", *url)
    assert json.loads(out) == []


def test_dead_letter_retry_reaches_the_graph(demo_server: ServerProcess) -> None:
    import time

    import httpx

    source = "events.priority/cli-e2e"
    alarm = "vitrail.e2e.retried"
    down, up, broken, foreign = _add_dead_letters(
        demo_server,
        (source, _host_alarm_records(alarm, "host-00004", "down")),
        (source, _host_alarm_records(alarm, "host-00004", "up")),
        (source, b"\x00\x01 not json"),
        ("events.processed/persistor-e2e", b'{"epoch": 1, "events": []}'),
    )
    url = ("--url", demo_server.url)

    def raised() -> bool:
        return any(a["name"] == alarm for a in httpx.get(f"{demo_server.url}/v1/alarm/").json())

    def wait_until(expected: bool) -> None:
        deadline = time.monotonic() + 15
        while raised() is not expected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert raised() is expected

    assert not raised()
    code, out, _ = run("dead-letter", "retry", str(down), *url)
    assert code == 0 and f"dead letter {down} re-published to events.priority (retries: 1)" in out
    wait_until(True)  # the graph took the re-published message
    code, out, _ = run("dead-letter", "retry", str(up), *url)
    assert code == 0 and "(retries: 1)" in out
    wait_until(False)
    code, out, _ = run("dead-letter", "show", str(down), "-f", "json", *url)
    assert json.loads(out)["retries"] == 1 and json.loads(out)["retried_at"]  # kept, counted

    code, _, err = run("dead-letter", "retry", str(broken), *url)
    assert code == 1 and "not JSON" in err and "(HTTP 409)" in err
    code, _, err = run("dead-letter", "retry", str(foreign), *url)
    assert code == 1 and "events.processed" in err and "(HTTP 409)" in err
    code, _, err = run("dead-letter", "retry", "999999999", *url)
    assert code == 1 and "(HTTP 404)" in err
    for purged in (source, "events.processed/persistor-e2e"):
        code, out, _ = run("dead-letter", "purge", "--source", purged, "--yes", *url)
        assert code == 0 and "purged" in out


# -- monitor targets ------------------------------------------------------------------------


def test_monitor_target_add_list_show_update_delete_in_the_cli(demo_server: ServerProcess) -> None:
    url = ("--url", demo_server.url)
    code, out, _ = run("monitor", "add", "cli-ssh", "--kind", "tcp", "--address", "127.0.0.1:22", "-f", "json", *url)
    assert code == 0
    ssh = json.loads(out)
    assert (ssh["kind"], ssh["interval"], ssh["action_id"], ssh["status"]) == ("tcp", 10.0, 1, "unknown")
    code, out, _ = run(
        "monitor", "add", "cli keystone", "--kind", "vim", "--address", "http://127.0.0.1:5000/v3",
        "--interval", "30", "--timeout", "5", "--failure-threshold", "2", "--entity", "some-vitrage-id", *url,
    )  # fmt: skip
    assert code == 0 and "cli keystone" in out and "some-vitrage-id" in out
    code, out, _ = run("monitor", "list", *url)
    assert code == 0 and "monitor targets" in out and "cli-ssh" in out and "127.0.0.1:22" in out
    code, out, _ = run("monitor", "show", "cli keystone", "-f", "json", *url)  # by name, with a space
    keystone = json.loads(out)
    assert (keystone["interval"], keystone["failure_threshold"], keystone["entity_id"]) == (30, 2, "some-vitrage-id")

    code, out, _ = run("monitor", "update", ssh["id"], "--address", "127.0.0.1:2222", "-f", "json", *url)
    assert code == 0 and json.loads(out)["action_id"] == 2
    code, out, _ = run("monitor", "update", "cli keystone", "--no-entity", "--interval", "60", "-f", "json", *url)
    assert code == 0 and json.loads(out)["entity_id"] is None and json.loads(out)["action_id"] == 1
    code, _, err = run("monitor", "update", "cli-ssh", *url)
    assert code == 2 and "nothing to change" in err

    # The API's refusals, as it words them.
    code, _, err = run("monitor", "add", "bad", "--kind", "tcp", "--address", "127.0.0.1", *url)
    assert code == 1 and "address:" in err and "(HTTP 422)" in err
    code, _, err = run("monitor", "update", "cli-ssh", "--interval", "2", *url)
    assert code == 1 and "timeout:" in err and "shorter than the interval" in err
    code, _, err = run("monitor", "add", "cli-ssh", "--kind", "tcp", "--address", "127.0.0.1:22", *url)
    assert code == 1 and "exists already" in err and "(HTTP 409)" in err

    code, out, _ = run("monitor", "delete", "cli-ssh", *url)
    assert code == 0 and "monitor target cli-ssh deleted" in out
    code, _, err = run("monitor", "show", ssh["id"], *url)
    assert code == 1 and "(HTTP 404)" in err
    code, _, err = run("monitor", "delete", "cli-ssh", *url)
    assert code == 1 and "(HTTP 404)" in err
    assert run("monitor", "delete", keystone["id"], *url)[0] == 0
