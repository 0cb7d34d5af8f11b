"""Version 3 templates: one test per Vitrage status code, with Vitrage's exact answer.

Each case changes one thing in a valid template and states what Vitrage 15's
``template validate`` answers (status code and message, checked against
Vitrage's own validator). Documents are built as python-vitrageclient sends
them: every scalar a string.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from vitrail.evaluator.templates import codes, validate

BASE: dict[str, Any] = {
    "metadata": {"version": "3", "name": "base", "type": "standard"},
    "entities": {
        "host": {"category": "RESOURCE", "type": "nova.host"},
        "instance": {"category": "RESOURCE", "type": "nova.instance"},
        "alarm": {"category": "ALARM", "type": "doctor"},
    },
    "scenarios": [
        {
            "condition": "alarm [on] host AND host [contains] instance",
            "actions": [
                {
                    "raise_alarm": {
                        "target": "instance",
                        "alarm_name": "Instance down",
                        "severity": "CRITICAL",
                        "causing_alarm": "alarm",
                    }
                },
                {"set_state": {"target": "instance", "state": "SUBOPTIMAL"}},
                {"add_causal_relationship": {"source": "alarm", "target": "alarm"}},
                {"mark_down": {"target": "host"}},
                {"execute_mistral": {"workflow": "wf", "input": {"host": "get_attr(host, name)"}}},
            ],
        }
    ],
}


def changed(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    change(document)
    return document


def action(document: dict[str, Any], index: int) -> dict[str, Any]:
    item = document["scenarios"][0]["actions"][index]
    return next(iter(item.values()))


def condition(text: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["scenarios"][0]["condition"] = text

    return change


CUSTOM = "Template validation"
CASES: list[tuple[str, Callable[[dict[str, Any]], Any], str | None, int, str]] = [
    (
        "4-extra-top-level-key",
        lambda d: d.__setitem__("definitions", {}),
        None,
        4,
        "Syntax error:  - extra keys not allowed @ data['definitions']",
    ),
    (
        "4-unknown-action",
        lambda d: d["scenarios"][0]["actions"].append({"reboot": {"target": "host"}}),
        None,
        4,
        "Syntax error:  - extra keys not allowed @ data['scenarios'][0]['actions'][5]['reboot']",
    ),
    (
        "4-extra-action-key",
        lambda d: action(d, 1).__setitem__("color", "red"),
        None,
        4,
        "Syntax error:  - extra keys not allowed @ data['scenarios'][0]['actions'][1]['set_state']['color']",
    ),
    (
        "4-entity-value-not-text",
        lambda d: d["entities"]["host"].__setitem__("tags", {"a": "b"}),
        None,
        4,
        "Syntax error:  - expected str for dictionary value @ data['entities']['host']['tags']",
    ),
    (
        "60-no-name",
        lambda d: d["metadata"].pop("name"),
        None,
        60,
        "metadata section must contain id field. - 60 @ data['metadata']['name']",
    ),
    (
        "63-unknown-version",
        lambda d: d["metadata"].__setitem__("version", "4"),
        None,
        63,
        "Unsupported version. Version must be one of: dict_keys([])",
    ),
    (
        "63-integer-version",
        lambda d: d["metadata"].__setitem__("version", 3),
        None,
        63,
        "Unsupported version. Version must be one of: dict_keys([])",
    ),
    (
        "64-no-type-but-requested",
        lambda d: d["metadata"].pop("type"),
        "standard",
        64,
        "metadata section must contain a type field starting from version 2. Type must be one of: "
        "['standard', 'definition', 'equivalence'] - 64 @ data['metadata']['type']",
    ),
    ("66-no-type", lambda d: d["metadata"].pop("type"), None, 66, "Unknown template type"),
    ("66-type-mismatch", lambda d: None, "definition", 66, "Unknown template type"),
    (
        "80-no-scenarios",
        lambda d: d.pop("scenarios"),
        None,
        80,
        "scenarios is a mandatory section. - 80 @ data['scenarios']",
    ),
    (
        "83-no-condition",
        lambda d: d["scenarios"][0].pop("condition"),
        None,
        83,
        "Scenario definition must contain condition field. - 83 @ data['scenarios'][0]['condition']",
    ),
    (
        "84-no-actions",
        lambda d: d["scenarios"][0].pop("actions"),
        None,
        84,
        "Scenario definition must contain actions field. - 84 @ data['scenarios'][0]['actions']",
    ),
    (
        "85-no-space-around-brackets",
        condition("alarm[on]host"),
        None,
        85,
        "Failed to convert condition. - alarm[on]host",
    ),
    (
        "85-unbalanced-parenthesis",
        condition("(alarm [on] host"),
        None,
        85,
        "Failed to convert condition. - (alarm [on] host,Sympify of expression 'could not parse '(relationship'' "
        "failed, because of exception being raised:\nTokenError: ('EOF in multi-line statement', (2, 0))",
    ),
    (
        "85-NOT-without-space",
        condition("host AND NOT(alarm [on] host)"),
        None,
        85,
        "Failed to convert condition. - host AND NOT(alarm [on] host),unsupported operand type(s) for &: "
        "'Symbol' and 'NOT'",
    ),
    (
        "86-not-on-entity",
        condition("alarm [on] host AND NOT instance"),
        None,
        86,
        "Not operator can be used only on relationships. - instance,alarm [on] host AND NOT instance",
    ),
    (
        "126-no-severity",
        lambda d: action(d, 0).pop("severity"),
        None,
        126,
        "raise_alarm action must contain severity field in properties block. - "
        "126 @ data['scenarios'][0]['actions'][0]['raise_alarm']['severity']",
    ),
    (
        "128-no-state",
        lambda d: action(d, 1).pop("state"),
        None,
        128,
        "set_state action must contain state field in properties block. - "
        "128 @ data['scenarios'][0]['actions'][1]['set_state']['state']",
    ),
    (
        "134-only-not",
        condition("NOT alarm [on] host"),
        None,
        134,
        "condition can not contain only 'not' clauses - ,NOT alarm [on] host",
    ),
    (
        "135-no-common-entity",
        condition("alarm [on] host OR instance"),
        None,
        135,
        "condition must contain a common entity for all 'or' clauses - scenario 0,alarm__on__host OR instance",
    ),
    (
        "138-mistral-parenthesis",
        lambda d: action(d, 4)["input"].__setitem__("note", "a (b"),
        None,
        138,
        "Only open or close parenthesis exists. Did you try to use a function? - "
        "138 for dictionary value @ data['scenarios'][0]['actions'][4]['execute_mistral']['input']['note']",
    ),
    (
        "47-bad-regex",
        lambda d: d["entities"]["alarm"].__setitem__("name.REGEX", "a("),
        None,
        47,
        "Invalid regular expression defined in field: - name.REGEX,a(",
    ),
    (
        "10100-no-target",
        lambda d: action(d, 3).pop("target"),
        None,
        10100,
        "Action must contain a 'target' property - 10100 @ data['scenarios'][0]['actions'][3]['mark_down']['target']",
    ),
    (
        "10101-unknown-target",
        lambda d: action(d, 1).__setitem__("target", "hostx"),
        None,
        10101,
        "Action 'target' must match an entity id - "
        "10101 for dictionary value @ data['scenarios'][0]['actions'][1]['set_state']['target']",
    ),
    (
        "10102-no-source",
        lambda d: action(d, 2).pop("source"),
        None,
        10102,
        "Action must contain a 'source' property - "
        "10102 @ data['scenarios'][0]['actions'][2]['add_causal_relationship']['source']",
    ),
    (
        "10103-unknown-source",
        lambda d: action(d, 2).__setitem__("source", "nobody"),
        None,
        10103,
        "Action 'source' must match an entity id - "
        "10103 for dictionary value @ data['scenarios'][0]['actions'][2]['add_causal_relationship']['source']",
    ),
    (
        "10104-no-alarm-name",
        lambda d: action(d, 0).pop("alarm_name"),
        None,
        10104,
        "raise_alarm action must contain an 'alarm_name' property - "
        "10104 @ data['scenarios'][0]['actions'][0]['raise_alarm']['alarm_name']",
    ),
    (
        "10105-no-workflow",
        lambda d: action(d, 4).pop("workflow"),
        None,
        10105,
        "execute_mistral action must contain 'workflow' property - "
        "10105 @ data['scenarios'][0]['actions'][4]['execute_mistral']['workflow']",
    ),
    (
        "10107-unknown-causing-alarm",
        lambda d: action(d, 0).__setitem__("causing_alarm", "host_alarm"),
        None,
        10107,
        "The property 'causing_alarm' in raise_alarm action must match an entity id - "
        "10107 for dictionary value @ data['scenarios'][0]['actions'][0]['raise_alarm']['causing_alarm']",
    ),
    (
        "161-no-parameters-block",
        lambda d: action(d, 1).__setitem__("state", "get_param(state)"),
        None,
        161,
        "get_param called for a parameter that is not defined in the 'parameters' block - ",
    ),
    (
        "162-malformed-call",
        lambda d: (d.__setitem__("parameters", {"state": {}}), action(d, 1).__setitem__("state", "get_param()")),
        None,
        162,
        "malformed get_param() clause - get_param()",
    ),
    (
        "163-no-value-no-default",
        lambda d: (d.__setitem__("parameters", {"state": ""}), action(d, 1).__setitem__("state", "get_param(state)")),
        None,
        163,
        "Failed to resolve parameter - state",
    ),
    (
        "10200-unknown-entity",
        condition("alarm [on] host AND hostx"),
        None,
        10200,
        "Condition contains an unknown entity id - alarm [on] host AND hostx,      hostx ",
    ),
    (
        "10200-mixed-case-operator",
        condition("alarm [on] host And host [contains] instance"),
        None,
        10200,
        "Condition contains an unknown entity id - alarm [on] host And host [contains] instance,     And     ",
    ),
    (
        "10200-get_param-in-condition",
        condition("get_param(x) [on] host"),
        None,
        10200,
        "Condition contains an unknown entity id - get_param(x) [on] host, get_paramx   ",
    ),
]


@pytest.mark.parametrize(
    ("change", "template_type", "code", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_vitrage_answer(
    change: Callable[[dict[str, Any]], Any], template_type: str | None, code: int, message: str
) -> None:
    result = validate(changed(change), template_type=template_type)

    assert not result.ok
    assert (result.status_code, result.message) == (code, message)
    assert result.problems[0].code == code
    assert not result.vitrage_rejects_request


def test_the_base_template_is_valid() -> None:
    result = validate(BASE)

    assert result.ok, result.problems
    assert (result.status_code, result.description, result.message) == (0, CUSTOM, "Template validation is OK")
    assert (result.name, result.version, result.template_type) == ("base", "3", "standard")


@pytest.mark.parametrize(
    ("label", "change"),
    [
        ("empty-scenarios", lambda d: d.__setitem__("scenarios", [])),
        ("empty-actions", lambda d: d["scenarios"][0].__setitem__("actions", [])),
        ("empty-entity", lambda d: d["entities"].__setitem__("zone", {})),
        ("unknown-label", condition("alarm [kuku] host")),
        ("unchecked-values", lambda d: action(d, 1).__setitem__("state", "kuku")),
        ("category-not-checked", lambda d: d["entities"]["host"].__setitem__("category", "FOO")),
        ("same-relationship-and-its-negation", condition("host [contains] instance AND NOT host [contains] instance")),
        ("lower-case-operators", condition("alarm [on] host and not host [contains] instance")),
        ("spaces-inside-brackets", condition("alarm [ on ] host")),
    ],
)
def test_what_vitrage_accepts_is_accepted(label: str, change: Callable[[dict[str, Any]], Any]) -> None:
    result = validate(changed(change))

    assert result.ok, (label, result.problems)


@pytest.mark.parametrize(
    ("label", "change", "template_type", "code"),
    [
        ("no-metadata", lambda d: d.pop("metadata"), "standard", codes.NO_METADATA),
        ("metadata-not-a-mapping", lambda d: d.__setitem__("metadata", ""), None, codes.NO_METADATA),
        ("unknown-type-value", lambda d: d["metadata"].__setitem__("type", "foo"), None, codes.UNKNOWN_TYPE_VALUE),
        (
            "no-entities",
            lambda d: (d.pop("entities"), d.__setitem__("scenarios", [])),
            None,
            codes.V3_NO_ENTITIES,
        ),
        ("entities-not-a-mapping", lambda d: d.__setitem__("entities", []), None, codes.UNUSABLE_VALUE),
        (
            "parameter-declared-as-text",
            lambda d: (
                d.__setitem__("parameters", {"state": "the state"}),
                action(d, 1).__setitem__("state", "get_param(state)"),
            ),
            None,
            codes.PARAMETER_DEFAULT_UNUSABLE,
        ),
        ("empty-action-item", lambda d: d["scenarios"][0]["actions"].append({}), None, codes.EMPTY_ACTION),
        (
            "mistral-input-mapping",
            lambda d: action(d, 4)["input"].__setitem__("x", {"a": "b"}),
            None,
            codes.MISTRAL_INPUT_NOT_TEXT,
        ),
        (
            "condition-is-a-sympy-constant",
            lambda d: (d["entities"].__setitem__("E", {}), condition("E")(d)),
            None,
            85,
        ),
    ],
)
def test_where_vitrage_crashes_vitrail_reports_a_problem(
    label: str, change: Callable[[dict[str, Any]], Any], template_type: str | None, code: int
) -> None:
    result = validate(changed(change), template_type=template_type)

    assert not result.ok
    assert result.status_code == code
    assert result.vitrage_rejects_request is (code in codes.VITRAGE_CRASH_CODES)
    if result.vitrage_rejects_request:
        assert result.message == "Failed to validate template(s)."
        assert "HTTP 404" in codes.__doc__


def test_a_crash_inside_the_shape_check_comes_first_like_vitrage() -> None:
    """Vitrage's schema raises a TypeError on a mapping mistral input: errors found before never show."""

    def change(document: dict[str, Any]) -> None:
        document["entities"]["host"]["tags"] = {"a": "b"}  # voluptuous finds this first...
        action(document, 4)["input"]["x"] = {"a": "b"}  # ...then this one crashes the walk

    result = validate(changed(change))

    assert result.status_code == codes.MISTRAL_INPUT_NOT_TEXT
    assert result.vitrage_rejects_request
    assert [p.code for p in result.problems] == [codes.MISTRAL_INPUT_NOT_TEXT, 4]


def test_a_crash_voluptuous_never_reaches_is_only_reported() -> None:
    """A list of actions stops at the first action failing inside: the later ones are not looked at."""

    def change(document: dict[str, Any]) -> None:
        action(document, 0).pop("severity")
        action(document, 4)["input"]["x"] = {"a": "b"}

    result = validate(changed(change))

    assert (result.status_code, result.vitrage_rejects_request) == (126, False)
    assert [p.code for p in result.problems] == [126, codes.MISTRAL_INPUT_NOT_TEXT]


def test_missing_entities_behind_an_unknown_target_gives_the_target_error() -> None:
    result = validate(changed(lambda d: d.__setitem__("entities", {})))

    assert result.status_code == 10101  # voluptuous reports missing keys after the others
    assert not result.vitrage_rejects_request


def test_equivalence_templates_are_not_validated() -> None:
    result = validate({"metadata": {"name": "eq", "type": "equivalence"}, "equivalences": "nonsense"})

    assert result.ok
    assert (result.status_code, result.description, result.message) == ("", CUSTOM, "No Validation")
    assert result.warnings  # but Vitrail says what is wrong


def test_every_problem_is_reported_with_field_and_line() -> None:
    text = """\
metadata:
  version: 3
  name: many
  type: standard
entities:
  host:
    type: nova.host
  alarm:
    category: ALARM
    rawtext.regex: down (
scenarios:
  - condition: alarm [on] host AND hostx
    actions:
      - raise_alarm:
          target: host
          alarm_name: x
      - set_state:
          target: nowhere
          state: ERROR
  - condition: host OR alarm
    actions:
      - mark_down:
          target: host
"""
    result = validate(text, file_name="many.yaml")

    found = [(p.code, p.scenario, p.field, p.line) for p in result.problems]
    assert found == [
        (126, 0, "scenarios[0].actions[0].raise_alarm.severity", 14),
        (10101, 0, "scenarios[0].actions[1].set_state.target", 18),
        (47, None, "entities.alarm['rawtext.regex']", 10),
        (10200, 0, "scenarios[0].condition", 12),
        (135, 1, "scenarios[1].condition", 20),
    ]
    assert all(p.template == "many" for p in result.problems)
    assert result.status_code == 126  # Vitrage's answer: its first error
    assert "'nowhere' is not an entity id" in result.problems[1].message
    assert "hostx" in result.problems[3].message
