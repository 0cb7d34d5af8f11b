"""Templates added at run time, and their lifecycle.

The API stores a template (LOADING, or ERROR when it is invalid: Vitrage keeps
those too, so an operator can see why), the graph loads it into the evaluator
and marks it ACTIVE. Deleting marks it DELETING, the evaluator unloads it, and
it becomes DELETED. A name is unique among templates that are not DELETED.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from vitrail.storage.models import templates

LOADING, ACTIVE, ERROR, DELETING, DELETED = "LOADING", "ACTIVE", "ERROR", "DELETING", "DELETED"
STATUSES = (LOADING, ACTIVE, ERROR, DELETING, DELETED)


class DuplicateTemplate(ValueError):
    """A template with this name exists (and is not deleted)."""


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    uuid: str
    name: str
    status: str
    status_details: str | None
    template_type: str
    version: str | None
    document: dict[str, Any]
    params: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def summary(self) -> dict[str, Any]:
        """What Vitrage's template list shows (its keys, ``status details`` with a space)."""
        return {
            "uuid": self.uuid,
            "name": self.name,
            "status": self.status,
            "status details": self.status_details,
            "date": self.created_at.isoformat(" ", "seconds"),
            "type": self.template_type,
        }


def _row(row: Any) -> StoredTemplate:
    return StoredTemplate(
        uuid=row.uuid,
        name=row.name,
        status=row.status,
        status_details=row.status_details,
        template_type=row.template_type,
        version=row.version,
        document=orjson.loads(row.document),
        params=orjson.loads(row.params) if row.params else {},
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class TemplateStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(
        self,
        name: str,
        template_type: str,
        version: str | None,
        document: dict[str, Any],
        params: dict[str, Any] | None,
        status: str,
        status_details: str | None,
    ) -> StoredTemplate:
        """Store a new template; :class:`DuplicateTemplate` when the name is taken."""
        if status not in STATUSES or status == DELETED:
            raise ValueError(f"a new template cannot be {status!r}")
        now = datetime.now(UTC)
        values = {
            "uuid": str(uuid.uuid4()),
            "name": name,
            "live_name": name,
            "status": status,
            "status_details": status_details,
            "template_type": template_type,
            "version": version,
            "document": orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode(),
            "params": orjson.dumps(params or {}, option=orjson.OPT_SORT_KEYS).decode(),
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self.engine.begin() as connection:
                await connection.execute(templates.insert().values(**values))
        except IntegrityError:
            raise DuplicateTemplate(f"a template named {name!r} exists already") from None
        found = await self.get(values["uuid"])
        assert found is not None
        return found

    async def list(self, include_deleted: bool = False) -> list[StoredTemplate]:
        """Templates in the order they were added (DELETED ones left out unless asked)."""
        query = select(templates).order_by(templates.c.created_at, templates.c.uuid)
        if not include_deleted:
            query = query.where(templates.c.status != DELETED)
        async with self.engine.connect() as connection:
            return [_row(r) for r in await connection.execute(query)]

    async def get(self, uuid_or_name: str) -> StoredTemplate | None:
        """A template that is not DELETED, by uuid or by name."""
        query = select(templates).where(
            ((templates.c.uuid == uuid_or_name) | (templates.c.live_name == uuid_or_name))
            & (templates.c.status != DELETED)
        )
        async with self.engine.connect() as connection:
            row = (await connection.execute(query)).first()
        return None if row is None else _row(row)

    async def set_status(self, template_uuid: str, status: str, details: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown template status {status!r}")
        values: dict[str, Any] = {"status": status, "updated_at": datetime.now(UTC)}
        if details is not None:
            values["status_details"] = details
        if status == DELETED:
            values["live_name"] = None  # the name can be used again
        async with self.engine.begin() as connection:
            await connection.execute(update(templates).where(templates.c.uuid == template_uuid).values(**values))

    async def loadable(self) -> list[StoredTemplate]:
        """The templates a graph starting up must load: LOADING and ACTIVE, oldest first."""
        return [t for t in await self.list() if t.status in (LOADING, ACTIVE)]
