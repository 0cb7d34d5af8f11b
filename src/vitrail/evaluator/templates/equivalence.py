"""Equivalence templates: entities from different sources that stand for one another.

::

    metadata:
      version: 2
      type: equivalence
      name: cpu alarms
    equivalences:
      - equivalence:
          - entity: {category: ALARM, type: nagios, name: cpu_high}
          - entity: {category: ALARM, type: vitrage, name: cpu_high}

Vitrage does **not** validate these (its API answers ``No Validation`` with
an empty status code, and stores whatever it got); a broken one makes its
scenario repository fail later. Vitrail keeps Vitrage's answer but reports
what is wrong as warnings, and loads only the classes that make sense.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vitrail.evaluator.model import EntitySpec
from vitrail.evaluator.templates.loader import PROPS_CONVERSION
from vitrail.evaluator.templates.problems import Report

EQUIVALENCES = "equivalences"
EQUIVALENCE = "equivalence"
ENTITY = "entity"


def _key(entity: Mapping[str, Any]) -> frozenset[tuple[str, Any]] | None:
    """Vitrage's identity of an equivalent entity: its converted properties as a set."""
    try:
        return frozenset((PROPS_CONVERSION.get(k, k), v) for k, v in entity.items())
    except TypeError:  # an unhashable value
        return None


def parse(document: Mapping[str, Any], report: Report) -> tuple[tuple[EntitySpec, ...], ...]:
    """The equivalence classes of ``document``; everything wrong becomes a warning in ``report``."""
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str):
        report.warn(("metadata", "name"), "an equivalence template needs a name")
    for section in document:
        if section not in ("metadata", EQUIVALENCES):
            report.warn((section,), f"{section!r} means nothing in an equivalence template")
    items = document.get(EQUIVALENCES)
    if not isinstance(items, list):
        report.warn((EQUIVALENCES,), "expected a list of equivalences; Vitrage fails to load this template")
        return ()
    classes: list[tuple[EntitySpec, ...]] = []
    owner: dict[frozenset[tuple[str, Any]], int] = {}
    for index, item in enumerate(items):
        members = item.get(EQUIVALENCE) if isinstance(item, Mapping) else None
        if not isinstance(members, list):
            report.warn((EQUIVALENCES, index), "expected {equivalence: [...]}; Vitrage fails to load this template")
            continue
        specs: list[EntitySpec] = []
        seen: set[frozenset[tuple[str, Any]]] = set()
        for number, member in enumerate(members):
            path = (EQUIVALENCES, index, EQUIVALENCE, number)
            entity = member.get(ENTITY) if isinstance(member, Mapping) else None
            key = _key(entity) if isinstance(entity, Mapping) else None
            if key is None:
                report.warn(path, "expected {entity: {property: value, ...}}; Vitrage fails to load this template")
                continue
            if key in seen:
                report.warn(path, "the same entity twice in one equivalence; Vitrage fails to load this template")
                continue
            if key in owner:
                report.warn(
                    path, f"the entity is already in equivalence {owner[key]}; Vitrage fails to load this template"
                )
                continue
            seen.add(key)
            owner[key] = index
            specs.append(EntitySpec(f"{index}.{number}", tuple(sorted(key, key=lambda kv: kv[0]))))
        if len(specs) < 2:
            report.warn((EQUIVALENCES, index), "an equivalence needs at least two entities to mean anything")
        if specs:
            classes.append(tuple(specs))
    return tuple(classes)
