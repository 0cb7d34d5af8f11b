"""Version 1 and 2 templates (and definition templates): one test per Vitrage status code.

As for version 3, each case changes one thing in a valid template and states
Vitrage 15's answer (checked against Vitrage's own validator): syntax errors
are the code's text glued to voluptuous' text, content errors the code's text
(plus the template id for 3 and 86, the entity for 132).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from vitrail.evaluator.templates import codes, load, validate

BASE: dict[str, Any] = {
    "metadata": {"version": "2", "name": "base2", "type": "standard"},
    "definitions": {
        "entities": [
            {"entity": {"category": "ALARM", "type": "zabbix", "template_id": "alarm"}},
            {"entity": {"category": "RESOURCE", "type": "nova.host", "template_id": "host"}},
            {"entity": {"category": "RESOURCE", "type": "nova.instance", "template_id": "instance"}},
            {"entity": {"category": "ALARM", "type": "vitrage", "name": "deduced", "template_id": "deduced"}},
        ],
        "relationships": [
            {
                "relationship": {
                    "source": "alarm",
                    "target": "host",
                    "relationship_type": "on",
                    "template_id": "alarm_on_host",
                }
            },
            {
                "relationship": {
                    "source": "host",
                    "target": "instance",
                    "relationship_type": "contains",
                    "template_id": "host_contains_instance",
                }
            },
        ],
    },
    "scenarios": [
        {
            "scenario": {
                "condition": "alarm_on_host and host_contains_instance",
                "actions": [
                    {
                        "action": {
                            "action_type": "raise_alarm",
                            "properties": {"alarm_name": "deduced", "severity": "WARNING"},
                            "action_target": {"target": "instance"},
                        }
                    },
                    {
                        "action": {
                            "action_type": "set_state",
                            "properties": {"state": "SUBOPTIMAL"},
                            "action_target": {"target": "host"},
                        }
                    },
                    {
                        "action": {
                            "action_type": "add_causal_relationship",
                            "action_target": {"source": "alarm", "target": "deduced"},
                        }
                    },
                    {"action": {"action_type": "mark_down", "action_target": {"target": "host"}}},
                    {
                        "action": {
                            "action_type": "execute_mistral",
                            "properties": {"workflow": "wf", "input": {"name": "get_attr(host, name)"}},
                        }
                    },
                ],
            }
        }
    ],
}

DEFINITION: dict[str, Any] = {
    "metadata": {"version": "2", "name": "shared", "type": "definition"},
    "definitions": {
        "entities": [
            {"entity": {"category": "RESOURCE", "type": "nova.zone", "template_id": "zone"}},
            {"entity": {"category": "ALARM", "type": "nagios", "template_id": "zone_alarm"}},
        ],
        "relationships": [
            {
                "relationship": {
                    "source": "zone_alarm",
                    "target": "zone",
                    "relationship_type": "on",
                    "template_id": "zone_alarm_on_zone",
                }
            }
        ],
    },
}
DEFINITIONS = {"shared": DEFINITION}
DEFINITIONS_FOR_ORACLE = (DEFINITION,)


def changed(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    change(document)
    return document


def entity(document: dict[str, Any], index: int) -> dict[str, Any]:
    return document["definitions"]["entities"][index]["entity"]


def relationship(document: dict[str, Any], index: int) -> dict[str, Any]:
    return document["definitions"]["relationships"][index]["relationship"]


def scenario(document: dict[str, Any]) -> dict[str, Any]:
    return document["scenarios"][0]["scenario"]


def action(document: dict[str, Any], index: int) -> dict[str, Any]:
    return scenario(document)["actions"][index]["action"]


def condition(text: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        scenario(document)["condition"] = text

    return change


def as_v1(document: dict[str, Any]) -> None:
    document["metadata"].pop("version")
    document["metadata"].pop("type")
    document["scenarios"][0]["scenario"]["actions"].pop(4)


SYNTAX, CONTENT = codes.SYNTAX, codes.CONTENT
CASES: list[tuple[str, Callable[[dict[str, Any]], Any], str | None, int, str, str]] = [
    (
        "1-bad-template-id",
        lambda d: entity(d, 0).__setitem__("template_id", "1abc"),
        None,
        1,
        SYNTAX,
        "template_id field contains incorrect string value.1 for dictionary value @ data['template_id']",
    ),
    (
        "2-duplicate-entity",
        lambda d: entity(d, 2).__setitem__("template_id", "host"),
        None,
        2,
        CONTENT,
        "Duplicate template_id definition.",
    ),
    (
        "2-relationship-named-like-an-entity",
        lambda d: relationship(d, 0).__setitem__("template_id", "host"),
        None,
        2,
        CONTENT,
        "Duplicate template_id definition.",
    ),
    (
        "3-unknown-id-in-condition",
        condition("alarm_on_host and hostx"),
        None,
        3,
        CONTENT,
        "template_id does not appear in the definition block. template id: hostx",
    ),
    (
        "3-upper-case-AND",
        condition("alarm_on_host AND host_contains_instance"),
        None,
        3,
        CONTENT,
        "template_id does not appear in the definition block. template id: AND",
    ),
    (
        "3-unknown-action-target",
        lambda d: action(d, 3)["action_target"].__setitem__("target", "nowhere"),
        None,
        3,
        CONTENT,
        "template_id does not appear in the definition block. template id: nowhere",
    ),
    (
        "4-extra-top-level-key",
        lambda d: d.__setitem__("entities", {}),
        None,
        4,
        SYNTAX,
        "Syntax error: extra keys not allowed @ data['entities']",
    ),
    (
        "4-includes-without-value",
        lambda d: d.__setitem__("includes", ""),
        None,
        4,
        SYNTAX,
        "Syntax error: expected list for dictionary value @ data['includes']",
    ),
    ("5-exception-key", lambda d: d.__setitem__("exception", "boom"), None, 5, SYNTAX, "Invalid yaml format: boom"),
    (
        "20-no-entities",
        lambda d: d["definitions"].pop("entities"),
        None,
        20,
        SYNTAX,
        "definitions section must contain entities field.20 @ data['entities']",
    ),
    (
        "21-no-definitions",
        lambda d: d.pop("definitions"),
        None,
        21,
        SYNTAX,
        "definitions section is a mandatory section.21 @ data['definitions']",
    ),
    (
        "41-no-template-id",
        lambda d: entity(d, 1).pop("template_id"),
        None,
        41,
        SYNTAX,
        "Entity definition must contain template_id field.41 @ data['template_id']",
    ),
    (
        "42-no-category",
        lambda d: entity(d, 1).pop("category"),
        None,
        42,
        SYNTAX,
        "Entity definition must contain category field.42 @ data['category']",
    ),
    (
        "43-empty-entities",
        lambda d: (d["definitions"].__setitem__("entities", []), d["definitions"].pop("relationships")),
        None,
        43,
        SYNTAX,
        "At least one entity must be defined.",
    ),
    (
        "45-lower-case-category",
        lambda d: entity(d, 0).__setitem__("category", "alarm"),
        None,
        45,
        SYNTAX,
        "Invalid entity category. Category must be from types: ['RESOURCE', 'ALARM']"
        "45 for dictionary value @ data['category']",
    ),
    (
        "46-entity-key-missing",
        lambda d: d["definitions"]["entities"][1].__setitem__("entity", "host"),
        None,
        4,
        SYNTAX,
        "Syntax error: expected dict for dictionary value @ data['entity']",
    ),
    (
        "47-bad-regex",
        lambda d: entity(d, 0).__setitem__("rawtext.regex", "\\w+ c("),
        None,
        47,
        CONTENT,
        "Invalid regular expression defined in field:",
    ),
    (
        "60-no-name",
        lambda d: d["metadata"].pop("name"),
        None,
        60,
        SYNTAX,
        "metadata section must contain id field.60 @ data['name']",
    ),
    (
        "4-v1-id-in-metadata",
        lambda d: d["metadata"].__setitem__("id", "old"),
        None,
        4,
        SYNTAX,
        "Syntax error: extra keys not allowed @ data['id']",
    ),
    (
        "64-no-type",
        lambda d: d["metadata"].pop("type"),
        "standard",
        64,
        CONTENT,
        "metadata section must contain a type field starting from version 2. "
        "Type must be one of: ['standard', 'definition', 'equivalence']",
    ),
    (
        "80-no-scenarios",
        lambda d: d.pop("scenarios"),
        None,
        80,
        SYNTAX,
        "scenarios is a mandatory section.80 @ data['scenarios']",
    ),
    (
        "81-empty-scenarios",
        lambda d: d.__setitem__("scenarios", []),
        None,
        81,
        SYNTAX,
        "At least one scenario must be defined.",
    ),
    (
        "82-scenario-key-missing",
        lambda d: d["scenarios"].__setitem__(0, {"scene": {}}),
        None,
        4,
        SYNTAX,
        "Syntax error: extra keys not allowed @ data['scene']",
    ),
    (
        "83-no-condition",
        lambda d: scenario(d).pop("condition"),
        None,
        83,
        SYNTAX,
        "Scenario definition must contain condition field.83 @ data['condition']",
    ),
    (
        "84-no-actions",
        lambda d: scenario(d).pop("actions"),
        None,
        84,
        SYNTAX,
        "Scenario definition must contain actions field.84 @ data['actions']",
    ),
    ("85-unbalanced", condition("(alarm_on_host"), None, 85, CONTENT, "Failed to convert condition."),
    (
        "86-not-on-entity",
        condition("alarm_on_host and not instance"),
        None,
        86,
        CONTENT,
        "Not operator can be used only on relationships. template id: instance",
    ),
    (
        "101-relationship-key-missing",
        lambda d: d["definitions"]["relationships"].append({"rel": {}}),
        None,
        4,
        SYNTAX,
        "Syntax error: extra keys not allowed @ data['rel']",
    ),
    (
        "102-no-source",
        lambda d: relationship(d, 0).pop("source"),
        None,
        102,
        SYNTAX,
        "Relationship definition must contain source field.102 @ data['source']",
    ),
    (
        "103-no-target",
        lambda d: relationship(d, 0).pop("target"),
        None,
        103,
        SYNTAX,
        "Relationship definition must contain target field.103 @ data['target']",
    ),
    (
        "104-no-template-id",
        lambda d: relationship(d, 0).pop("template_id"),
        None,
        104,
        SYNTAX,
        "Relationship definition must contain template_id field.104 @ data['template_id']",
    ),
    (
        "120-unknown-action-type",
        lambda d: action(d, 3).__setitem__("action_type", "reboot"),
        None,
        120,
        SYNTAX,
        "Invalid action type. Action type must be from types: "
        "['set_state', 'raise_alarm', 'add_causal_relationship', 'mark_down', 'execute_mistral']"
        "120 for dictionary value @ data['action_type']",
    ),
    (
        "121-empty-actions",
        lambda d: scenario(d).__setitem__("actions", []),
        None,
        121,
        SYNTAX,
        "At least one action must be defined.",
    ),
    (
        "122-action-key-missing",
        lambda d: scenario(d)["actions"].append({}),
        None,
        122,
        SYNTAX,
        "Action field is required.122 @ data['action']",
    ),
    (
        "123-no-action-type",
        lambda d: action(d, 3).pop("action_type"),
        None,
        123,
        SYNTAX,
        "Action definition must contain action_type field.123 @ data['action_type']",
    ),
    (
        "124-no-action-target",
        lambda d: action(d, 1).pop("action_target"),
        None,
        124,
        CONTENT,
        "Action definition must contain action_target field.",
    ),
    (
        "125-no-alarm-name",
        lambda d: action(d, 0)["properties"].pop("alarm_name"),
        None,
        125,
        CONTENT,
        "raise_alarm action must contain alarm_name field in properties block.",
    ),
    (
        "126-no-severity",
        lambda d: action(d, 0)["properties"].pop("severity"),
        None,
        126,
        CONTENT,
        "raise_alarm action must contain severity field in properties block.",
    ),
    (
        "127-raise-alarm-no-target",
        lambda d: action(d, 0).__setitem__("action_target", {}),
        None,
        127,
        CONTENT,
        "raise_alarm action must contain target field in target_action block",
    ),
    (
        "128-no-state",
        lambda d: action(d, 1)["properties"].pop("state"),
        None,
        128,
        CONTENT,
        "set_state action must contain state field in properties block.",
    ),
    (
        "129-set-state-no-target",
        lambda d: action(d, 1).__setitem__("action_target", {}),
        None,
        129,
        CONTENT,
        "set_state action must contain target field in target_action block.",
    ),
    (
        "130-causal-no-source",
        lambda d: action(d, 2)["action_target"].pop("source"),
        None,
        130,
        CONTENT,
        "add_causal_relationship action must contain target and source field in target_action block.",
    ),
    (
        "131-mark-down-no-target",
        lambda d: action(d, 3).__setitem__("action_target", {}),
        None,
        131,
        CONTENT,
        "mark_down action must contain 'target' field in 'target_action' block.",
    ),
    (
        "132-causal-to-a-resource",
        lambda d: action(d, 2)["action_target"].__setitem__("target", "host"),
        None,
        132,
        CONTENT,
        "add_causal_relationship action requires action_target to be ALARM expect "
        "{'category': 'RESOURCE', 'type': 'nova.host', 'template_id': 'host'} to be ALARM",
    ),
    (
        "133-no-workflow",
        lambda d: action(d, 4)["properties"].pop("workflow"),
        None,
        133,
        CONTENT,
        "execute_mistral action must contain workflow field in properties block",
    ),
    (
        "134-only-not",
        condition("not alarm_on_host"),
        None,
        134,
        CONTENT,
        "condition can not contain only 'not' clauses",
    ),
    (
        "135-no-common-entity",
        condition("alarm_on_host or instance"),
        None,
        135,
        CONTENT,
        "condition must contain a common entity for all 'or' clauses",
    ),
    (
        "136-mistral-inputs-outside-input",
        lambda d: action(d, 4)["properties"].__setitem__("retries", "5"),
        None,
        136,
        CONTENT,
        "Input parameters for the Mistral workflow in execute_mistral action must be placed under an 'input' block ",
    ),
    (
        "137-v1-function",
        lambda d: (
            as_v1(d),
            scenario(d)["actions"].append(
                {
                    "action": {
                        "action_type": "execute_mistral",
                        "properties": {"workflow": "w", "n": "get_attr(host,name)"},
                    }
                }
            ),
        ),
        "standard",
        137,
        CONTENT,
        "Functions are supported only from version 2",
    ),
    (
        "140-empty-includes",
        lambda d: d.__setitem__("includes", []),
        None,
        140,
        SYNTAX,
        "At least one template must be included",
    ),
    (
        "141-include-without-name",
        lambda d: d.__setitem__("includes", [{}]),
        None,
        141,
        SYNTAX,
        "Name field is unspecified for include",
    ),
    (
        "142-missing-include",
        lambda d: d.__setitem__("includes", [{"name": "nowhere"}]),
        None,
        142,
        CONTENT,
        "Trying to include a template that does not exist",
    ),
    (
        "2-included-entity-clashes",
        lambda d: (d.__setitem__("includes", [{"name": "shared"}]), entity(d, 0).__setitem__("template_id", "zone")),
        None,
        2,
        CONTENT,
        "Duplicate template_id definition.",
    ),
    (
        "160-v1-parameters",
        lambda d: (as_v1(d), entity(d, 0).__setitem__("type", "get_param(t)")),
        "standard",
        160,
        codes.CUSTOM,
        "Parameters are supported only from version 2 - get_param(t)",
    ),
    (
        "161-no-parameters-block",
        lambda d: entity(d, 0).__setitem__("type", "get_param(t)"),
        None,
        161,
        codes.CUSTOM,
        "get_param called for a parameter that is not defined in the 'parameters' block - ",
    ),
    (
        "161-undeclared-parameter",
        lambda d: (d.__setitem__("parameters", {"s": {}}), entity(d, 0).__setitem__("type", "get_param(t)")),
        None,
        161,
        codes.CUSTOM,
        "get_param called for a parameter that is not defined in the 'parameters' block - t",
    ),
    (
        "162-malformed-call",
        lambda d: (d.__setitem__("parameters", {"t": {}}), entity(d, 0).__setitem__("type", "get_param(t) more")),
        None,
        162,
        codes.CUSTOM,
        "malformed get_param() clause - get_param(t) more",
    ),
    (
        "163-no-value",
        lambda d: (
            d.__setitem__("parameters", {"t": {"description": "d"}}),
            entity(d, 0).__setitem__("type", "get_param(t)"),
        ),
        None,
        163,
        codes.CUSTOM,
        "Failed to resolve parameter - t",
    ),
]


@pytest.mark.parametrize(
    ("change", "template_type", "code", "description", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_vitrage_answer(
    change: Callable[[dict[str, Any]], Any], template_type: str | None, code: int, description: str, message: str
) -> None:
    result = validate(changed(change), template_type=template_type, definitions=DEFINITIONS)

    assert not result.ok
    assert (result.status_code, result.description, result.message) == (code, description, message)
    assert not result.vitrage_rejects_request


def test_the_base_template_is_valid() -> None:
    result = validate(BASE)

    assert result.ok, result.problems
    assert (result.status_code, result.message, result.version) == (0, "Template validation is OK", "2")


@pytest.mark.parametrize(
    ("label", "change", "template_type"),
    [
        ("v1-without-version", as_v1, "standard"),
        ("any-relationship-type", lambda d: relationship(d, 0).__setitem__("relationship_type", "kuku"), None),
        ("not-on-relationship", condition("alarm_on_host and not host_contains_instance"), None),
        (
            "relationship-as-raise-alarm-target",
            lambda d: action(d, 0)["action_target"].__setitem__("target", "alarm_on_host"),
            None,
        ),
        (
            "template-id-prefix-match",
            lambda d: d["definitions"]["entities"].append({"entity": {"category": "RESOURCE", "template_id": "a-b c"}}),
            None,
        ),
        ("include-a-definition-template", lambda d: d.__setitem__("includes", [{"name": "shared"}]), None),
        (
            "use-included-definitions-only",
            lambda d: (d.__setitem__("includes", [{"name": "shared"}]), condition("zone_alarm_on_zone")(d)),
            None,
        ),
    ],
)
def test_what_vitrage_accepts_is_accepted(
    label: str, change: Callable[[dict[str, Any]], Any], template_type: str | None
) -> None:
    result = validate(changed(change), template_type=template_type, definitions=DEFINITIONS)

    assert result.ok, (label, result.problems)


def test_a_mistral_input_that_looks_wrong_is_only_a_warning() -> None:
    """Vitrage computes a 138 *warning* and then answers 0: Vitrail accepts, and warns."""
    result = validate(changed(lambda d: action(d, 4)["properties"]["input"].__setitem__("note", "a (b")))

    assert (result.ok, result.status_code) == (True, 0)
    assert [w.field for w in result.warnings] == ["scenarios[0].scenario.actions[4].action.properties.input.note"]


def test_a_bad_item_followed_by_a_good_one_is_a_warning_like_vitrage() -> None:
    """Vitrage forgets a malformed scenario item when another follows (its result is overwritten)."""

    def change(document: dict[str, Any]) -> None:
        document["scenarios"][0]["note"] = "extra key"
        document["scenarios"].append(copy.deepcopy(document["scenarios"][0]))
        del document["scenarios"][1]["note"]

    result = validate(changed(change))

    assert result.ok, result.problems
    assert "extra keys not allowed" in result.warnings[0].message


def _broken() -> dict[str, Any]:
    """A definition template without relationships: it validates, but including it crashes Vitrage."""
    broken = copy.deepcopy(DEFINITION)
    broken["metadata"]["name"] = "broken"
    broken["definitions"].pop("relationships")
    return broken


def _v3_definition(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"version": "3", "name": "v3def", "type": "definition"},
        "definitions": DEFINITION["definitions"],
    }


@pytest.mark.parametrize(
    ("label", "change", "template_type", "code"),
    [
        (
            "relationship-without-type",
            lambda d: relationship(d, 0).pop("relationship_type"),
            None,
            codes.V2_NO_RELATIONSHIP_TYPE,
        ),
        (
            "raise-alarm-without-properties",
            lambda d: action(d, 0).__delitem__("properties"),
            None,
            codes.V2_NO_PROPERTIES,
        ),
        ("v3-body-as-definition", _v3_definition, None, codes.V3_DEFINITION),
        (
            "include-without-relationships",
            lambda d: d.__setitem__("includes", [{"name": "broken"}]),
            None,
            codes.BROKEN_DEFINITION_TEMPLATE,
        ),
        (
            "scenario-item-missing-then-valid",
            lambda d: d["scenarios"].insert(0, {"x": "y"}),
            None,
            codes.UNUSABLE_VALUE,
        ),
        (
            "condition-is-a-sympy-constant",
            lambda d: (
                d["definitions"]["entities"].append({"entity": {"category": "RESOURCE", "template_id": "E"}}),
                condition("E")(d),
            ),
            None,
            codes.CONDITION_NOT_BOOLEAN,
        ),
    ],
)
def test_where_vitrage_crashes_vitrail_reports_a_problem(
    label: str, change: Callable[[dict[str, Any]], Any], template_type: str | None, code: int
) -> None:
    document = copy.deepcopy(BASE)
    replaced = change(document)
    if isinstance(replaced, dict):  # a whole new document
        document = replaced

    result = validate(document, template_type=template_type, definitions={**DEFINITIONS, "broken": _broken()})

    assert (result.status_code, result.vitrage_rejects_request) == (code, True)
    assert result.message == "Failed to validate template(s)."


class TestDefinitionTemplates:
    def test_a_definition_template_is_valid(self) -> None:
        result = validate(DEFINITION)

        assert result.ok, result.problems
        assert result.template_type == "definition"

    def test_without_type_it_needs_the_request_type(self) -> None:
        document = copy.deepcopy(DEFINITION)
        document["metadata"].pop("type")

        assert validate(document).status_code == 66
        assert validate(document, template_type="definition").ok  # and no 64 here, as in Vitrage

    def test_143_scenarios_in_a_definition_template(self) -> None:
        document = {**copy.deepcopy(DEFINITION), "scenarios": []}

        result = validate(document)

        assert (result.status_code, result.description, result.message) == (
            143,
            SYNTAX,
            "A template definition file cannot contain 'includes' or 'scenarios' blocks",
        )

    def test_duplicate_ids_in_a_definition_template(self) -> None:
        document = copy.deepcopy(DEFINITION)
        document["definitions"]["entities"][1]["entity"]["template_id"] = "zone"

        assert validate(document).status_code == 2


def test_included_definitions_load_into_scenarios() -> None:
    document = changed(lambda d: d.__setitem__("includes", [{"name": "shared"}]))
    scenario(document)["condition"] = "zone_alarm_on_zone and alarm_on_host"

    template = load(document, definitions=DEFINITIONS)

    (clause,) = template.scenarios[0].clauses
    assert [(r.source, r.label, r.target) for r in clause.positive] == [
        ("zone_alarm", "on", "zone"),
        ("alarm", "on", "host"),
    ]
    assert template.scenarios[0].entities["zone"].properties == (
        ("vitrage_category", "RESOURCE"),
        ("vitrage_type", "nova.zone"),
    )


def test_every_problem_of_a_v2_text_is_reported_with_its_line() -> None:
    text = """\
metadata:
  version: 2
  name: many2
  type: standard
definitions:
  entities:
    - entity:
        category: alarm
        template_id: alarm
    - entity:
        category: RESOURCE
        template_id: host
  relationships:
    - relationship:
        source: alarm
        target: hostx
        relationship_type: on
        template_id: alarm_on_host
scenarios:
  - scenario:
      condition: alarm_on_host AND host
      actions:
        - action:
            action_type: set_state
            properties:
              color: red
            action_target:
              target: host
"""
    result = validate(text)

    found = [(p.code, p.field, p.line) for p in result.problems]
    assert found == [
        (45, "definitions.entities[0].entity.category", 8),
        (3, "definitions.relationships[0].relationship.target", 16),
        (3, "scenarios[0].scenario.condition", 21),
        (128, "scenarios[0].scenario.actions[0].action.properties", 25),
    ]
    assert result.status_code == 45
