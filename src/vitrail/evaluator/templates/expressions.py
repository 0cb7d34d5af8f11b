"""What sympy makes of a string: the expression evaluator behind Vitrage's conditions.

Vitrage hands each condition (its operator words rewritten to ``&``, ``|``,
``~``) to ``sympy.to_dnf``, which *evaluates it as a Python expression* in
sympy's namespace: unknown names become boolean symbols, sympy's own names
(``E``, ``field``, ``root``...) stay sympy objects, ``true``/``false`` are
constants, and what was not rewritten is still Python (``a and(b)`` is
Python's ``and``: it means ``b``). This module reproduces that, without
sympy, for the small grammar a condition can contain — names, numbers,
brackets, calls, ``&``, ``|``, ``~``, ``and``, ``or``, ``not`` — including
the exception texts Vitrage shows with code 85.

The whole text is parsed first, then evaluated, as Python does (a syntax
error anywhere wins over an evaluation error).
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from vitrail.evaluator.templates._sympy_names import SYMPY_CLASSES, SYMPY_CONSTANTS, SYMPY_NAMES


class ConditionError(Exception):
    """The condition cannot be evaluated; ``str()`` is the text Vitrage reports with code 85."""


@dataclass(frozen=True, slots=True)
class Sym:
    name: str


@dataclass(frozen=True, slots=True)
class Const:
    """sympy's ``true``/``false``."""

    value: bool


@dataclass(frozen=True, slots=True)
class Not:
    arg: Expr


class _Lattice:
    """``And``/``Or``: flat, without duplicates, equal whatever the order (as sympy's)."""

    __slots__ = ("args", "key")
    args: tuple[Expr, ...]
    key: frozenset[Expr]

    def __init__(self, args: tuple[Expr, ...]) -> None:
        self.args = args
        self.key = frozenset(args)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.key == other.key  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.key))

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.args!r}"


class And(_Lattice):
    __slots__ = ()


class Or(_Lattice):
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Other:
    """A value that is not a boolean: a number, a tuple, a function call, a sympy object...

    ``type_name`` is what Python's error messages call it; ``truthy`` what
    Python's ``and``/``or``/``not`` make of it; ``args_error`` what fails when
    Vitrage's NOT check reads its sympy ``.args`` (None: nothing fails).
    """

    type_name: str
    truthy: bool = True
    args_error: str | None = None
    args: tuple[Value, ...] = ()
    """The arguments of a function call (Vitrage's NOT check looks inside them)."""


def _python(type_name: str, truthy: bool = True) -> Other:
    """A plain Python value: it has no ``.args``."""
    return Other(type_name, truthy, f"'{type_name}' object has no attribute 'args'")


def _sympy_object(name: str) -> Other:
    if name in SYMPY_CONSTANTS:
        return Other(SYMPY_CONSTANTS[name])
    if name in SYMPY_CLASSES:
        return Other(name, args_error="'property' object is not iterable")
    return Other("function", args_error="'function' object has no attribute 'args'")


Expr = Sym | Const | Not | And | Or
Value = Expr | Other
_BOOLEAN = (Sym, Const, Not, And, Or)


def _type_name(value: Value) -> str:
    if isinstance(value, Sym):
        return "Symbol"
    if isinstance(value, Const):
        return "BooleanTrue" if value.value else "BooleanFalse"
    if isinstance(value, Other):
        return value.type_name
    return type(value).__name__


def make_not(arg: Expr) -> Expr:
    if isinstance(arg, Const):
        return Const(not arg.value)
    if isinstance(arg, Not):
        return arg.arg
    return Not(arg)


def _lattice(kind: type[And] | type[Or], args: Iterable[Expr]) -> Expr:
    identity = kind is And  # And drops true and collapses on false; Or the opposite
    flat: list[Expr] = []
    seen: set[Expr] = set()
    for arg in args:
        parts = arg.args if isinstance(arg, kind) else (arg,)
        for part in parts:
            if isinstance(part, Const):
                if part.value != identity:
                    return Const(not identity)
                continue
            if part not in seen:
                seen.add(part)
                flat.append(part)
    if not flat:
        return Const(identity)
    if len(flat) == 1:
        return flat[0]
    return kind(tuple(flat))


def make_and(*args: Expr) -> Expr:
    return _lattice(And, args)


def make_or(*args: Expr) -> Expr:
    return _lattice(Or, args)


# -- parsing and evaluating -------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<space>(?:[ \t\f\r\n]|\\\r?\n)+)|(?P<name>[^\W\d]\w*)|(?P<number>\d\w*)|(?P<op>[&|~(),\[\]])",
)
_KEYWORDS = frozenset(keyword.kwlist)
_SYNTAX = "SyntaxError: invalid syntax (<string>, line {line})"
_EOF = "TokenError: ('EOF in multi-line statement', (2, 0))"
_NOT_CALLABLE = frozenset(("True", "False", "None", *SYMPY_CONSTANTS))
_COMMA = "SyntaxError: invalid syntax. Perhaps you forgot a comma? (<string>, line 1)"


def _could_not_parse(text: str, reason: str) -> ConditionError:
    return ConditionError(
        f"Sympify of expression 'could not parse '{text.strip()}'' failed, because of exception being raised:\n{reason}"
    )


def _tokens(text: str) -> list[tuple[str, str]]:
    """Python's tokens of ``text``; raises :class:`ConditionError` as sympy's parser would."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise _could_not_parse(text, _SYNTAX.format(line=1))
        position = match.end()
        kind = match.lastgroup or ""
        value = match.group()
        if kind == "space":
            continue
        if kind == "number" and not value.isdigit():
            raise _could_not_parse(text, _SYNTAX.format(line=1))
        tokens.append((kind, value))
    _check_brackets(text, [value for kind, value in tokens if kind == "op"])
    if not tokens:
        raise _could_not_parse(text, _SYNTAX.format(line=0))
    return tokens


def _check_brackets(text: str, operators: list[str]) -> None:
    """The tokenizer only counts brackets (a count not back to 0 is "EOF"); the compiler pairs them."""
    if sum(1 if op in "([" else -1 if op in ")]" else 0 for op in operators):
        raise _could_not_parse(text, _EOF)
    opened: list[str] = []
    for op in operators:
        if op in "([":
            opened.append(op)
        elif op in ")]":
            if not opened:
                raise _could_not_parse(text, f"SyntaxError: unmatched '{op}' (<string>, line 1)")
            first = opened.pop()
            if (first, op) not in (("(", ")"), ("[", "]")):
                reason = f"closing parenthesis '{op}' does not match opening parenthesis '{first}'"
                raise _could_not_parse(text, f"SyntaxError: {reason} (<string>, line 1)")


Node = tuple[Any, ...]
"""A parsed expression: ``(kind, ...)``; kinds: name, number, call, tuple, list, not, and, or, &, |, ~."""


class _Parser:
    """Python's grammar, restricted to what a rewritten condition can contain.

    The whole text is parsed before anything is evaluated, as Python does: a
    syntax error anywhere wins over an evaluation error.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.position = 0

    def run(self) -> Node:
        node = self.expression()
        if self.take(","):  # ``a ,``: Python makes a tuple of the whole line
            items = [node]
            while self.position < len(self.tokens):
                items.append(self.expression())
                if not self.take(","):
                    break
            node = ("tuple", items)
        if self.position != len(self.tokens):
            raise self.syntax()
        return node

    def syntax(self) -> ConditionError:
        return _could_not_parse(self.text, _SYNTAX.format(line=1))

    def juxtaposed(self) -> ConditionError:
        """Inside brackets, Python's message for two expressions side by side suggests a comma."""
        kind, value = self.peek()
        starts = kind in ("name", "number") and (value not in _KEYWORDS or value in ("not", "True", "False", "None"))
        if starts or value in ("(", "[", "~"):
            return _could_not_parse(self.text, _COMMA)
        return self.syntax()

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.position] if self.position < len(self.tokens) else ("end", "")

    def take(self, value: str) -> bool:
        if self.peek()[1] == value and self.peek()[0] != "end":
            self.position += 1
            return True
        return False

    def expression(self) -> Node:  # or_test := and_test ("or" and_test)*
        node = self.and_test()
        while self.take("or"):
            node = ("or", node, self.and_test())
        return node

    def and_test(self) -> Node:
        node = self.not_test()
        while self.take("and"):
            node = ("and", node, self.not_test())
        return node

    def not_test(self) -> Node:
        if self.take("not"):
            return ("not", self.not_test())
        return self.bit_or()

    def bit_or(self) -> Node:
        node = self.bit_and()
        while self.take("|"):
            node = ("|", node, self.bit_and())
        return node

    def bit_and(self) -> Node:
        node = self.unary()
        while self.take("&"):
            node = ("&", node, self.unary())
        return node

    def unary(self) -> Node:
        if self.take("~"):
            return ("~", self.unary())
        node = self.atom()
        while self.take("("):
            node = ("call", node, self.items(")"))
        return node

    def items(self, closer: str) -> list[Node]:
        """Comma-separated expressions up to ``closer`` (already past the opening bracket)."""
        found: list[Node] = []
        if self.take(closer):
            return found
        while True:
            found.append(self.expression())
            if self.take(closer):
                return found
            if not self.take(","):
                raise self.juxtaposed()
            if self.take(closer):
                return found

    def atom(self) -> Node:
        kind, value = self.peek()
        self.position += 1
        if kind == "name":
            if value in _KEYWORDS and value not in ("True", "False", "None"):
                raise self.syntax()
            return ("name", value)
        if kind == "number":
            return ("number", value)
        if value == "[":
            return ("list", self.items("]"))
        if value == "(":
            if self.take(")"):
                return ("tuple", [])
            first = self.expression()
            if self.take(")"):
                return first
            if self.peek()[1] != ",":
                raise self.juxtaposed()
            return ("tuple", [first, *self._rest()])
        raise self.syntax()

    def _rest(self) -> list[Node]:
        """The items after ``(first,`` of a tuple (the comma not yet taken)."""
        self.take(",")
        rest: list[Node] = []
        while not self.take(")"):
            rest.append(self.expression())
            if self.take(")"):
                break
            if not self.take(","):
                raise self.juxtaposed()
        return rest


def _evaluate(node: Node) -> Value:
    """What Python (with sympy's names) makes of a parsed expression."""
    kind = node[0]
    if kind == "name":
        name = node[1]
        if name in ("True", "False"):
            return _python("bool", truthy=name == "True")
        if name == "None":
            return _python("NoneType", truthy=False)
        if name in ("true", "false"):
            return Const(name == "true")
        if name in SYMPY_NAMES:
            return _sympy_object(name)
        return Sym(name)
    if kind == "number":
        return Other("Integer", truthy=int(node[1]) != 0)
    if kind == "list":
        for item in node[1]:
            _evaluate(item)
        return _python("list", truthy=bool(node[1]))
    if kind == "tuple":
        for item in node[1]:
            _evaluate(item)
        return _python("tuple", truthy=bool(node[1]))
    if kind == "or":
        left = _evaluate(node[1])
        return left if _truthy(left) else _evaluate(node[2])
    if kind == "and":
        left = _evaluate(node[1])
        return _evaluate(node[2]) if _truthy(left) else left
    if kind == "not":
        return _python("bool", truthy=not _truthy(_evaluate(node[1])))
    if kind in ("&", "|"):
        return _binary(kind, _evaluate(node[1]), _evaluate(node[2]))
    if kind == "~":
        operand = _evaluate(node[1])
        if isinstance(operand, _BOOLEAN):
            return make_not(operand)
        if operand.type_name == "bool":
            return _python("int")
        raise ConditionError(f"bad operand type for unary ~: '{operand.type_name}'")
    # a call: a name followed by "(" is a (sympy) function, unless it names a constant
    function, arguments = node[1], node[2]
    callee = _evaluate(function)
    if function[0] != "name" or isinstance(callee, Const) or function[1] in _NOT_CALLABLE:
        raise ConditionError(f"'{_type_name(callee)}' object is not callable")
    return Other(function[1], args=tuple(_evaluate(argument) for argument in arguments))


def _truthy(value: Value) -> bool:
    if isinstance(value, Const):
        return value.value
    if isinstance(value, Other):
        return value.truthy
    return True  # sympy objects have no __bool__


def _binary(operator: str, left: Value, right: Value) -> Value:
    def as_boolean(value: Value) -> Expr | None:
        if isinstance(value, _BOOLEAN):
            return value
        if isinstance(value, Other) and value.type_name == "bool":
            return Const(value.truthy)
        return None

    lhs, rhs = as_boolean(left), as_boolean(right)
    if isinstance(left, Other) and isinstance(right, Other) and left.type_name == right.type_name == "bool":
        result = (left.truthy and right.truthy) if operator == "&" else (left.truthy or right.truthy)
        return _python("bool", truthy=result)
    if lhs is None or rhs is None:
        raise ConditionError(
            f"unsupported operand type(s) for {operator}: '{_type_name(left)}' and '{_type_name(right)}'"
        )
    return make_and(lhs, rhs) if operator == "&" else make_or(lhs, rhs)


def evaluate(rewritten: str) -> Value:
    """What ``sympy.to_dnf`` makes of an already rewritten condition (before the DNF step)."""
    return _evaluate(_Parser(rewritten).run())
