"""Configuration: defaults, then a config file, then environment variables.

Every option has a description; ``vitrail config show`` prints the effective
values and ``docs/configuration.md`` is generated from this module (a test keeps
them in step). Environment variables are ``VITRAIL_<SECTION>__<OPTION>``, e.g.
``VITRAIL_API__PORT=9000``; top-level ones are ``VITRAIL_<OPTION>``. The file is
TOML (``.toml``) or YAML (``.yaml``/``.yml``), given by ``--config`` or
``VITRAIL_CONFIG``.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from vitrail.urls import mask_url

CONFIG_ENV = "VITRAIL_CONFIG"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "vitrail"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ApiSettings(_Section):
    host: str = Field(
        "127.0.0.1",
        description="Address the REST API listens on. The embedded mode trusts identity headers, "
        "so keep it on loopback unless authentication is configured.",
    )
    port: int = Field(
        8999, ge=0, le=65535, description="TCP port of the REST API (Vitrage's port). 0 picks a free one."
    )
    url: str | None = Field(
        None, description="Where the CLI finds the API; default http://<host>:<port> (0.0.0.0 → 127.0.0.1)."
    )

    def client_url(self) -> str:
        if self.url:
            return self.url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


class DatabaseSettings(_Section):
    url: str | None = Field(
        None,
        description="SQLAlchemy URL of the database. Default: a SQLite file vitrail.db in data_dir. "
        "postgresql://, mysql:// and mariadb:// URLs get their asyncio driver (asyncpg, aiomysql) automatically.",
    )
    echo: bool = Field(False, description="Log every SQL statement (debugging only).")


class GraphSettings(_Section):
    get_all_interval: float = Field(
        600.0, gt=0, description="Seconds between two get_all rounds of each datasource (the graph owns the schedule)."
    )
    changes_interval: float = Field(
        30.0, gt=0, description="Seconds between two get_changes calls, for datasources that report changes."
    )
    rpc_timeout: float = Field(
        120.0, gt=0, description="Seconds the graph waits for a collector to answer get_all before retrying."
    )
    round_timeout: float = Field(
        120.0,
        gt=0,
        description="Seconds a get_all round may take to arrive in full; after that it is asked again "
        "(a collector that died while publishing).",
    )
    consistency_rounds: int = Field(
        2,
        ge=1,
        description="An entity missing from this many successive get_all rounds of its datasource is deleted.",
    )
    dedup_window: int = Field(
        100_000,
        ge=1,
        description="How many recent change event ids are remembered to drop duplicate deliveries "
        "(get_all rounds are deduplicated by round, whatever their size).",
    )
    batch_size: int = Field(
        2000,
        ge=1,
        description="Events applied between two yields to the event loop: larger is faster, smaller keeps the "
        "API responsive while a large topology loads.",
    )
    values_dir: Path | None = Field(
        None,
        description="Directory of Vitrage datasources_values YAML files (one per vitrage_type) that add to or "
        "replace the built-in state and severity tables.",
    )
    snapshot_interval: float = Field(
        600.0,
        gt=0,
        description="Seconds between two periodic snapshots of the graph (one is also taken after every get_all "
        "round), when at least snapshot_min_events events came since the last one.",
    )
    snapshot_min_events: int = Field(
        1,
        ge=1,
        description="Events since the last snapshot below which a periodic snapshot is skipped (nothing to save).",
    )
    snapshot_max_events: int = Field(
        50_000,
        ge=1,
        description="Events since the last snapshot that trigger one at once, whatever the interval: bounds what a "
        "standby replays when it takes over (about 30,000 events/s, so 50,000 keep a failover near 2 s at 110k "
        "entities).",
    )
    prefetch: int = Field(
        64,
        ge=1,
        description="Input messages of each topic the graph may hold unacked (RabbitMQ): an input is acked only "
        "once its events are stored, so this must cover the events applied during one store round trip.",
    )
    ack_poll_interval: float = Field(
        0.05,
        gt=0,
        description="Seconds between two reads of how far the event log is stored: an input message is acked "
        "only once every event it produced is stored, so this adds at most that much to an ack.",
    )
    leader_heartbeat: float = Field(
        1.0,
        gt=0,
        description="Seconds between two checks that the leader still holds its lock; a lost lock makes it step "
        "down (docs/ha.md).",
    )


class CollectorSettings(_Section):
    page_size: int = Field(
        1000,
        ge=1,
        description="Events per bus message when a collector publishes what it read: larger pages carry more "
        "events per second through RabbitMQ, smaller ones use less memory per message.",
    )


class PersistorSettings(_Section):
    batch_size: int = Field(
        1000,
        ge=1,
        description="Events the persistor writes in one transaction (more are taken if one message carries more).",
    )
    batch_timeout: float = Field(
        0.05,
        gt=0,
        description="Seconds the persistor waits to fill a batch before writing what it has.",
    )
    retry_max: float = Field(
        10.0,
        gt=0,
        description="Longest wait between two probes of an unreachable database (the wait doubles from 0.25 s).",
    )


class HistorySettings(_Section):
    retention_days: float = Field(
        30.0,
        gt=0,
        description="Days of snapshots and event log kept (snapshots thinned: the 3 newest, one per hour for the "
        "last day, one per day beyond), so the graph can be rebuilt as it was at any time in that window.",
    )
    prune_interval: float = Field(
        3600.0, gt=0, description="Seconds between two removals of snapshots and events older than the retention."
    )
    # -- the graph at a time T (docs/history.md) --
    max_replay_events: int = Field(
        50_000,
        ge=1,
        description="Thinning keeps enough snapshots that at most this many logged events separate two kept "
        "snapshots (or the newest one and the end of the log), where the snapshots taken allow it: a "
        "reconstruction at any time T replays at most this many events (measured at 110k entities: 3.2 s "
        "for 100,000, 1.9 s for 50,000; docs/history.md).",
    )
    reconstruction_cache: int = Field(
        4,
        ge=0,
        description="Graphs rebuilt at past times kept in memory by the reconstruction worker (least recently "
        "used first out; one costs about as much memory as the live graph). 0 keeps none.",
    )


class StaticSettings(_Section):
    directory: Path | None = Field(
        None,
        description="Directory of static topology files in Vitrage's static datasource format (*.yaml, *.yml). "
        "Default: <data_dir>/static. Re-read when a file changes.",
    )


class SimulatorSettings(_Section):
    hosts: int = Field(10, ge=0, description="Number of compute hosts of the simulated cloud.")
    instances_per_host: int = Field(10, ge=0, description="Instances on every host.")
    zones: int = Field(1, ge=1, description="Availability zones; hosts are spread over them.")
    switches: int = Field(0, ge=0, description="Switches, each attached to an equal share of the hosts.")
    networks: int = Field(0, ge=0, description="Networks; when > 0 every instance gets a port on one of them.")
    projects: int = Field(4, ge=1, description="Projects (tenants) the instances are spread over.")
    failed_hosts: int = Field(0, ge=0, description="Hosts that report state ERROR (injected failures).")
    changes_per_poll: int = Field(0, ge=0, description="Instance state changes reported at every get_changes call.")
    seed: int = Field(0, description="Seed of everything random in the simulation: same seed, same cloud.")


def redact(data: Any) -> Any:
    """A ``model_dump`` with the password of every URL option hidden."""
    if isinstance(data, dict):
        return {
            key: mask_url(value) if isinstance(value, str) and key.endswith("url") else redact(value)
            for key, value in data.items()
        }
    return data


def _comma_list(value: Any) -> Any:
    """``"a, b"`` (an environment variable) as ``["a", "b"]``."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ListenerSettings(_Section):
    url: str | None = Field(
        None,
        description="RabbitMQ where OpenStack publishes its notifications (nova's oslo.messaging transport_url), "
        "e.g. amqp://nova:secret@controller:5672/. Needed by the listener role, which runs when the nova "
        "datasource is enabled. See docs/notifications.md.",
    )
    exchange: str = Field("nova", min_length=1, description="The exchange nova publishes to (its control_exchange).")
    topics: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "notifications.info",
            "notifications.error",
            "versioned_notifications.info",
            "versioned_notifications.error",
        ],
        min_length=1,
        description="Routing keys bound to the listener's queue: <topic>.<priority> of nova's notifications.",
    )
    queue: str = Field(
        "vitrail.notifications",
        min_length=1,
        description="The listener's own durable queue (never one of oslo's, whose other consumers would compete).",
    )
    formats: Annotated[list[Literal["versioned", "legacy"]], NoDecode] = Field(
        default_factory=lambda: ["versioned", "legacy"],
        min_length=1,
        description="Notification formats to map: versioned, legacy or both. With nova's notification_format=both "
        "every change arrives twice; keep one.",
    )
    exchange_durable: bool = Field(
        False, description="Declare the exchange durable (must match oslo.messaging's amqp_durable_queues)."
    )
    quorum: bool = Field(False, description="Make the listener's queue a quorum queue (replicated in a cluster).")

    _split = field_validator("topics", "formats", mode="before")(_comma_list)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Lowest level logged.")
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="json: one JSON object per line; console: for people; auto: console on a terminal."
    )

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    """All of Vitrail's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="VITRAIL_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the embedded mode keeps its files (SQLite database, static topology). "
        "Default: $XDG_DATA_HOME/vitrail or ~/.local/share/vitrail.",
    )
    transport_url: str = Field(
        "memory://",
        description="Event bus: memory:// runs everything in one process (the embedded mode); "
        "amqp://user:password@host:5672/ uses RabbitMQ (options in docs/bus.md).",
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Also serve Prometheus metrics at http://<api.host>:<port>/metrics: for processes without "
        "the API role (graph, collector, listener), whose counters the API's /metrics does not show.",
    )
    roles: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["all"],
        description="What this process runs: api, graph, collector, persistor, listener, conductor (the "
        "monitor's database access), or all (the embedded mode; all includes the listener when the nova "
        "datasource is enabled). `serve --role` overrides it.",
    )
    datasources: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["static", "prometheus", "doctor"],
        description="Datasources to run: static (topology files), simulator (a synthetic cloud), prometheus "
        "(Alertmanager webhooks), doctor (Vitrage's POST /v1/event), nova (OpenStack notifications, through "
        "the listener), monitor (reachability of the monitor's targets). `serve --demo` adds the simulator.",
    )
    api: ApiSettings = Field(default_factory=ApiSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    graph: GraphSettings = Field(default_factory=GraphSettings)
    static: StaticSettings = Field(default_factory=StaticSettings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    collector: CollectorSettings = Field(default_factory=CollectorSettings)
    persistor: PersistorSettings = Field(default_factory=PersistorSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    listener: ListenerSettings = Field(default_factory=ListenerSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    _split = field_validator("datasources", "roles", mode="before")(_comma_list)

    @field_validator("datasources")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        from vitrail.datasources import DRIVER_NAMES

        unknown = [name for name in value if name not in DRIVER_NAMES]
        if unknown:
            raise ValueError(f"unknown datasource(s) {unknown}; known: {sorted(DRIVER_NAMES)}")
        return list(dict.fromkeys(value))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments beat the environment, which beats the config file.
        return (init_settings, env_settings, _FileSource(settings_cls, _file_data.get() or {}))

    # -- derived values --------------------------------------------------------------

    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{self.data_dir / 'vitrail.db'}"

    def static_directory(self) -> Path:
        return self.static.directory or self.data_dir / "static"


class ConfigError(ValueError):
    """The configuration file or environment is invalid; the message says where."""


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file {path}: use a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of options at the top level")
    return data


def _environment_names() -> dict[str, str]:
    """Every VITRAIL_* variable an option reads, mapped to the option."""
    names = {CONFIG_ENV: "config file"}
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for inner in annotation.model_fields:
                names[f"VITRAIL_{name.upper()}__{inner.upper()}"] = f"{name}.{inner}"
        else:
            names[f"VITRAIL_{name.upper()}"] = name
    return names


def _check_environment_names() -> None:
    """A misspelt variable (VITRAIL_API_PORT for VITRAIL_API__PORT) is an error, not silently ignored."""
    known = _environment_names()
    for key in sorted(os.environ):
        if key.startswith("VITRAIL_") and key.upper() not in known:
            guess = key.upper().replace("VITRAIL_", "", 1)
            close = [k for k in known if k.replace("__", "_").endswith(guess)]
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"unknown environment variable {key}: no Vitrail option reads it{hint}")


_file_data: ContextVar[dict[str, Any] | None] = ContextVar("vitrail_config_file_data", default=None)


class _FileSource(PydanticBaseSettingsSource):
    """The parsed config file, lowest priority of the sources."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the file (``config_file`` or $VITRAIL_CONFIG), the environment and ``overrides``.

    Raises :class:`ConfigError` with every invalid option and where it came from.
    """
    path = config_file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    _check_environment_names()
    data: dict[str, Any] = read_config_file(path) if path else {}
    token = _file_data.set(data)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        source = f" (file {path} or VITRAIL_* environment)" if path else " (VITRAIL_* environment or options)"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration{source}: {problems}") from None
    except SettingsError as exc:
        raise ConfigError(f"invalid configuration in the VITRAIL_* environment: {exc}") from None
    finally:
        _file_data.reset(token)


def reference_markdown() -> str:
    """The configuration reference (docs/configuration.md is this text; a test checks)."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `vitrail config reference`; do not edit by hand. -->",
        "",
        "Vitrail reads its options from, lowest priority first: the defaults below, a config file",
        "(`--config FILE` or `$VITRAIL_CONFIG`; TOML or YAML, sections as below), environment variables",
        "(`VITRAIL_<OPTION>` for top-level options, `VITRAIL_<SECTION>__<OPTION>` inside a section), and",
        "command-line options. `vitrail config show` prints the effective values.",
        "",
    ]
    sections: list[tuple[str, type[BaseModel]]] = []
    lines += ["## Top level", "", "| option | environment | default | description |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            sections.append((name, annotation))
            continue
        lines.append(f"| `{name}` | `VITRAIL_{name.upper()}` | {_default(field)} | {field.description or ''} |")
    for section, model in sections:
        lines += ["", f"## `[{section}]`", "", "| option | environment | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            env = f"VITRAIL_{section.upper()}__{name.upper()}"
            lines.append(f"| `{name}` | `{env}` | {_default(field)} | {field.description or ''} |")
    lines += [
        "",
        "Example (`vitrail.toml`):",
        "",
        "```toml",
        'datasources = ["static", "simulator"]',
        "",
        "[api]",
        'host = "127.0.0.1"',
        "port = 8999",
        "",
        "[database]",
        'url = "postgresql://vitrail@db.example.net/vitrail"',
        "",
        "[graph]",
        "get_all_interval = 600",
        "consistency_rounds = 2",
        "",
        "[static]",
        'directory = "/etc/vitrail/static"',
        "```",
        "",
    ]
    return "\n".join(lines)


def _default(field: Any) -> str:
    if field.default_factory is not None:
        if field.default_factory is default_data_dir:
            return "`~/.local/share/vitrail`"
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return "(section)"
        return f"`{value}`"
    if field.default is None:
        return "(none)"
    return f"`{field.default}`"
