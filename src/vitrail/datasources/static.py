"""The ``static`` datasource: topology an operator writes down in YAML files.

Switches, routers, applications and the links between them cannot be read from
any API, so operators describe them in files, in OpenStack Vitrage's static
datasource format (existing Vitrage files load unchanged)::

    metadata:                      # optional
      name: switches of rack 1
    definitions:
      entities:
        - static_id: s1            # a name local to this file
          type: switch             # becomes vitrage_type
          id: 12345                # optional, defaults to static_id; always a string
          name: switch-1
          state: available
          rack: 1                  # any other key becomes a vertex property
        - static_id: h1
          type: nova.host          # a type another datasource owns: a reference
          id: host-00001
      relationships:
        - source: s1               # edges go source -> target
          target: h1
          relationship_type: attached

How the driver behaves, and why:

* Every ``*.yaml`` / ``*.yml`` regular file directly in the directory is read,
  in name order, so the result does not depend on the file system's order.
* An operator editing a file must never wipe the topology by saving a typo: a
  file that becomes invalid keeps contributing the entities of its **last valid
  version**, while ``errors`` says what is wrong (file, line, field) and the
  log says it once. Deleting the file removes its entities.
* ``static_id`` is local to its file, as in Vitrage: relationships name static
  ids of the same file, and two files may both use ``h1``. It is also stored as
  a vertex property (Vitrage does not), so an operator looking at a vertex can
  find the lines that define it.
* The same entity ``(category, type, id)`` may appear in several files (a host
  that two files attach things to): the descriptions are merged (the first in
  name order wins a conflicting property, which ``warnings`` reports) and the
  relationships are united, so the graph gets one consistent update.
* An entity whose type belongs to another enabled datasource (``nova.host``
  when the simulator runs) is a *reference*: its update is weak, so it creates
  the vertex when nobody did but never overwrites the owner's properties.
* Every payload is self-contained (the replayed log must not depend on the
  configuration): the entity, its ``reference`` flag and its outgoing
  relationships with their targets' identity.

Scalar types: the fields Vitrage defines (``static_id``, ``type``, ``id``,
``name``, ``state``, ``category``, ``source``, ``target``,
``relationship_type``) are taken as the text written in the file, as Vitrage's
``BaseLoader`` does (``id: 012`` is ``"012"``). Extra properties keep JSON-like
types under YAML 1.2 rules: decimal integers, finite decimal floats, ``true`` /
``false``, ``null`` (an extra set to null is absent); anything else — ``yes``,
``on``, ``0x1F``, ``1:30``, dates, quoted values — stays the text as written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from vitrail import yamlnodes
from vitrail.datasources.base import DatasourceError, Driver, RawChange, RawEntity
from vitrail.graph.events import Event, EventAction
from vitrail.graph.properties import Category
from vitrail.graph.updates import EntityUpdate, NeighborRef, TransformError

logger = logging.getLogger(__name__)

NAME = "static"
#: Larger files are rejected before they are parsed (a topology file is a few KiB).
MAX_FILE_SIZE = 5 * 1024 * 1024
#: YAML nodes one file may expand to (aliases included): stops "billion laughs".
MAX_NODES = 1_000_000
#: Nesting depth of an extra property's value (also stops recursive aliases).
MAX_DEPTH = 32
#: Nesting depth of a whole file (the format itself needs 4 levels).
MAX_NESTING = MAX_DEPTH + 8
#: Errors kept per file; the rest are counted.
MAX_ERRORS_PER_FILE = 100

SUFFIXES = (".yaml", ".yml")
CATEGORIES = (Category.RESOURCE.value, Category.ALARM.value)

#: Entity keys Vitrage gives a meaning to; every other key is a vertex property.
ENTITY_FIELDS = frozenset(("static_id", "type", "id", "name", "state", "category"))
#: Extra keys the graph owns: a file may not set them (they are dropped with a warning).
_OWNED_BY_GRAPH = frozenset(("update_timestamp", "is_deleted", "is_placeholder"))

# The generic YAML handling lives in vitrail.yamlnodes (templates use it too).
_NULL_TAG = yamlnodes.NULL_TAG
_MERGE_TAG = yamlnodes.MERGE_TAG
_line = yamlnodes.line
_describe = yamlnodes.describe
_is_null = yamlnodes.is_null
#: Kept here under its historical name: static files type extra properties by YAML 1.2 core rules.
typed_scalar = yamlnodes.typed_scalar


def entity_key(category: str, vitrage_type: str, entity_id: str) -> str:
    """The ``RawEntity`` key of an entity: unique within the datasource."""
    return f"{category}:{vitrage_type}:{entity_id}"


# -- parsing one file --------------------------------------------------------------


class _Abort(Exception):
    """Stops parsing a file whose structure is too big or too deep to go on."""

    def __init__(self, node: yaml.Node, path: str, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.path = path


@dataclass(slots=True)
class _Entity:
    """One entity as one file defines it, relationships resolved."""

    file: str
    line: int
    path: str
    static_id: str
    category: str
    type: str
    id: str
    name: str | None
    state: str | None
    properties: dict[str, Any]
    relationships: list[dict[str, str]] = field(default_factory=list)
    _linked: set[tuple[str, ...]] = field(default_factory=set, repr=False)  # no duplicate edges, in O(1)

    @property
    def key(self) -> str:
        return entity_key(self.category, self.type, self.id)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def link(self, target: _Entity, relationship_type: str) -> None:
        """Add the relationship ``self -[relationship_type]-> target`` (once)."""
        identity = (target.category, target.type, target.id, relationship_type)
        if identity in self._linked:
            return
        self._linked.add(identity)
        ref = {
            "category": target.category,
            "type": target.type,
            "id": target.id,
            "relationship_type": relationship_type,
        }
        if target.name is not None:
            ref["name"] = target.name
        self.relationships.append(ref)


class _FileParser:
    """Turns the YAML node tree of one file into entities, collecting every error.

    Works on YAML nodes, not on constructed Python objects, so each message can
    give the line of the offending value and Vitrage's fields keep their text.
    """

    def __init__(self, file_name: str) -> None:
        self.file = file_name
        self._errors: list[tuple[int, str]] = []
        self.warnings: list[str] = []
        self._budget = MAX_NODES

    @property
    def errors(self) -> list[str]:
        """Every error, in line order (the order they are found is not the reading order)."""
        return [message for _, message in sorted(self._errors, key=lambda item: item[0])]

    # -- messages --

    def error(self, node: yaml.Node | int, path: str, message: str) -> None:
        line = node if isinstance(node, int) else _line(node)
        self._errors.append((line, f"{self.file}:{line}: {path}: {message}"))

    def warn(self, node: yaml.Node, path: str, message: str) -> None:
        self.warnings.append(f"{self.file}:{_line(node)}: {path}: {message}")

    def _spend(self, node: yaml.Node, path: str) -> None:
        self._budget -= 1
        if self._budget < 0:
            raise _Abort(node, path, f"the file expands to more than {MAX_NODES} YAML nodes (aliases?)")

    # -- generic shapes --

    def mapping(self, node: yaml.Node, path: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """``{key text: (key node, value node)}``; None (and an error) for a non-mapping.

        Rejects duplicate keys (PyYAML silently keeps the last one) and expands
        ``<<`` merge keys, where keys written in the mapping win.
        """
        if not isinstance(node, yaml.MappingNode):
            self.error(node, path, f"expected a mapping, got {_describe(node)}")
            return None
        self._spend(node, path)
        items: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._merge_into(merged, value_node, path)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(key_node, path, f"a key must be a scalar, got {_describe(key_node)}")
                continue
            key = key_node.value
            if key in items:
                first = _line(items[key][0])
                self.error(key_node, f"{path}.{key}", f"duplicate key (first at line {first})")
                continue
            items[key] = (key_node, value_node)
        for key, pair in merged.items():
            items.setdefault(key, pair)
        return items

    def _merge_into(self, merged: dict[str, tuple[yaml.Node, yaml.Node]], node: yaml.Node, path: str) -> None:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            items = self.mapping(source, f"{path}.<<")
            for key, pair in (items or {}).items():
                merged.setdefault(key, pair)

    def sequence(self, node: yaml.Node, path: str) -> list[yaml.Node] | None:
        """The items of a list; a null value is an empty list; None for anything else."""
        if _is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, path, f"expected a list, got {_describe(node)}")
            return None
        return list(node.value)

    def text(
        self,
        fields: dict[str, tuple[yaml.Node, yaml.Node]],
        key: str,
        owner: yaml.Node,
        path: str,
        required: bool = False,
    ) -> str | None:
        """A Vitrage string field, as written (``BaseLoader`` semantics).

        None when absent or null (``name: ~``); a mapping or list is an error.
        """
        pair = fields.get(key)
        if pair is None or _is_null(pair[1]):
            if required:
                self.error(owner, f"{path}.{key}", "required")
            return None
        node = pair[1]
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, f"{path}.{key}", f"expected a string, got {_describe(node)}")
            return None
        if required and not node.value:
            self.error(node, f"{path}.{key}", "must not be empty")
            return None
        return node.value

    def value(self, node: yaml.Node, path: str, depth: int = 0) -> Any:
        """An extra property's value as plain JSON-like data."""
        self._spend(node, path)
        if depth > MAX_DEPTH:
            raise _Abort(node, path, f"nested more than {MAX_DEPTH} levels (a recursive alias?)")
        if isinstance(node, yaml.ScalarNode):
            return typed_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node.value)]
        items = self.mapping(node, path) or {}
        return {key: self.value(value, f"{path}.{key}", depth + 1) for key, (_, value) in items.items()}

    # -- the format --

    def parse(self, root: yaml.Node | None) -> list[_Entity]:
        """The entities of the file; check ``errors`` before using them."""
        if root is None:
            self.error(1, "document", "the file is empty; expected a mapping with 'definitions'")
            return []
        try:
            return self._document(root)
        except _Abort as abort:
            self.error(abort.node, abort.path, str(abort))
            return []

    def _document(self, root: yaml.Node) -> list[_Entity]:
        top = self.mapping(root, "document")
        if top is None:
            return []
        if "metadata" in top:
            self._metadata(top["metadata"][1])
        if "definitions" not in top:
            hint = " (top-level 'entities' is the legacy static_physical format)" if "entities" in top else ""
            self.error(root, "definitions", f"required{hint}")
            return []
        definitions = self.mapping(top["definitions"][1], "definitions")
        if definitions is None:
            return []
        entities_pair = definitions.get("entities")
        if entities_pair is None:
            self.error(top["definitions"][1], "definitions.entities", "required")
            return []
        entities, known = self._entities(entities_pair[1])
        relationships_pair = definitions.get("relationships")
        if relationships_pair is not None:
            self._relationships(relationships_pair[1], entities, known)
        return list(entities.values())

    def _metadata(self, node: yaml.Node) -> None:
        if _is_null(node):
            return
        fields = self.mapping(node, "metadata")
        for key in ("name", "description"):
            if fields is not None:
                self.text(fields, key, node, "metadata")

    def _entities(self, node: yaml.Node) -> tuple[dict[str, _Entity], dict[str, int]]:
        """Valid entities by static_id, and the line of every static_id seen (valid or not)."""
        entities: dict[str, _Entity] = {}
        known: dict[str, int] = {}
        for index, item in enumerate(self.sequence(node, "definitions.entities") or ()):
            path = f"definitions.entities[{index}]"
            entity = self._entity(item, path, known)
            if entity is not None:
                entities[entity.static_id] = entity
        return entities, known

    def _entity(self, node: yaml.Node, path: str, known: dict[str, int]) -> _Entity | None:
        fields = self.mapping(node, path)
        if fields is None:
            return None
        static_id = self.text(fields, "static_id", node, path, required=True)
        if static_id is not None:
            if static_id in known:
                where = fields["static_id"][1]
                self.error(
                    where, f"{path}.static_id", f"duplicate static_id {static_id!r} (first at line {known[static_id]})"
                )
                static_id = None
            else:
                known[static_id] = _line(node)
        vitrage_type = self.text(fields, "type", node, path, required=True)
        entity_id = self.text(fields, "id", node, path)
        if entity_id == "":
            self.error(fields["id"][1], f"{path}.id", "must not be empty (leave it out to use the static_id)")
        name = self.text(fields, "name", node, path)
        state = self.text(fields, "state", node, path)
        category = self._category(fields, path)
        properties = self._extras(fields, path)
        if static_id is None or vitrage_type is None or category is None or entity_id == "":
            return None
        properties["static_id"] = static_id
        return _Entity(
            self.file,
            _line(node),
            path,
            static_id,
            category,
            vitrage_type,
            entity_id or static_id,
            name,
            state,
            properties,
        )

    def _category(self, fields: dict[str, tuple[yaml.Node, yaml.Node]], path: str) -> str | None:
        """RESOURCE unless the entity says ALARM (any case); None after an error."""
        pair = fields.get("category")
        if pair is None or _is_null(pair[1]):
            return Category.RESOURCE.value
        text = self.text(fields, "category", pair[1], path)
        if text is None:
            return None
        if text.upper() not in CATEGORIES:
            self.error(pair[1], f"{path}.category", f"must be one of {', '.join(CATEGORIES)}, got {text!r}")
            return None
        return text.upper()

    def _extras(self, fields: dict[str, tuple[yaml.Node, yaml.Node]], path: str) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for key, (key_node, value_node) in fields.items():
            if key in ENTITY_FIELDS:
                continue
            if key.startswith("vitrage_") or key in _OWNED_BY_GRAPH:
                self.warn(key_node, f"{path}.{key}", "ignored: the graph sets this property itself")
                continue
            value = self.value(value_node, f"{path}.{key}")
            if value is not None:
                properties[key] = value
        return properties

    def _relationships(self, node: yaml.Node, entities: dict[str, _Entity], known: dict[str, int]) -> None:
        """Attach every relationship to its source entity (Vitrage does the same)."""
        for index, item in enumerate(self.sequence(node, "definitions.relationships") or ()):
            path = f"definitions.relationships[{index}]"
            fields = self.mapping(item, path)
            if fields is None:
                continue
            ends = [self._end(fields, item, path, end, entities, known) for end in ("source", "target")]
            label = self.text(fields, "relationship_type", item, path, required=True)
            source, target = ends
            if source is None or target is None or label is None:
                continue
            source.link(target, label)

    def _end(
        self,
        fields: dict[str, tuple[yaml.Node, yaml.Node]],
        owner: yaml.Node,
        path: str,
        end: str,
        entities: dict[str, _Entity],
        known: dict[str, int],
    ) -> _Entity | None:
        static_id = self.text(fields, end, owner, path, required=True)
        if static_id is None:
            return None
        entity = entities.get(static_id)
        if entity is None and static_id not in known:  # an invalid entity already has its error
            self.error(fields[end][1], f"{path}.{end}", f"unknown static_id {static_id!r}")
        return entity


def _compose(text: str, file_name: str) -> tuple[yaml.Node | None, str | None]:
    """The node tree of a file (at most ``MAX_NESTING`` deep), or the YAML error with its line and column."""
    return yamlnodes.compose(text, file_name, MAX_NESTING)


@dataclass(slots=True)
class _Parsed:
    entities: list[_Entity] | None
    errors: list[str]
    warnings: list[str]


def read_file(path: Path, max_size: int = MAX_FILE_SIZE) -> tuple[bytes | None, str | None]:
    """The bytes of a file, or an error (unreadable, larger than ``max_size``)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(max_size + 1)
    except OSError as exc:
        return None, f"{path.name}:1: file: cannot be read: {exc.strerror or exc}"
    if len(data) > max_size:
        return None, f"{path.name}:1: file: larger than the limit of {max_size} bytes"
    return data, None


def parse_bytes(data: bytes, name: str) -> _Parsed:
    """Validate the content of one static file; ``entities`` is None when it is invalid."""
    text, error = yamlnodes.decode(data, name)
    if text is None:
        return _Parsed(None, [error or ""], [])
    root, error = _compose(text, name)
    if error is not None:
        return _Parsed(None, [error], [])
    parser = _FileParser(name)
    entities = parser.parse(root)
    errors = parser.errors
    if len(errors) > MAX_ERRORS_PER_FILE:
        errors = [*errors[:MAX_ERRORS_PER_FILE], f"{name}: ... and {len(errors) - MAX_ERRORS_PER_FILE} more errors"]
    return _Parsed(None if errors else entities, errors, parser.warnings)


# -- merging the files ---------------------------------------------------------------


def _merge(
    files: Iterable[Sequence[_Entity]], foreign_types: frozenset[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """One payload per entity key over all files (in order), and the conflicts found.

    A property given by an earlier definition wins; one only a later definition
    gives is added; relationships are united.
    """
    payloads: dict[str, dict[str, Any]] = {}
    first: dict[str, _Entity] = {}
    warnings: dict[str, list[str]] = {}
    for entities in files:
        for entity in entities:
            payload = payloads.get(entity.key)
            if payload is None:
                payloads[entity.key] = _payload(entity, foreign_types)
                first[entity.key] = entity
                continue
            for conflict in _absorb(payload, entity):
                message = (
                    f"{entity.where}: {entity.path}: {conflict}; {first[entity.key].where} "
                    f"also defines {entity.type} {entity.id!r} and its value is kept"
                )
                warnings.setdefault(entity.file, []).append(message)
    return payloads, warnings


def _payload(entity: _Entity, foreign_types: frozenset[str]) -> dict[str, Any]:
    return {
        "category": entity.category,
        "type": entity.type,
        "id": entity.id,
        "name": entity.name,
        "state": entity.state,
        "properties": dict(entity.properties),
        "reference": entity.type in foreign_types,
        "relationships": list(entity.relationships),
    }


def _absorb(payload: dict[str, Any], entity: _Entity) -> list[str]:
    """Merge a later definition of the same entity into ``payload``; return the conflicts."""
    conflicts = []
    for name, value in (("name", entity.name), ("state", entity.state)):
        if value is None:
            continue
        if payload[name] is None:
            payload[name] = value
        elif payload[name] != value:
            conflicts.append(f"{name} {value!r} ignored")
    properties = payload["properties"]
    for name, value in entity.properties.items():
        if name not in properties:
            properties[name] = value
        elif properties[name] != value and name != "static_id":  # static ids are local to their file
            conflicts.append(f"{name} {value!r} ignored")
    relationships = payload["relationships"]
    linked = {_edge_identity(ref) for ref in relationships}
    relationships.extend(ref for ref in entity.relationships if _edge_identity(ref) not in linked)
    return conflicts


def _edge_identity(ref: dict[str, str]) -> tuple[str, ...]:
    return (ref["category"], ref["type"], ref["id"], ref["relationship_type"])


# -- the driver ----------------------------------------------------------------------


@dataclass(slots=True)
class _FileState:
    """What the driver knows about one file between two reads."""

    signature: tuple[int, ...] | None = None  # what stat said when last read
    digest: bytes | None = None  # of the bytes last parsed
    good: list[_Entity] | None = None  # the last valid version; None if never valid
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class StaticDriver(Driver):
    """Reads the static topology files of one directory; see the module docstring.

    ``foreign_types`` are the types owned by the other enabled datasources: the
    static entities of those types are references (weak updates).
    """

    name = NAME
    has_changes = True

    def __init__(
        self, directory: Path | str, foreign_types: Iterable[str] = (), *, max_file_size: int = MAX_FILE_SIZE
    ) -> None:
        self.directory = Path(directory)
        self.foreign_types = frozenset(foreign_types)
        self.max_file_size = max_file_size
        #: File name (the directory's path for a directory problem) → error messages.
        self.errors: dict[str, list[str]] = {}
        #: File name → messages about things accepted but ignored or overridden.
        self.warnings: dict[str, list[str]] = {}
        self._files: dict[str, _FileState] = {}
        self._directory_missing: bool | None = None
        self._merged: dict[str, dict[str, Any]] | None = None  # key → payload, for the files as last read
        self._reported: dict[str, dict[str, Any]] = {}  # key → payload last returned
        self._lock = threading.Lock()  # a collector may run get_all and get_changes at once

    def transformer(self) -> StaticTransformer:
        return StaticTransformer()

    # -- the Driver interface --

    def get_all(self) -> Sequence[RawEntity]:
        """Re-read every file; every entity of the current (or last valid) versions."""
        with self._lock:
            entities = self._scan(force=True)
            result = [RawEntity(key, self._outgoing(key, payload)) for key, payload in entities.items()]
            self._reported = entities
            return result

    def problems(self) -> dict[str, list[str]]:
        """Invalid files (their last good version stays in use) and ignored or merged content."""
        found = {name: list(messages) for name, messages in self.errors.items()}
        for name, messages in self.warnings.items():
            found.setdefault(name, []).extend(messages)
        return found

    def get_changes(self) -> Sequence[RawChange]:
        """Re-read the files whose stat changed; the entities that differ from last time."""
        with self._lock:
            entities = self._scan(force=False)
            if entities is self._reported:  # no file changed
                return []
            changes = [
                RawChange(key, self._outgoing(key, payload))
                for key, payload in entities.items()
                if self._reported.get(key) != payload
            ]
            changes.extend(
                RawChange(key, {"category": old["category"], "type": old["type"], "id": old["id"]}, deleted=True)
                for key, old in self._reported.items()
                if key not in entities
            )
            self._reported = entities
            return changes

    def _outgoing(self, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload to publish: a copy, with ``unset``, the properties the entity lost.

        The processor merges properties into a vertex; without ``unset`` a
        property deleted from the file would stay on the vertex until the entity
        goes. A copy, because change detection compares with what was published
        and a caller may add fields to what it gets.
        """
        published = orjson.loads(orjson.dumps(payload))
        previous = self._reported.get(key)
        if previous is not None:
            lost = sorted(set(previous["properties"]) - set(payload["properties"]))
            if lost:
                published["unset"] = lost
        return published

    # -- reading the directory --

    def _scan(self, force: bool) -> dict[str, dict[str, Any]]:
        """Every entity of the files as they are now; the same dict when nothing changed."""
        names = self._list()
        missing = names is None
        dirty = self._merged is None or missing != self._directory_missing
        self._directory_missing = missing
        if names is None:
            dirty = dirty or bool(self._files)
            self._files.clear()
        else:
            for gone in set(self._files) - set(names):
                del self._files[gone]
                dirty = True
            for name in names:
                dirty = self._refresh(name, force) or dirty
        if dirty or self._merged is None:
            files = [self._files[name].good or () for name in sorted(self._files)]
            self._merged, merge_warnings = _merge(files, self.foreign_types)
            self._publish(missing, merge_warnings)
        return self._merged

    def _list(self) -> list[str] | None:
        """The names of the files to read, sorted; None when the directory does not exist.

        Any other failure raises: reporting "no entities" for a directory that
        merely cannot be read would delete the whole static topology.
        """
        try:
            with os.scandir(self.directory) as entries:
                return sorted(e.name for e in entries if e.name.endswith(SUFFIXES) and e.is_file())
        except FileNotFoundError:
            return None
        except OSError as exc:
            message = f"{self.directory}: cannot list the static directory: {exc.strerror or exc}"
            self.errors = {str(self.directory): [message]}
            raise DatasourceError(message) from None

    def _refresh(self, name: str, force: bool) -> bool:
        """Read one file again if needed; True when what it contributes may have changed."""
        path = self.directory / name
        try:
            stat = path.stat()
        except FileNotFoundError:  # deleted since the listing
            return self._files.pop(name, None) is not None
        except OSError as exc:
            return self._fail(name, None, f"{name}:1: file: cannot be read: {exc.strerror or exc}")
        signature = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)
        state = self._files.setdefault(name, _FileState())
        if not force and state.signature == signature:
            return False
        data, error = read_file(path, self.max_file_size)
        if data is None:
            return self._fail(name, signature, error or "")
        state.signature = signature
        digest = hashlib.blake2b(data, digest_size=16).digest()
        if digest == state.digest:  # same bytes as last parsed (get_all, a touch): same result
            return False
        parsed = parse_bytes(data, name)
        state.digest, state.errors, state.warnings = digest, parsed.errors, parsed.warnings
        if parsed.entities is not None:
            state.good = parsed.entities
        return True

    def _fail(self, name: str, signature: tuple[int, ...] | None, message: str) -> bool:
        """Record that a file could not be read; its last valid version stays."""
        state = self._files.setdefault(name, _FileState())
        changed = state.errors != [message]
        state.signature, state.digest, state.errors, state.warnings = signature, None, [message], []
        return changed

    def _publish(self, directory_missing: bool, merge_warnings: dict[str, list[str]]) -> None:
        """Update ``errors``/``warnings`` and log what is new (once, not at every poll)."""
        errors = {name: s.errors for name, s in sorted(self._files.items()) if s.errors}
        if directory_missing:
            missing = (
                f"{self.directory}: the static directory does not exist; create it and put Vitrage "
                "static topology files (*.yaml) in it, or set static.directory"
            )
            errors = {str(self.directory): [missing]}
        warnings = {name: list(s.warnings) for name, s in sorted(self._files.items()) if s.warnings}
        for name, messages in merge_warnings.items():
            warnings.setdefault(name, []).extend(messages)
        for name, messages in errors.items():
            if self.errors.get(name) != messages:
                if directory_missing:  # a fresh install: worth a warning, not an error
                    logger.warning("%s", messages[0])
                else:
                    logger.error("%s", self._error_text(name, messages))
        for name in self.errors.keys() - errors.keys():
            if name in self._files:
                logger.info("static file %s is valid again", name)
        for name, messages in warnings.items():
            if self.warnings.get(name) != messages:
                logger.warning("static file %s:\n  %s", name, "\n  ".join(messages))
        self.errors = errors
        self.warnings = warnings

    def _error_text(self, name: str, messages: list[str]) -> str:
        state = self._files.get(name)
        if state is None:
            outcome = "no static entities are reported"
        elif state.good is not None:
            outcome = f"its last valid version ({len(state.good)} entities) stays in use"
        else:
            outcome = "it contributes no entities until it is fixed"
        return f"static file {name} is invalid; {outcome}:\n  " + "\n  ".join(messages)


# -- the transformer ------------------------------------------------------------------


def _text(obj: dict[str, Any], name: str, where: str = "payload", required: bool = True) -> str | None:
    value = obj.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise TransformError(f"{where}.{name}: expected a non-empty string, got {value!r}")
    return value


def _category(obj: dict[str, Any], where: str = "payload") -> str:
    value = obj.get("category", Category.RESOURCE.value)
    if value not in CATEGORIES:
        raise TransformError(f"{where}.category: expected one of {', '.join(CATEGORIES)}, got {value!r}")
    return str(value)


def _properties(payload: dict[str, Any]) -> dict[str, Any]:
    """name, state and the extras; ``unset`` names become None, which removes them."""
    extras = payload.get("properties", {})
    if not isinstance(extras, dict):
        raise TransformError(f"payload.properties: expected an object, got {type(extras).__name__}")
    unset = payload.get("unset", [])
    if not isinstance(unset, list) or not all(isinstance(n, str) for n in unset):
        raise TransformError("payload.unset: expected a list of property names")
    properties: dict[str, Any] = dict.fromkeys(unset)
    properties.update(extras)
    properties["name"] = _text(payload, "name", required=False)
    properties["state"] = _text(payload, "state", required=False)
    return properties


def _neighbor(rel: Any, where: str) -> NeighborRef:
    if not isinstance(rel, dict):
        raise TransformError(f"{where}: expected an object, got {type(rel).__name__}")
    name = _text(rel, "name", where, required=False)
    return NeighborRef(
        _category(rel, where),
        _text(rel, "type", where) or "",
        _text(rel, "id", where) or "",
        _text(rel, "relationship_type", where) or "",
        outgoing=True,
        properties={"name": name} if name is not None else None,
    )


def _neighbors(payload: dict[str, Any]) -> list[NeighborRef]:
    """One outgoing edge per relationship: they are attached to their source entity."""
    relationships = payload.get("relationships", [])
    if not isinstance(relationships, list):
        raise TransformError("payload.relationships: expected a list")
    return [_neighbor(rel, f"payload.relationships[{i}]") for i, rel in enumerate(relationships)]


class StaticTransformer:
    """Static payloads → graph updates. Pure: it reads nothing but the event."""

    def transform(self, event: Event) -> list[EntityUpdate]:
        payload = event.payload
        category = _category(payload)
        vitrage_type = _text(payload, "type") or ""
        entity_id = _text(payload, "id") or ""
        if event.action is EventAction.DELETE:
            return [EntityUpdate(category, vitrage_type, entity_id, {}, None, delete=True)]
        reference = payload.get("reference", False)
        if not isinstance(reference, bool):
            raise TransformError(f"payload.reference: expected true or false, got {reference!r}")
        return [
            EntityUpdate(category, vitrage_type, entity_id, _properties(payload), _neighbors(payload), weak=reference)
        ]
