"""What every endpoint module shares: dependencies and registration under both path forms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from vitrail.api.backend import GraphBackend
from vitrail.api.identity import viewer_from
from vitrail.api.responses import JSONBody
from vitrail.graph.queries import Viewer


def backend(request: Request) -> GraphBackend:
    return request.app.state.backend  # type: ignore[no-any-return]


Backend = Annotated[GraphBackend, Depends(backend)]
CurrentViewer = Annotated[Viewer, Depends(viewer_from)]


def registrar(router: APIRouter) -> Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]]:
    """``route(method, path)`` for ``router``: registers with and without the trailing slash
    (python-vitrageclient uses both forms, and Vitrage answers both)."""

    def route(method: str, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        bare = path.rstrip("/")

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            router.add_api_route(path, func, methods=[method], response_class=JSONBody, **kwargs)
            if bare and bare != path:
                router.add_api_route(
                    bare, func, methods=[method], response_class=JSONBody, include_in_schema=False, **kwargs
                )
            return func

        return register

    return route
