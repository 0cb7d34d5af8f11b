"""A Vitrail process: the roles it runs, wired to the bus and the database.

``vitrail serve`` runs one :class:`Runtime`. With the default ``memory://``
transport all roles share one asyncio process and the in-process bus: the
embedded mode, a real product mode (SQLite by default), not a test double.
With an ``amqp://`` transport each process runs the roles it is given and
they meet on RabbitMQ:

* ``collector``: runs the pull datasources' drivers when asked (RPC
  ``get_all``/``get_changes``) and publishes what they read; no timers.
* ``graph``: the processor and the evaluator; consumes the events, owns the
  schedule, hands what it accepted to the persistors, answers the API's
  questions (RPC). One is the leader; others wait as standbys (docs/ha.md).
* ``persistor``: writes the processed events to the event log in batches,
  and keeps dead letters (active-active).
* ``api``: the REST API; asks the graph over RPC, publishes posted alarms and
  template changes, stores templates.
* ``listener``: consumes OpenStack notifications and publishes them.
* ``conductor``: the monitor's database access over RPC (``update_target``
  fenced by the target's ``action_id``, target pages for the workers); any
  number, not part of ``all`` until the monitor workers exist.

Any number of collectors, persistors and APIs can run; one graph leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from vitrail.api.app import create_app
from vitrail.bus import EventBus, open_bus
from vitrail.bus.base import RpcServer
from vitrail.config import Settings
from vitrail.datasources import doctor
from vitrail.datasources.nova import NovaDriver
from vitrail.evaluator import templates as template_language
from vitrail.graph.events import Event, utc_now
from vitrail.services.alarm_history import AlarmHistory
from vitrail.services.collector import Collector
from vitrail.services.conductor import Conductor, conductor_handler
from vitrail.services.dead_letter_admin import DeadLetterAdmin
from vitrail.services.dead_letters import DeadLetterSender
from vitrail.services.drivers import build_drivers
from vitrail.services.graph import CollectorClient, GraphService
from vitrail.services.graph_role import GraphRole
from vitrail.services.listener import NotificationListener
from vitrail.services.local_backend import LocalGraphBackend
from vitrail.services.persistor import Persistor
from vitrail.services.processors import processor_factory
from vitrail.services.rpc import (
    RemoteCollector,
    RemoteGraphBackend,
    collector_handler,
    graph_handler,
)
from vitrail.services.templates import TemplateService
from vitrail.services.time_travel import TimeTravel
from vitrail.services.topics import COLLECTOR_SERVICE, CONDUCTOR_SERVICE, GRAPH_SERVICE, publisher
from vitrail.storage import DeadLetterStore, EventLog, TargetStore, TemplateStore, create_engine, upgrade
from vitrail.storage.history import HistoryStore
from vitrail.urls import mask_url

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn, minus its habit of re-raising the signal after shutdown.

    uvicorn re-raises SIGINT/SIGTERM once it has stopped, which would end the
    process before the graph has flushed its event log. Here a signal only asks
    the server to stop, and the runtime shuts the rest down in order.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)


def _tune_gc() -> None:
    # The graph holds 100k+ long-lived objects without reference cycles; the
    # default thresholds make the collector walk all of them every few thousand
    # allocations. Collect young objects less often.
    gc.set_threshold(50_000, 20, 100)


#: What a process can run. ``all`` is every core role, plus the listener when the
#: nova datasource is enabled.
ROLES = ("api", "collector", "conductor", "graph", "listener", "persistor")
CORE_ROLES = frozenset(("api", "collector", "graph", "persistor"))


def resolve_roles(settings: Settings, roles: Sequence[str] | None = None) -> set[str]:
    """The roles this process runs, or ValueError saying why they cannot run."""
    wanted = set(roles or settings.roles)
    if "all" in wanted:
        wanted = (wanted - {"all"}) | CORE_ROLES | ({"listener"} if "nova" in settings.datasources else set())
    unknown = wanted - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {sorted(unknown)}; roles: {[*ROLES, 'all']}")
    if not wanted:
        raise ValueError(f"no role to run; roles: {[*ROLES, 'all']}")
    if settings.transport_url.startswith("memory://") and not wanted >= CORE_ROLES:
        raise ValueError(
            f"roles {sorted(wanted)} need a shared bus: with transport_url memory:// every role runs in "
            "this process (--role all); set transport_url to amqp://... to split them"
        )
    if "listener" in wanted:
        if "nova" not in settings.datasources:
            raise ValueError("the listener role publishes nova events: add nova to datasources (on every process)")
        if not settings.listener.url:
            raise ValueError(
                "the listener needs listener.url (VITRAIL_LISTENER__URL): the RabbitMQ where OpenStack publishes "
                "its notifications"
            )
    return wanted


class Runtime:
    def __init__(
        self, settings: Settings, roles: Sequence[str] | None = None, static_directory: Path | None = None
    ) -> None:
        wanted = resolve_roles(settings, roles)
        self.local = settings.transport_url.startswith("memory://")
        self.settings = settings
        self.roles = wanted
        self.static_directory = static_directory
        self.server: _Server | None = None
        self.graph_role: GraphRole | None = None
        self.persistor: Persistor | None = None
        self.collector: Collector | None = None
        self.templates: TemplateService | None = None
        self.backend: LocalGraphBackend | None = None
        self.time_travel: TimeTravel | None = None
        self.bus: EventBus | None = None
        self.engine: AsyncEngine | None = None
        self._socket: socket.socket | None = None
        self._rpc_servers: list[RpcServer] = []
        self._remote_collector: RemoteCollector | None = None
        self.listener: NotificationListener | None = None
        self._metrics_server: Any = None
        self._stop = asyncio.Event()

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("this process does not serve the API")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str | None:
        if self._socket is None:
            return None
        host = self.settings.api.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Connect, open the database, start the roles and bind the API socket (the load runs on)."""
        settings = self.settings
        roles = self.roles
        _tune_gc()
        if "api" in roles:
            # Bind first: a busy port should fail before anything else has started.
            self._socket = self._bind(settings.api.host, settings.api.port)
            if self.local and not _is_loopback(settings.api.host):
                log.warning(
                    "the API listens beyond loopback and trusts identity headers (x-project-id, x-roles): "
                    "anyone who can reach it is an admin. Keep the embedded mode on 127.0.0.1.",
                    extra={"host": settings.api.host},
                )
        if settings.metrics_port is not None:
            self._metrics_server = _serve_metrics(settings.api.host, settings.metrics_port)
        self.bus = open_bus(settings.transport_url)
        await self.bus.connect()
        publish = publisher(self.bus)
        if roles & {"api", "conductor", "graph", "persistor"}:
            if settings.database.url is None:
                settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(settings.database_url(), echo=settings.database.echo)
            revision = await upgrade(self.engine)
            log.info("database ready", extra={"revision": revision})
            self.templates = TemplateService(TemplateStore(self.engine), publish)
        if "persistor" in roles:
            assert self.engine is not None
            # Before the graph: its queue must exist before the first processed event is published.
            self.persistor = Persistor(
                self.bus, EventLog(self.engine), DeadLetterStore(self.engine), settings.persistor
            )
            await self.persistor.start()
        drivers = build_drivers(settings, self.static_directory)
        pulled = {name: d for name, d in drivers.items() if d.has_get_all}

        if "collector" in roles:
            self.collector = Collector(pulled, self.bus, settings.collector.page_size)
            if not self.local:
                self._rpc_servers.append(await self.bus.serve(COLLECTOR_SERVICE, collector_handler(self.collector)))

        if "graph" in roles:
            assert self.engine is not None
            assert self.templates is not None
            processors = processor_factory(settings, drivers)
            collector_client: CollectorClient
            if self.collector is not None and self.local:
                collector_client = self.collector
            else:
                collector_client = self._remote_collector = RemoteCollector(self.bus, settings.graph.rpc_timeout)
            problems = self.collector.problems if self.collector is not None else None
            role = self.graph_role = GraphRole(
                settings,
                self.engine,
                self.bus,
                processors,
                collector_client,
                list(pulled),
                [name for name, d in pulled.items() if d.has_changes],
                self.templates,
                serve_rpc=None if self.local else self._serve_graph,
            )
            self.backend = LocalGraphBackend(
                lambda: self.graph,
                sorted(roles),
                problems,
                publish,
                leadership=role.describe,
            )
            # Leader at once unless another process holds the leadership: then a standby.
            await role.start(wait_active=5.0)
            if not role.active.is_set():
                log.info("the graph waits as a standby: another process is the leader", extra={"holder": role.holder})

        if "conductor" in roles:
            assert self.engine is not None
            conductor = Conductor(TargetStore(self.engine), publish)
            self._rpc_servers.append(await self.bus.serve(CONDUCTOR_SERVICE, conductor_handler(conductor)))

        if "listener" in roles:
            nova = drivers["nova"]
            assert isinstance(nova, NovaDriver)
            assert settings.listener.url is not None
            config = settings.listener
            self.listener = NotificationListener(
                config.url,
                config.exchange,
                config.topics,
                publish,
                queue=config.queue,
                exchange_durable=config.exchange_durable,
                quorum=config.quorum,
                parser=nova.read,
                dead_letters=DeadLetterSender(self.bus, "listener"),
            )
            await self.listener.start()

        if "api" in roles:
            backend = self.backend if self.backend is not None else RemoteGraphBackend(self.bus)
            app = create_app(backend)
            app.state.templates = self.templates
            if self.engine is not None:
                app.state.dead_letters = DeadLetterAdmin(DeadLetterStore(self.engine), self.bus.publish)
                app.state.alarm_history = AlarmHistory(HistoryStore(self.engine))
                app.state.monitor_targets = TargetStore(self.engine)
                # The graph at a past time: rebuilt in a worker process, started at the first question.
                self.time_travel = TimeTravel(settings, self.engine, static_directory=self.static_directory)
                app.state.time_travel = self.time_travel
            server_config = uvicorn.Config(
                app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5
            )
            self.server = _Server(server_config)
        log.info(
            "vitrail started",
            extra={
                "roles": sorted(roles),
                "transport": mask_url(settings.transport_url),
                "url": self.url if "api" in roles else None,
                "datasources": list(drivers),
                "database": mask_url(settings.database_url()) if self.engine is not None else None,
            },
        )

    @property
    def graph(self) -> GraphService | None:
        """The active graph service of this process (None: no graph role, or a standby)."""
        role = self.graph_role
        return role.service if role is not None and role.active.is_set() else None

    async def _serve_graph(self, service: GraphService) -> RpcServer:
        assert self.bus is not None
        assert self.backend is not None
        return await self.bus.serve(GRAPH_SERVICE, graph_handler(self.backend, self._collectors_seen))

    def _collectors_seen(self) -> list[dict[str, Any]]:
        remote = self._remote_collector
        return list(remote.seen.values()) if remote is not None else []

    async def seed_demo(self, templates_directory: Path, failing_host: str) -> list[str]:
        """The demo's story: add the example templates (unless already there), then a host fails.

        Waits for the first topology; returns the names of the templates added.
        """
        assert self.graph is not None
        await self.graph.ready.wait()
        added = []
        for file_name, result in await asyncio.to_thread(_read_templates, templates_directory):
            if result.name is None or await self.templates.store.get(result.name) is not None:
                continue
            await self.templates.add([(file_name, result.document)], None, {})
            added.append(result.name)
        down = {
            "type": "compute.host.down",
            "details": {"hostname": failing_host, "source": "vitrail-demo", "status": "down", "severity": "critical"},
        }
        await self._publish(doctor.parse_event(down, utc_now()))
        log.info("demo: a host is down", extra={"host": failing_host, "templates_added": added})
        return added

    async def _publish(self, events: list[Event]) -> None:
        assert self.bus is not None
        await publisher(self.bus)(events)

    @staticmethod
    def _bind(host: str, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        sock.listen(512)
        sock.setblocking(False)
        return sock

    async def serve(self) -> None:
        """Run until SIGINT/SIGTERM or :meth:`request_stop` (answering the API if this process has it)."""
        if self.server is not None and self._socket is not None:
            await self.server.serve(sockets=[self._socket])
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._stop.set)
        await self._stop.wait()

    def request_stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.should_exit = True

    async def stop(self) -> None:
        """Stop taking events, flush the event log, close the bus and the database.

        Safe after a partial :meth:`start`: it stops whatever was started.
        """
        if self.listener is not None:
            await self.listener.stop()
        for server in self._rpc_servers:
            with contextlib.suppress(Exception):
                await server.stop()
        if self.graph_role is not None:
            await self.graph_role.stop()
        if self.persistor is not None:
            # After the graph: what it handed over on its way out is stored before this stops.
            if not await self.persistor.drain():
                log.warning("the persistor stopped with processed events still on the bus (kept there)")
            await self.persistor.stop()
        if self.collector is not None:
            await self.collector.close()
        if self.time_travel is not None:
            await self.time_travel.close()
        if self.bus is not None:
            await self.bus.close()
        if self.engine is not None:
            await self.engine.dispose()
        if self._socket is not None:
            self._socket.close()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        log.info("vitrail stopped")


def _serve_metrics(host: str, port: int) -> Any:
    """prometheus_client's own HTTP server (a thread): /metrics without the API."""
    from prometheus_client import start_http_server

    try:
        server, _ = start_http_server(port, addr=host)
    except OSError as exc:
        raise OSError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from None
    log.info("metrics served", extra={"url": f"http://{host}:{server.server_port}/metrics"})
    return server


def _read_templates(directory: Path) -> list[tuple[str, template_language.ValidationResult]]:
    return [
        (path.name, template_language.validate(path.read_text(encoding="utf-8"), file_name=path.name))
        for path in sorted(directory.glob("*.yaml"))
    ]


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
