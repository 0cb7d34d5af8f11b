"""Templates at run time: validate, store, load into the evaluator, delete.

The API side of the template lifecycle (the evaluator side is a template event
in the log). Adding validates every template first and stores nothing unless
all are valid (Vitrage stored invalid ones with status ERROR; an operator is
better served by a 400 that lists every problem). A stored template is
published as an event; when the graph has applied it the template becomes
ACTIVE. Deleting publishes a delete event; when applied the template becomes
DELETED and its name free again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from vitrail.api.errors import ApiError
from vitrail.evaluator import templates as language
from vitrail.evaluator.engine import TEMPLATES_DATASOURCE
from vitrail.graph.events import Event, EventAction, utc_now
from vitrail.storage import DuplicateTemplate, StoredTemplate, TemplateStore
from vitrail.storage.templates import ACTIVE, DELETED, DELETING, ERROR, LOADING

log = logging.getLogger(__name__)

Publish = Callable[[list[Event]], Awaitable[None]]


def _reply(path: str | None, result: Any) -> dict[str, Any]:
    """One entry of the validate reply: Vitrage's keys, plus every problem with its place."""
    return {
        "file path": path,
        "status": "validation OK" if result.ok else "validation failed",
        "description": result.description,
        "message": result.message,
        "status code": result.status_code,
        "problems": [_problem(p) for p in result.problems],
        "warnings": [_problem(p) for p in result.warnings],
    }


def _problem(problem: Any) -> dict[str, Any]:
    return {
        "code": problem.code,
        "message": problem.message,
        "template": problem.template,
        "scenario": problem.scenario,
        "field": problem.field,
        "line": problem.line,
        "text": str(problem),
    }


def _problems_text(path: str | None, result: Any) -> str:
    where = path or result.name or "template"
    return f"{where}: " + "; ".join(str(problem) for problem in result.problems)


class TemplateService:
    def __init__(self, store: TemplateStore, publish: Publish) -> None:
        self.store = store
        self.publish = publish
        self._run = uuid.uuid4().hex[:8]  # event ids must not repeat across restarts

    async def _definitions(self) -> dict[str, dict[str, Any]]:
        return {t.name: t.document for t in await self.store.loadable() if t.template_type == "definition"}

    async def validate(
        self, templates: list[tuple[str | None, Any]], template_type: str | None, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        definitions = await self._definitions()
        return [
            _reply(
                path,
                language.validate(
                    source, template_type=template_type, params=params, definitions=definitions, file_name=path
                ),
            )
            for path, source in templates
        ]

    async def _prepare(
        self, templates: list[tuple[str | None, Any]], template_type: str | None, params: dict[str, Any]
    ) -> list[tuple[Any, dict[str, Any]]]:
        """Each template validated and resolved, or a 400 listing every problem of every template."""
        definitions = await self._definitions()
        ready: list[tuple[Any, dict[str, Any]]] = []
        failures: list[str] = []
        for path, source in templates:
            result = language.validate(
                source, template_type=template_type, params=params, definitions=definitions, file_name=path
            )
            if not result.ok:
                failures.append(_problems_text(path, result))
                continue
            if result.template_type == "equivalence":
                document = dict(result.document)
            else:
                # As Vitrage's add: substitute the parameters, then validate again (a value
                # given as a parameter can itself make the template invalid).
                document = language.resolve(result.document, params)
                again = language.validate(
                    document, template_type=result.template_type, definitions=definitions, file_name=path
                )
                if not again.ok:
                    failures.append(_problems_text(path, again))
                    continue
            ready.append((result, document))
        if failures:
            raise ApiError(400, "invalid template(s), nothing was added: " + " | ".join(failures))
        names = [result.name for result, _ in ready]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ApiError(409, f"the request adds several templates named {repeated}")
        return ready

    async def names_of(
        self, templates: list[tuple[str | None, Any]], template_type: str | None, params: dict[str, Any]
    ) -> list[str]:
        return [result.name for result, _ in await self._prepare(templates, template_type, params)]

    async def add(
        self, templates: list[tuple[str | None, Any]], template_type: str | None, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        ready = await self._prepare(templates, template_type, params)
        for result, _ in ready:
            if await self.store.get(result.name) is not None:
                raise ApiError(409, f"a template named {result.name!r} exists already; delete it or use overwrite")
        stored: list[StoredTemplate] = []
        for result, document in ready:
            try:
                stored.append(
                    await self.store.add(
                        result.name,
                        result.template_type,
                        str(result.version) if result.version is not None else None,
                        document,
                        {},
                        LOADING,
                        "Template validation is OK",
                    )
                )
            except DuplicateTemplate as exc:  # added meanwhile by another API server
                raise ApiError(409, str(exc)) from None
        await self.publish([self._load_event(template) for template in stored])
        return [template.summary() for template in stored]

    def _load_event(self, template: StoredTemplate) -> Event:
        return Event(
            f"template/{template.uuid}/load/{self._run}",
            TEMPLATES_DATASOURCE,
            EventAction.UPDATE,
            utc_now(),
            {
                "name": template.name,
                "uuid": template.uuid,
                "document": template.document,
                "params": {},
                "template_type": template.template_type,
            },
        )

    async def list(self) -> list[dict[str, Any]]:
        return [template.summary() for template in await self.store.list()]

    async def show(self, uuid_or_name: str) -> dict[str, Any]:
        template = await self.store.get(uuid_or_name)
        if template is None:
            raise ApiError(404, f"template {uuid_or_name!r} does not exist")
        return template.document

    async def delete(self, ids: list[str], missing_ok: bool = False) -> None:
        found: list[StoredTemplate] = []
        for identifier in ids:
            template = await self.store.get(identifier)
            if template is None:
                if missing_ok:
                    continue
                raise ApiError(404, f"template {identifier!r} does not exist")
            found.append(template)
        events = []
        for template in found:
            if template.status == ERROR:
                await self.store.set_status(template.uuid, DELETED)
                continue
            await self.store.set_status(template.uuid, DELETING)
            events.append(
                Event(
                    f"template/{template.uuid}/delete/{self._run}",
                    TEMPLATES_DATASOURCE,
                    EventAction.DELETE,
                    utc_now(),
                    {"name": template.name, "uuid": template.uuid},
                )
            )
        if events:
            await self.publish(events)

    async def load_all(self) -> int:
        """Publish every LOADING or ACTIVE template (a graph starting up loads them first)."""
        templates = await self.store.loadable()
        if templates:
            await self.publish([self._load_event(template) for template in templates])
        return len(templates)

    async def applied(self, results: Sequence[tuple[Event, str | None]]) -> None:
        """The graph applied template events (``error`` is why one was refused): record the outcome."""
        for event, error in results:
            template_uuid = event.payload.get("uuid")
            if not isinstance(template_uuid, str):
                continue
            if error is not None:
                await self._set_status(template_uuid, ERROR, error)
                log.error("the graph refused a template", extra={"template": event.payload.get("name"), "error": error})
            elif event.action is EventAction.DELETE:
                await self._set_status(template_uuid, DELETED)
            else:
                await self._set_status(template_uuid, ACTIVE)

    #: Longest wait between two attempts to record a template's status while the database is away.
    RETRY_MAX = 5.0

    async def _set_status(self, template_uuid: str, status: str, details: str | None = None) -> None:
        """Record the status, retrying while the database does not answer.

        The graph waits here (back-pressure, like its inputs that stay unacked
        while the event log cannot be written): a status left LOADING would
        hide from the operator that the template is active, or refused.
        """
        delay = 0.25
        failing = False
        while True:
            try:
                await self.store.set_status(template_uuid, status, details)
            except Exception as exc:
                if not failing:
                    log.warning(
                        "cannot record a template status; retrying until the database answers",
                        extra={"template": template_uuid, "status": status, "error": f"{type(exc).__name__}: {exc}"},
                    )
                    failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.RETRY_MAX)
                continue
            if failing:
                log.info("template status recorded after the database came back", extra={"template": template_uuid})
            return
