"""Dead letters for operators: list, show, retry (re-publish), delete, purge.

A dead letter is kept until a person decides (:mod:`vitrail.services.dead_letters`).
Only what the graph failed to read on its input topics can be retried: those
messages were never applied, and the graph takes them again from the same topic.
Everything else is refused with the reason, rather than published to fail the
same way and come back as one more dead letter:

* the persistor's dead letters (``events.processed``) are a graph leader's
  numbered output, fenced by its epoch: published again, they would be fenced
  or conflict with the event log;
* a body that is not JSON, or not events, would be refused again by the graph.

A retried dead letter is kept (its ``retries`` grows): the operator purges it
once satisfied, and can retry it again if the first attempt was lost.
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from vitrail.api.backend import PurgeRefused, RetryRefused
from vitrail.graph.events import EventError
from vitrail.services.topics import BULK_EVENTS, PRIORITY_EVENTS, PROCESSED_EVENTS, decode
from vitrail.storage import DeadLetter, DeadLetterNotFound, DeadLetterStore

log = logging.getLogger(__name__)

#: The graph's input topics: where a dead letter may be re-published.
INPUT_TOPICS = frozenset({PRIORITY_EVENTS, BULK_EVENTS})

#: ``publish(topic, body)``: the bus's publish (confirmed when it returns).
Publish = Callable[[str, Any], Awaitable[None]]


def source_topic(source: str) -> str:
    """The topic of a dead letter's source: bus sources are ``<topic>/<group>``."""
    return source.partition("/")[0]


def retry_body(letter: DeadLetter) -> tuple[str, list[Any]]:
    """Where and what to re-publish for ``letter``; :class:`RetryRefused` names why not.

    The graph keeps each event of a message it could not read as a dead letter
    of its own (a single record, not a list), so a body that is one object is
    re-published as a list of one: that is a message the graph reads.
    """
    topic = source_topic(letter.source)
    if topic == PROCESSED_EVENTS:
        raise RetryRefused(
            f"dead letters from {PROCESSED_EVENTS} cannot be re-published: they are a former "
            "leader's output, fenced by the epoch"
        )
    if topic not in INPUT_TOPICS:
        raise RetryRefused(
            f"dead letter {letter.id} from {letter.source}: not a Vitrail input topic "
            f"(only {', '.join(sorted(INPUT_TOPICS))} can be re-published)"
        )
    try:
        body = orjson.loads(letter.body)
    except orjson.JSONDecodeError:
        raise RetryRefused(
            f"dead letter {letter.id}: its body is not JSON: re-publishing it would fail the same way"
        ) from None
    records = body if isinstance(body, list) else [body]
    try:
        decode(records)
    except EventError as exc:
        raise RetryRefused(
            f"dead letter {letter.id}: its body is not events ({exc}): re-publishing it would fail the same way"
        ) from None
    return topic, records


class DeadLetterAdmin:
    """What the API offers on dead letters, over the store and the bus."""

    def __init__(self, store: DeadLetterStore, publish: Publish) -> None:
        self.store = store
        self.publish = publish

    async def list(
        self, limit: int = 50, marker: int | None = None, source: str | None = None
    ) -> builtins.list[DeadLetter]:
        """A page of dead letters, newest first (``marker``: the last id of the previous page)."""
        return await self.store.list(limit, marker, source)

    async def show(self, letter_id: int) -> DeadLetter:
        letter = await self.store.get(letter_id)
        if letter is None:
            raise DeadLetterNotFound(f"dead letter {letter_id} does not exist")
        return letter

    async def retry(self, letter_id: int) -> tuple[DeadLetter, str]:
        """Re-publish a dead letter to the topic it came from; return it with its retry counted, and the topic.

        Publish first, count after: a retry that was counted but never
        published would mislead; one published but not counted (the letter was
        deleted meanwhile) is harmless.
        """
        letter = await self.show(letter_id)
        topic, records = retry_body(letter)
        await self.publish(topic, records)
        log.info("re-published a dead letter", extra={"dead_letter": letter_id, "topic": topic})
        try:
            await self.store.mark_retried(letter_id)
        except DeadLetterNotFound:
            log.info("a dead letter was deleted while it was re-published", extra={"dead_letter": letter_id})
        else:
            updated = await self.store.get(letter_id)
            if updated is not None:
                return updated, topic
        return dataclasses.replace(letter, retries=letter.retries + 1, retried_at=datetime.now(UTC)), topic

    async def delete(self, letter_id: int) -> None:
        if await self.store.delete([letter_id]) == 0:
            raise DeadLetterNotFound(f"dead letter {letter_id} does not exist")

    async def purge(self, before: datetime | None = None, source: str | None = None, everything: bool = False) -> int:
        """Delete the dead letters older than ``before`` and/or from ``source``; return how many.

        Purging every dead letter must be asked for (``everything``), and then
        alone: a filter next to it would leave unclear which was meant.
        """
        filtered = before is not None or source is not None
        if everything and filtered:
            raise PurgeRefused("all: purges every dead letter; give it without before and source")
        if not everything and not filtered:
            raise PurgeRefused("give before, source, or all=true to purge every dead letter")
        deleted = await self.store.purge(before, source)
        log.info(
            "purged dead letters",
            extra={"deleted": deleted, "before": None if before is None else before.isoformat(), "source": source},
        )
        return deleted


__all__ = ["INPUT_TOPICS", "DeadLetterAdmin", "Publish", "retry_body", "source_topic"]
