"""Loading templates into the model: actions, functions, parameters, equivalences, the shipped examples."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from vitrail.evaluator.model import ActionKind, AttrRef, EntitySpec, TemplateType
from vitrail.evaluator.templates import TemplateInvalid, load, parse_for_evaluator, resolve, validate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "templates"

V3: dict[str, Any] = {
    "metadata": {"version": "3", "name": "get_param(name)", "type": "standard", "description": "loaded"},
    "parameters": {"name": {"default": "host_down"}, "state": {"description": "the deduced state"}},
    "entities": {
        "alarm": {"category": "ALARM", "type": "doctor", "name.regex": "compute\\.host"},
        "host": {"category": "RESOURCE", "type": "nova.host", "is_deleted": "False"},
        "vm": {"category": "RESOURCE", "type": "nova.instance"},
    },
    "scenarios": [
        {
            "condition": "alarm [on] host AND host [contains] vm",
            "actions": [
                {
                    "raise_alarm": {
                        "target": "vm",
                        "alarm_name": "vm down",
                        "severity": "CRITICAL",
                        "causing_alarm": "alarm",
                    }
                },
                {"set_state": {"target": "vm", "state": "get_param(state)"}},
                {"add_causal_relationship": {"source": "alarm", "target": "alarm"}},
                {"mark_down": {"target": "host"}},
                {
                    "execute_mistral": {
                        "workflow": "evacuate",
                        "input": {"host": "get_attr(host, name)", "force": "yes"},
                    }
                },
            ],
        }
    ],
}
PARAMS = {"state": "SUBOPTIMAL"}


def test_a_v3_template_loads_into_the_model() -> None:
    template = load(V3, params=PARAMS)

    assert (template.name, template.version, template.template_type) == ("host_down", 3, TemplateType.STANDARD)
    assert template.description == "loaded"
    (scenario,) = template.scenarios
    assert scenario.key == "host_down#0"
    assert scenario.entities["alarm"] == EntitySpec(
        "alarm", (("vitrage_category", "ALARM"), ("vitrage_type", "doctor")), (("name", "compute\\.host"),)
    )
    assert scenario.entities["host"].properties == (
        ("vitrage_category", "RESOURCE"),
        ("vitrage_is_deleted", "False"),  # Vitrage's renames; values stay the text written
        ("vitrage_type", "nova.host"),
    )
    raise_alarm, set_state, causal, mark_down, mistral = scenario.actions
    assert raise_alarm.kind is ActionKind.RAISE_ALARM
    assert raise_alarm.roles == (("target", "vm"), ("causing_alarm", "alarm"))
    assert raise_alarm.properties == (("alarm_name", "vm down"), ("severity", "CRITICAL"))
    assert set_state.prop("state") == "SUBOPTIMAL"
    assert causal.roles == (("target", "alarm"), ("source", "alarm"))
    assert mark_down.role("target") == "host"
    assert mistral.kind is ActionKind.EXECUTE_MISTRAL
    assert mistral.role("target") == "alarm"  # no target: the first entity common to all clauses
    assert mistral.prop("input") == (("host", AttrRef("host", "name")), ("force", "yes"))


def test_the_stored_document_is_resolved() -> None:
    resolved = resolve(V3, PARAMS)

    assert "parameters" not in resolved
    assert resolved["metadata"]["name"] == "host_down"
    assert resolved["scenarios"][0]["actions"][1]["set_state"]["state"] == "SUBOPTIMAL"
    assert V3["metadata"]["name"] == "get_param(name)"  # the original is left alone
    assert load(resolved).scenarios[0].actions[1].prop("state") == "SUBOPTIMAL"


def test_a_missing_parameter_value_is_reported_at_validation() -> None:
    result = validate(V3)

    assert (result.status_code, result.message) == (163, "Failed to resolve parameter - state")
    assert result.problems[0].field == "scenarios[0].actions[1].set_state.state"
    with pytest.raises(TemplateInvalid):
        resolve(V3, {})


def test_extra_parameters_are_ignored() -> None:
    assert validate(V3, params={**PARAMS, "unused": "x"}).ok


def test_a_parameter_value_of_the_wrong_kind_fails_when_loaded() -> None:
    """Vitrage validates again after substituting: a JSON number as a state is not text."""
    assert validate(V3, params={"state": 5}).ok  # what Vitrage's validate answers
    with pytest.raises(TemplateInvalid) as caught:
        load(V3, params={"state": 5})

    assert caught.value.result.status_code == 4


def test_load_refuses_an_invalid_template_with_every_problem() -> None:
    document = copy.deepcopy(V3)
    document["scenarios"][0]["condition"] = "alarm [on] hostx"
    document["scenarios"][0]["actions"][0]["raise_alarm"]["target"] = "nobody"

    with pytest.raises(TemplateInvalid) as caught:
        load(document, params=PARAMS)

    assert [p.code for p in caught.value.result.problems] == [10101, 10200]
    assert isinstance(caught.value, ValueError)
    assert "scenarios[0].condition" in str(caught.value)


V2: dict[str, Any] = {
    "metadata": {"version": "2", "name": "v2", "type": "standard"},
    "definitions": {
        "entities": [
            {"entity": {"category": "ALARM", "type": "zabbix", "template_id": "alarm"}},
            {"entity": {"category": "RESOURCE", "type": "nova.host", "template_id": "host"}},
        ],
        "relationships": [
            {"relationship": {"source": "alarm", "target": "host", "relationship_type": "on", "template_id": "on_host"}}
        ],
    },
    "scenarios": [
        {
            "scenario": {
                "condition": "on_host",
                "actions": [
                    {
                        "action": {
                            "action_type": "raise_alarm",
                            "properties": {
                                "alarm_name": "host in trouble",
                                "severity": "WARNING",
                                "why": "get_attr(alarm, name)",
                            },
                            "action_target": {"target": "host"},
                        }
                    },
                    {
                        "action": {
                            "action_type": "execute_mistral",
                            "properties": {"workflow": "wf", "input": {"bad": "get_attr(host)"}},
                        }
                    },
                ],
            }
        }
    ],
}


def test_a_v2_template_loads_with_get_attr() -> None:
    template = load(V2)

    (scenario,) = template.scenarios
    (clause,) = scenario.clauses
    assert clause.entities == ("alarm", "host")
    raise_alarm, mistral = scenario.actions
    assert raise_alarm.prop("why") == AttrRef("alarm", "name")
    assert mistral.role("target") == "alarm"
    assert mistral.prop("input") == (("bad", None),)  # get_attr with one argument: Vitrage gives None


def test_get_attr_with_wrong_arguments_is_a_warning() -> None:
    result = validate(V2)

    assert result.ok
    assert [w.field for w in result.warnings] == ["scenarios[0].scenario.actions[1].action.properties.input.bad"]


def test_v1_mistral_inputs_move_under_input() -> None:
    document = copy.deepcopy(V2)
    document["metadata"] = {"name": "v1"}
    document["scenarios"][0]["scenario"]["actions"] = [
        {"action": {"action_type": "execute_mistral", "properties": {"workflow": "wf", "host": "h1"}}}
    ]

    (action,) = load(document, template_type="standard").scenarios[0].actions

    assert action.properties == (("workflow", "wf"), ("input", (("host", "h1"),)))


def test_a_definition_template_loads_without_scenarios() -> None:
    document = {"metadata": {"version": "2", "name": "defs"}, "definitions": V2["definitions"]}

    template = parse_for_evaluator(document, {}, {})  # no type stored: guessed from the sections

    assert (template.template_type, template.scenarios) == (TemplateType.DEFINITION, ())


EQUIVALENCE: dict[str, Any] = {
    "metadata": {"version": "2", "name": "cpu", "type": "equivalence"},
    "equivalences": [
        {
            "equivalence": [
                {"entity": {"category": "ALARM", "type": "nagios", "name": "cpu_high"}},
                {"entity": {"category": "ALARM", "type": "vitrage", "name": "cpu_high"}},
                {"entity": {"category": "ALARM", "type": "nagios", "name": "cpu_high"}},
            ]
        },
        {"equivalence": [{"entity": {"category": "ALARM", "type": "vitrage", "name": "cpu_high"}}]},
    ],
}


def test_an_equivalence_template_loads_its_classes() -> None:
    template = load(EQUIVALENCE)

    assert template.template_type is TemplateType.EQUIVALENCE
    (members,) = template.equivalences
    assert [m.properties for m in members] == [
        (("name", "cpu_high"), ("vitrage_category", "ALARM"), ("vitrage_type", "nagios")),
        (("name", "cpu_high"), ("vitrage_category", "ALARM"), ("vitrage_type", "vitrage")),
    ]


def test_equivalence_problems_are_warnings_like_vitrage_says_no_validation() -> None:
    result = validate(EQUIVALENCE)

    assert (result.ok, result.status_code, result.message) == (True, "", "No Validation")
    assert [w.field for w in result.warnings] == [
        "equivalences[0].equivalence[2]",  # the same entity twice
        "equivalences[1].equivalence[0]",  # an entity already in another class
        "equivalences[1]",  # nothing left to be equivalent to
    ]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_loads(path: Path) -> None:
    result = validate(path.read_bytes(), file_name=path.name)

    assert result.ok, result.summary()
    assert result.warnings == []
    template = load(path.read_bytes(), file_name=path.name)
    assert template.scenarios
    assert all(clause.entities for scenario in template.scenarios for clause in scenario.clauses)


def test_the_examples_cover_what_operators_need() -> None:
    names = {path.name for path in EXAMPLES.glob("*.yaml")}

    assert {"host_down.yaml", "switch_down.yaml", "prometheus_alert.yaml"} <= names
    host_down = load((EXAMPLES / "host_down.yaml").read_text())
    kinds = {action.kind for scenario in host_down.scenarios for action in scenario.actions}
    assert {ActionKind.SET_STATE, ActionKind.RAISE_ALARM} <= kinds
    assert any(action.role("causing_alarm") for scenario in host_down.scenarios for action in scenario.actions)
