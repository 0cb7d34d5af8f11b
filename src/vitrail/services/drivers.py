"""Builds the enabled datasource drivers from the configuration."""

from __future__ import annotations

from pathlib import Path

from vitrail.config import Settings
from vitrail.datasources.alertmanager import AlertmanagerDriver
from vitrail.datasources.base import Driver
from vitrail.datasources.doctor import DoctorDriver
from vitrail.datasources.monitor import MonitorDriver
from vitrail.datasources.nova import NovaDriver
from vitrail.datasources.simulator import SimulatorDriver, SimulatorShape


def build_drivers(settings: Settings, static_directory: Path | None = None) -> dict[str, Driver]:
    """Drivers for ``settings.datasources``, in that order.

    The static datasource learns which vitrage types the other enabled drivers
    own, so a static file naming a ``nova.host`` refers to the simulator's host
    instead of overwriting it.
    """
    drivers: dict[str, Driver] = {}
    if "simulator" in settings.datasources:
        drivers["simulator"] = SimulatorDriver(SimulatorShape(**settings.simulator.model_dump()))
    if "prometheus" in settings.datasources:
        drivers["prometheus"] = AlertmanagerDriver()
    if "doctor" in settings.datasources:
        drivers["doctor"] = DoctorDriver()
    if "monitor" in settings.datasources:
        drivers["monitor"] = MonitorDriver()
    if "nova" in settings.datasources:
        drivers["nova"] = NovaDriver(settings.listener.formats)
    if "static" in settings.datasources:
        from vitrail.datasources.static import StaticDriver

        foreign = sorted({t for d in drivers.values() for t in d.entity_types})
        drivers["static"] = StaticDriver(static_directory or settings.static_directory(), foreign)
    return {name: drivers[name] for name in settings.datasources if name in drivers}
