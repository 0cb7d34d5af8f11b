"""Safe YAML for files an operator (or an attacker) wrote: nodes with line numbers, bounded work.

Two readers need this: the ``static`` datasource (topology files) and the
template language (Vitrage templates). Both want the same things PyYAML does
not give out of the box:

* **No recursion on nesting.** PyYAML's composers recurse once per level: the
  pure-Python one hits ``RecursionError`` and libyaml's (``CSafeLoader``)
  overflows the C stack and kills the process on ``[[[[...`` a few hundred KiB
  deep. :func:`compose` builds the node tree from the parser's *events*
  (libyaml's event parser is a state machine, safe at any depth) with an
  explicit stack, and stops at ``max_nesting``.
* **Line numbers.** Errors name the line of the offending value, so readers
  work on nodes (see :func:`line`), not on constructed objects.
* **Bounded expansion.** Aliases can make a small file expand to billions of
  nodes; :func:`to_data` counts every node it builds (aliases included).
* **Predictable scalars.** :func:`typed_scalar` types plain scalars by YAML
  1.2 core rules (what ``static`` wants for extra properties); Vitrage's
  templates go through the client's ``yaml.BaseLoader``, for which *every*
  scalar is the text as written — :func:`to_data` with the default
  ``scalar=text_scalar`` does the same.

Nothing here constructs arbitrary Python objects: tags never select a
constructor.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

NULL_TAG = "tag:yaml.org,2002:null"
MERGE_TAG = "tag:yaml.org,2002:merge"
BOOL_TAG = "tag:yaml.org,2002:bool"
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")

Path = tuple[str | int, ...]


class Resolver12(yaml.resolver.Resolver):
    """Resolves plain scalars by YAML 1.2 core rules instead of PyYAML's YAML 1.1.

    In YAML 1.1 ``on``/``yes`` are booleans, ``0755`` is octal and ``1:30`` is
    90: surprises for operators (a ``link: on`` label, a port range). Here only
    the unambiguous JSON-like forms get a type. Quoted scalars and explicit tags
    are never resolved, as usual.
    """

    yaml_implicit_resolvers: dict[Any, Any] = {}


Resolver12.add_implicit_resolver(NULL_TAG, re.compile(r"(?:~|null|Null|NULL|)\Z"), ["~", "n", "N", ""])
Resolver12.add_implicit_resolver(BOOL_TAG, re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z"), list("tTfF"))
Resolver12.add_implicit_resolver(INT_TAG, re.compile(r"[-+]?(?:0|[1-9][0-9]*)\Z"), list("-+0123456789"))
Resolver12.add_implicit_resolver(
    FLOAT_TAG,
    re.compile(r"[-+]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z"),
    list("-+.0123456789"),
)
Resolver12.add_implicit_resolver(MERGE_TAG, re.compile(r"<<\Z"), ["<"])
_RESOLVER = Resolver12()  # stateless without path resolvers: safe to share between threads
#: Only its event parser is used (libyaml when present: about 5x faster, and not recursive).
_EVENT_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def line(node: yaml.Node) -> int:
    """The 1-based line where ``node`` starts."""
    return int(node.start_mark.line) + 1


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG


def describe(node: yaml.Node) -> str:
    """What a node is, for "expected X, got Y" messages."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == NULL_TAG:
        return "nothing"
    text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    return f"{text!r}"


def typed_scalar(node: yaml.ScalarNode) -> Any:
    """A scalar typed as :class:`Resolver12` resolved it.

    Anything else (text, explicit tags such as ``!!timestamp``, an integer beyond
    64 bits, a float too big to be finite) keeps the text written in the file,
    so the result stays plain JSON.
    """
    tag, text = node.tag, node.value
    if tag == NULL_TAG:
        return None
    if tag == BOOL_TAG and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if tag == INT_TAG and _INT.fullmatch(text):
        number = int(text)
        if -(2**63) <= number < 2**63:  # what JSON tools (orjson, databases) take
            return number
    if tag == FLOAT_TAG and _FLOAT.fullmatch(text):
        real = float(text)
        if math.isfinite(real):
            return real
    return text


def text_scalar(node: yaml.ScalarNode) -> str:
    """A scalar as ``yaml.BaseLoader`` gives it: the text as written, whatever its tag."""
    return str(node.value)


def decode(data: bytes, file_name: str) -> tuple[str | None, str | None]:
    """The text of a file, or an error naming the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        where = data.count(b"\n", 0, exc.start) + 1
        return None, f"{file_name}:{where}: file: not UTF-8 ({exc.reason} at byte {exc.start})"


def _tag(event: yaml.NodeEvent, kind: type[yaml.Node]) -> str:
    tag = event.tag
    if tag is None or tag == "!":
        value = event.value if isinstance(event, yaml.ScalarEvent) else None
        return str(_RESOLVER.resolve(kind, value, event.implicit))
    return str(tag)


def compose_events(events: Iterable[yaml.Event], max_nesting: int) -> yaml.Node | None:
    """The node tree of a one-document stream, built without recursion.

    Nesting beyond ``max_nesting`` stops parsing at once, and the parser's
    events are lazy, so a hostile file costs little.
    """
    root: yaml.Node | None = None
    anchors: dict[str, yaml.Node] = {}
    stack: list[list[Any]] = []  # [open collection node, pending mapping key or None]
    document: yaml.Mark | None = None
    for event in events:
        if isinstance(event, yaml.DocumentStartEvent):
            if document is not None:
                raise yaml.composer.ComposerError(
                    "expected a single document in the stream", document,
                    "but found another document", event.start_mark,
                )  # fmt: skip
            document = event.start_mark
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            stack.pop()[0].end_mark = event.end_mark
            continue
        opens = False
        if isinstance(event, yaml.AliasEvent):
            node = anchors.get(event.anchor)
            if node is None:
                raise yaml.composer.ComposerError(
                    None, None, f"found undefined alias {event.anchor!r}", event.start_mark
                )
        elif isinstance(event, yaml.ScalarEvent):
            node = yaml.ScalarNode(
                _tag(event, yaml.ScalarNode), event.value, event.start_mark, event.end_mark, event.style
            )
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
            node = kind(_tag(event, kind), [], event.start_mark, None, event.flow_style)
            opens = True
        else:  # stream start/end, document end
            continue
        if event.anchor is not None and not isinstance(event, yaml.AliasEvent):
            anchors[event.anchor] = node
        if not stack:
            root = node
        else:
            _attach(stack[-1], node)
        if opens:
            if len(stack) >= max_nesting:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {max_nesting} levels", event.start_mark
                )
            stack.append([node, None])
    return root


def _attach(entry: list[Any], node: yaml.Node) -> None:
    parent = entry[0]
    if isinstance(parent, yaml.SequenceNode):
        parent.value.append(node)
    elif entry[1] is None:
        entry[1] = node
    else:
        parent.value.append((entry[1], node))
        entry[1] = None


def compose(text: str, file_name: str, max_nesting: int) -> tuple[yaml.Node | None, str | None]:
    """The node tree of a file, or the YAML error as ``file:line: yaml: problem (column c)``."""
    try:
        return compose_events(yaml.parse(text, Loader=_EVENT_LOADER), max_nesting), None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        context = exc.context
        if context and exc.context_mark and exc.context_mark.line + 1 != where:
            context = f"{context} (line {exc.context_mark.line + 1})"
        problem = ", ".join(part for part in (context, exc.problem) if part)
        return None, f"{file_name}:{where}: yaml: {problem} (column {column})"
    except yaml.reader.ReaderError as exc:
        where = text.count("\n", 0, max(exc.position, 0)) + 1
        return None, f"{file_name}:{where}: yaml: {exc.reason} (character {exc.character!r})"
    except yaml.YAMLError as exc:
        return None, f"{file_name}:1: yaml: {exc}"


# -- nodes to plain data -----------------------------------------------------------


class DataError(Exception):
    """The node tree cannot become plain data (too big, a non-scalar key)."""

    def __init__(self, message: str, node: yaml.Node, path: Path) -> None:
        super().__init__(message)
        self.node = node
        self.path = path


@dataclass(slots=True)
class Data:
    """Plain data built from a node tree, and where each part of it was written.

    ``lines`` maps a path (mapping keys and list indexes from the root) to the
    line of the mapping key or list item; ``duplicates`` lists the keys written
    twice in one mapping (path of the later one, line of the first).
    """

    value: Any
    lines: dict[Path, int] = field(default_factory=dict)
    duplicates: list[tuple[Path, int]] = field(default_factory=list)


def to_data(
    root: yaml.Node,
    *,
    scalar: Callable[[yaml.ScalarNode], Any] = text_scalar,
    max_nodes: int,
    max_depth: int,
) -> Data:
    """Build lists, dicts and scalars from ``root`` without recursion.

    Mappings behave as with ``yaml.BaseLoader`` (what Vitrage's client uses):
    ``<<`` is an ordinary key and a key written twice keeps its last value
    (both recorded in ``duplicates`` so a caller can warn). Every node built
    counts against ``max_nodes``, aliases included, so alias bombs stop early;
    nesting deeper than ``max_depth`` (possible only through aliases, as
    :func:`compose` bounds the written nesting) stops too.

    Raises :class:`DataError`.
    """
    data = Data(None)
    budget = max_nodes
    holder: list[Any] = [None]
    # (node, container, slot, path): build ``node`` and store it as container[slot]
    pending: list[tuple[yaml.Node, Any, Any, Path]] = [(root, holder, 0, ())]
    while pending:
        node, container, slot, path = pending.pop()
        budget -= 1
        if budget < 0:
            raise DataError(f"the document expands to more than {max_nodes} YAML nodes (aliases?)", node, path)
        if len(path) > max_depth:
            raise DataError(f"nested more than {max_depth} levels (a recursive alias?)", node, path)
        if isinstance(node, yaml.ScalarNode):
            container[slot] = scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            items: list[Any] = [None] * len(node.value)
            container[slot] = items
            for index in range(len(node.value) - 1, -1, -1):
                item = node.value[index]
                data.lines.setdefault((*path, index), line(item))
                pending.append((item, items, index, (*path, index)))
        else:
            mapping: dict[str, Any] = {}
            container[slot] = mapping
            firsts: dict[str, int] = {}
            children: list[tuple[yaml.Node, Any, Any, Path]] = []
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise DataError("found unhashable key (a mapping key must be a scalar)", key_node, path)
                key = str(key_node.value)
                child = (*path, key)
                if key in firsts:
                    data.duplicates.append((child, firsts[key]))
                else:
                    firsts[key] = line(key_node)
                data.lines[child] = line(key_node)
                mapping[key] = None  # keeps the first position, as a dict assignment does
                children.append((value_node, mapping, key, child))
            pending.extend(reversed(children))
    data.value = holder[0]
    return data
