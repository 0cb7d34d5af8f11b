"""Scenario conditions: operator words, disjunctive normal form, and Vitrage's checks.

Vitrage turns a condition into DNF by rewriting its operator words and giving
the string to ``sympy.to_dnf`` (emulated in :mod:`.expressions`):

* ``convert_to_dnf_format`` replaces ``' and '``/``' AND '`` by ``&``,
  ``' or '``/``' OR '`` by ``|`` and ``' not '``/``' NOT '``/``'not '``/
  ``'NOT '`` by ``~``: only all-lower or all-upper words surrounded by spaces
  are operators (``NOT(`` is not). Precedence is Python's: ``~`` (not) binds
  tightest, then ``&`` (and), then ``|`` (or).
* The result must be a tree of ``Or``/``And``/``Not`` over symbols; anything
  else (a constant, a number, a function call) is not a condition.

:func:`dnf` gives a condition's clauses as lists of literals (Vitrage's
``parse_condition``). The version-specific checks live in
:func:`check_v3_ids` and :func:`v3_shape_problem` (entity ids, NOT rules)
and :func:`v2_tokens` (template ids, lower-case operators only).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import product

from vitrail.evaluator.templates.expressions import (
    And,
    ConditionError,
    Const,
    Expr,
    Not,
    Or,
    Other,
    Sym,
    Value,
    evaluate,
    make_and,
    make_or,
)

__all__ = ["ConditionError", "Literal", "clauses", "dnf", "evaluate", "vitrage_rewrite"]

#: Vitrail refuses conditions whose DNF has more clauses (sympy would take minutes, then match forever).
MAX_CLAUSES = 512

#: A v3 relationship term: ``source [label] target``.
RELATIONSHIP_RE = re.compile(r"(\w+)\s*\[\s*(\w+)\s*\]\s*(\w+)")
#: What Vitrage's v3 validator puts in place of every relationship before the NOT checks.
RELATION = "relationship"


@dataclass(frozen=True, slots=True)
class Literal:
    """A term of a DNF clause: a symbol (entity or relationship id), maybe negated."""

    name: str
    positive: bool = True


def vitrage_rewrite(condition: str) -> str:
    """Vitrage's ``convert_to_dnf_format`` rewriting of the operator words (in its order)."""
    for old, new in (
        (" and ", "&"),
        (" AND ", "&"),
        (" or ", "|"),
        (" OR ", "|"),
        (" not ", "~"),
        (" NOT ", "~"),
        ("not ", "~"),
        ("NOT ", "~"),
    ):
        condition = condition.replace(old, new)
    return condition


# -- disjunctive normal form -------------------------------------------------------------


def _nnf(expr: Expr, negate: bool = False) -> Expr:
    if isinstance(expr, Not):
        return _nnf(expr.arg, not negate)
    if isinstance(expr, And | Or):
        parts = [_nnf(arg, negate) for arg in expr.args]
        flip = isinstance(expr, And) == negate  # De Morgan
        return make_or(*parts) if flip else make_and(*parts)
    if isinstance(expr, Const):
        return Const(expr.value != negate)
    return Not(expr) if negate else expr


def _clauses_of_nnf(expr: Expr) -> list[tuple[Literal, ...]]:
    if isinstance(expr, Sym):
        return [(Literal(expr.name),)]
    if isinstance(expr, Not):
        assert isinstance(expr.arg, Sym)
        return [(Literal(expr.arg.name, False),)]
    if isinstance(expr, Or):
        found: list[tuple[Literal, ...]] = []
        for arg in expr.args:
            found.extend(_clauses_of_nnf(arg))
            if len(found) > MAX_CLAUSES:
                break
        return found
    if isinstance(expr, And):
        result: list[tuple[Literal, ...]] = [()]
        for arg in expr.args:
            options = _clauses_of_nnf(arg)
            if len(result) * len(options) > MAX_CLAUSES:
                return [()] * (MAX_CLAUSES + 1)
            result = [tuple(dict.fromkeys(left + right)) for left, right in product(result, options)]
        return result
    raise AssertionError(expr)  # constants never reach here: the lattice removed them


def clauses(value: Value) -> list[list[Literal]] | None:
    """The DNF of an evaluated condition (Vitrage's ``parse_condition``), None for a non-condition.

    Clauses and literals keep the order in which they were written, without
    duplicates (sympy sorts them; the order carries no meaning). ``a and not
    a`` stays as written, as with sympy. Raises :class:`ConditionError` beyond
    :data:`MAX_CLAUSES`.
    """
    if not isinstance(value, Sym | Not | And | Or):
        return None
    found = _clauses_of_nnf(_nnf(value))
    if len(found) > MAX_CLAUSES:
        raise ConditionError(f"the condition has more than {MAX_CLAUSES} clauses in disjunctive normal form")
    unique: dict[frozenset[Literal], tuple[Literal, ...]] = {}
    for clause in found:
        unique.setdefault(frozenset(clause), clause)
    return [list(clause) for clause in unique.values()]


def negated_names(value: Value) -> list[str]:
    """Names directly under a ``not``, as Vitrage's NOT check finds them (sorted, without duplicates).

    For a condition, the negated literals of its DNF; for anything else (a
    function call) Vitrage walks the arguments as they are.
    """
    if isinstance(value, Sym | Const | Not | And | Or):
        found = clauses(value) or []
        return sorted({lit.name for clause in found for lit in clause if not lit.positive})
    names: set[str] = set()
    pending: list[Value] = list(value.args)
    while pending:
        node = pending.pop()
        if isinstance(node, Not):
            if isinstance(node.arg, Sym):
                names.add(node.arg.name)
            else:
                pending.append(node.arg)
        elif isinstance(node, And | Or | Other):
            pending.extend(node.args)
    return sorted(names)


def args_error(value: Value) -> str | None:
    """The error Vitrage hits reading ``.args`` of a non-sympy result (a Python tuple, bool...)."""
    if isinstance(value, Other):
        return value.args_error
    return None


NOT_A_CONDITION = "'NoneType' object is not iterable"


def has_positive(found: list[list[Literal]]) -> bool:
    return any(lit.positive for clause in found for lit in clause)


# -- version 3 ----------------------------------------------------------------------------

_V3_LABELS = re.compile(r"\s+\[\s*\w+\s*\]\s+")
_V3_OPERATORS = re.compile(r"\b(AND|OR|NOT|and|or|not)\b")
_REGEX_SPECIALS = frozenset("*+?{}()[]|\\")


def _id_pattern(entity_id: str) -> re.Pattern[str] | None:
    r"""``\b<id>\b`` as Vitrage builds it: the id is used as a regular expression.

    Ids with quantifiers, groups or classes are taken literally instead (a
    pattern written by a template author must not be able to backtrack for
    ever); None when Vitrage's own pattern does not compile (Vitrage crashes).
    """
    try:
        re.compile(r"\b" + entity_id + r"\b")
    except re.error:
        return None
    if _REGEX_SPECIALS.intersection(entity_id):
        return re.compile(r"\b" + re.escape(entity_id) + r"\b")
    return re.compile(r"\b" + entity_id + r"\b")


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem with a condition: a Vitrage code and the details Vitrage adds to its message."""

    code: int
    details: tuple[str, ...]
    crash: bool = False


def check_v3_ids(condition: str, entity_ids: Iterable[str]) -> Finding | None:
    """Vitrage's ``_validate_condition_entity_ids``: brackets (85), unknown words (10200)."""
    text = _V3_LABELS.sub(" ", f" {condition} ")
    if "[" in text or "]" in text:
        return Finding(85, (condition,))
    text = _V3_OPERATORS.sub("", text)
    for entity_id in entity_ids:
        pattern = _id_pattern(entity_id)
        if pattern is None:
            return Finding(85, (condition, f"entity id {entity_id!r} is not a valid regular expression"), crash=True)
        text = pattern.sub(" ", text)
    text = text.replace("(", "").replace(")", "")
    if text.strip():
        return Finding(10200, (condition, text))
    return None


def v3_shape_problem(condition: str) -> Finding | None:
    """Vitrage's ``_validate_not_condition``: NOT on an entity (86), parse errors (85), all negative (134).

    Relationships all become the same symbol ``relationship`` first, as in Vitrage.
    """
    rewritten = vitrage_rewrite(RELATIONSHIP_RE.sub(RELATION, condition))
    try:
        value = evaluate(rewritten)
        error = args_error(value)
        if error is not None:
            raise ConditionError(error)
        for name in negated_names(value):
            if not name.startswith(RELATION):
                return Finding(86, (name, condition))
        found = clauses(value)
        if found is None:
            raise ConditionError(NOT_A_CONDITION)
        if not has_positive(found):
            return Finding(134, ("", condition))
    except ConditionError as exc:
        return Finding(85, (condition, str(exc)))
    return None


def v3_relationships(condition: str) -> tuple[str, dict[str, tuple[str, str, str]]]:
    """The condition with each ``s [l] t`` replaced by ``s__l__t``, and those relationships."""
    found: dict[str, tuple[str, str, str]] = {}

    def replace(match: re.Match[str]) -> str:
        source, label, target = match.groups()
        name = f"{source}__{label}__{target}"
        found[name] = (source, label, target)
        return name

    return RELATIONSHIP_RE.sub(replace, condition), found


def dnf(condition: str) -> list[list[Literal]] | None:
    """The DNF of a condition as written (operators rewritten as Vitrage does); None: not a condition.

    Raises :class:`ConditionError`.
    """
    return clauses(evaluate(vitrage_rewrite(condition)))


def common_entities(found: list[list[Literal]], ends: Mapping[str, tuple[str, ...]]) -> set[str]:
    """Entities present in a positive term of every clause (Vitrage's ``get_condition_common_targets``).

    ``ends`` gives the entities of each symbol: (source, target) for a
    relationship, nothing for a symbol that means nothing; a symbol not in
    ``ends`` is an entity.
    """
    common: set[str] | None = None
    for clause in found:
        here: set[str] = set()
        for lit in clause:
            if lit.positive:
                here.update(ends.get(lit.name, (lit.name,)))
        common = here if common is None else common & here
    return common or set()


# -- version 2 ----------------------------------------------------------------------------


def v2_tokens(condition: str) -> list[str]:
    """The words Vitrage's v2 validator requires to be template ids (lower-case operators only).

    ``a AND b`` therefore yields ``AND``, an unknown template id (code 3).
    """
    for old in (" and ", " or ", " not ", "not ", "(", ")"):
        condition = condition.replace(old, " ")
    return [word for word in condition.split(" ") if word.strip()]
