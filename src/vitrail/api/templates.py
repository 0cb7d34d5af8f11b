"""Templates at run time: ``/v1/template/`` as python-vitrageclient 5.4.0 calls it.

validate is ``POST``, add is ``PUT``, delete is ``DELETE`` with a JSON body
``{"id": [...]}`` (uuids or names). The client sends each template as
``[path, document]`` with every scalar a string (it parses YAML with
BaseLoader); Vitrail also accepts the YAML text instead of the document, which
lets ``vitrail template validate`` report the line of every problem.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field

from vitrail.api.backend import TemplateManager
from vitrail.api.errors import ApiError
from vitrail.api.routing import registrar
from vitrail.api.schemas import Flag

router = APIRouter(tags=["templates"])
route = registrar(router)

VERSIONS = [
    {"version": "v1", "status": "SUPPORTED"},
    {"version": "v2", "status": "SUPPORTED"},
    {"version": "v3", "status": "CURRENT"},
]


class TemplatesBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    templates: list[tuple[str | None, dict[str, Any] | str]] = Field(
        ..., description="[path, template] pairs; the template as a document or as YAML text"
    )
    template_type: str | None = Field(None, description="standard, definition or equivalence, if not in metadata")
    params: dict[str, Any] | None = Field(None, description="values for the templates' get_param() calls")
    overwrite: Flag = Field(False, description="replace a template of the same name (add only)")


class DeleteBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: list[str] | str | None = None
    uuid: list[str] | str | None = None  # the older clients' key


def manager(request: Request) -> TemplateManager:
    found: TemplateManager | None = getattr(request.app.state, "templates", None)
    if found is None:
        raise ApiError(503, "templates are not available in this process")
    return found


@route("GET", "/v1/template/", summary="Templates (not deleted), oldest first")
async def list_templates(request: Request) -> Any:
    return await manager(request).list()


@route("GET", "/v1/template/versions", summary="Template language versions")
async def versions() -> Any:
    return VERSIONS


@route("GET", "/v1/template/{uuid_or_name}", summary="One template as stored (parameters resolved)")
async def show_template(request: Request, uuid_or_name: str) -> Any:
    return await manager(request).show(uuid_or_name)


@route("POST", "/v1/template/", summary="Validate templates (nothing is stored)")
async def validate_templates(request: Request, body: Annotated[TemplatesBody, Body()]) -> Any:
    results = await manager(request).validate(list(body.templates), body.template_type, body.params or {})
    return {"results": results}


@route("PUT", "/v1/template/", summary="Add templates; the graph is re-evaluated for them")
async def add_templates(request: Request, body: Annotated[TemplatesBody, Body()]) -> Any:
    templates = manager(request)
    if body.overwrite:
        names = await templates.names_of(list(body.templates), body.template_type, body.params or {})
        await templates.delete(names, missing_ok=True)
    return await templates.add(list(body.templates), body.template_type, body.params or {})


@route("DELETE", "/v1/template/", summary="Delete templates by uuid or name")
async def delete_templates(request: Request, body: Annotated[DeleteBody, Body()]) -> Any:
    ids = body.id if body.id is not None else body.uuid
    if ids is None:
        raise ApiError(422, "id: the uuids or names of the templates to delete are required")
    await manager(request).delete([ids] if isinstance(ids, str) else list(ids))
    return None
