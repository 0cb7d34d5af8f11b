"""A validated template document → Vitrail's template model (:mod:`vitrail.evaluator.model`).

What Vitrage does when it loads a template, and the model keeps:

* entity properties are matched as the strings written, with Vitrage's key
  renames (``category`` → ``vitrage_category``, ``type`` → ``vitrage_type``,
  ...); ``<property>.regex`` keys become patterns (``re.match``: anchored at
  the start only);
* a condition is an ``or`` of clauses (its DNF); a clause binds the ends of
  its positive relationships and its standalone entities;
* an action without a target (``execute_mistral``) acts on the entity common
  to all the clauses (Vitrage picks any; Vitrail the smallest name);
* an action property written ``get_attr(entity, property)`` is read from the
  matched vertex when the action runs (:class:`AttrRef`); v3's
  ``causing_alarm: x`` is the role ``causing_alarm``.

Anything Vitrage accepts here but that cannot work as written is reported as a
warning through the :class:`Report` (never an error: Vitrage accepts it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from vitrail.evaluator.model import (
    Action,
    ActionKind,
    AttrRef,
    Clause,
    EntitySpec,
    Relationship,
    Scenario,
    Template,
    TemplateType,
)
from vitrail.evaluator.templates import conditions, v2, v3
from vitrail.evaluator.templates.problems import Path, Report

#: Template keys Vitrage renames before matching them against vertex properties.
PROPS_CONVERSION = {
    "category": "vitrage_category",
    "type": "vitrage_type",
    "resource_id": "vitrage_resource_id",
    "sample_timestamp": "vitrage_sample_timestamp",
    "is_deleted": "vitrage_is_deleted",
    "is_placeholder": "vitrage_is_placeholder",
    "aggregated_state": "vitrage_aggregated_state",
    "operational_state": "vitrage_operational_state",
    "aggregated_severity": "vitrage_aggregated_severity",
    "operational_severity": "vitrage_operational_severity",
}
REGEX_SUFFIX = ".regex"
_SPLIT = re.compile(r"[(),]")

Ends = tuple[str, str, str]  # source, label, target


def entity_spec(name: str, written: Mapping[str, Any], report: Report, path: Path) -> EntitySpec:
    """An entity as written → an :class:`EntitySpec` (keys renamed, ``.regex`` keys as patterns)."""
    properties: dict[str, Any] = {}
    patterns: dict[str, str] = {}
    for key, value in written.items():
        if key.lower().endswith(REGEX_SUFFIX):
            patterns[key[: -len(REGEX_SUFFIX)]] = value
            continue
        if isinstance(value, list):
            report.warn((*path, key), "a list value matches any of its items in Vitrage; Vitrail never matches it")
        properties[PROPS_CONVERSION.get(key, key)] = value
    return EntitySpec(name, tuple(sorted(properties.items())), tuple(sorted(patterns.items())))


def action_value(value: Any, entities: Mapping[str, Any], report: Report, path: Path, functions: bool) -> Any:
    """An action property as the evaluator will use it: ``get_attr(x, p)`` → :class:`AttrRef`.

    Vitrage evaluates every value that looks like ``name(...)`` when the action
    runs; only ``get_attr`` with two arguments works (wrong arguments give
    None, another name makes Vitrage's evaluator fail), and not in v1.
    """
    if isinstance(value, dict):
        return tuple(
            (key, action_value(item, entities, report, (*path, key), functions)) for key, item in value.items()
        )
    if not isinstance(value, str) or not v3.is_function(value):
        return value
    parts = _SPLIT.split(value)
    name = parts.pop(0)
    args = [arg.strip() for arg in parts if len(arg) > 0]
    if name != "get_attr" or not functions:
        report.warn(path, f"{value!r} looks like a function call, which Vitrage cannot run; Vitrail keeps the text")
        return value
    if len(args) != 2:
        report.warn(path, f"{value!r}: get_attr takes an entity and a property; the value will be empty")
        return None
    if args[0] not in entities:
        report.warn(path, f"{value!r}: {args[0]!r} is not an entity of the scenario; the value will be empty")
    return AttrRef(args[0], args[1])


def _clause(literals: Iterable[conditions.Literal], relationships: Mapping[str, Ends], report: Report,
            path: Path) -> Clause:  # fmt: skip
    entities: dict[str, None] = {}
    positive: dict[Relationship, None] = {}
    negative: dict[Relationship, None] = {}
    for literal in literals:
        ends = relationships.get(literal.name)
        if ends is None:
            if not literal.positive:
                report.warn(path, f"Vitrage ignores 'not' on the entity {literal.name!r}; Vitrail does too")
            entities[literal.name] = None
            continue
        source, label, target = ends
        relationship = Relationship(source, label, target, negated=not literal.positive)
        if literal.positive:
            positive[relationship] = None
            entities[source] = entities[target] = None
        else:
            negative[relationship] = None
    for relationship in negative:
        if relationship.source not in entities and relationship.target not in entities:
            report.warn(
                path,
                f"'not {relationship.source} [{relationship.label}] {relationship.target}' shares no entity with "
                "the rest of its clause: it is ignored",
            )
    return Clause(tuple(entities), tuple(positive), tuple(negative))


def _scenario(
    key: str,
    found: list[list[conditions.Literal]],
    relationships: Mapping[str, Ends],
    specs: Mapping[str, EntitySpec],
    actions: list[Action],
    report: Report,
    path: Path,
) -> Scenario:
    clauses = tuple(_clause(literals, relationships, report, path) for literals in found)
    used: dict[str, None] = {}
    for clause in clauses:
        used.update(dict.fromkeys(clause.entities))
        for relationship in clause.negative:
            used[relationship.source] = used[relationship.target] = None
    for action in actions:
        used.update(dict.fromkeys(entity for _, entity in action.roles))
    return Scenario(key, clauses, tuple(actions), {name: specs[name] for name in used if name in specs})


def _default_target(found: list[list[conditions.Literal]], relationships: Mapping[str, Ends]) -> str:
    ends = {name: (source, target) for name, (source, _, target) in relationships.items()}
    return min(conditions.common_entities(found, ends))


# -- version 3 ---------------------------------------------------------------------------


def build_v3(document: Mapping[str, Any], report: Report) -> tuple[Scenario, ...]:
    written = document[v3.ENTITIES]
    specs = {name: entity_spec(name, props, report, (v3.ENTITIES, name)) for name, props in written.items()}
    name = document[v3.METADATA]["name"]
    scenarios = []
    for index, scenario in enumerate(document[v3.SCENARIOS]):
        path: Path = (v3.SCENARIOS, index)
        processed, found_relationships = conditions.v3_relationships(scenario[v3.CONDITION])
        found = conditions.dnf(processed) or []
        default = _default_target(found, found_relationships)
        actions = [
            _v3_action(item, default, specs, report, (*path, v3.ACTIONS, number))
            for number, item in enumerate(scenario[v3.ACTIONS])
        ]
        scenarios.append(
            _scenario(f"{name}#{index}", found, found_relationships, specs, actions, report, (*path, v3.CONDITION))
        )
    return tuple(scenarios)


def _v3_action(item: Mapping[str, Any], default: str, specs: Mapping[str, EntitySpec], report: Report,
               path: Path) -> Action:  # fmt: skip
    ((kind_name, written),) = item.items()
    kind = ActionKind(kind_name)
    path = (*path, kind_name)
    props = dict(written)
    roles = [("target", props.pop("target", default))]
    if props.get("source"):
        roles.append(("source", props.pop("source")))
    if "causing_alarm" in props:
        roles.append(("causing_alarm", props.pop("causing_alarm")))
    properties = tuple(
        (key, action_value(value, specs, report, (*path, key), functions=True)) for key, value in props.items()
    )
    return Action(kind, tuple(roles), properties)


# -- versions 1 and 2 ----------------------------------------------------------------------


def _v2_index(document: Mapping[str, Any], definitions: Mapping[str, Mapping[str, Any]]) -> tuple[
    dict[str, Mapping[str, Any]], dict[str, Ends]
]:  # fmt: skip
    """Entities and relationships by template id: the template's own first, then the included ones."""
    own = document.get(v2.DEFINITIONS) or {}
    included = [v2.find_definition(inc["name"], definitions) for inc in document.get(v2.INCLUDES) or []]
    sources = [own, *[(found or {}).get(v2.DEFINITIONS) or {} for found in included]]
    entities: dict[str, Mapping[str, Any]] = {}
    relationships: dict[str, Ends] = {}
    for section in sources:
        for item in section.get(v2.ENTITIES) or []:
            entity = item[v2.ENTITY]
            entities.setdefault(entity[v2.TEMPLATE_ID], entity)
    for section in sources:
        for item in section.get(v2.RELATIONSHIPS) or []:
            rel = item[v2.RELATIONSHIP]
            relationships.setdefault(rel[v2.TEMPLATE_ID], (rel["source"], rel[v2.RELATIONSHIP_TYPE], rel["target"]))
    return entities, relationships


def build_v2(
    document: Mapping[str, Any], version: str, definitions: Mapping[str, Mapping[str, Any]], report: Report
) -> tuple[Scenario, ...]:
    written, relationships = _v2_index(document, definitions)
    ignored = (v2.TEMPLATE_ID, "source", "target")
    specs = {
        name: entity_spec(name, {k: v for k, v in props.items() if k not in ignored}, report, (v2.DEFINITIONS,))
        for name, props in written.items()
    }
    name = document[v2.METADATA]["name"]
    scenarios = []
    for index, item in enumerate(document[v2.SCENARIOS]):
        scenario = item[v2.SCENARIO]
        path: Path = (v2.SCENARIOS, index, v2.SCENARIO)
        found = conditions.dnf(scenario["condition"]) or []
        default = _default_target(found, relationships)
        actions = [
            _v2_action(entry[v2.ACTION], version, default, specs, report, (*path, "actions", number, v2.ACTION))
            for number, entry in enumerate(scenario["actions"])
        ]
        scenarios.append(
            _scenario(f"{name}#{index}", found, relationships, specs, actions, report, (*path, "condition"))
        )
    return tuple(scenarios)


def _v2_action(action: Mapping[str, Any], version: str, default: str, specs: Mapping[str, EntitySpec],
               report: Report, path: Path) -> Action:  # fmt: skip
    kind = ActionKind(action[v2.ACTION_TYPE])
    targets = action.get(v2.ACTION_TARGET, {"target": default})
    roles = [(role, targets[role]) for role in ("target", "source") if role in targets]
    props = dict(action.get(v2.PROPERTIES) or {})
    if kind is ActionKind.EXECUTE_MISTRAL and version == "1":  # v1 writes the inputs next to the workflow
        workflow = props.pop("workflow")
        props = {"workflow": workflow, "input": props}
    functions = version != "1"
    properties = tuple(
        (key, action_value(value, specs, report, (*path, v2.PROPERTIES, key), functions))
        for key, value in props.items()
    )
    return Action(kind, tuple(roles), properties)


def build(
    document: Mapping[str, Any],
    template_type: str,
    version: str,
    definitions: Mapping[str, Mapping[str, Any]],
    report: Report,
) -> Template:
    """The model of a valid (and resolved) standard or definition template."""
    metadata = document["metadata"]
    kind = TemplateType(template_type)
    if kind is TemplateType.DEFINITION:
        scenarios: tuple[Scenario, ...] = ()
    elif version == "3":
        scenarios = build_v3(document, report)
    else:
        scenarios = build_v2(document, version, definitions, report)
    description = metadata.get("description")
    return Template(
        name=metadata["name"],
        version=int(version),
        template_type=kind,
        description=description if isinstance(description, str) else "",
        scenarios=scenarios,
        document=document,
    )
