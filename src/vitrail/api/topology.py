"""The v1 endpoints of the topology and resources, and service/status/health."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from vitrail.api.backend import GraphBackend
from vitrail.api.errors import error_response
from vitrail.api.history import AtTime, answers
from vitrail.api.identity import require_all_tenants
from vitrail.api.routing import Backend, CurrentViewer, registrar
from vitrail.api.schemas import Flag, ResourceCountBody, ResourceListBody, TopologyBody
from vitrail.graph.queries import TopologyRequest, Viewer

router = APIRouter()
route = registrar(router)


# -- topology -------------------------------------------------------------------------


async def _topology(body: TopologyBody, backend: GraphBackend, viewer: Viewer, past: AtTime) -> Any:
    require_all_tenants(viewer, body.all_tenants)
    request = TopologyRequest(
        graph_type=body.graph_type or "graph",
        depth=body.depth,
        root=body.root,
        query=body.query,
        all_tenants=body.all_tenants,
    )
    if past is not None:
        with answers():
            return await past.history.topology(past.at, request, viewer)
    return await backend.topology(request, viewer)


@route("POST", "/v1/topology/", tags=["topology"], summary="The entity graph (as python-vitrageclient asks)")
async def post_topology(
    backend: Backend, viewer: CurrentViewer, body: Annotated[TopologyBody, Body()], past: AtTime
) -> Any:
    return await _topology(body, backend, viewer, past)


@route("GET", "/v1/topology/", tags=["topology"], summary="The entity graph (parameters in the query string)")
async def get_topology(
    backend: Backend, viewer: CurrentViewer, params: Annotated[TopologyBody, Query()], past: AtTime
) -> Any:
    return await _topology(params, backend, viewer, past)


# -- resources ------------------------------------------------------------------------


async def _resources(body: ResourceListBody, backend: GraphBackend, viewer: Viewer, past: AtTime) -> Any:
    require_all_tenants(viewer, body.all_tenants)
    if past is not None:
        with answers():
            return await past.history.resources(past.at, viewer, body.all_tenants, body.resource_type, body.query)
    return await backend.resources(viewer, body.all_tenants, body.resource_type, body.query)


@route("POST", "/v1/resources/", tags=["resources"], summary="List resources")
async def post_resources(
    backend: Backend, viewer: CurrentViewer, body: Annotated[ResourceListBody, Body()], past: AtTime
) -> Any:
    return await _resources(body, backend, viewer, past)


@route("GET", "/v1/resources/", tags=["resources"], summary="List resources (query string form)")
async def get_resources(
    backend: Backend, viewer: CurrentViewer, params: Annotated[ResourceListBody, Query()], past: AtTime
) -> Any:
    return await _resources(params, backend, viewer, past)


async def _resource_count(body: ResourceCountBody, backend: GraphBackend, viewer: Viewer, past: AtTime) -> Any:
    require_all_tenants(viewer, body.all_tenants)
    if past is not None:
        with answers():
            return await past.history.resource_count(
                past.at, viewer, body.all_tenants, body.resource_type, body.query, body.group_by
            )
    return await backend.resource_count(viewer, body.all_tenants, body.resource_type, body.query, body.group_by)


@route("POST", "/v1/resources/count/", tags=["resources"], summary="Count resources by a property")
async def post_resource_count(
    backend: Backend, viewer: CurrentViewer, body: Annotated[ResourceCountBody, Body()], past: AtTime
) -> Any:
    return await _resource_count(body, backend, viewer, past)


@route("GET", "/v1/resources/count/", tags=["resources"], summary="Count resources (query string form)")
async def get_resource_count(
    backend: Backend, viewer: CurrentViewer, params: Annotated[ResourceCountBody, Query()], past: AtTime
) -> Any:
    return await _resource_count(params, backend, viewer, past)


@route("GET", "/v1/resources/{vitrage_id}", tags=["resources"], summary="One resource")
async def show_resource(backend: Backend, viewer: CurrentViewer, vitrage_id: str, past: AtTime) -> Any:
    if past is not None:
        with answers():
            return await past.history.resource(past.at, vitrage_id, viewer)
    return await backend.resource(vitrage_id, viewer)


# -- service, status, health ------------------------------------------------------------


@route("GET", "/v1/service/", tags=["service"], summary="Vitrail processes and their roles")
async def list_services(backend: Backend) -> Any:
    return await backend.services()


@route("GET", "/v1/status/", tags=["service"], summary="Is the graph ready to answer?")
async def status(backend: Backend, detailed: Flag = False) -> Any:
    state = await backend.status()
    if not state.ready:
        return error_response(503, state.reason)
    body: dict[str, Any] = {"reason": "OK"}
    if detailed:
        body["details"] = state.details
    return body


@route("GET", "/healthcheck/", tags=["service"], summary="Liveness (no authentication)")
async def healthcheck() -> Any:
    return {"detailed": False, "reasons": ["OK"]}


@route("GET", "/", tags=["service"], summary="API versions")
async def versions(request: Request) -> Any:
    base = str(request.base_url).rstrip("/")
    return {
        "versions": [
            {
                "status": "CURRENT",
                "links": [{"rel": "self", "href": f"{base}/v1/"}],
                "id": "v1.0",
                "updated": "2015-11-29",
            }
        ]
    }
