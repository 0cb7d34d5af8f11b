"""Validation of version 1 and 2 templates (and of definition templates), as Vitrage 15 does it.

Vitrage's v1/v2 pipeline has two passes, each stopping at its first error:

* **syntax** (description ``Template syntax validation``; the message is the
  code's text glued to voluptuous' text): sections, metadata, includes,
  definitions (entities, then relationships), scenarios and actions;
* **content** (``Template content validation``; the code's text, plus a
  template id for 3 and 86 and the entity for 132): metadata type (64),
  parameters (160-163), duplicate ids (2), regexes (47), includes (142),
  relationship ends (3), then per scenario its condition (85, 86, 3, 134,
  135) and its actions (124-133, 136, 137).

Vitrail runs both passes completely: the first problem is Vitrage's answer,
the rest what the author would meet next. Where Vitrage has a quirk that
*skips* an error (a malformed relationship or scenario item followed by a
valid one), the problem is reported but marked invisible to Vitrage, and
Vitrage's later failure on it is reproduced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from vitrail.evaluator.templates import codes, conditions, parameters
from vitrail.evaluator.templates import schema as s
from vitrail.evaluator.templates.problems import Path, Report
from vitrail.evaluator.templates.v3 import check_parameters, is_function, parameters_schema

DEFINITIONS = "definitions"
METADATA = "metadata"
SCENARIOS = "scenarios"
INCLUDES = "includes"
ENTITIES = "entities"
ENTITY = "entity"
RELATIONSHIPS = "relationships"
RELATIONSHIP = "relationship"
RELATIONSHIP_TYPE = "relationship_type"
TEMPLATE_ID = "template_id"
SCENARIO = "scenario"
ACTION = "action"
ACTION_TYPE = "action_type"
ACTION_TARGET = "action_target"
PROPERTIES = "properties"
CATEGORIES = ("RESOURCE", "ALARM")
ACTION_TYPES = ("set_state", "raise_alarm", "add_causal_relationship", "mark_down", "execute_mistral")
_TEMPLATE_ID = re.compile(r"_*[a-zA-Z]+\w*")
_PARENS = re.compile(r"[(),]")

_dict = s.of_type(dict, "dict")
_list = s.of_type(list, "list")


def _sections(with_includes: bool) -> s.Validator:
    return s.mapping(
        [
            s.Key(DEFINITIONS, _dict, not with_includes, 21),
            s.Key(METADATA, _dict, True, 62),
            s.Key(SCENARIOS, _list, True, 80),
            s.Key(INCLUDES, _list),
            s.Key(parameters.PARAMETERS, parameters_schema()),
        ]
    )


_DEFINITION_SECTIONS = s.mapping([s.Key(DEFINITIONS, _dict, True, 21), s.Key(METADATA, _dict, True, 62)])
_METADATA = s.mapping(
    [
        s.Key("version", s.any_str),
        s.Key("name", s.any_str, True, 60),
        s.Key("description", s.any_str),
        s.Key("type", s.any_str),
    ]
)
_INCLUDE = s.mapping([s.Key("name", s.any_str, True, 141)])
_DEFINITIONS = s.mapping([s.Key(ENTITIES, _list, True, 20), s.Key(RELATIONSHIPS, _list)])
_ENTITY_ITEM = s.mapping([s.Key(ENTITY, _dict, True, 46)])
_ENTITY = s.mapping(
    [
        s.Key("category", s.check(lambda v: str(v) in CATEGORIES, 45), True, 42),
        s.Key("type", s.any_str),
        s.Key(TEMPLATE_ID, s.check(lambda v: _TEMPLATE_ID.match(str(v)) is not None, 1), True, 41),
    ],
    extra=True,
)
_RELATIONSHIP_ITEM = s.mapping([s.Key(RELATIONSHIP, _dict, True, 101)])
_RELATIONSHIP = s.mapping(
    [
        s.Key("source", s.any_str, True, 102),
        s.Key("target", s.any_str, True, 103),
        s.Key(RELATIONSHIP_TYPE, s.any_str, True, 100),
        s.Key(TEMPLATE_ID, s.check(lambda v: _TEMPLATE_ID.match(str(v)) is not None, 1), True, 104),
    ]
)
_SCENARIO_ITEM = s.mapping([s.Key(SCENARIO, _dict, True, 82)])
_SCENARIO = s.mapping([s.Key("condition", s.any_str, True, 83), s.Key("actions", _list, True, 84)])
_ACTION_ITEM = s.mapping([s.Key(ACTION, _dict, True, 122)])
_ACTION = s.mapping(
    [
        s.Key(ACTION_TYPE, s.check(lambda v: str(v) in ACTION_TYPES, 120), True, 123),
        s.Key(PROPERTIES, _dict),
        s.Key(ACTION_TARGET, _dict),
    ]
)


class _Syntax:
    """Vitrage's ``template_syntax_validator``, reporting every error it can reach."""

    def __init__(self, report: Report) -> None:
        self.report = report
        #: Items whose content Vitrage's syntax pass never looked at (see :meth:`overwritten`).
        self.unchecked: set[Path] = set()

    def overwritten(self, count: int, base: Path) -> None:
        """Vitrage's quirk: a bad relationship or scenario item is forgotten when another item follows.

        Its result is overwritten by the next item's: Vitrage goes on as if
        it were fine, and its content pass either works (an extra key) or
        fails on it. So these problems are warnings, and the item is
        remembered for the content pass.
        """
        self.report.demote_last(count, "Vitrage overlooks this because another item follows")
        self.unchecked.add(base)

    def check(self, validator: s.Validator, value: Any, base: Path) -> int:
        """Run one of Vitrage's small schemas (paths in its messages are relative to ``value``).

        Returns the number of problems found (0: valid).
        """
        errors = validator((), value)
        for error in errors:
            if error.code not in codes.STATUS_MESSAGES:  # 100: Vitrage's KeyError on its own table
                self.report.crash(codes.V2_NO_RELATIONSHIP_TYPE, (*base, *error.path), "relationship_type is required")
            else:
                self.report.syntax(error, base)
        return len(errors)

    def template(self, document: dict[str, Any]) -> bool:
        """The whole syntax pass of a standard template; True if it passed."""
        before = len(self.report.problems)
        exception = document.get("exception")
        if exception:  # a test hook of Vitrage's, reachable by any template with this key
            if not isinstance(exception, str):
                self.report.crash(codes.UNUSABLE_VALUE, ("exception",), "'exception' must be text")
            else:
                self.report.add(5, ("exception",), exception, description=codes.SYNTAX,
                                vitrage_message=codes.STATUS_MESSAGES[5] + exception)  # fmt: skip
            return False
        has_includes = INCLUDES in document
        self.check(_sections(has_includes), document, ())
        metadata = document.get(METADATA)
        if isinstance(metadata, dict):
            self.check(_METADATA, metadata, (METADATA,))
        includes = document.get(INCLUDES)
        if has_includes and (isinstance(includes, list) or not includes):
            self.includes(includes)
        definitions = document.get(DEFINITIONS)
        if isinstance(definitions, dict):
            self.definitions(definitions, has_includes)
        scenarios = document.get(SCENARIOS)
        if isinstance(scenarios, list) or (SCENARIOS in document and not scenarios):
            self.scenarios(scenarios)
        return len(self.report.problems) == before

    def definition_template(self, document: dict[str, Any]) -> bool:
        """The syntax pass of a definition template; True if it passed."""
        before = len(self.report.problems)
        if INCLUDES in document or SCENARIOS in document:
            where = INCLUDES if INCLUDES in document else SCENARIOS
            self.report.syntax_code(143, (where,))
        self.check(_DEFINITION_SECTIONS, document, ())
        metadata = document.get(METADATA)
        if isinstance(metadata, dict):
            self.check(_METADATA, metadata, (METADATA,))
        definitions = document.get(DEFINITIONS)
        if isinstance(definitions, dict):
            self.definitions(definitions, False)
        return len(self.report.problems) == before

    def includes(self, includes: Any) -> None:
        if not includes:
            self.report.syntax_code(140, (INCLUDES,))
            return
        for index, include in enumerate(includes):
            for error in _INCLUDE((), include):
                code = error.code  # Vitrage shows only the code's text here: "Syntax error: " alone
                details = f"unknown key {error.path[-1]!r}" if error.msg == "extra keys not allowed" else ""
                self.report.syntax_code(code, (INCLUDES, index, *error.path), details)

    def definitions(self, definitions: dict[str, Any], has_includes: bool) -> None:
        relationships = definitions.get(RELATIONSHIPS)
        schema_applies = RELATIONSHIPS not in definitions or (relationships and not has_includes)
        if schema_applies and self.check(_DEFINITIONS, definitions, (DEFINITIONS,)):
            return
        if ENTITIES in definitions:
            self.entities(definitions[ENTITIES], has_includes)
            if relationships and isinstance(relationships, list | str | dict):  # Vitrage iterates any of these
                self.relationships(relationships)
            elif relationships:
                self.report.crash(codes.UNUSABLE_VALUE, (DEFINITIONS, RELATIONSHIPS), "expected a list")

    def entities(self, entities: Any, has_includes: bool) -> None:
        if not entities:
            if has_includes:  # Vitrage's loop never sets its result: UnboundLocalError
                self.report.crash(codes.UNUSABLE_VALUE, (DEFINITIONS, ENTITIES), "leave out an empty 'entities'")
            else:
                self.report.syntax_code(43, (DEFINITIONS, ENTITIES))
            return
        if not isinstance(entities, list | str | dict):
            self.report.crash(codes.UNUSABLE_VALUE, (DEFINITIONS, ENTITIES), "expected a list")  # Vitrage iterates it
            return
        for index, item in enumerate(entities):
            base = (DEFINITIONS, ENTITIES, index)
            if not self.check(_ENTITY_ITEM, item, base):
                self.check(_ENTITY, item[ENTITY], (*base, ENTITY))

    def relationships(self, relationships: list[Any] | str | dict[str, Any]) -> None:
        last = len(relationships) - 1
        for index, item in enumerate(relationships):
            base = (DEFINITIONS, RELATIONSHIPS, index)
            found = self.check(_RELATIONSHIP_ITEM, item, base)
            if not found:
                self.check(_RELATIONSHIP, item[RELATIONSHIP], (*base, RELATIONSHIP))
            elif index != last:
                self.overwritten(found, base)

    def scenarios(self, scenarios: Any) -> None:
        if not scenarios:
            self.report.syntax_code(81, (SCENARIOS,))
            return
        last = len(scenarios) - 1
        for index, item in enumerate(scenarios):
            base = (SCENARIOS, index)
            found = self.check(_SCENARIO_ITEM, item, base)
            if found:
                if index != last:
                    self.overwritten(found, base)
                continue
            scenario = item[SCENARIO]
            if not self.check(_SCENARIO, scenario, (*base, SCENARIO)):
                self.actions(scenario["actions"], (*base, SCENARIO, "actions"))

    def actions(self, actions: list[Any], base: Path) -> None:
        if not actions:
            self.report.syntax_code(121, base)
            return
        for index, item in enumerate(actions):
            if not self.check(_ACTION_ITEM, item, (*base, index)):
                self.check(_ACTION, item[ACTION], (*base, index, ACTION))


class _Content:
    """Vitrage's ``content_validation`` for v1/v2 and definition templates."""

    def __init__(
        self,
        report: Report,
        version: str,
        definitions: Mapping[str, Mapping[str, Any]],
        unchecked: set[Path] | None = None,
    ) -> None:
        self.report = report
        self.unchecked = unchecked or set()
        self.version = version
        self.def_templates = definitions
        self.entities: dict[Any, Any] = {}
        self.relationships: dict[Any, Any] = {}

    def fail(self, code: int, path: Path, details: str = "", extra: str | None = None) -> None:
        self.report.content(code, path, details, extra)

    def unknown_id(self, template_id: Any, path: Path, index: Mapping[Any, Any]) -> bool:
        """Vitrage's ``validate_template_id``: 3 with ``template id: <id>``; True when known."""
        try:
            known = template_id in index
        except TypeError:
            self.report.crash(codes.UNUSABLE_VALUE, path, f"{template_id!r} cannot be a template id")
            return False
        if not known:
            self.fail(3, path, f"{template_id!r} is not defined", f" template id: {template_id}")
        return known

    # -- the parts of a template --

    def metadata(self, metadata: Any) -> None:
        if not metadata:
            self.fail(62, (METADATA,))
        elif self.version == "2" and isinstance(metadata, dict):
            kind = metadata.get("type")
            if not kind:
                self.fail(64, (METADATA, "type"))
            elif kind not in ("standard", "definition", "equivalence"):
                self.fail(65, (METADATA, "type"), repr(kind))

    def parameters(self, document: dict[str, Any], params: Mapping[str, Any] | None) -> None:
        if self.version == "1":
            try:
                for path, call in parameters.calls(document):
                    self.report.custom(160, path, call)
            except parameters.NotWalkable as exc:
                self.report.crash(codes.UNUSABLE_VALUE, exc.path, "a list item that is not a mapping")
        else:
            check_parameters(document, self.report, params)

    def entity_definitions(self, entities: Any, base: Path) -> None:
        for index, item in enumerate(entities if isinstance(entities, list) else []):
            entity = item.get(ENTITY) if isinstance(item, dict) else None
            if isinstance(entity, dict):
                self.entity(entity, (*base, index, ENTITY))

    def entity(self, entity: dict[str, Any], path: Path) -> None:
        template_id = entity.get(TEMPLATE_ID)
        try:
            duplicate = template_id in self.entities
        except TypeError:
            self.report.crash(codes.UNUSABLE_VALUE, (*path, TEMPLATE_ID), "a template id must be text")
            return
        if duplicate:
            self.fail(2, (*path, TEMPLATE_ID), f"{template_id!r} is already defined")
            return
        for key, value in entity.items():
            if key.lower().endswith(".regex"):
                try:
                    re.compile(value)
                except Exception as exc:  # Vitrage catches everything (a non-string too)
                    self.fail(47, (*path, key), f"{key}: {exc}")
                    break  # still indexed below: references to it are not the problem
        self.entities[template_id] = entity

    def includes(self, includes: Any) -> None:
        for index, include in enumerate(includes if isinstance(includes, list) else []):
            name = include.get("name") if isinstance(include, dict) else None
            found = find_definition(name, self.def_templates)
            path = (INCLUDES, index, "name")
            if found is None:
                self.fail(142, path, f"no definition template named {name!r}")
                continue
            try:
                items = found[DEFINITIONS][ENTITIES]
                entities = [item[ENTITY] for item in items]
            except (KeyError, TypeError):
                self.report.crash(codes.BROKEN_DEFINITION_TEMPLATE, path, f"{name!r} has no usable entities")
                continue
            for entity in entities:
                self.entity(entity, path)

    def relationship_definitions(self, relationships: Any) -> None:
        if not isinstance(relationships, list):
            if relationships is None or relationships:  # Vitrage iterates it: only an empty one passes
                self.report.crash(codes.UNUSABLE_VALUE, (DEFINITIONS, RELATIONSHIPS), "expected a list")
            return
        for index, item in enumerate(relationships):
            item_path: Path = (DEFINITIONS, RELATIONSHIPS, index)
            relationship = item.get(RELATIONSHIP) if isinstance(item, dict) else None
            if not isinstance(relationship, dict):
                self.report.crash(codes.UNUSABLE_VALUE, item_path, "expected a 'relationship' mapping")
                continue
            missing = [k for k in (TEMPLATE_ID, "target", "source") if k not in relationship]
            if item_path in self.unchecked and missing:
                self.report.crash(codes.UNUSABLE_VALUE, item_path, f"the relationship has no {missing[0]}")
                continue
            if item_path not in self.unchecked and not all(
                isinstance(relationship.get(k), str) for k in ("source", "target", TEMPLATE_ID)
            ):
                continue  # the syntax pass reported it (Vitrage stops there)
            path = (*item_path, RELATIONSHIP)
            template_id = relationship.get(TEMPLATE_ID)
            if template_id in self.relationships or template_id in self.entities:
                self.fail(2, (*path, TEMPLATE_ID), f"{template_id!r} is already defined")
                continue
            if self.unknown_id(relationship.get("target"), (*path, "target"), self.entities) and self.unknown_id(
                relationship.get("source"), (*path, "source"), self.entities
            ):
                self.relationships[template_id] = relationship

    def included_relationships(self, includes: Any) -> None:
        for index, include in enumerate(includes if isinstance(includes, list) else []):
            name = include.get("name") if isinstance(include, dict) else None
            found = find_definition(name, self.def_templates)
            if found is None:
                continue
            path = (INCLUDES, index, "name")
            try:
                items = found[DEFINITIONS][RELATIONSHIPS]
                relationships = [item[RELATIONSHIP] for item in items]
            except (KeyError, TypeError):
                self.report.crash(codes.BROKEN_DEFINITION_TEMPLATE, path, f"{name!r} has no 'relationships' list")
                continue
            for relationship in relationships:
                template_id = relationship.get(TEMPLATE_ID)
                if template_id in self.relationships:
                    continue
                if self.unknown_id(relationship.get("target"), path, self.entities) and self.unknown_id(
                    relationship.get("source"), path, self.entities
                ):
                    self.relationships[template_id] = relationship

    # -- scenarios --

    def scenarios(self, scenarios: Any) -> None:
        index = dict(self.entities)
        index.update(self.relationships)
        for number, item in enumerate(scenarios if isinstance(scenarios, list) else []):
            path = (SCENARIOS, number)
            scenario = item.get(SCENARIO) if isinstance(item, dict) else None
            if not isinstance(scenario, dict):
                self.report.crash(codes.UNUSABLE_VALUE, path, "expected a 'scenario' mapping")
                continue
            if path in self.unchecked and not self.shape(scenario, (*path, SCENARIO)):
                continue
            condition = scenario.get("condition")
            if isinstance(condition, str):
                self.condition(condition, (*path, SCENARIO, "condition"), index)
            actions = scenario.get("actions")
            for position, action in enumerate(actions if isinstance(actions, list) else []):
                body = action.get(ACTION) if isinstance(action, dict) else None
                if isinstance(body, dict):
                    self.action(body, (*path, SCENARIO, "actions", position, ACTION), index)

    def shape(self, scenario: dict[str, Any], path: Path) -> bool:
        """A scenario the syntax pass skipped (a Vitrage quirk): what Vitrage's content pass trips on."""
        if "condition" not in scenario or "actions" not in scenario:
            self.report.crash(codes.UNUSABLE_VALUE, path, "a scenario needs a condition and actions")
            return False
        if not isinstance(scenario["condition"], str):
            self.fail(85, (*path, "condition"), "the condition must be text")
            return False
        actions = scenario["actions"]
        items = actions if isinstance(actions, list | dict | str) else None
        for position, item in enumerate(items if items is not None else [None]):
            body = item.get(ACTION) if isinstance(item, dict) else None
            if not isinstance(body, dict):
                self.report.crash(codes.UNUSABLE_VALUE, (*path, "actions", position), "a malformed action")
                return False
            kind = body.get(ACTION_TYPE)
            if kind is None or not all(isinstance(body.get(k, {}), dict) for k in (PROPERTIES, ACTION_TARGET)):
                self.report.crash(codes.UNUSABLE_VALUE, (*path, "actions", position), "a malformed action")
                return False
            if not isinstance(kind, str) or kind not in ACTION_TYPES:
                self.fail(120, (*path, "actions", position, ACTION, ACTION_TYPE), repr(kind))
                return False
        return True

    def condition(self, condition: str, path: Path, index: dict[Any, Any]) -> bool:
        """85, 86, 3, 134, 135 (in Vitrage's order); True when the condition is fine."""
        try:
            value = conditions.evaluate(conditions.vitrage_rewrite(condition))
            found = conditions.clauses(value)
        except conditions.ConditionError as exc:
            self.fail(85, path, str(exc).splitlines()[-1])
            return False
        if conditions.args_error(value) is not None:
            self.report.crash(codes.CONDITION_NOT_BOOLEAN, path, "the condition is not a boolean expression")
            return False
        for name in conditions.negated_names(value):
            definition = index.get(name)
            if not (isinstance(definition, dict) and definition.get(RELATIONSHIP_TYPE)):
                self.fail(86, path, f"'not' applied to {name!r}", f" template id: {name}")
                return False
        for token in conditions.v2_tokens(condition):
            if not self.unknown_id(token, path, index):
                return False
        if found is None:
            self.report.crash(codes.CONDITION_NOT_BOOLEAN, path, "the condition is not a boolean expression")
            return False
        if not conditions.has_positive(found):
            self.fail(134, path)
            return False
        ends: dict[str, tuple[Any, ...]] = {}
        for name in {lit.name for clause in found for lit in clause}:
            definition = index.get(name)
            if isinstance(definition, dict) and RELATIONSHIP_TYPE in definition:
                if "source" not in definition or "target" not in definition:
                    self.report.crash(codes.UNUSABLE_VALUE, path, f"{name!r} has a relationship_type but no ends")
                    return False
                ends[name] = (definition["source"], definition["target"])
            elif isinstance(definition, dict):
                ends[name] = (definition.get(TEMPLATE_ID),)
            else:
                ends[name] = ()
        if not conditions.common_entities(found, ends):
            self.fail(135, path, "no entity is in every 'or' clause")
            return False
        return True

    def action(self, action: dict[str, Any], path: Path, index: dict[Any, Any]) -> None:
        kind = action.get(ACTION_TYPE)
        target = action.get(ACTION_TARGET, {})
        properties = action.get(PROPERTIES, {})
        if kind not in ACTION_TYPES or not isinstance(target, dict) or not isinstance(properties, dict):
            return  # the syntax pass reported it (Vitrage stops there)
        if kind != "execute_mistral" and ACTION_TARGET not in action:
            self.fail(124, path)
            return
        if kind in ("raise_alarm", "set_state", "execute_mistral") and PROPERTIES not in action:
            self.report.crash(codes.V2_NO_PROPERTIES, path, f"{kind} needs a properties block")
            return
        if kind == "raise_alarm":
            if "alarm_name" not in properties:
                self.fail(125, (*path, PROPERTIES))
            elif "severity" not in properties:
                self.fail(126, (*path, PROPERTIES))
            elif "target" not in target:
                self.fail(127, (*path, ACTION_TARGET))
            else:
                self.unknown_id(target["target"], (*path, ACTION_TARGET, "target"), index)
        elif kind == "set_state":
            if "state" not in properties:
                self.fail(128, (*path, PROPERTIES))
            elif "target" not in target:
                self.fail(129, (*path, ACTION_TARGET))
            else:
                self.unknown_id(target["target"], (*path, ACTION_TARGET, "target"), index)
        elif kind == "mark_down":
            if "target" not in target:
                self.fail(131, (*path, ACTION_TARGET))
            else:
                self.unknown_id(target["target"], (*path, ACTION_TARGET, "target"), index)
        elif kind == "add_causal_relationship":
            self.causal(target, (*path, ACTION_TARGET), index)
        elif self.version == "1":
            self.mistral_v1(properties, (*path, PROPERTIES))
        else:
            self.mistral_v2(properties, (*path, PROPERTIES))

    def causal(self, target: dict[str, Any], path: Path, index: dict[Any, Any]) -> None:
        for key in ("target", "source"):
            if key not in target:
                self.fail(130, path)
                return
            if not self.unknown_id(target[key], (*path, key), index):
                return
            entity = index[target[key]]
            if not isinstance(entity, dict) or entity.get("category") != "ALARM":
                self.fail(132, (*path, key), f"{target[key]!r} is not an ALARM entity", f" expect {entity} to be ALARM")
                return

    def mistral_v1(self, properties: dict[str, Any], path: Path) -> None:
        if not properties.get("workflow"):
            self.fail(133, path)
            return
        for key, value in properties.items():
            if isinstance(value, dict):
                continue
            if not isinstance(value, str):
                self.report.crash(codes.MISTRAL_INPUT_NOT_TEXT, (*path, key), "expected text")
                return
            if is_function(value):
                self.fail(137, (*path, key), repr(value))
                return

    def mistral_v2(self, properties: dict[str, Any], path: Path) -> None:
        if not properties.get("workflow"):
            self.fail(133, path)
            return
        for key in properties:
            if key not in ("workflow", "input"):
                self.fail(136, (*path, key), f"move {key!r} under 'input'")
                return
        inputs = properties.get("input", {})
        if not isinstance(inputs, dict):
            self.report.crash(codes.MISTRAL_INPUT_NOT_TEXT, (*path, "input"), "input must be a mapping")
            return
        for key, value in inputs.items():
            if not isinstance(value, str):
                self.report.crash(codes.MISTRAL_INPUT_NOT_TEXT, (*path, "input", key), "expected text")
                return
            if _PARENS.search(value) and not is_function(value):
                self.report.warn(
                    (*path, "input", key), f"{value!r} has a parenthesis or a comma but is not a function call"
                )
                return


def find_definition(name: Any, definitions: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The definition template whose ``metadata.name`` is ``name`` (Vitrage's ``find_def_template``)."""
    for document in definitions.values():
        metadata = document.get(METADATA) if isinstance(document, Mapping) else None
        if isinstance(metadata, Mapping) and metadata.get("name") == name:
            return document
    return None


def validate(
    document: dict[str, Any],
    report: Report,
    version: str,
    params: Mapping[str, Any] | None,
    definitions: Mapping[str, Mapping[str, Any]],
) -> None:
    """Check a version 1 or 2 standard template, recording every problem in ``report``."""
    syntax = _Syntax(report)
    syntax.template(document)
    content = _Content(report, version, definitions, syntax.unchecked)
    content.metadata(document.get(METADATA))
    content.parameters(document, params)
    template_definitions = document.get(DEFINITIONS)
    if not isinstance(template_definitions, dict):
        template_definitions = {}
    content.entity_definitions(template_definitions.get(ENTITIES), (DEFINITIONS, ENTITIES))
    if INCLUDES in document:
        content.includes(document[INCLUDES])
    if RELATIONSHIPS in template_definitions:
        content.relationship_definitions(template_definitions[RELATIONSHIPS])
    if INCLUDES in document:
        content.included_relationships(document[INCLUDES])
    content.scenarios(document.get(SCENARIOS))


def validate_definition(document: dict[str, Any], report: Report, version: str) -> None:
    """Check a definition template (``type: definition``)."""
    passed = _Syntax(report).definition_template(document)
    if version == "3":
        if passed:  # Vitrage's v3 schema has no definitions validator: it crashes here
            report.crash(codes.V3_DEFINITION, (), "write definition templates in version 2")
        return
    definitions = document.get(DEFINITIONS)
    if not isinstance(definitions, dict):
        return
    content = _Content(report, version, {})
    if ENTITIES not in definitions:
        if passed:
            report.crash(codes.UNUSABLE_VALUE, (DEFINITIONS,), "a definition template needs entities")
        return
    content.entity_definitions(definitions[ENTITIES], (DEFINITIONS, ENTITIES))
    if RELATIONSHIPS in definitions:
        content.relationship_definitions(definitions[RELATIONSHIPS])
