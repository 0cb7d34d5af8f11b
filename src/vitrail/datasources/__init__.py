"""Datasource drivers and their transformers, one module per datasource."""

from __future__ import annotations

#: Every datasource Vitrail has. Pull datasources are read by get_all rounds; push
#: ones (prometheus: Alertmanager webhooks, doctor: Vitrage's event API) receive
#: their events through the API; nova's come from the notifications listener; monitor's
#: (the reachability of monitored targets) from the monitor's conductor.
DRIVER_NAMES: tuple[str, ...] = ("static", "simulator", "prometheus", "doctor", "nova", "monitor")
