"""Conditions: precedence, disjunctive normal form, and the quirks of Vitrage's sympy-based parser."""

from __future__ import annotations

from typing import Any

import pytest

from vitrail.evaluator.model import Relationship
from vitrail.evaluator.templates import conditions, load, validate
from vitrail.evaluator.templates.conditions import ConditionError, Literal


def dnf(text: str) -> list[list[str]] | None:
    """Clauses as lists of ``name`` / ``~name``."""
    found = conditions.dnf(text)
    if found is None:
        return None
    return [[lit.name if lit.positive else f"~{lit.name}" for lit in clause] for clause in found]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a", [["a"]]),
        ("a and b", [["a", "b"]]),
        ("a or b", [["a"], ["b"]]),
        ("a and (b or c)", [["a", "b"], ["a", "c"]]),
        ("(a or b) and (c or d)", [["a", "c"], ["a", "d"], ["b", "c"], ["b", "d"]]),
        ("a and b or c", [["a", "b"], ["c"]]),  # and binds tighter than or
        ("a or b and c", [["a"], ["b", "c"]]),
        ("not a and b", [["~a", "b"]]),  # not binds tightest
        ("not (a and b)", [["~a"], ["~b"]]),
        ("not (a or b)", [["~a", "~b"]]),
        ("a and not (not b)", [["a", "b"]]),
        ("a AND NOT b OR c", [["a", "~b"], ["c"]]),
        ("a and not a", [["a", "~a"]]),  # not simplified away, as with sympy
        ("a or a and b", [["a"], ["a", "b"]]),  # no absorption either
        ("a and a", [["a"]]),
        ("(a)", [["a"]]),
    ],
)
def test_disjunctive_normal_form(text: str, expected: list[list[str]]) -> None:
    assert dnf(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a and(b)", [["b"]]),  # Python's "and": the operator word needs spaces to be rewritten
        ("a or(b)", [["a"]]),
        ("a and true", [["a"]]),  # sympy's boolean constants
        ("a or false", [["a"]]),
    ],
)
def test_what_python_makes_of_unrewritten_words(text: str, expected: list[list[str]]) -> None:
    assert dnf(text) == expected


@pytest.mark.parametrize("text", ["not(a)", "a or true", "NOT(a)", "1", "field", "E", "()"])
def test_non_boolean_results_are_not_conditions(text: str) -> None:
    value = conditions.evaluate(conditions.vitrage_rewrite(text))

    assert conditions.clauses(value) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("(a", "TokenError"),
        ("a)", "TokenError"),
        (") (", "unmatched ')'"),
        ("", "line 0"),
        ("a b", "invalid syntax"),
        ("(a b)", "Perhaps you forgot a comma?"),
        ("a and and b", "invalid syntax"),
        ("a & (b,)", "unsupported operand type(s) for &: 'Symbol' and 'tuple'"),
        ("field and a", "unsupported operand type(s) for &: 'function' and 'Symbol'"),
        ("not E", "bad operand type for unary ~: 'Exp1'"),
        ("lambda", "invalid syntax"),
        ("a and not not b", "invalid syntax"),  # "not not " becomes "not~": Python's not, then nothing
    ],
)
def test_parse_errors_carry_the_text_vitrage_shows(text: str, reason: str) -> None:
    with pytest.raises(ConditionError) as caught:
        conditions.dnf(text)

    assert reason in str(caught.value)


def test_a_condition_too_big_for_dnf_is_refused() -> None:
    text = " and ".join(f"(a{i} or b{i})" for i in range(12))  # 4096 clauses

    with pytest.raises(ConditionError, match="more than 512 clauses"):
        conditions.dnf(text)


def test_v2_only_knows_lower_case_operator_words() -> None:
    assert conditions.v2_tokens("a and not (b or c)") == ["a", "b", "c"]
    assert conditions.v2_tokens("a AND b") == ["a", "AND", "b"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("alarm [on] host", None),
        ("alarm [ on ] host", None),
        ("alarm[on]host", 85),  # Vitrage's id check wants spaces around brackets
        ("alarm [on] host AND hostx", 10200),
        ("alarm [on] host And host", 10200),  # only all-lower or all-upper words are operators
        ("get_param(x)", 10200),
    ],
)
def test_v3_entity_id_check(text: str, code: int | None) -> None:
    finding = conditions.check_v3_ids(text, ["alarm", "host"])

    assert (finding.code if finding else None) == code


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("alarm [on] host AND NOT alarm [on] zone", None),
        ("host AND NOT alarm [on] host", None),
        ("NOT host", 86),
        ("alarm [on] host AND NOT host", 86),
        ("NOT alarm [on] host", 134),
        ("NOT (alarm [on] host OR host [on] zone)", 134),
        ("NOT(alarm [on] host)", 85),
        ("(alarm [on] host", 85),
    ],
)
def test_v3_not_rules(text: str, code: int | None) -> None:
    finding = conditions.v3_shape_problem(text)

    assert (finding.code if finding else None) == code


def test_common_entities_of_or_clauses() -> None:
    ends = {"r1": ("alarm", "host"), "r2": ("host", "vm")}
    found = [[Literal("r1")], [Literal("r2"), Literal("zone", False)]]

    assert conditions.common_entities(found, ends) == {"host"}
    assert conditions.common_entities([[Literal("r1")], [Literal("zone")]], ends) == set()


V3: dict[str, Any] = {
    "metadata": {"version": "3", "name": "c", "type": "standard"},
    "entities": {
        "alarm": {"category": "ALARM"},
        "host": {"type": "nova.host"},
        "vm": {"type": "nova.instance"},
        "zone": {"type": "nova.zone"},
    },
    "scenarios": [],
}


def scenario_of(text: str) -> Any:
    document = {**V3, "scenarios": [{"condition": text, "actions": [{"mark_down": {"target": "host"}}]}]}
    return load(document).scenarios[0]


def test_loaded_clauses_keep_relationships_and_bound_entities() -> None:
    scenario = scenario_of("alarm [on] host AND (host [contains] vm OR zone [contains] host)")

    assert [clause.entities for clause in scenario.clauses] == [("alarm", "host", "vm"), ("alarm", "host", "zone")]
    assert scenario.clauses[0].positive == (
        Relationship("alarm", "on", "host"),
        Relationship("host", "contains", "vm"),
    )
    assert scenario.key == "c#0"
    assert set(scenario.entities) == {"alarm", "host", "vm", "zone"}


def test_loaded_not_on_a_relationship() -> None:
    scenario = scenario_of("host AND NOT alarm [on] host")

    (clause,) = scenario.clauses
    assert clause.entities == ("host",)
    assert clause.positive == ()
    assert clause.negative == (Relationship("alarm", "on", "host", negated=True),)
    assert "alarm" in scenario.entities  # the free end of a negated relationship must be known


def test_not_over_a_group_distributes() -> None:
    scenario = scenario_of("host [contains] vm AND NOT (alarm [on] host OR alarm [on] vm)")

    (clause,) = scenario.clauses
    assert clause.negative == (
        Relationship("alarm", "on", "host", negated=True),
        Relationship("alarm", "on", "vm", negated=True),
    )


def test_a_negated_relationship_detached_from_its_clause_is_a_warning() -> None:
    document = {
        **V3,
        "scenarios": [{"condition": "host AND NOT alarm [on] vm", "actions": [{"mark_down": {"target": "host"}}]}],
    }

    result = validate(document)

    assert result.ok
    assert "shares no entity" in result.warnings[0].message
