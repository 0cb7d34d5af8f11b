"""What a loaded template is, whatever it was written in.

The template parser (versions 2 and 3 of Vitrage's language) produces these
objects; the evaluator only ever sees them. A scenario's condition is kept in
disjunctive normal form: an ``or`` of clauses, each clause an ``and`` of
relationships (some negated) over named template entities. Matching a clause
binds each of its entities to a vertex.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ActionKind(StrEnum):
    RAISE_ALARM = "raise_alarm"
    SET_STATE = "set_state"
    ADD_CAUSAL_RELATIONSHIP = "add_causal_relationship"
    MARK_DOWN = "mark_down"
    EXECUTE_MISTRAL = "execute_mistral"
    """Accepted (Vitrage templates use it) but Vitrail runs no workflows: it has no effect."""


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """A template entity: which vertices it stands for.

    ``properties`` must be equal (names already converted: ``category`` is
    ``vitrage_category``...). ``patterns`` come from Vitrage's ``property.regex``
    keys and, as in Vitrage, must match at the start of the value (``re.match``).
    """

    name: str
    properties: tuple[tuple[str, Any], ...] = ()
    patterns: tuple[tuple[str, str], ...] = ()
    _compiled: tuple[tuple[str, re.Pattern[str]], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        compiled = tuple((prop, re.compile(pattern)) for prop, pattern in self.patterns)
        object.__setattr__(self, "_compiled", compiled)

    def get(self, prop: str) -> Any:
        for name, value in self.properties:
            if name == prop:
                return value
        return None

    def matches(self, vertex: Any) -> bool:
        for name, value in self.properties:
            if vertex.get(name) != value:
                return False
        for name, pattern in self._compiled:
            actual = vertex.get(name)
            if not isinstance(actual, str) or pattern.match(actual) is None:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Relationship:
    """``source -[label]-> target`` between two template entities (``negated``: must not exist)."""

    source: str
    label: str
    target: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Clause:
    """One ``and`` of a condition in disjunctive normal form.

    ``entities`` are the template entities the clause binds: every entity of a
    positive relationship, plus standalone entities (a condition that is just
    ``host_alarm``). Negated relationships need at least one bound end.
    """

    entities: tuple[str, ...]
    positive: tuple[Relationship, ...] = ()
    negative: tuple[Relationship, ...] = ()


@dataclass(frozen=True, slots=True)
class AttrRef:
    """A value taken from a bound vertex when the action runs (v2 ``get_attr``)."""

    entity: str
    prop: str


@dataclass(frozen=True, slots=True)
class Action:
    """An action of a scenario.

    ``roles`` name the template entities the action is about: ``target`` for all,
    plus ``source`` (add_causal_relationship) and ``causing_alarm`` (raise_alarm).
    ``properties`` hold e.g. ``alarm_name``, ``severity``, ``state``; a value may be
    an :class:`AttrRef`.
    """

    kind: ActionKind
    roles: tuple[tuple[str, str], ...]
    properties: tuple[tuple[str, Any], ...] = ()

    def role(self, name: str) -> str | None:
        for role, entity in self.roles:
            if role == name:
                return entity
        return None

    def prop(self, name: str, default: Any = None) -> Any:
        for key, value in self.properties:
            if key == name:
                return value
        return default


@dataclass(frozen=True, slots=True)
class Scenario:
    """A condition and the actions taken while it holds. ``key`` is unique among loaded templates."""

    key: str
    clauses: tuple[Clause, ...]
    actions: tuple[Action, ...]
    entities: Mapping[str, EntitySpec]


class TemplateType(StrEnum):
    STANDARD = "standard"
    DEFINITION = "definition"
    EQUIVALENCE = "equivalence"


@dataclass(frozen=True, slots=True)
class Template:
    """A loaded template: its scenarios, plus where it came from (shown by the API).

    A ``definition`` template has no scenarios (standard v2 templates include its
    definitions by name); an ``equivalence`` template has ``equivalences``: classes
    of entity specs that stand for one another.
    """

    name: str
    version: int
    template_type: TemplateType
    description: str
    scenarios: tuple[Scenario, ...]
    document: Mapping[str, Any]
    equivalences: tuple[tuple[EntitySpec, ...], ...] = ()
