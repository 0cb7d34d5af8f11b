"""``get_param(name)``: template parameters, checked and resolved as Vitrage does.

A string value that *starts* with ``get_param(`` and contains a ``)`` on the
same line is a call (Vitrage: ``re.match(r'get_param\\(.*\\)')``), anywhere in
the template: metadata, parameters, entities, definitions, scenarios. Its
value is the request's parameter if given and not empty, else the declared
``default`` if not empty; otherwise the template is invalid:

* 161: the template has no ``parameters`` block, or does not declare the name;
* 162: a malformed call (``get_param()``, ``get_param(x) and more``);
* 163: no value and no default.

Version 1 templates have no parameters at all (160 at the first call).
Validation only checks; :func:`resolve` substitutes the values and drops the
``parameters`` block, which is what ``template add`` stores.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from vitrail.evaluator.templates import codes
from vitrail.evaluator.templates.problems import Path

GET_PARAM = "get_param"
_CALL = re.compile(r"get_param\(.*\)")
PARAMETERS = "parameters"


@dataclass(frozen=True, slots=True)
class ParamError(Exception):
    """A call that cannot be resolved: Vitrage's code, its details, and where the call is."""

    code: int
    details: str
    path: Path

    def __str__(self) -> str:
        return f"{codes.message(self.code)} - {self.details}"


@dataclass(frozen=True, slots=True)
class NotWalkable(Exception):
    """A list item that is not a mapping: Vitrage's walk fails on it (``str.items()``)."""

    path: Path


def is_call(value: Any) -> bool:
    return isinstance(value, str) and _CALL.match(value) is not None


def calls(document: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    """Every ``get_param`` call, in Vitrage's walk order (mapping order, depth first).

    Vitrage only walks mappings and the mappings inside lists; raises
    :class:`NotWalkable` at a list item of another kind, where Vitrage fails.
    """
    stack: list[tuple[bool, Path, Any]] = [(False, (), document)]  # (is a call, path, value)
    while stack:
        is_call_entry, path, block = stack.pop()
        if is_call_entry:
            yield path, block
            continue
        if not isinstance(block, Mapping):
            raise NotWalkable(path)
        children: list[tuple[bool, Path, Any]] = []
        for key, value in block.items():
            if is_call(value):
                children.append((True, (*path, key), value))
            elif isinstance(value, Mapping):
                children.append((False, (*path, key), value))
            elif isinstance(value, list):
                children.extend((False, (*path, key, index), item) for index, item in enumerate(value))
        stack.extend(reversed(children))


def _name(call: str) -> str:
    """Vitrage's ``extract_param_name``: what is between the parentheses, not stripped."""
    name = call[len(GET_PARAM) :]
    if len(name) > 2 and name[0] == "(" and name[-1] == ")":
        name = name[1:-1]
    return name


def value_of(call: str, path: Path, declared: Any, params: Mapping[str, Any] | None) -> Any:
    """The value of one call; raises :class:`ParamError`.

    Raises ``AttributeError`` like Vitrage when the parameter is declared as a
    non-empty string (not a mapping) and has no value: Vitrage crashes there.
    """
    if not declared:
        raise ParamError(161, "", path)
    if not call.startswith(GET_PARAM + "(") or not call.endswith(")") or len(call) < len(GET_PARAM) + 3:
        raise ParamError(162, call, path)
    name = _name(call)
    if not name:
        raise ParamError(162, call, path)
    found = None
    for key, definition in declared.items():
        if key == name:
            found = (key, definition)
    if found is None:
        raise ParamError(161, name, path)
    value = params.get(name) if params else None
    if not value:
        definition = found[1]
        if isinstance(definition, str) and definition:
            raise AttributeError(f"parameter {name!r} is declared as a string: it has no default")
        default = definition.get("default") if definition else None
        if not default:
            raise ParamError(163, name, path)
        value = default
    return value


def check(document: Mapping[str, Any], params: Mapping[str, Any] | None) -> Iterator[ParamError]:
    """Every unresolvable call, in Vitrage's order (the first is Vitrage's answer)."""
    declared = document.get(PARAMETERS)
    for path, call in calls(document):
        try:
            value_of(call, path, declared, params)
        except ParamError as error:
            yield error


def resolve(document: Mapping[str, Any], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``document`` with every call replaced by its value and no ``parameters`` block.

    Raises :class:`ParamError` for the first call that cannot be resolved
    (validate first to get every problem).
    """
    resolved = copy.deepcopy(dict(document))
    declared = resolved.get(PARAMETERS)
    for path, call in list(calls(resolved)):
        value = value_of(call, path, declared, params)
        parent: Any = resolved
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = value
    resolved.pop(PARAMETERS, None)
    return resolved
