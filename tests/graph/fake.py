"""A tiny datasource for graph tests: resources with an optional parent."""

from __future__ import annotations

from typing import Any

from vitrail.graph.events import Event, EventAction
from vitrail.graph.updates import EntityUpdate, NeighborRef, TransformError

FAKE = "fake"


class FakeTransformer:
    """payload: {"id", "type"?, "state"?, "parent"?, "label"?, "name"?}; parent is another fake id."""

    def transform(self, event: Event) -> list[EntityUpdate]:
        payload = event.payload
        entity_id = payload.get("id")
        if not isinstance(entity_id, str) or not entity_id:
            raise TransformError("payload.id is required")
        vtype = payload.get("type", "fake.node")
        neighbors = None
        if "parent" in payload:
            parent = payload["parent"]
            match = tuple(payload["match"]) if "match" in payload else None
            neighbors = (
                []
                if parent is None
                else [
                    NeighborRef("RESOURCE", "fake.node", parent, payload.get("label", "contains"), False, None, match)
                ]
            )
        props: dict[str, Any] = {"name": payload.get("name", entity_id), "state": payload.get("state")}
        if "address" in payload:
            props["address"] = payload["address"]
        return [
            EntityUpdate(
                "RESOURCE",
                vtype,
                entity_id,
                props,
                neighbors,
                delete=event.action is EventAction.DELETE,
                weak=bool(payload.get("weak")),
            )
        ]


def ts(n: int) -> str:
    """The n-th second of a fixed day, in Vitrail's timestamp format."""
    return f"2026-11-22 00:{n // 60 % 60:02d}:{n % 60:02d}.000000+00:00"


def snapshot(eid: str, entity: dict[str, Any], round_id: int, t: int, ds: str = FAKE) -> Event:
    return Event(eid, ds, EventAction.SNAPSHOT, ts(t), entity, round_id)


def update(eid: str, entity: dict[str, Any], t: int, ds: str = FAKE) -> Event:
    return Event(eid, ds, EventAction.UPDATE, ts(t), entity)


def delete(eid: str, entity_id: str, t: int, ds: str = FAKE) -> Event:
    return Event(eid, ds, EventAction.DELETE, ts(t), {"id": entity_id})


def round_end(eid: str, round_id: int, t: int, ds: str = FAKE) -> Event:
    return Event(eid, ds, EventAction.ROUND_END, ts(t), {}, round_id)
