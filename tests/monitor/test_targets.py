"""Target definitions: what is valid, and every problem named by its field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from vitrail.monitor.targets import (
    DEFAULT_EXPECTED_STATUS,
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_INTERVAL,
    DEFAULT_TIMEOUT,
    TargetChanges,
    TargetDraft,
    address_problem,
    apply_changes,
)

SSH: dict[str, Any] = {"name": "ssh", "kind": "tcp", "address": "127.0.0.1:22"}


def problems(model: type[TargetDraft] | type[TargetChanges], **fields: Any) -> dict[str, str]:
    """The problems of ``fields``, by field."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(fields)
    return {".".join(str(p) for p in e["loc"]): e["msg"] for e in caught.value.errors()}


def test_defaults() -> None:
    ssh = TargetDraft.model_validate(SSH)
    assert (ssh.interval, ssh.timeout, ssh.failure_threshold) == (
        DEFAULT_INTERVAL,
        DEFAULT_TIMEOUT,
        DEFAULT_FAILURE_THRESHOLD,
    )
    assert ssh.expected_status is None and ssh.entity_id is None
    web = TargetDraft(name="web", kind="http", address="http://127.0.0.1:8080/health")
    assert web.expected_status == DEFAULT_EXPECTED_STATUS
    assert TargetDraft(name="web", kind="http", address="http://x/", expected_status=204).expected_status == 204
    assert TargetDraft(name="k", kind="vim", address="https://keystone:5000/v3").expected_status is None


@pytest.mark.parametrize(
    ("kind", "address"),
    [
        ("tcp", "127.0.0.1:22"),
        ("tcp", "localhost:1"),
        ("tcp", "db-1.example.org:65535"),
        ("tcp", "db.example.org.:5432"),
        ("tcp", "[::1]:80"),
        ("tcp", "[fe80::1]:8080"),
        ("http", "http://127.0.0.1:8080/health?full=1"),
        ("http", "HTTPS://Example.org"),
        ("http", "https://[::1]:8443/"),
        ("vim", "http://keystone.example.org:5000/v3"),
        ("vim", "https://10.0.0.1/identity"),
    ],
)
def test_good_addresses(kind: str, address: str) -> None:
    assert address_problem(kind, address) is None
    assert TargetDraft(name="t", kind=kind, address=address).address == address  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "address", "words"),
    [
        ("tcp", "127.0.0.1", "no port"),
        ("tcp", "127.0.0.1:", "port ''"),
        ("tcp", "127.0.0.1:0", "port 0"),
        ("tcp", "127.0.0.1:65536", "port 65536"),
        ("tcp", "127.0.0.1:http", "port 'http'"),
        ("tcp", "127.0.0.1:٢٢", "is not a number"),  # Arabic-Indic digits are digits to str.isdigit
        ("tcp", ":22", "no host"),
        ("tcp", "::1:22", "brackets"),
        ("tcp", "[::1]", "no port"),
        ("tcp", "[::1:22", "missing ']'"),
        ("tcp", "[127.0.0.1]:22", "not an IPv6 address"),
        ("tcp", "tcp://127.0.0.1:22", "without a scheme"),
        ("tcp", "bad host:22", "not a host name"),
        ("tcp", "-bad.example:22", "not a host name"),
        ("tcp", "hôte:22", "punycode"),
        ("http", "127.0.0.1:8080", "http:// or https://"),
        ("http", "ftp://example.org/", "http:// or https://"),
        ("http", "http:///path", "no host"),
        ("http", "http://example.org:99999/", "not a valid URL"),
        ("http", "http://example.org:0/", "port 0"),
        ("http", "http://admin:secret@example.org/", "credentials"),
        ("http", "http://example.org/a b", "whitespace"),
        ("http", "http://[::1/", "not a valid URL"),
        ("vim", "keystone:5000", "a vim address is an http:// or https:// URL"),
    ],
)
def test_bad_addresses_are_named(kind: str, address: str, words: str) -> None:
    found = problems(TargetDraft, name="t", kind=kind, address=address)
    assert list(found) == ["address"]
    assert words in found["address"]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"name": ""}, "name", "at least 1 character"),
        ({"name": "   "}, "name", "empty"),
        ({"name": "x" * 256}, "name", "at most 255"),
        ({"name": "a/b"}, "name", "'/'"),
        ({"name": ".."}, "name", "'..'"),
        ({"name": "tab\there"}, "name", "control characters"),
        ({"name": 7}, "name", "valid string"),
        ({"kind": "icmp"}, "kind", "'tcp', 'http' or 'vim'"),
        ({"address": ""}, "address", "at least 1 character"),
        ({"address": "h:" + "1" * 2047}, "address", "at most 2048"),
        ({"expected_status": 200}, "expected_status", "only http targets"),
        ({"interval": 0.5}, "interval", "greater than or equal to 1"),
        ({"interval": 86_400.5}, "interval", "less than or equal to 86400"),
        ({"interval": float("inf")}, "interval", "finite"),
        ({"interval": True}, "interval", "valid number"),
        ({"interval": "10"}, "interval", "valid number"),
        ({"timeout": 0}, "timeout", "greater than 0"),
        ({"timeout": -1}, "timeout", "greater than 0"),
        ({"timeout": float("nan")}, "timeout", "finite"),
        ({"timeout": 10}, "timeout", "10 s must be shorter than the interval (10 s)"),
        ({"interval": 2, "timeout": 2.5}, "timeout", "shorter than the interval (2 s)"),
        ({"failure_threshold": 0}, "failure_threshold", "greater than or equal to 1"),
        ({"failure_threshold": 101}, "failure_threshold", "less than or equal to 100"),
        ({"failure_threshold": 2.5}, "failure_threshold", "valid integer"),
        ({"entity_id": ""}, "entity_id", "at least 1 character"),
        ({"entity_id": "e" * 65}, "entity_id", "at most 64"),
        ({"colour": "red"}, "colour", "not permitted"),
    ],
)
def test_every_bad_field_is_named(fields: dict[str, Any], field: str, words: str) -> None:
    found = problems(TargetDraft, **{**SSH, **fields})
    assert list(found) == [field]
    assert words in found[field]


def test_every_problem_is_reported_at_once() -> None:
    found = problems(TargetDraft, name="", kind="tcp", address="x", expected_status=200, interval=5, timeout=6)
    assert set(found) == {"name", "address", "expected_status", "timeout"}
    assert set(problems(TargetDraft)) == {"name", "kind", "address"}
    # An invalid kind is reported alone: the address is not judged against it.
    assert set(problems(TargetDraft, name="x", kind="udp", address="anything")) == {"kind"}


def test_expected_status_range_for_http() -> None:
    for status in (99, 600):
        found = problems(TargetDraft, name="w", kind="http", address="http://x/", expected_status=status)
        assert list(found) == ["expected_status"]
    assert TargetDraft(name="w", kind="http", address="http://x/", expected_status=599).expected_status == 599


def test_changes_apply_to_the_target_they_change() -> None:
    ssh = TargetDraft.model_validate(SSH)
    assert apply_changes(ssh, TargetChanges(interval=60)).interval == 60
    # The target's timeout (3 s) does not fit a 2 s interval: named as the timeout's problem.
    with pytest.raises(ValidationError) as caught:
        apply_changes(ssh, TargetChanges(interval=2))
    assert [e["loc"] for e in caught.value.errors()] == [("timeout",)]
    web = apply_changes(ssh, TargetChanges(kind="http", address="http://127.0.0.1/"))
    assert web.expected_status == DEFAULT_EXPECTED_STATUS
    custom = apply_changes(web, TargetChanges(expected_status=204))
    assert custom.expected_status == 204
    assert apply_changes(custom, TargetChanges(expected_status=None)).expected_status == DEFAULT_EXPECTED_STATUS
    # Back to tcp: the expected status goes, unless given (then it is refused).
    assert apply_changes(custom, TargetChanges(kind="tcp", address="127.0.0.1:80")).expected_status is None
    with pytest.raises(ValidationError, match="expected_status"):
        apply_changes(custom, TargetChanges(kind="tcp", address="127.0.0.1:80", expected_status=200))
    with pytest.raises(ValidationError, match="address"):
        apply_changes(ssh, TargetChanges(kind="vim"))
    attached = apply_changes(ssh, TargetChanges(entity_id="v-1"))
    assert apply_changes(attached, TargetChanges(entity_id=None)).entity_id is None
    assert apply_changes({**SSH, "expected_status": None}, TargetChanges(name="ssh-2")).name == "ssh-2"


def test_changes_name_their_bad_fields() -> None:
    assert TargetChanges().given() == {}
    assert TargetChanges(entity_id=None).given() == {"entity_id": None}
    found = problems(TargetChanges, name=None, kind=None, interval=None, timeout=None, failure_threshold=None)
    assert set(found) == {"name", "kind", "interval", "timeout", "failure_threshold"}
    assert all("cannot be null" in message for message in found.values())
    found = problems(TargetChanges, address=None, interval=0, failure_threshold=500, extra=1)
    assert set(found) == {"address", "interval", "failure_threshold", "extra"}
