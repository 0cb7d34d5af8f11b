"""A synthetic cloud of any size, for demos, tests and benchmarks.

The cloud mirrors what the nova and neutron datasources report, with the same
``vitrage_type`` values, so templates written for a real OpenStack apply to it::

    openstack.cluster -contains-> nova.zone -contains-> nova.host -contains-> nova.instance
    switch -attached-> nova.host                       (optional)
    neutron.network -contains-> neutron.port -attached-> nova.instance   (optional)

Everything is derived from ``seed``: the same settings give the same cloud,
ids included. Entities are generated when asked for, not kept, so the driver
costs almost no memory even for 100k instances. ``failed_hosts`` hosts report
state ERROR; ``changes_per_poll`` instance state changes appear at every
``get_changes`` call (a deterministic sequence too).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from vitrail.datasources.base import Driver, RawChange, RawEntity
from vitrail.graph.events import Event
from vitrail.graph.properties import CLUSTER_ID, CLUSTER_TYPE, Category, EdgeLabel
from vitrail.graph.updates import EntityUpdate, NeighborRef, TransformError

NAME = "simulator"
ZONE = "nova.zone"
HOST = "nova.host"
INSTANCE = "nova.instance"
SWITCH = "switch"
NETWORK = "neutron.network"
PORT = "neutron.port"

INSTANCE_STATES = ("ACTIVE", "SUSPENDED", "ERROR", "SHUTOFF", "PAUSED")


@dataclass(frozen=True, slots=True)
class SimulatorShape:
    """The size and faults of the simulated cloud."""

    hosts: int = 10
    instances_per_host: int = 10
    zones: int = 1
    switches: int = 0
    networks: int = 0
    projects: int = 4
    failed_hosts: int = 0
    changes_per_poll: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("hosts", "instances_per_host", "switches", "networks", "failed_hosts", "changes_per_poll"):
            if getattr(self, name) < 0:
                raise ValueError(f"simulator.{name} must be >= 0")
        if self.zones < 1:
            raise ValueError("simulator.zones must be >= 1")
        if self.projects < 1:
            raise ValueError("simulator.projects must be >= 1")
        if self.failed_hosts > self.hosts:
            raise ValueError("simulator.failed_hosts cannot exceed simulator.hosts")

    @property
    def entity_count(self) -> int:
        instances = self.hosts * self.instances_per_host
        ports = instances if self.networks else 0
        return 1 + self.zones + self.hosts + instances + self.switches + self.networks + ports


def _host_name(index: int) -> str:
    return f"host-{index:05d}"


class SimulatorDriver(Driver):
    name = NAME
    entity_types = (CLUSTER_TYPE, ZONE, HOST, INSTANCE, SWITCH, NETWORK, PORT)
    has_changes = True

    def __init__(self, shape: SimulatorShape | None = None) -> None:
        self.shape = shape or SimulatorShape()
        rng = random.Random(self.shape.seed)
        self._failed = frozenset(rng.sample(range(self.shape.hosts), self.shape.failed_hosts))
        self._instance_state: dict[int, str] = {}  # only instances that changed
        self._polls = 0

    def transformer(self) -> SimulatorTransformer:
        return SimulatorTransformer()

    # -- the cloud -----------------------------------------------------------------

    def instance_id(self, index: int) -> str:
        """The uuid of instance ``index``: stable for a seed, random-looking."""
        return str(uuid.UUID(int=random.Random(f"{self.shape.seed}/{index}").getrandbits(128), version=4))

    def _instance_ids(self) -> Iterator[str]:
        rng = random.Random(f"instances/{self.shape.seed}")
        for _ in range(self.shape.hosts * self.shape.instances_per_host):
            yield str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def entities(self) -> Iterator[RawEntity]:
        """Every entity of the cloud, parents before children."""
        shape = self.shape
        yield RawEntity(f"{CLUSTER_TYPE}:{CLUSTER_ID}", {"kind": "cluster"})
        for z in range(shape.zones):
            yield RawEntity(f"{ZONE}:zone-{z}", {"kind": "zone", "id": f"zone-{z}"})
        per_switch = -(-shape.hosts // shape.switches) if shape.switches else 0
        for s in range(shape.switches):
            hosts = [_host_name(h) for h in range(s * per_switch, min(shape.hosts, (s + 1) * per_switch))]
            yield RawEntity(f"{SWITCH}:switch-{s}", {"kind": "switch", "id": f"switch-{s}", "hosts": hosts})
        for n in range(shape.networks):
            yield RawEntity(f"{NETWORK}:net-{n}", {"kind": "network", "id": f"net-{n}"})
        ids = self._instance_ids()
        index = 0
        for h in range(shape.hosts):
            host = _host_name(h)
            state = "ERROR" if h in self._failed else "available"
            yield RawEntity(
                f"{HOST}:{host}", {"kind": "host", "id": host, "zone": f"zone-{h % shape.zones}", "state": state}
            )
            for k in range(shape.instances_per_host):
                instance_id = next(ids)
                project = f"project-{index % shape.projects}"
                yield RawEntity(
                    f"{INSTANCE}:{instance_id}",
                    {
                        "kind": "instance",
                        "id": instance_id,
                        "name": f"vm-{h:05d}-{k:02d}",
                        "host": host,
                        "state": self._instance_state.get(index, "ACTIVE"),
                        "project_id": project,
                    },
                )
                if shape.networks:
                    yield RawEntity(
                        f"{PORT}:port-{index}",
                        {
                            "kind": "port",
                            "id": f"port-{index}",
                            "network": f"net-{index % shape.networks}",
                            "instance": instance_id,
                            "project_id": project,
                        },
                    )
                index += 1

    def get_all(self) -> Sequence[RawEntity]:
        return list(self.entities())

    def get_changes(self) -> Sequence[RawChange]:
        """``changes_per_poll`` instances change state, chosen from the seed and poll count."""
        shape = self.shape
        total = shape.hosts * shape.instances_per_host
        self._polls += 1
        if not shape.changes_per_poll or not total:
            return ()
        rng = random.Random(f"changes/{shape.seed}/{self._polls}")
        picked = sorted(rng.sample(range(total), min(shape.changes_per_poll, total)))
        for index in picked:
            self._instance_state[index] = rng.choice(INSTANCE_STATES)
        wanted = dict.fromkeys(picked)
        changes = []
        for i, instance_id in enumerate(self._instance_ids()):
            if i in wanted:
                host = i // shape.instances_per_host
                changes.append(
                    RawChange(
                        f"{INSTANCE}:{instance_id}",
                        {
                            "kind": "instance",
                            "id": instance_id,
                            "name": f"vm-{host:05d}-{i % shape.instances_per_host:02d}",
                            "host": _host_name(host),
                            "state": self._instance_state[i],
                            "project_id": f"project-{i % shape.projects}",
                        },
                    )
                )
                if len(changes) == len(wanted):
                    break
        return changes


def _require(payload: dict[str, Any], field: str) -> Any:
    value = payload.get(field)
    if value is None or value == "":
        raise TransformError(f"payload.{field} is required for a simulator {payload.get('kind')}")
    return value


class SimulatorTransformer:
    """Simulator records → graph updates (pure)."""

    def transform(self, event: Event) -> list[EntityUpdate]:
        payload = event.payload
        kind = payload.get("kind")
        builder = _BUILDERS.get(kind)  # type: ignore[arg-type]
        if builder is None:
            raise TransformError(f"payload.kind {kind!r} is not one of {sorted(_BUILDERS)}")
        return [builder(payload)]


def _cluster(payload: dict[str, Any]) -> EntityUpdate:
    return EntityUpdate(Category.RESOURCE, CLUSTER_TYPE, CLUSTER_ID, {"name": CLUSTER_TYPE, "state": "available"}, [])


def _zone(payload: dict[str, Any]) -> EntityUpdate:
    zone = _require(payload, "id")
    return EntityUpdate(
        Category.RESOURCE,
        ZONE,
        zone,
        {"name": zone, "state": payload.get("state", "available")},
        [NeighborRef(Category.RESOURCE, CLUSTER_TYPE, CLUSTER_ID, EdgeLabel.CONTAINS, False)],
    )


def _host(payload: dict[str, Any]) -> EntityUpdate:
    host = _require(payload, "id")
    return EntityUpdate(
        Category.RESOURCE,
        HOST,
        host,
        {"name": host, "state": payload.get("state", "available")},
        [NeighborRef(Category.RESOURCE, ZONE, _require(payload, "zone"), EdgeLabel.CONTAINS, False)],
    )


def _instance(payload: dict[str, Any]) -> EntityUpdate:
    host = _require(payload, "host")
    return EntityUpdate(
        Category.RESOURCE,
        INSTANCE,
        _require(payload, "id"),
        {
            "name": payload.get("name"),
            "state": payload.get("state", "ACTIVE"),
            "project_id": payload.get("project_id"),
            "host_id": host,
        },
        [NeighborRef(Category.RESOURCE, HOST, host, EdgeLabel.CONTAINS, False)],
    )


def _switch(payload: dict[str, Any]) -> EntityUpdate:
    switch = _require(payload, "id")
    return EntityUpdate(
        Category.RESOURCE,
        SWITCH,
        switch,
        {"name": switch, "state": payload.get("state", "available")},
        [NeighborRef(Category.RESOURCE, HOST, h, EdgeLabel.ATTACHED, True) for h in payload.get("hosts", ())],
    )


def _network(payload: dict[str, Any]) -> EntityUpdate:
    network = _require(payload, "id")
    return EntityUpdate(Category.RESOURCE, NETWORK, network, {"name": network, "state": "ACTIVE"}, [])


def _port(payload: dict[str, Any]) -> EntityUpdate:
    port = _require(payload, "id")
    return EntityUpdate(
        Category.RESOURCE,
        PORT,
        port,
        {"name": port, "state": "ACTIVE", "project_id": payload.get("project_id")},
        [
            NeighborRef(Category.RESOURCE, NETWORK, _require(payload, "network"), EdgeLabel.CONTAINS, False),
            NeighborRef(Category.RESOURCE, INSTANCE, _require(payload, "instance"), EdgeLabel.ATTACHED, True),
        ],
    )


_BUILDERS = {
    "cluster": _cluster,
    "zone": _zone,
    "host": _host,
    "instance": _instance,
    "switch": _switch,
    "network": _network,
    "port": _port,
}
