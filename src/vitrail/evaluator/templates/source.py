"""A template as data, whatever it came as: YAML text, bytes, or an already parsed mapping.

Vitrage never parses YAML on the server: ``python-vitrageclient`` loads the
file with ``yaml.BaseLoader`` and sends JSON, so **every scalar is a string**
(``version: 3`` is ``"3"``, an empty ``name:`` is ``""``), tags are ignored,
``<<`` is an ordinary key and a repeated key keeps its last value. Text given
to Vitrail (CLI, files) is read the same way, through the safe, bounded
composer of :mod:`vitrail.yamlnodes`, and the line of every key and list item
is kept so problems can name it.

A mapping (the JSON body of an API request) is taken as it is — a raw JSON
``"version": 3`` is an integer, and Vitrage rejects it (code 63) — after a
bounded copy into plain dicts, lists and scalars.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vitrail import yamlnodes
from vitrail.evaluator.templates import codes
from vitrail.evaluator.templates.problems import Path, TemplateProblem, field_name

#: Larger texts are refused before parsing (Vitrage's own templates are a few KiB).
MAX_TEXT_SIZE = 1024 * 1024
#: Nodes a template may expand to, aliases included.
MAX_NODES = 200_000
#: Nesting of collections (the v2 format itself needs 8 levels).
MAX_NESTING = 64

_SCALARS = (str, int, float, bool, type(None))


@dataclass(slots=True)
class Source:
    """The document (None when it could not be read), where things are, and what went wrong."""

    document: Any
    lines: dict[Path, int] = field(default_factory=dict)
    problems: list[TemplateProblem] = field(default_factory=list)
    warnings: list[TemplateProblem] = field(default_factory=list)


def _unreadable(details: str, line: int | None = None) -> Source:
    text = f"{codes.STATUS_MESSAGES[5]}{details}"
    return Source(None, problems=[TemplateProblem(5, text, line=line, vitrage_description=codes.SYNTAX,
                                                  vitrage_message=text)])  # fmt: skip


def read(source: str | bytes | Mapping[str, Any], file_name: str | None = None) -> Source:
    """The template in ``source`` as plain data (see the module docstring)."""
    name = file_name or "template"
    if isinstance(source, Mapping):
        return _from_mapping(source)
    if isinstance(source, bytes | bytearray):
        if len(source) > MAX_TEXT_SIZE:
            return _unreadable(f"larger than the limit of {MAX_TEXT_SIZE} bytes")
        text, error = yamlnodes.decode(bytes(source), name)
        if text is None:
            return _unreadable(_strip_name(error or "", name), _line_of(error or "", name))
        source = text
    if not isinstance(source, str):
        return _unreadable(f"expected YAML text or a mapping, got {type(source).__name__}")
    if len(source) > MAX_TEXT_SIZE:  # characters: at least as many bytes
        return _unreadable(f"larger than the limit of {MAX_TEXT_SIZE} bytes")
    root, error = yamlnodes.compose(source, name, MAX_NESTING)
    if error is not None:
        line = _line_of(error, name)
        return _unreadable(_strip_name(error, name), line)
    if root is None:
        return Source(None)
    try:
        data = yamlnodes.to_data(root, max_nodes=MAX_NODES, max_depth=MAX_NESTING)
    except yamlnodes.DataError as exc:
        return _unreadable(str(exc), yamlnodes.line(exc.node))
    found = Source(data.value, data.lines)
    for path, first in data.duplicates:
        found.warnings.append(
            TemplateProblem(
                codes.WARNING,
                f"{codes.VITRAIL_MESSAGES[codes.WARNING]} the key {path[-1]!r} is written twice "
                f"(first at line {first}); the last value is used, as Vitrage does",
                line=data.lines.get(path),
                field=field_name(path),
            )
        )
    return found


def _strip_name(error: str, name: str) -> str:
    """``name:12: yaml: problem`` → ``line 12: problem`` (the file name is the caller's business)."""
    prefix = f"{name}:"
    if error.startswith(prefix):
        line, _, rest = error[len(prefix) :].partition(": ")
        kind, _, problem = rest.partition(": ")
        return f"line {line}: {problem or kind}"
    return error


def _line_of(error: str, name: str) -> int | None:
    head = error[len(name) + 1 :].split(":", 1)[0] if error.startswith(f"{name}:") else ""
    return int(head) if head.isdigit() else None


def _from_mapping(source: Mapping[str, Any]) -> Source:
    """A bounded deep copy into dicts (string keys), lists and JSON scalars, without recursion."""
    budget = MAX_NODES
    holder: list[Any] = [None]
    pending: list[tuple[Any, Any, Any, int]] = [(source, holder, 0, 0)]
    while pending:
        value, container, slot, depth = pending.pop()
        budget -= 1
        if budget < 0:
            return _unreadable(f"the document has more than {MAX_NODES} values")
        if depth > MAX_NESTING:
            return _unreadable(f"nested more than {MAX_NESTING} levels")
        if isinstance(value, _SCALARS):
            container[slot] = value
        elif isinstance(value, Mapping):
            copy: dict[str, Any] = {}
            container[slot] = copy
            for key, item in value.items():
                text = key if isinstance(key, str) else str(key)  # BaseLoader keys are text
                copy[text] = None
                pending.append((item, copy, text, depth + 1))
        elif isinstance(value, list | tuple):
            items: list[Any] = [None] * len(value)
            container[slot] = items
            pending.extend((item, items, index, depth + 1) for index, item in enumerate(value))
        else:
            return _unreadable(f"unsupported value of type {type(value).__name__}")
    return Source(holder[0])
