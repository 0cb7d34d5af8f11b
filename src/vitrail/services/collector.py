"""The collector: runs datasource drivers when asked, publishes what they return.

Seed "collector on demand": no timers here. ``get_all`` and ``get_changes``
take the datasource names, call the drivers, answer with a summary and publish
the events in the background, in pages, so the caller is not kept waiting for
the bus. In the embedded mode the graph service calls it directly; the
distributed mode puts an RPC queue in front of the same methods.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vitrail.bus.base import EventBus
from vitrail.datasources.base import DatasourceError, Driver
from vitrail.graph.events import Event, utc_now
from vitrail.services.topics import BULK_EVENTS, encode

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CollectSummary:
    """What a ``get_all``/``get_changes`` call found, per datasource."""

    round: int | None
    counts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "counts": dict(self.counts), "errors": dict(self.errors)}


class Collector:
    def __init__(self, drivers: Mapping[str, Driver], bus: EventBus, page_size: int = 1000) -> None:
        self.drivers = dict(drivers)
        self.bus = bus
        self.page_size = page_size
        self._publishing: set[asyncio.Task[None]] = set()

    def _select(self, names: Sequence[str] | None) -> list[Driver]:
        if names is None:
            return list(self.drivers.values())
        unknown = [n for n in names if n not in self.drivers]
        if unknown:
            raise ValueError(f"unknown datasource(s) {unknown}; this collector runs {sorted(self.drivers)}")
        return [self.drivers[n] for n in names]

    async def get_all(self, datasource_names: Sequence[str] | None, round_id: int) -> CollectSummary:
        """Read every entity of the datasources; publish them as round ``round_id``."""
        summary = CollectSummary(round_id)
        for driver in self._select(datasource_names):
            if not driver.has_get_all:
                continue  # a push datasource: nothing to read, and no round to end
            sample_time = utc_now()
            try:
                entities = await asyncio.to_thread(driver.get_all)
            except DatasourceError as exc:
                summary.errors[driver.name] = str(exc)
                log.warning("get_all failed", extra={"datasource": driver.name, "error": str(exc)})
                continue
            except Exception as exc:  # a driver bug must not take the collector down
                summary.errors[driver.name] = f"{type(exc).__name__}: {exc}"
                log.exception("get_all crashed", extra={"datasource": driver.name})
                continue
            events = driver.round_events(entities, round_id, sample_time)
            summary.counts[driver.name] = len(entities)
            self._publish_in_background(events, {"call": "get_all", "datasource": driver.name, "round": round_id})
        return summary

    async def get_changes(self, datasource_names: Sequence[str] | None) -> CollectSummary:
        """Ask the datasources what changed; publish the changes."""
        summary = CollectSummary(None)
        for driver in self._select(datasource_names):
            if not driver.has_changes:
                continue
            sample_time = utc_now()
            try:
                changes = await asyncio.to_thread(driver.get_changes)
            except Exception as exc:
                summary.errors[driver.name] = f"{type(exc).__name__}: {exc}"
                log.warning("get_changes failed", extra={"datasource": driver.name, "error": str(exc)})
                continue
            summary.counts[driver.name] = len(changes)
            if changes:
                events = driver.change_events(changes, uuid.uuid4().hex[:12], sample_time)
                self._publish_in_background(events, {"call": "get_changes", "datasource": driver.name})
        return summary

    def _publish_in_background(self, events: list[Event], about: dict[str, Any]) -> None:
        task = asyncio.create_task(self._publish(events, about))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, events: list[Event], about: dict[str, Any]) -> None:
        received_at = utc_now()
        for event in events:
            event.received_at = received_at
        started = time.perf_counter()
        level = logging.INFO if about["call"] == "get_all" else logging.DEBUG  # changes come every 30 s
        log.log(level, "publishing", extra={**about, "events": len(events), "page_size": self.page_size})
        try:
            for start in range(0, len(events), self.page_size):
                await self.bus.publish(BULK_EVENTS, encode(events[start : start + self.page_size]))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The graph notices: a get_all round whose end never arrives is asked again
            # (graph.round_timeout); lost changes come back with the next round.
            log.error("publishing failed", extra={**about, "error": f"{type(exc).__name__}: {exc}"})
            return
        seconds = round(time.perf_counter() - started, 3)
        log.log(level, "published", extra={**about, "events": len(events), "seconds": seconds})

    def problems(self) -> dict[str, dict[str, list[str]]]:
        """Each driver's current problems (invalid static files...), for the status endpoint."""
        return {name: found for name, driver in self.drivers.items() if (found := driver.problems())}

    async def drain(self) -> None:
        """Wait until everything handed to the bus has been published."""
        while self._publishing:
            await asyncio.gather(*list(self._publishing), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._publishing):
            task.cancel()
        await asyncio.gather(*list(self._publishing), return_exceptions=True)
