"""Who is asking: the identity headers python-vitrageclient sends without Keystone.

With ``--os-auth-type vitrage-noauth`` the client sends ``x-user-id``,
``x-project-id`` and ``x-roles``. The embedded mode listens on loopback and
trusts them; a request with none of them comes from the local operator, who
sees every tenant (that is what ``curl localhost:8999/v1/topology/`` expects).
A caller is an admin when its roles include ``admin`` (or, as in Vitrage, its
``x-user-name`` is ``admin``).
"""

from __future__ import annotations

from fastapi import Request

from vitrail.api.errors import ApiError
from vitrail.graph.queries import Viewer


def viewer_from(request: Request) -> Viewer:
    headers = request.headers
    project = headers.get("x-project-id") or headers.get("x-tenant-id")
    roles_header = headers.get("x-roles")
    user = headers.get("x-user-id") or headers.get("x-user")
    if project is None and roles_header is None and user is None:
        return Viewer()
    roles = frozenset(r.strip().lower() for r in (roles_header or "").split(",") if r.strip())
    is_admin = "admin" in roles or headers.get("x-user-name") == "admin"
    return Viewer(project_id=project, is_admin=is_admin, roles=roles)


def require_all_tenants(viewer: Viewer, all_tenants: bool) -> None:
    """``all_tenants`` needs the admin role (Vitrage's policy)."""
    if all_tenants and not viewer.is_admin:
        raise ApiError(403, "Authorization Failed: all_tenants needs the admin role")
