"""What a transformer turns an event into, and the interface transformers implement.

Transformers live with their datasources (``vitrail.datasources``); they are pure
functions of the event, so the processor can call them again on replay and get
the same result. This module is the contract between the two packages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from vitrail.graph.events import Event


class TransformError(ValueError):
    """The event cannot be turned into graph updates. The message names the field."""


@dataclass(slots=True)
class NeighborRef:
    """A vertex the entity is linked to, and the edge between them.

    The neighbour is created as a placeholder (``vitrage_is_placeholder``) with
    ``properties`` when it does not exist yet, and completed when its own
    datasource reports it.
    """

    category: str
    vitrage_type: str
    id: str
    label: str
    outgoing: bool
    """True: ``entity -[label]-> neighbour``; False: ``neighbour -[label]-> entity``."""
    properties: dict[str, Any] | None = None
    match: tuple[str, Any] | None = None
    """``(property, value)``: link to the existing vertex of this category and type whose
    property has that value (an alert naming a host by its address). Only when there is
    none does ``id`` name the neighbour (then created as a placeholder)."""
    vitrage_id: str | None = None
    """The neighbour's own ``vitrage_id`` (a reference an operator gave, e.g. a monitor target's
    entity): link to that vertex if it exists; no placeholder is made for it otherwise."""


@dataclass(slots=True)
class EntityUpdate:
    """The new state of one entity as its datasource sees it.

    ``neighbors`` is the complete set of edges this datasource asserts for the
    entity: edges it asserted before and no longer lists are removed. ``None``
    leaves the entity's edges as they are.

    A ``weak`` update describes an entity that belongs to another datasource
    (a static file naming a ``nova.host``): it creates the vertex when nobody
    else has, but never overwrites another datasource's properties.
    """

    category: str
    vitrage_type: str
    id: str
    properties: dict[str, Any]
    neighbors: list[NeighborRef] | None = None
    delete: bool = False
    weak: bool = False
    update_timestamp: str | None = None


class Transformer(Protocol):
    """Turns one event of a datasource into updates of the graph."""

    def transform(self, event: Event) -> list[EntityUpdate]:
        """Raise :class:`TransformError` when the payload is not usable."""
        ...
