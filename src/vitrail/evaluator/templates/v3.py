"""Validation of version 3 templates, step by step as Vitrage 15 does it.

Vitrage's steps, each stopping at its first error (Vitrail goes on and
reports everything, first what Vitrage would answer):

1. the shape of the whole document (voluptuous): codes 4, 60, 62, 64, 80,
   83, 84, 126, 128, 138, 10100-10107;
2. ``.regex`` entity properties must compile (47);
3. per scenario, the condition: brackets (85), unknown words (10200), NOT on
   an entity (86), unparsable (85), only negative terms (134);
4. parameters (161-163);
5. a trial load: every OR clause must share an entity (135).

Vitrage leaves a few shapes to crash on (no ``entities``; an ``entities``
that is not a mapping; an empty action item; a mistral input that is not
text); those are Vitrail crash codes (see :mod:`.codes`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from vitrail.evaluator.templates import codes, conditions, parameters
from vitrail.evaluator.templates import schema as s
from vitrail.evaluator.templates.problems import Path, Report

ENTITIES = "entities"
METADATA = "metadata"
SCENARIOS = "scenarios"
CONDITION = "condition"
ACTIONS = "actions"
VERSIONS = ("1", "2", "3")
TYPES = ("standard", "definition", "equivalence")
ACTION_TYPES = ("raise_alarm", "set_state", "add_causal_relationship", "mark_down", "execute_mistral")
_FUNCTION = re.compile(r".*\(.*\)")
_PARENS = re.compile(r"[(),]")


def is_function(value: str) -> bool:
    """Vitrage's ``is_function``: ``something(...)`` somewhere on the first line."""
    return _FUNCTION.match(value) is not None


def _proper_function(path: Path, value: Any) -> list[s.Invalid]:
    """Vitrage's ``IsProperFunction`` on a mistral input value (a non-string makes Vitrage crash)."""
    if not isinstance(value, str):
        return s.crash(codes.MISTRAL_INPUT_NOT_TEXT, path, f"expected text, got {type(value).__name__}")
    if _PARENS.search(value) and not is_function(value):
        return [s.Invalid(138, path)]
    return []


def document_schema(entity_ids: Iterable[str]) -> s.Validator:
    """Vitrage's ``SyntaxValidator`` schema; ``entity_ids`` are the keys of ``entities``."""
    ids = frozenset(entity_ids)

    def target(msg: int = 10101) -> s.Validator:
        return s.one_of(ids, msg)

    def action(name: str, *keys: s.Key) -> s.Validator:
        return s.mapping([s.Key(name, s.mapping(keys))])

    action_item = s.any_of(
        action(
            "raise_alarm",
            s.Key("severity", s.any_str, True, 126),
            s.Key("target", target(), True, 10100),
            s.Key("alarm_name", s.any_str, True, 10104),
            s.Key("causing_alarm", target(10107)),
        ),
        action("set_state", s.Key("state", s.any_str, True, 128), s.Key("target", target(), True, 10100)),
        action(
            "add_causal_relationship",
            s.Key("source", target(10103), True, 10102),
            s.Key("target", target(), True, 10100),
        ),
        action("mark_down", s.Key("target", target(), True, 10100)),
        action(
            "execute_mistral",
            s.Key("workflow", s.any_str, True, 10105),
            s.Key("input", s.mapping([s.Key(s.ANY_KEY, _proper_function)])),
        ),
    )
    scenario = s.mapping([s.Key(ACTIONS, s.sequence(action_item), True, 84), s.Key(CONDITION, s.any_str, True, 83)])
    metadata = s.mapping(
        [
            s.Key("version", s.one_of(VERSIONS, f"value must be one of {sorted(VERSIONS)}"), True, 63),
            s.Key("name", s.any_str, True, 60),
            s.Key("description", s.any_str),
            s.Key("type", s.one_of(TYPES, 64), True, 64),
        ]
    )
    return s.mapping(
        [
            s.Key(ENTITIES, s.mapping([s.Key(s.ANY_KEY, s.mapping([s.Key(s.ANY_KEY, s.any_str)]))]), True, 10000),
            s.Key(METADATA, metadata, True, 62),
            s.Key(SCENARIOS, s.sequence(scenario), True, 80),
            s.Key(parameters.PARAMETERS, parameters_schema()),
        ]
    )


def parameters_schema() -> s.Validator:
    """A parameter is a string, or a mapping with an optional description and default."""
    declared = s.mapping([s.Key("description", s.any_str), s.Key("default", s.any_str)])
    return s.mapping([s.Key(s.ANY_KEY, s.any_of(s.any_str, declared))])


def at(document: Any, path: Path) -> Any:
    """The value at ``path``, or None."""
    value = document
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _readable(error: s.Invalid, document: Any) -> str:
    """Details for people: which value is wrong, or which key is unknown."""
    if isinstance(error.msg, int):
        if error.error_type:  # an In(...) check failed on a present value
            value = at(document, error.path)
            return f"{value!r} is not an entity id" if error.msg in (10101, 10103, 10107) else repr(value)
        return ""
    if error.msg == "extra keys not allowed":
        return f"unknown key {error.path[-1]!r}"
    return str(error.msg)


def validate(document: dict[str, Any], report: Report, params: Mapping[str, Any] | None) -> None:
    """Check a version 3 template, recording every problem in ``report``."""
    entities = document.get(ENTITIES, {})
    well_formed = isinstance(entities, dict)
    ids = list(entities) if well_formed else []
    validator = document_schema(ids)
    if not well_formed:
        # Vitrage builds its schema from entities.keys(): anything but a mapping crashes it.
        report.crash(codes.UNUSABLE_VALUE, (ENTITIES,), f"entities must be a mapping, got {type(entities).__name__}")
        with s.shadowed():
            errors = [e for e in validator((), document) if e.path != (ENTITIES,)]
    else:
        try:
            errors = validator((), document)
        except s.SchemaCrash as crash:
            report.voluptuous(crash.error)
            with s.shadowed():
                errors = [e for e in validator((), document) if e.path != crash.error.path]
    for error in errors:
        report.voluptuous(error, readable=_readable(error, document))
    _content(document, report, params, ids if well_formed else None)


def _content(document: dict[str, Any], report: Report, params: Mapping[str, Any] | None, ids: list[str] | None) -> None:
    entities = document.get(ENTITIES) if ids is not None else {}
    for entity_id, entity in (entities or {}).items():
        if not isinstance(entity, dict):
            continue
        for key, value in entity.items():
            if key.lower().endswith(".regex"):
                try:
                    re.compile(value)
                except Exception as exc:  # Vitrage catches everything here (a non-string too)
                    report.custom(47, (ENTITIES, entity_id, key), f"{key},{value}", f"{key}: {exc}")
    scenarios = document.get(SCENARIOS)
    usable: dict[int, str] = {}
    for index, scenario in enumerate(scenarios if isinstance(scenarios, list) else []):
        condition = scenario.get(CONDITION) if isinstance(scenario, dict) else None
        if not isinstance(condition, str) or ids is None:
            continue
        where = (SCENARIOS, index, CONDITION)
        finding = conditions.check_v3_ids(condition, ids) or conditions.v3_shape_problem(condition)
        if finding is None:
            usable[index] = condition
        elif finding.crash:
            report.crash(codes.CONDITION_NOT_BOOLEAN, where, finding.details[-1])
        else:
            report.custom(finding.code, where, ",".join(finding.details), _condition_details(finding))
    check_parameters(document, report, params)
    _trial_load(document, report, usable, ids or [])


def _condition_details(finding: conditions.Finding) -> str:
    if finding.code == 10200:
        return "unknown: " + ", ".join(finding.details[1].split())
    if finding.code == 86:
        return f"'not' applied to the entity {finding.details[0]!r}"
    if finding.code == 134:
        return "every term is negated"
    return finding.details[-1] if len(finding.details) > 1 else ""


def check_parameters(document: dict[str, Any], report: Report, params: Mapping[str, Any] | None) -> None:
    """161/162/163 for every call that cannot be resolved (the same for v2 and v3)."""
    try:
        for error in parameters.check(document, params):
            readable = {161: f"{error.details!r} is not declared", 163: f"no value for {error.details!r}"}
            report.custom(error.code, error.path, error.details, readable.get(error.code, error.details))
    except parameters.NotWalkable as exc:
        report.crash(codes.UNUSABLE_VALUE, exc.path, "a list item that is not a mapping")
    except AttributeError as exc:
        report.crash(codes.PARAMETER_DEFAULT_UNUSABLE, (parameters.PARAMETERS,), str(exc))


def _trial_load(document: dict[str, Any], report: Report, usable: dict[int, str], ids: list[str]) -> None:
    """Vitrage's loader: relationships must join entities, OR clauses must share one (135)."""
    for index, condition in usable.items():
        where = (SCENARIOS, index, CONDITION)
        processed, relationships = conditions.v3_relationships(condition)
        strangers = sorted({end for rel in relationships.values() for end in (rel[0], rel[2]) if end not in ids})
        if strangers:
            report.crash(codes.CONDITION_NOT_BOOLEAN, where, f"not entities: {', '.join(strangers)}")
            continue
        try:
            found = conditions.dnf(processed)
        except conditions.ConditionError as exc:
            report.crash(codes.CONDITION_NOT_BOOLEAN, where, str(exc))
            continue
        if found is None:
            report.crash(codes.CONDITION_NOT_BOOLEAN, where, "not a boolean expression")
            continue
        ends: dict[str, tuple[str, ...]] = {name: (rel[0], rel[2]) for name, rel in relationships.items()}
        ends.update({name: (name,) for name in ids if name not in ends})
        symbols = {lit.name for clause in found for lit in clause}
        ends.update({name: () for name in symbols if name not in ends})  # Vitrage skips unknown symbols here
        if not conditions.common_entities(found, ends):
            report.custom(135, where, f"scenario {index},{processed}", "no entity is in every 'or' clause")
            continue
        actions = document[SCENARIOS][index].get(ACTIONS)
        for number, item in enumerate(actions if isinstance(actions, list) else []):
            if item == {}:
                report.crash(codes.EMPTY_ACTION, (SCENARIOS, index, ACTIONS, number), "the action item is empty")
        unknown = sorted(symbols - set(relationships) - set(ids))
        if unknown:  # Vitrage's subgraph builder fails on them
            report.crash(codes.CONDITION_NOT_BOOLEAN, where, f"unknown symbols: {', '.join(unknown)}")
