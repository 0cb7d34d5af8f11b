"""Monitor targets: what a monitored endpoint is, and which definitions are valid.

Pure validation, no I/O: the API checks a request body with :class:`TargetDraft`
(a whole definition) or :class:`TargetChanges` (a partial update), and every
problem is reported against the field that has it, so the API's 422 names it.

A target is one of three kinds:

* ``tcp``: ``host:port`` (an IPv6 address in brackets, ``[::1]:22``); reachable
  when a TCP connection opens within the timeout;
* ``http``: an ``http://`` or ``https://`` URL; reachable when it answers with
  ``expected_status`` (default 200) within the timeout;
* ``vim``: the URL of an OpenStack identity (Keystone) endpoint; reachable when
  its version document answers.

``interval`` is the time between two probes, ``timeout`` how long one probe may
take (shorter than the interval, so probes of a target never overlap), and
``failure_threshold`` how many probes in a row must fail before the target
counts as unreachable. ``entity_id`` is the ``vitrage_id`` of the graph entity
the target belongs to; without one, the target gets an entity of its own
(type ``monitor.target``, named after it).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

TCP, HTTP, VIM = "tcp", "http", "vim"
KINDS = (TCP, HTTP, VIM)

NAME_LENGTH = 255
ADDRESS_LENGTH = 2048
ENTITY_ID_LENGTH = 64

DEFAULT_INTERVAL = 10.0
"""Seconds between two probes of a target."""
DEFAULT_TIMEOUT = 3.0
"""Seconds one probe may take."""
DEFAULT_FAILURE_THRESHOLD = 3
"""Failed probes in a row before a target counts as unreachable."""
DEFAULT_EXPECTED_STATUS = 200
"""The HTTP status an ``http`` target answers when it is well."""

MIN_INTERVAL = 1.0
MAX_INTERVAL = 86_400.0
MAX_FAILURE_THRESHOLD = 100

FIELDS = ("name", "kind", "address", "expected_status", "interval", "timeout", "failure_threshold", "entity_id")
"""What defines a target (what :class:`TargetDraft` holds)."""

TargetKind = Literal["tcp", "http", "vim"]


def _error(message: str) -> PydanticCustomError:
    # The message as a context value: braces in it (a URL may have some) are not a template.
    return PydanticCustomError("invalid_target", "{reason}", {"reason": message})


# -- names and addresses -------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LABEL = r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_PORT = re.compile(r"[0-9]{1,5}")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a target, or None."""
    if not name.strip():
        return "must not be empty"
    if _CONTROL.search(name):
        return "must not contain control characters"
    if "/" in name or name in (".", ".."):
        return "must not contain '/' nor be '.' or '..' (a target is addressed by name in URLs)"
    return None


def _host_problem(host: str) -> str | None:
    if not host:
        return "has no host"
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if len(host) > 253 or not _HOSTNAME.fullmatch(host):
        return f"{host!r} is not a host name or an IP address (write international names in punycode)"
    return None


def _port_problem(text: str) -> str | None:
    if not _PORT.fullmatch(text):
        return f"port {text!r} is not a number from 1 to 65535"
    if not 1 <= int(text) <= 65535:
        return f"port {int(text)} is not from 1 to 65535"
    return None


def tcp_address_problem(address: str) -> str | None:
    """Why ``address`` is not a ``host:port`` (``[v6]:port``), or None."""
    hint = "a tcp address is host:port, e.g. 127.0.0.1:22, db.example.org:5432 or [::1]:22"
    if "://" in address:
        return f"{hint}, without a scheme"
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            return f"missing ']': {hint}"
        host, rest = address[1:end], address[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"{host!r} in brackets is not an IPv6 address"
        if not rest.startswith(":"):
            return f"no port: {hint}"
        return _port_problem(rest[1:])
    host, separator, port = address.rpartition(":")
    if not separator:
        return f"no port: {hint}"
    if ":" in host:
        return f"an IPv6 address goes in brackets: {hint}"
    return _host_problem(host) or _port_problem(port)


def url_address_problem(address: str, kind: str) -> str | None:
    """Why ``address`` is not an ``http(s)://`` URL with a host, or None."""
    if any(c.isspace() for c in address) or _CONTROL.search(address):
        return "must not contain whitespace or control characters (percent-encode them)"
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"a {kind} address is an http:// or https:// URL, e.g. http://127.0.0.1:5000/v3"
    if "@" in parts.netloc:
        return "credentials do not belong in the address (every reader of the target sees it)"
    if port == 0:
        return "port 0 is not from 1 to 65535"
    return _host_problem(parts.hostname or "")


def address_problem(kind: str, address: str) -> str | None:
    """Why ``address`` cannot be probed as a ``kind`` target, or None."""
    if kind == TCP:
        return tcp_address_problem(address)
    return url_address_problem(address, kind)


# -- the models ----------------------------------------------------------------------------


def _check_name(name: str) -> str:
    problem = name_problem(name)
    if problem is not None:
        raise _error(problem)
    return name


Name = Annotated[str, Field(min_length=1, max_length=NAME_LENGTH, strict=True), AfterValidator(_check_name)]
Address = Annotated[str, Field(min_length=1, max_length=ADDRESS_LENGTH, strict=True)]
ExpectedStatus = Annotated[int, Field(ge=100, le=599, strict=True)]
Interval = Annotated[float, Field(ge=MIN_INTERVAL, le=MAX_INTERVAL, allow_inf_nan=False, strict=True)]
Timeout = Annotated[float, Field(gt=0, le=MAX_INTERVAL, allow_inf_nan=False, strict=True)]
FailureThreshold = Annotated[int, Field(ge=1, le=MAX_FAILURE_THRESHOLD, strict=True)]
EntityId = Annotated[str, Field(min_length=1, max_length=ENTITY_ID_LENGTH, strict=True)]


class TargetDraft(BaseModel):
    """A whole target definition (what ``POST`` and ``PUT`` take), checked field by field."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="Unique among the targets that are not deleted; up to 255 characters.")
    kind: TargetKind = Field(description="tcp (host:port), http (a URL) or vim (an OpenStack identity URL).")
    address: Address = Field(description="host:port for tcp; an http:// or https:// URL for http and vim.")
    expected_status: ExpectedStatus | None = Field(
        None, description=f"http only: the status a well target answers (default {DEFAULT_EXPECTED_STATUS})."
    )
    interval: Interval = Field(DEFAULT_INTERVAL, description="Seconds between two probes (1 to 86400).")
    timeout: Timeout = Field(DEFAULT_TIMEOUT, description="Seconds a probe may take; shorter than the interval.")
    failure_threshold: FailureThreshold = Field(
        DEFAULT_FAILURE_THRESHOLD, description="Failed probes in a row before the target is unreachable (1 to 100)."
    )
    entity_id: EntityId | None = Field(
        None,
        description="vitrage_id of the graph entity the target belongs to; none: an entity of type "
        "monitor.target named after the target.",
    )

    @field_validator("address")
    @classmethod
    def _address_fits_kind(cls, address: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        if kind is None:  # the kind is invalid itself: reported on its own
            return address
        problem = address_problem(kind, address)
        if problem is not None:
            raise _error(problem)
        return address

    @field_validator("expected_status")
    @classmethod
    def _status_only_for_http(cls, status: int | None, info: ValidationInfo) -> int | None:
        kind = info.data.get("kind")
        if status is not None and kind is not None and kind != HTTP:
            raise _error(f"only http targets have one (this one is {kind})")
        return status

    @field_validator("timeout")
    @classmethod
    def _timeout_within_interval(cls, timeout: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")
        if interval is not None and timeout >= interval:
            raise _error(f"{timeout:g} s must be shorter than the interval ({interval:g} s)")
        return timeout

    @model_validator(mode="after")
    def _default_status(self) -> TargetDraft:
        if self.kind == HTTP and self.expected_status is None:
            self.expected_status = DEFAULT_EXPECTED_STATUS
        return self


_NOT_NULL = ("name", "kind", "address", "interval", "timeout", "failure_threshold")


class TargetChanges(BaseModel):
    """A partial update (what ``PATCH`` takes): only the fields given change.

    ``entity_id: null`` detaches the target from its entity (it gets its own);
    ``expected_status: null`` restores the default. The other fields cannot be null.
    Whether the result is a valid target is known only with the target it applies
    to: :func:`apply_changes`.
    """

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    kind: TargetKind | None = None
    address: Address | None = None
    expected_status: ExpectedStatus | None = None
    interval: Interval | None = None
    timeout: Timeout | None = None
    failure_threshold: FailureThreshold | None = None
    entity_id: EntityId | None = None

    @field_validator(*_NOT_NULL, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise _error("cannot be null (leave it out to keep it)")
        return value

    def given(self) -> dict[str, Any]:
        """The fields the update sets."""
        return self.model_dump(exclude_unset=True)


def definition_of(target: Any) -> dict[str, Any]:
    """The definition fields of ``target`` (any object with them as attributes, or a mapping:
    the fields it lacks get their defaults)."""
    if isinstance(target, Mapping):
        return {field: target[field] for field in FIELDS if field in target}
    return {field: getattr(target, field) for field in FIELDS}


def apply_changes(current: Any, changes: TargetChanges) -> TargetDraft:
    """The definition of ``current`` with ``changes`` applied, validated as a whole.

    Raises :class:`pydantic.ValidationError` naming the field at fault. A change
    of kind without an ``expected_status`` drops the old one (a tcp target has
    none; an http one gets the default).
    """
    merged = definition_of(current)
    given = changes.given()
    if "kind" in given and given["kind"] != merged["kind"] and "expected_status" not in given:
        merged["expected_status"] = None
    merged.update(given)
    return TargetDraft.model_validate(merged)


__all__ = [
    "ADDRESS_LENGTH",
    "DEFAULT_EXPECTED_STATUS",
    "DEFAULT_FAILURE_THRESHOLD",
    "DEFAULT_INTERVAL",
    "DEFAULT_TIMEOUT",
    "ENTITY_ID_LENGTH",
    "FIELDS",
    "HTTP",
    "KINDS",
    "NAME_LENGTH",
    "TCP",
    "VIM",
    "TargetChanges",
    "TargetDraft",
    "TargetKind",
    "address_problem",
    "apply_changes",
    "definition_of",
    "name_problem",
]
