"""The graph records a template's outcome even when the database is briefly away."""

from __future__ import annotations

import asyncio
from typing import Any

from vitrail.evaluator.engine import TEMPLATES_DATASOURCE
from vitrail.graph.events import Event, EventAction
from vitrail.services.templates import TemplateService


class FlakyStore:
    """A template store whose database answers only from the third attempt."""

    def __init__(self) -> None:
        self.attempts = 0
        self.recorded: list[tuple[str, str, Any]] = []

    async def set_status(self, template_uuid: str, status: str, details: str | None = None) -> None:
        self.attempts += 1
        if self.attempts < 3:
            raise ConnectionError("the database is away")
        self.recorded.append((template_uuid, status, details))


async def _no_publish(events: list[Event]) -> None:
    return None


async def test_a_template_status_is_retried_until_the_database_answers() -> None:
    store = FlakyStore()
    service = TemplateService(store, _no_publish)  # type: ignore[arg-type]
    service.RETRY_MAX = 0.05
    event = Event("t-1", TEMPLATES_DATASOURCE, EventAction.UPDATE, "2026-11-22 00:00:00.000000+00:00", {"uuid": "u-1"})
    await asyncio.wait_for(service.applied([(event, None), (event, "refused: bad condition")]), 5)
    assert store.recorded == [("u-1", "ACTIVE", None), ("u-1", "ERROR", "refused: bad condition")]
    assert store.attempts == 4  # two failures, then one write per outcome
