"""One probe of one target: is it reachable, and if not, why (seed ``003``).

Three kinds, each bounded by the target's timeout whatever the far side does
(a server that accepts and never answers is a timeout, not a hang):

* ``tcp``: a TCP connection to ``host:port`` is opened, then closed;
* ``http``: ``GET`` the URL; reachable when it answers the expected status
  (redirects are not followed: a redirect is an answer);
* ``vim``: ``GET`` an OpenStack identity endpoint; reachable when it answers
  (200, or 300 for the root's version list) a version document: Keystone's
  ``{"version": {"id": "v3.14", "status": "stable", ...}}`` for ``/v3``, or
  ``{"versions": {"values": [...]}}`` for ``/`` (what Tacker's VIM monitor checks
  is that the endpoint answers; Vitrail also checks that it is Keystone that does).

HTTP goes through one shared ``httpx.AsyncClient`` per worker (connection reuse
for thousands of targets); the probe functions never raise for a failed
probe: the failure is the answer, with a short ``detail`` for the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import time
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_EXPECTED_STATUS = 200


@dataclass(frozen=True, slots=True)
class ProbeResult:
    reachable: bool
    detail: str | None
    """Why it is not reachable (None when it is)."""
    seconds: float


async def probe(
    kind: str,
    address: str,
    within: float,
    *,
    expected_status: int | None = None,
    client: httpx.AsyncClient | None = None,
) -> ProbeResult:
    """Probe ``address`` once, in at most ``within`` seconds (the target's timeout)."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(within):
            if kind == "tcp":
                detail = await _tcp(address)
            elif kind in ("http", "vim"):
                own = client is None
                http = client or httpx.AsyncClient(follow_redirects=False)
                try:
                    detail = await (_vim(http, address) if kind == "vim" else _http(http, address, expected_status))
                finally:
                    if own:
                        await http.aclose()
            else:
                raise ValueError(f"kind: expected tcp, http or vim, got {kind!r}")
    except TimeoutError:
        detail = f"no answer within {within:g} s"
    except (OSError, httpx.HTTPError) as exc:
        detail = _describe(exc)
    return ProbeResult(detail is None, detail, time.perf_counter() - started)


async def _tcp(address: str) -> str | None:
    host, port = split_host_port(address)
    _, writer = await asyncio.open_connection(host, port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


async def _http(client: httpx.AsyncClient, url: str, expected_status: int | None) -> str | None:
    expected = expected_status or DEFAULT_EXPECTED_STATUS
    response = await client.get(url)
    if response.status_code != expected:
        return f"HTTP {response.status_code}, expected {expected}"
    return None


async def _vim(client: httpx.AsyncClient, url: str) -> str | None:
    response = await client.get(url, headers={"accept": "application/json"})
    if response.status_code not in (200, 300):
        return f"HTTP {response.status_code} from the identity endpoint, expected 200 or 300"
    try:
        document: Any = response.json()
    except ValueError:
        return "the identity endpoint did not answer JSON"
    if not is_version_document(document):
        return "the answer is not an identity version document (no 'version' or 'versions')"
    return None


def is_version_document(document: Any) -> bool:
    """Keystone's answer for a version (``{"version": {"id": ...}}``) or for the root (``{"versions": ...}``)."""
    if not isinstance(document, dict):
        return False
    version = document.get("version")
    if isinstance(version, dict) and isinstance(version.get("id"), str):
        return True
    versions = document.get("versions")
    values = versions.get("values") if isinstance(versions, dict) else versions
    return isinstance(values, list) and any(isinstance(v, dict) and isinstance(v.get("id"), str) for v in values)


def split_host_port(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` (validated when the target was registered)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _refused(exc: BaseException) -> bool:
    """Somewhere in the chain of causes (httpx wraps anyio's errors), was it refused?"""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or getattr(current, "errno", None) == errno.ECONNREFUSED:
            return True
        if isinstance(current, BaseExceptionGroup) and any(_refused(inner) for inner in current.exceptions):
            return True
        current = current.__cause__ or current.__context__
    return False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if _refused(exc) else f"cannot connect: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    text = str(exc) or type(exc).__name__
    return text[:500]


__all__ = ["ProbeResult", "is_version_document", "probe", "split_host_port"]
