"""Request bodies and parameters, as python-vitrageclient 5.4.0 sends them.

The client sends every key (``null`` for unset ones), ``query`` as a JSON
*string*, and booleans as JSON booleans in bodies but as ``True``/``False`` in
query strings: :data:`Flag` accepts all of those.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from vitrail.api.errors import ApiError
from vitrail.graph.events import EventError, normalize_timestamp

_TRUE = frozenset({"true", "1", "yes", "y", "on", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "off", "f", ""})


def _flag(value: Any) -> Any:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueError(f"expected a boolean (true or false), got {value!r}")


Flag = Annotated[bool, BeforeValidator(_flag)]


def parse_time(value: str | None, parameter: str) -> datetime | None:
    """An ISO-8601 query parameter (naive means UTC), or 422 naming ``parameter``; empty means none."""
    if value is None or value == "":
        return None
    try:
        return datetime.fromisoformat(normalize_timestamp(value, parameter))
    except EventError as exc:
        raise ApiError(422, str(exc)) from None


QueryText = str | dict[str, Any] | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TopologyBody(_Body):
    depth: int | None = Field(None, ge=0, description="How many hops from the root (with `root`, or for a tree).")
    graph_type: Literal["graph", "tree"] | None = Field("graph", description="`graph` (node-link) or `tree`.")
    query: QueryText = Field(None, description="A Vitrage query expression (JSON object or string).")
    root: str | None = Field(None, description="vitrage_id of the vertex to start from (default: the cluster).")
    all_tenants: Flag = Field(False, description="Every project's entities (admin only).")


class ResourceListBody(_Body):
    resource_type: str | None = Field(None, description="Only resources of this vitrage_type.")
    all_tenants: Flag = False
    query: QueryText = None


class ResourceCountBody(ResourceListBody):
    group_by: str | None = Field(None, description="Property to count by (default vitrage_type).")
