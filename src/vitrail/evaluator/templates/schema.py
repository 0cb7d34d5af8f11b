"""A small structural validator that fails exactly as Vitrage's voluptuous schemas do.

Vitrage checks the shape of templates with ``voluptuous`` and returns, as its
answer, the *first* error of the ``MultipleInvalid`` it catches, formatted as
``<message>[ for dictionary value] @ data['a'][0]['b']``. Which error comes
first depends on voluptuous' walk (document key order, missing required keys
last, the deepest alternative of an ``Any``, a list that stops at the first
item failing below itself). Vitrail needs the same first error, for the same
status code and message, and *all* errors for its own report: each validator
here returns a list whose first element is voluptuous' error, followed by
whatever voluptuous would have skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]
#: (path, value) -> errors; an empty list means valid.
Validator = Callable[[Path, Any], list["Invalid"]]

#: True while checking what voluptuous would not have reached (after a list stopped).
_SHADOW: ContextVar[bool] = ContextVar("schema_shadow", default=False)

ANY_KEY = object()
"""A mapping key that matches any (string) key: voluptuous' ``Any(str)`` as a key."""


@dataclass(slots=True)
class Invalid:
    """One voluptuous error. ``msg`` is an int where Vitrage passes a status code as the message."""

    msg: str | int
    path: Path
    error_type: str | None = None
    crash: int | None = None
    """Vitrail's code when Vitrage would fail with an exception here instead of an error."""

    def __str__(self) -> str:
        text = str(self.msg)
        if self.error_type:
            text += " for " + self.error_type
        if self.path:
            text += " @ data[" + "][".join(repr(part) for part in self.path) + "]"
        return text

    @property
    def code(self) -> int:
        """Vitrage's ``get_status_code``: a numeric message is the code, anything else is 4."""
        prefix = str(self).split(" ")[0].strip()
        return int(prefix) if prefix.isdigit() else 4


class SchemaCrash(Exception):
    """Vitrage's validator raises an exception (not an error) here: its API answers 404."""

    def __init__(self, error: Invalid) -> None:
        super().__init__(str(error.msg))
        self.error = error


def crash(code: int, path: Path, details: str) -> list[Invalid]:
    """Report a point where Vitrage crashes: raises :class:`SchemaCrash` if voluptuous gets here.

    When voluptuous would not have got here (see :func:`sequence`), it is an
    ordinary error carrying ``crash``, so the report still lists it.
    """
    error = Invalid(details, path, crash=code)
    if not _SHADOW.get():
        raise SchemaCrash(error)
    return [error]


@contextmanager
def shadowed() -> Iterator[None]:
    """Check everything, as if voluptuous had already stopped: crashes become errors."""
    token = _SHADOW.set(True)
    try:
        yield
    finally:
        _SHADOW.reset(token)


@dataclass(frozen=True, slots=True)
class Key:
    """A key of a mapping schema: ``Required(name, msg=...)`` or ``Optional(name)``."""

    name: str | object
    validator: Validator
    required: bool = False
    msg: str | int | None = None


def of_type(kind: type, name: str) -> Validator:
    """voluptuous' bare type in a schema (``dict``, ``list``): ``expected dict``."""

    def validate(path: Path, value: Any) -> list[Invalid]:
        return [] if isinstance(value, kind) else [Invalid(f"expected {name}", path)]

    return validate


def any_str(path: Path, value: Any) -> list[Invalid]:
    """``Any(str)``."""
    return [] if isinstance(value, str) else [Invalid("expected str", path)]


def anything(path: Path, value: Any) -> list[Invalid]:
    return []


def one_of(container: Container[Any], msg: str | int) -> Validator:
    """``In(container, msg=...)``: unhashable values are simply not in it."""

    def validate(path: Path, value: Any) -> list[Invalid]:
        try:
            found = value in container
        except TypeError:
            found = False
        return [] if found else [Invalid(msg, path)]

    return validate


def check(predicate: Callable[[Any], bool], msg: str | int) -> Validator:
    """A function validator raising ``Invalid(msg)`` (Vitrage's ``_validate_*_field``)."""

    def validate(path: Path, value: Any) -> list[Invalid]:
        return [] if predicate(value) else [Invalid(msg, path)]

    return validate


def mapping(keys: Sequence[Key], *, extra: bool = False) -> Validator:
    """``Schema({...})``; ``extra``: ``extra=ALLOW_EXTRA``.

    Missing required keys come after all other errors, in the order declared
    (voluptuous takes them from a set, whose order changes from one Vitrage
    process to the next).
    """
    exact = {key.name: key for key in keys if key.name is not ANY_KEY}
    wildcard = next((key for key in keys if key.name is ANY_KEY), None)

    def validate(path: Path, value: Any) -> list[Invalid]:
        if not isinstance(value, dict):
            return [Invalid("expected a dictionary", path)]
        errors: list[Invalid] = []
        seen: set[object] = set()
        for name, item in value.items():
            key = exact.get(name) or wildcard
            key_path = (*path, name)
            if key is None:
                if not extra:
                    errors.append(Invalid("extra keys not allowed", key_path))
                continue
            seen.add(key.name)
            found = key.validator(key_path, item)
            for error in found:
                if len(error.path) <= len(key_path):
                    error.error_type = "dictionary value"
            errors.extend(found)
        for key in keys:
            if key.required and key.name not in seen:
                message = key.msg if key.msg is not None else "required key not provided"
                errors.append(Invalid(message, (*path, str(key.name))))
        return errors

    return validate


def sequence(*validators: Validator) -> Validator:
    """``Schema([v1, v2...])``: every item must pass one of the validators.

    An item failing *below* itself stops voluptuous at once (its errors are
    the answer); the remaining items are still checked here, for the report.
    """

    def validate(path: Path, value: Any) -> list[Invalid]:
        if not isinstance(value, list):
            return [Invalid("expected a list", path)]
        first: list[Invalid] | None = None
        shallow: list[Invalid] = []
        later: list[Invalid] = []
        for index, item in enumerate(value):
            index_path = (*path, index)
            invalid: list[Invalid] = []
            for validator in validators:
                if first is None:
                    invalid = validator(index_path, item)
                else:
                    with shadowed():
                        invalid = validator(index_path, item)
                if not invalid:
                    break
            if not invalid:
                continue
            if len(invalid[0].path) > len(index_path):
                if first is None:
                    first = invalid
                else:
                    later.extend(invalid)
            elif first is None:
                shallow.extend(invalid)
            else:
                later.extend(invalid)
        if first is not None:
            return first + shallow + later
        return shallow

    return validate


def any_of(*validators: Validator) -> Validator:
    """``Any(v1, v2...)``: valid if one passes; otherwise the errors of the deepest failure (first on ties)."""

    def validate(path: Path, value: Any) -> list[Invalid]:
        chosen: list[Invalid] | None = None
        for validator in validators:
            errors = validator(path, value)
            if not errors:
                return []
            if chosen is None or len(errors[0].path) > len(chosen[0].path):
                chosen = errors
        return chosen or []

    return validate
