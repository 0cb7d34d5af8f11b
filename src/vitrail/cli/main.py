"""The ``vitrail`` command: run the service, and ask it questions."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml
from rich.console import Console

from vitrail.cli.client import ApiCallError, ApiClient
from vitrail.cli.render import (
    alarm_history_table,
    alarm_table,
    key_value_table,
    monitor_target_table,
    print_json,
    rca_tree,
    resource_table,
    topology_table,
    topology_tree,
)
from vitrail.config import ConfigError, Settings, load_settings

app = typer.Typer(
    name="vitrail",
    help="Vitrail: root-cause analysis for cloud operators.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
topology_app = typer.Typer(help="The entity graph.", no_args_is_help=True)
resource_app = typer.Typer(help="Resources of the entity graph.", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
alarm_app = typer.Typer(help="Alarms (datasource and deduced).", no_args_is_help=True)
rca_app = typer.Typer(help="Root-cause analysis.", no_args_is_help=True)
template_app = typer.Typer(help="Templates: how failures propagate.", no_args_is_help=True)
event_app = typer.Typer(help="Post events (alarms) to Vitrail.", no_args_is_help=True)
config_app = typer.Typer(help="The configuration.", no_args_is_help=True)
dead_letter_app = typer.Typer(
    help="Dead letters: messages no component could process, kept with their raw bytes.", no_args_is_help=True
)
history_app = typer.Typer(
    help="The graph as it was: the history window, what changed between two times.", no_args_is_help=True
)
monitor_app = typer.Typer(
    help="The reachability monitor: the endpoints it probes (targets) and their status.", no_args_is_help=True
)
app.add_typer(topology_app, name="topology")
app.add_typer(resource_app, name="resource")
app.add_typer(db_app, name="db")
app.add_typer(alarm_app, name="alarm")
app.add_typer(rca_app, name="rca")
app.add_typer(template_app, name="template")
app.add_typer(event_app, name="event")
app.add_typer(config_app, name="config")
app.add_typer(dead_letter_app, name="dead-letter")
app.add_typer(history_app, name="history")
app.add_typer(monitor_app, name="monitor")

out = Console()
err = Console(stderr=True)
if not out.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    out.width = max(out.width, 200)

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo" / "static"
DEMO_TEMPLATES = Path(__file__).resolve().parent.parent / "demo" / "templates"
DEMO_FAILING_HOST = "host-00002"

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (.toml/.yaml); default $VITRAIL_CONFIG.", show_default=False),
]
UrlOption = Annotated[
    str | None, typer.Option("--url", help="API address; default from the config (http://127.0.0.1:8999).")
]
AtOption = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="The graph as it was at this ISO-8601 time (naive: UTC), e.g. 2026-11-22T03:12:00Z; "
        "see `vitrail history window`.",
        show_default=False,
    ),
]


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class TopologyFormat(StrEnum):
    table = "table"
    tree = "tree"
    json = "json"


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def _client(url: str | None, config: Path | None) -> ApiClient:
    return ApiClient(url or _settings(config).api.client_url())


def _call(url: str | None, config: Path | None, method: str, path: str, **kwargs: Any) -> Any:
    with _client(url, config) as client:
        try:
            return client.call(method, path, **kwargs)
        except ApiCallError as exc:
            raise fail(str(exc)) from None


# -- serve --------------------------------------------------------------------------


@app.command()
def serve(
    config: ConfigOption = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Load a demo cloud: a simulated OpenStack plus static switches.")
    ] = False,
    hosts: Annotated[
        int | None, typer.Option("--hosts", min=0, help="With --demo: simulate this many hosts (10 VMs each).")
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Listen address (api.host).")] = None,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535, help="Listen port (api.port).")] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR.")] = None,
    log_format: Annotated[str | None, typer.Option("--log-format", help="auto, json or console.")] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="api, graph, collector, listener or all (repeat for several). Default: all, in one process "
            "(the embedded mode). Separate roles need an amqp:// transport_url.",
        ),
    ] = None,
) -> None:
    """Run Vitrail: by default API, graph and datasources in one process (the embedded mode)."""
    overrides: dict[str, Any] = {}
    api: dict[str, Any] = {}
    if host is not None:
        api["host"] = host
    if port is not None:
        api["port"] = port
    if api:
        overrides["api"] = api
    logging_overrides = {k: v for k, v in (("level", log_level), ("format", log_format)) if v is not None}
    if logging_overrides:
        overrides["logging"] = logging_overrides
    if role:
        overrides["roles"] = role
    static_directory = None
    if hosts is not None and not demo:
        raise fail("--hosts goes with --demo", 2)
    if demo:
        overrides["datasources"] = ["simulator", "static", "prometheus", "doctor"]
        overrides["simulator"] = (
            {"hosts": hosts, "instances_per_host": 10, "seed": 42}
            if hosts is not None
            else {
                "hosts": 8,
                "instances_per_host": 4,
                "networks": 1,
                "failed_hosts": 1,
                "changes_per_poll": 2,
                "seed": 42,
            }
        )
        static_directory = DEMO_DIR
    settings = _settings(config, **overrides)
    from vitrail.logs import configure_logging

    configure_logging(settings.logging.level, settings.logging.format)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(settings, static_directory, demo))


def _runtime(settings: Settings, static_directory: Path | None) -> Any:
    from vitrail.services.runtime import Runtime

    try:
        return Runtime(settings, None, static_directory)
    except ValueError as exc:
        raise fail(str(exc), 2) from None


async def _serve(settings: Settings, static_directory: Path | None, demo: bool = False) -> None:
    from vitrail.bus.base import BusUnavailable
    from vitrail.graph.states import StateTableError
    from vitrail.services.listener import ListenerError
    from vitrail.storage import DatabaseConfigError, DatabaseUnavailable

    runtime = _runtime(settings, static_directory)
    try:
        await runtime.start()
    except (
        OSError,
        BusUnavailable,
        ListenerError,
        DatabaseUnavailable,
        DatabaseConfigError,
        StateTableError,
    ) as exc:
        await runtime.stop()
        raise fail(f"cannot start: {exc}") from None
    roles = ", ".join(sorted(runtime.roles))
    if runtime.url is not None:
        err.print(
            f"Vitrail ({roles}) is listening on [bold]{runtime.url}[/] (API docs: {runtime.url}/docs)",
            highlight=False,
            soft_wrap=True,
        )
    else:
        err.print(f"Vitrail ({roles}) is running; stop it with Ctrl-C or SIGTERM.", highlight=False, soft_wrap=True)
    server = asyncio.create_task(runtime.serve())
    try:
        if runtime.graph is not None:
            await _show_progress(runtime, server)
        if demo and runtime.graph is not None and not server.done():
            await runtime.seed_demo(DEMO_TEMPLATES, DEMO_FAILING_HOST)
            err.print(
                f"Demo: templates loaded and {DEMO_FAILING_HOST} is down. Try: vitrail alarm list, "
                "then vitrail rca show <an 'Instance down' alarm's vitrage_id>",
                highlight=False,
                soft_wrap=True,
            )
        await server
    finally:
        await runtime.stop()


async def _show_progress(runtime: Any, server: asyncio.Task[None]) -> None:
    """A progress bar while the first topology loads (on a terminal; log lines otherwise)."""
    graph = runtime.graph
    ready = asyncio.create_task(graph.ready.wait())
    if not err.is_terminal:
        await asyncio.wait({ready, server}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("loading topology"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("load", total=None)
        while not ready.done() and not server.done():
            state = graph.progress
            progress.update(task, total=state.expected or None, completed=state.applied)
            await asyncio.wait({ready, server}, timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if graph.ready.is_set():
        graph_size = graph.processor.graph
        err.print(f"Topology loaded: {graph_size.num_vertices} entities, {graph_size.num_edges} relationships.")


# -- topology -----------------------------------------------------------------------


@topology_app.command("show")
def topology_show(
    fmt: Annotated[TopologyFormat, typer.Option("--format", "-f", help="table, tree or json.")] = TopologyFormat.table,
    root: Annotated[str | None, typer.Option("--root", help="vitrage_id to start from.")] = None,
    depth: Annotated[int | None, typer.Option("--depth", "--limit", min=0, help="Hops from the root.")] = None,
    query: Annotated[str | None, typer.Option("--filter", help="A Vitrage query, as JSON.")] = None,
    all_tenants: Annotated[bool, typer.Option("--all-tenants", help="Every project (admin).")] = False,
    max_rows: Annotated[int, typer.Option("--max-rows", min=1, help="Table rows shown at most.")] = 200,
    at: AtOption = None,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Show the entity graph (now, or --at a past time)."""
    if query is not None:
        _check_json("--filter", query)
    body = {
        "graph_type": "tree" if fmt is TopologyFormat.tree else "graph",
        "depth": depth,
        "root": root,
        "query": query,
        "all_tenants": all_tenants,
    }
    data = _call(url, config, "POST", "/v1/topology/", json=body, params=_at(at))
    if fmt is TopologyFormat.json:
        print_json(out, data)
    elif fmt is TopologyFormat.tree:
        out.print(topology_tree(data))
    else:
        nodes = data.get("nodes", [])
        shown = {**data, "nodes": nodes[:max_rows]} if len(nodes) > max_rows else data
        out.print(topology_table(shown))
        if len(nodes) > max_rows:
            err.print(f"(showing {max_rows} of {len(nodes)} entities; use --format json for all)")


def _emit(data: Any, fmt: OutputFormat, render: Callable[[Any], Any]) -> None:
    """JSON for scripts, ``render(data)`` for people."""
    if fmt is OutputFormat.json:
        print_json(out, data)
    else:
        out.print(render(data))


def _check_json(option: str, text: str) -> None:
    try:
        json.loads(text)
    except ValueError as exc:
        raise fail(f"{option} is not valid JSON: {exc}", 2) from None


def _time(option: str, value: str) -> str:
    """An ISO-8601 time option, checked here (exit 2) and sent in Vitrail's format."""
    from vitrail.graph.events import EventError, normalize_timestamp

    try:
        return normalize_timestamp(value, option)
    except EventError as exc:
        raise fail(str(exc), 2) from None


def _at(at: str | None) -> dict[str, Any]:
    """The ``at`` query parameter of ``--at`` (none for the live graph)."""
    return {} if at is None else {"at": _time("--at", at)}


# -- resources ------------------------------------------------------------------------


@resource_app.command("list")
def resource_list(
    resource_type: Annotated[str | None, typer.Option("--type", help="Only this vitrage_type.")] = None,
    query: Annotated[str | None, typer.Option("--filter", help="A Vitrage query, as JSON.")] = None,
    all_tenants: Annotated[bool, typer.Option("--all-tenants", help="Every project (admin).")] = False,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    at: AtOption = None,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """List resources (now, or --at a past time)."""
    if query is not None:
        _check_json("--filter", query)
    body = {"resource_type": resource_type, "all_tenants": all_tenants, "query": query}
    rows = _call(url, config, "POST", "/v1/resources/", json=body, params=_at(at))
    _emit(rows, fmt, lambda r: resource_table(r, title=f"{len(r)} resources"))


@resource_app.command("show")
def resource_show(
    vitrage_id: Annotated[str, typer.Argument(help="The resource's vitrage_id.")],
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    at: AtOption = None,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Show one resource (now, or --at a past time)."""
    _emit(_call(url, config, "GET", f"/v1/resources/{vitrage_id}", params=_at(at)), fmt, key_value_table)


@resource_app.command("count")
def resource_count(
    group_by: Annotated[str, typer.Option("--group-by", help="Property to count by.")] = "vitrage_type",
    resource_type: Annotated[str | None, typer.Option("--type")] = None,
    all_tenants: Annotated[bool, typer.Option("--all-tenants")] = False,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    at: AtOption = None,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Count resources by a property (now, or --at a past time)."""
    body = {"resource_type": resource_type, "all_tenants": all_tenants, "query": None, "group_by": group_by}
    _emit(_call(url, config, "POST", "/v1/resources/count/", json=body, params=_at(at)), fmt, key_value_table)


@app.command()
def status(url: UrlOption = None, config: ConfigOption = None) -> None:
    """Is the service up and its graph loaded?"""
    data = _call(url, config, "GET", "/v1/status/", params={"detailed": "true"})
    out.print(key_value_table({"reason": data.get("reason"), **data.get("details", {})}))


# -- alarms and rca ---------------------------------------------------------------------


@alarm_app.command("list")
def alarm_list(
    vitrage_id: Annotated[str, typer.Argument(help="A resource's vitrage_id, or all.")] = "all",
    all_tenants: Annotated[bool, typer.Option("--all-tenants")] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1)] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    at: AtOption = None,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """List active alarms (of one resource, or all; now, or --at a past time)."""
    params: dict[str, Any] = {"vitrage_id": vitrage_id, "all_tenants": str(all_tenants), **_at(at)}
    if limit is not None:
        params["limit"] = limit
    rows = _call(url, config, "GET", "/v1/alarm/", params=params)
    when = f" at {params['at']}" if at is not None else ""
    _emit(rows, fmt, lambda r: alarm_table(r, title=f"{len(r)} active alarms{when}"))


@alarm_app.command("show")
def alarm_show(
    vitrage_id: Annotated[str, typer.Argument(help="The alarm's vitrage_id.")],
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    at: AtOption = None,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Show one alarm (now, or --at a past time)."""
    _emit(_call(url, config, "GET", f"/v1/alarm/{vitrage_id}", params=_at(at)), fmt, key_value_table)


@alarm_app.command("count")
def alarm_count(
    all_tenants: Annotated[bool, typer.Option("--all-tenants")] = False,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    at: AtOption = None,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Count active alarms by severity (now, or --at a past time)."""
    params = {"all_tenants": str(all_tenants), **_at(at)}
    _emit(_call(url, config, "GET", "/v1/alarm/count/", params=params), fmt, key_value_table)


@alarm_app.command("history")
def alarm_history(
    start: Annotated[str | None, typer.Option("--start", help="ISO time: alarms active at or after it.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="ISO time (with --start): active between the two.")] = None,
    resource: Annotated[
        str | None, typer.Option("--resource", help="Only alarms on this resource (vitrage_id).")
    ] = None,
    alarm_type: Annotated[str | None, typer.Option("--type", help="Only this vitrage_type (vitrage: deduced).")] = None,
    severity: Annotated[str | None, typer.Option("--severity", help="Only this operational severity.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Only alarms of this name.")] = None,
    active: Annotated[bool, typer.Option("--active", help="Only alarms still active.")] = False,
    all_tenants: Annotated[bool, typer.Option("--all-tenants")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 1000,
    marker: Annotated[str | None, typer.Option("--marker", help="Start after this history_id.")] = None,
    newest_first: Annotated[bool, typer.Option("--newest-first", help="Latest start first.")] = False,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Alarms that were active: when each began and ended (kept history.retention_days)."""
    params: dict[str, Any] = {"all_tenants": str(all_tenants), "limit": limit, "active": str(active)}
    for key, value in (
        ("start", start),
        ("end", end),
        ("resource", resource),
        ("type", alarm_type),
        ("severity", severity),
        ("name", name),
        ("marker", marker),
    ):
        if value is not None:
            params[key] = value
    if newest_first:
        params["sort_dirs"] = ["desc", "desc"]
    rows = _call(url, config, "GET", "/v1/alarm/history/", params=params)
    _emit(rows, fmt, lambda r: alarm_history_table(r, title=f"{len(r)} alarm occurrences"))
    if fmt is OutputFormat.table and len(rows) == limit:
        err.print(f"(there may be more: --marker {rows[-1]['history_id']})", highlight=False)


@rca_app.command("show")
def rca_show(
    alarm_id: Annotated[str, typer.Argument(help="The alarm's vitrage_id.")],
    all_tenants: Annotated[bool, typer.Option("--all-tenants")] = False,
    fmt: Annotated[TopologyFormat, typer.Option("--format", "-f", help="tree or json.")] = TopologyFormat.tree,
    at: AtOption = None,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """An alarm's root causes (at the top) and consequences (now, or --at a past time)."""
    params = {"alarm_id": alarm_id, "all_tenants": str(all_tenants), **_at(at)}
    data = _call(url, config, "GET", "/v1/rca/", params=params)
    if fmt is TopologyFormat.json:
        print_json(out, data)
    else:
        out.print(rca_tree(data))


# -- history: the graph as it was --------------------------------------------------------


@history_app.command("window")
def history_window(
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """The times the graph can be rebuilt for (--at and history diff take times in it)."""
    _emit(_call(url, config, "GET", "/v1/history/window"), fmt, key_value_table)


@history_app.command("diff")
def history_diff(
    start: Annotated[str, typer.Option("--from", help="The earlier ISO-8601 time (naive: UTC).", show_default=False)],
    end: Annotated[str, typer.Option("--to", help="The later ISO-8601 time (naive: UTC).", show_default=False)],
    all_tenants: Annotated[bool, typer.Option("--all-tenants", help="Every project (admin).")] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=0, help="At most this many entries of each kind and change.")
    ] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Resources and alarms added, removed and changed between two times."""
    from vitrail.cli.render import diff_table

    params: dict[str, Any] = {"from": _time("--from", start), "to": _time("--to", end), "all_tenants": str(all_tenants)}
    if limit is not None:
        params["limit"] = limit
    data = _call(url, config, "GET", "/v1/history/diff", params=params)
    if fmt is OutputFormat.json:
        print_json(out, data)
        return
    out.print(
        f"From {data['from']['time']} (event {data['from']['sequence']}) "
        f"to {data['to']['time']} (event {data['to']['sequence']})",
        highlight=False,
    )
    out.print(diff_table(data, "resources"))
    out.print(diff_table(data, "alarms"))


# -- templates ----------------------------------------------------------------------------


def _template_files(path: Path) -> list[tuple[str, str]]:
    files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")) if path.is_dir() else [path]
    if not files:
        raise fail(f"{path}: no .yaml or .yml file here", 2)
    found = []
    for file in files:
        try:
            found.append((str(file), file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"cannot read {file}: {exc}", 2) from None
    return found


def _params(values: list[str] | None) -> dict[str, str]:
    params = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise fail(f"--param {item!r}: expected name=value", 2)
        params[name] = value
    return params


PathArgument = Annotated[Path, typer.Argument(help="A template file, or a directory of them.", exists=True)]
ParamOption = Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value for get_param().")]
TypeOption = Annotated[str | None, typer.Option("--type", help="standard, definition or equivalence.")]


@template_app.command("validate")
def template_validate(
    path: PathArgument,
    template_type: TypeOption = None,
    param: ParamOption = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Check templates without adding them: every problem, with its line."""
    body = {"templates": _template_files(path), "template_type": template_type, "params": _params(param)}
    results = _call(url, config, "POST", "/v1/template/", json=body)["results"]
    if fmt is OutputFormat.json:
        print_json(out, results)
    else:
        for result in results:
            ok = result["status"] == "validation OK"
            out.print(f"[{'green' if ok else 'red'}]{result['status']}[/] {result['file path']}", highlight=False)
            for problem in result.get("problems", []):
                out.print(f"  {problem.get('text') or problem}", highlight=False)
    if any(r["status"] != "validation OK" for r in results):
        raise typer.Exit(1)


@template_app.command("add")
def template_add(
    path: PathArgument,
    template_type: TypeOption = None,
    param: ParamOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace templates of the same name.")] = False,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Add templates; the graph is evaluated for them at once."""
    body = {
        "templates": _template_files(path),
        "template_type": template_type,
        "params": _params(param),
        "overwrite": overwrite,
    }
    rows = _call(url, config, "PUT", "/v1/template/", json=body)
    out.print(_template_rows(rows))


def _template_rows(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(header_style="bold")
    for column in ("uuid", "name", "status", "type", "date", "status details"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(row.get(c) or "") for c in ("uuid", "name", "status", "type", "date", "status details")))
    return table


@template_app.command("list")
def template_list(
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """List templates."""
    _emit(_call(url, config, "GET", "/v1/template/"), fmt, _template_rows)


@template_app.command("show")
def template_show(
    uuid_or_name: Annotated[str, typer.Argument(help="The template's uuid or name.")],
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Show a template as stored (YAML)."""
    data = _call(url, config, "GET", f"/v1/template/{uuid_or_name}")
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


@template_app.command("delete")
def template_delete(
    ids: Annotated[list[str], typer.Argument(help="uuids or names.")],
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete templates; their deduced alarms and states go with them."""
    _call(url, config, "DELETE", "/v1/template/", json={"id": ids})
    out.print(f"deleting {len(ids)} template(s)")


@event_app.command("post")
def event_post(
    event_type: Annotated[str, typer.Option("--type", help="e.g. compute.host.down")],
    details: Annotated[str, typer.Option("--details", help="JSON object: hostname, status (down|up)...")] = "{}",
    time: Annotated[str | None, typer.Option("--time", help="ISO-8601 time (default: now)")] = None,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Post an event, as Vitrage's event API takes it."""
    try:
        parsed = json.loads(details)
    except ValueError as exc:
        raise fail(f"--details is not valid JSON: {exc}", 2) from None
    body: dict[str, Any] = {"type": event_type, "details": parsed}
    if time is not None:
        body["time"] = time
    _call(url, config, "POST", "/v1/event/", json=body)
    out.print("event accepted")


# -- dead letters ----------------------------------------------------------------------


class DeadLetterFormat(StrEnum):
    table = "table"
    json = "json"
    raw = "raw"


DEAD_LETTER_COLUMNS = ("id", "created_at", "source", "reason", "content_type", "size", "retries")
LetterIdArgument = Annotated[int, typer.Argument(min=1, help="The dead letter's id.")]


def _dead_letter_rows(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title=f"{len(rows)} dead letters", header_style="bold")
    for column in DEAD_LETTER_COLUMNS:
        table.add_column(column, overflow="fold", no_wrap=column in ("id", "created_at"))
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row[c]) for c in DEAD_LETTER_COLUMNS))
    return table


def _call_without_answer(url: str | None, config: Path | None, method: str, path: str) -> None:
    """Call an endpoint that answers 204 No Content.

    ``ApiClient.call`` reads every success as JSON, so it reports the empty
    body of a 204 as an error "... not JSON (HTTP 204)": here that is success.
    """
    with _client(url, config) as client:
        try:
            client.call(method, path)
        except ApiCallError as exc:
            if not str(exc).endswith("(HTTP 204)"):
                raise fail(str(exc)) from None


@dead_letter_app.command("list")
def dead_letter_list(
    source: Annotated[
        str | None, typer.Option("--source", help="Only from this source, e.g. events.priority/graph.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Dead letters at most.")] = 50,
    marker: Annotated[
        int | None, typer.Option("--marker", min=1, help="Start after this id (the last one shown).")
    ] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """List dead letters, newest first (without their bodies)."""
    params: dict[str, Any] = {"limit": limit}
    if source is not None:
        params["source"] = source
    if marker is not None:
        params["marker"] = marker
    rows = _call(url, config, "GET", "/v1/dead_letters/", params=params)
    _emit(rows, fmt, _dead_letter_rows)
    if fmt is OutputFormat.table and len(rows) == limit:
        err.print(f"(there may be more: --marker {rows[-1]['id']})", highlight=False)


@dead_letter_app.command("show")
def dead_letter_show(
    letter_id: LetterIdArgument,
    fmt: Annotated[
        DeadLetterFormat, typer.Option("--format", "-f", help="table, json, or raw (the exact bytes, to stdout).")
    ] = DeadLetterFormat.table,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Show a dead letter and its body."""
    data = _call(url, config, "GET", f"/v1/dead_letters/{letter_id}")
    if fmt is DeadLetterFormat.raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(base64.b64decode(data["body_base64"]))
        sys.stdout.buffer.flush()
    elif fmt is DeadLetterFormat.json:
        print_json(out, data)
    else:
        shown = {k: v for k, v in data.items() if k not in ("body_base64", "body_text")}
        text = data.get("body_text")
        shown["body"] = text if text is not None else f"({data['size']} bytes, not UTF-8: see them with -f raw)"
        out.print(key_value_table(shown))


@dead_letter_app.command("retry")
def dead_letter_retry(letter_id: LetterIdArgument, url: UrlOption = None, config: ConfigOption = None) -> None:
    """Re-publish a dead letter to the graph's input topic it came from (it is kept)."""
    data = _call(url, config, "POST", f"/v1/dead_letters/{letter_id}/retry")
    out.print(
        f"dead letter {data['id']} re-published to {data['republished_to']} (retries: {data['retries']})",
        highlight=False,
    )


@dead_letter_app.command("delete")
def dead_letter_delete(letter_id: LetterIdArgument, url: UrlOption = None, config: ConfigOption = None) -> None:
    """Delete one dead letter."""
    _call_without_answer(url, config, "DELETE", f"/v1/dead_letters/{letter_id}")
    out.print(f"dead letter {letter_id} deleted", highlight=False)


@dead_letter_app.command("purge")
def dead_letter_purge(
    before: Annotated[
        str | None, typer.Option("--before", help="Created before this ISO-8601 time (naive: UTC).")
    ] = None,
    source: Annotated[str | None, typer.Option("--source", help="From this source only.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every dead letter (alone).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete dead letters: older than --before and/or from --source, or --all of them."""
    if everything and (before is not None or source is not None):
        raise fail("--all purges every dead letter; give it without --before and --source", 2)
    if not everything and before is None and source is None:
        raise fail("give --before, --source, or --all to purge every dead letter", 2)
    params: dict[str, Any] = {}
    if everything:
        params["all"] = "true"
        what = "every dead letter"
    else:
        what = "the dead letters"
        if source is not None:
            params["source"] = source
            what += f" from {source}"
        if before is not None:
            from vitrail.graph.events import EventError, normalize_timestamp

            try:
                params["before"] = normalize_timestamp(before, "--before")
            except EventError as exc:
                raise fail(str(exc), 2) from None
            what += f" created before {params['before']}"
    if not yes:
        typer.confirm(f"Delete {what}?", abort=True)
    purged = _call(url, config, "DELETE", "/v1/dead_letters/", params=params)["purged"]
    out.print(f"purged {purged} dead letter(s)", highlight=False)


# -- monitor targets -------------------------------------------------------------------


class TargetKind(StrEnum):
    tcp = "tcp"
    http = "http"
    vim = "vim"


MONITOR_TARGETS = "/v1/monitor/targets/"
TargetArgument = Annotated[str, typer.Argument(help="The target's id or name.", show_default=False)]
ExpectedStatusOption = Annotated[
    int | None, typer.Option("--expected-status", help="http only: the status a well target answers.")
]
IntervalOption = Annotated[float | None, typer.Option("--interval", help="Seconds between two probes.")]
TimeoutOption = Annotated[float | None, typer.Option("--timeout", help="Seconds a probe may take, under the interval.")]
ThresholdOption = Annotated[
    int | None,
    typer.Option("--failure-threshold", help="Failed probes in a row before it is unreachable."),
]
EntityOption = Annotated[
    str | None,
    typer.Option("--entity", help="vitrage_id of the graph entity it belongs to."),
]


def _target_path(target: str) -> str:
    from urllib.parse import quote

    return MONITOR_TARGETS + quote(target, safe="")


def _target_options(**options: Any) -> dict[str, Any]:
    """The options given, as the API's fields (those left out are not sent)."""
    return {
        field: value.value if isinstance(value, StrEnum) else value
        for field, value in options.items()
        if value is not None
    }


@monitor_app.command("add")
def monitor_add(
    name: Annotated[str, typer.Argument(help="A name for the target, unique.", show_default=False)],
    kind: Annotated[
        TargetKind, typer.Option("--kind", help="tcp (host:port), http (a URL) or vim (an OpenStack identity URL).")
    ],
    address: Annotated[
        str, typer.Option("--address", help="host:port for tcp, e.g. 127.0.0.1:22; a URL for http and vim.")
    ],
    expected_status: ExpectedStatusOption = None,
    interval: IntervalOption = None,
    timeout: TimeoutOption = None,
    failure_threshold: ThresholdOption = None,
    entity: EntityOption = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Register an endpoint for the monitor to probe.

    Defaults: --interval 10, --timeout 3, --failure-threshold 3, --expected-status 200 (http);
    without --entity, the target gets a graph entity of its own (type monitor.target).
    """
    body = {"name": name, "kind": kind.value, "address": address}
    body |= _target_options(
        expected_status=expected_status,
        interval=interval,
        timeout=timeout,
        failure_threshold=failure_threshold,
        entity_id=entity,
    )
    _emit(_call(url, config, "POST", MONITOR_TARGETS, json=body), fmt, key_value_table)


@monitor_app.command("list")
def monitor_list(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="Targets at most.")] = 1000,
    marker: Annotated[str | None, typer.Option("--marker", help="Start after this id (the last one shown).")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """List the monitor's targets, in the order they were added, with their status."""
    params: dict[str, Any] = {"limit": limit}
    if marker is not None:
        params["marker"] = marker
    rows = _call(url, config, "GET", MONITOR_TARGETS, params=params)
    _emit(rows, fmt, monitor_target_table)
    if fmt is OutputFormat.table and len(rows) == limit:
        err.print(f"(there may be more: --marker {rows[-1]['id']})", highlight=False)


@monitor_app.command("show")
def monitor_show(
    target: TargetArgument,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Show a target: its definition, action_id and last status."""
    _emit(_call(url, config, "GET", _target_path(target)), fmt, key_value_table)


@monitor_app.command("update")
def monitor_update(
    target: TargetArgument,
    name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    kind: Annotated[
        TargetKind | None, typer.Option("--kind", help="tcp, http or vim (give --address with it).")
    ] = None,
    address: Annotated[str | None, typer.Option("--address", help="A new address.")] = None,
    expected_status: ExpectedStatusOption = None,
    interval: IntervalOption = None,
    timeout: TimeoutOption = None,
    failure_threshold: ThresholdOption = None,
    entity: EntityOption = None,
    no_entity: Annotated[
        bool, typer.Option("--no-entity", help="Belong to no entity: the target gets a monitor.target entity.")
    ] = False,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Change some fields of a target (the others stay).

    A new kind, address or expected status makes the workers' assignments of the
    target stale (its action_id grows): they drop it, and it is probed anew.
    """
    if entity is not None and no_entity:
        raise fail("give --entity or --no-entity, not both", 2)
    body = _target_options(
        name=name,
        kind=kind,
        address=address,
        expected_status=expected_status,
        interval=interval,
        timeout=timeout,
        failure_threshold=failure_threshold,
        entity_id=entity,
    )
    if no_entity:
        body["entity_id"] = None
    if not body:
        raise fail("nothing to change: give at least one option (see --help)", 2)
    _emit(_call(url, config, "PATCH", _target_path(target), json=body), fmt, key_value_table)


@monitor_app.command("delete")
def monitor_delete(target: TargetArgument, url: UrlOption = None, config: ConfigOption = None) -> None:
    """Delete a target; the workers probing it stop."""
    _call_without_answer(url, config, "DELETE", _target_path(target))
    out.print(f"monitor target {target} deleted", highlight=False)


# -- db -------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(
    config: ConfigOption = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="Overrides database.url.")] = None,
) -> None:
    """Apply the database migrations (``vitrail serve`` does it too)."""
    overrides = {"database": {"url": database_url}} if database_url else {}
    settings = _settings(config, **overrides)

    async def run() -> str | None:
        from vitrail.storage import create_engine, upgrade

        if settings.database.url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.database_url())
        try:
            return await upgrade(engine)
        finally:
            await engine.dispose()

    from vitrail.storage import DatabaseConfigError, DatabaseUnavailable

    try:
        revision = asyncio.run(run())
    except (DatabaseUnavailable, DatabaseConfigError) as exc:
        raise fail(str(exc)) from None
    out.print(f"database is at revision {revision}")


@db_app.command("purge")
def db_purge(
    config: ConfigOption = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="Overrides database.url.")] = None,
    older_than_days: Annotated[
        float | None,
        typer.Option("--older-than-days", min=0.0, help="Default: history.retention_days of the configuration."),
    ] = None,
) -> None:
    """Remove history older than the retention: ended alarms and causal links, unneeded snapshots and events.

    What the graph leader does every history.prune_interval, now. Active alarms and the
    snapshots and events needed to rebuild the graph within the window stay.
    """
    overrides: dict[str, Any] = {"database": {"url": database_url}} if database_url else {}
    if older_than_days is not None:
        overrides["history"] = {"retention_days": older_than_days}
    settings = _settings(config, **overrides)

    async def run() -> tuple[int, int, Any]:
        from vitrail.services.history_writer import purge_alarm_history
        from vitrail.services.snapshots import prune_history
        from vitrail.storage import EventLog, SnapshotStore, create_engine, upgrade
        from vitrail.storage.history import HistoryStore

        engine = create_engine(settings.database_url())
        try:
            await upgrade(engine)
            snapshots, events = await prune_history(SnapshotStore(engine), EventLog(engine), settings.history)
            alarms = await purge_alarm_history(HistoryStore(engine), settings.history)
            return snapshots, events, alarms
        finally:
            await engine.dispose()

    from vitrail.storage import DatabaseConfigError, DatabaseUnavailable

    try:
        snapshots, events, alarms = asyncio.run(run())
    except (DatabaseUnavailable, DatabaseConfigError) as exc:
        raise fail(str(exc)) from None
    out.print(
        f"removed {alarms.alarms} alarm occurrences, {alarms.changes} alarm changes, {alarms.causes} causal links, "
        f"{snapshots} snapshots and {events} events older than {settings.history.retention_days:g} days"
    )


# -- config ---------------------------------------------------------------------------


class ConfigFormat(StrEnum):
    yaml = "yaml"
    json = "json"


@config_app.command("show")
def config_show(
    config: ConfigOption = None,
    fmt: Annotated[ConfigFormat, typer.Option("--format", "-f")] = ConfigFormat.yaml,
    show_secrets: Annotated[bool, typer.Option("--show-secrets", help="Print the passwords in URLs.")] = False,
) -> None:
    """Print the effective configuration (defaults + file + environment), passwords hidden."""
    from vitrail.config import redact

    data = _settings(config).model_dump(mode="json")
    if not show_secrets:
        data = redact(data)
    if fmt is ConfigFormat.json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


@config_app.command("reference")
def config_reference() -> None:
    """Print the reference of every option (Markdown; docs/configuration.md)."""
    from vitrail.config import reference_markdown

    sys.stdout.write(reference_markdown())


if __name__ == "__main__":  # pragma: no cover
    app()
