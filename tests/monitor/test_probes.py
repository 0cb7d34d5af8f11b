"""Probes against servers this test starts on loopback: answers, refusals, hangs, wrong answers."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from vitrail.monitor.probes import is_version_document, probe

KEYSTONE_V3 = {"version": {"id": "v3.14", "status": "stable", "links": [{"rel": "self", "href": "http://x/v3/"}]}}
KEYSTONE_ROOT = {"versions": {"values": [{"id": "v3.14", "status": "stable"}]}}


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def http_server(answer: Callable[[str], tuple[int, bytes] | None]) -> AsyncIterator[str]:
    """A tiny HTTP/1.1 server: ``answer(path)`` gives (status, body), or None to never answer."""
    hung: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split(b" ")[1].decode()
        reply = answer(path)
        if reply is None:
            hung.append(writer)  # keep the connection open, say nothing
            return
        status, body = reply
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nContent-Type: application/json\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in hung:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_tcp_answers_and_refusals() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    result = await probe("tcp", f"127.0.0.1:{port}", 2.0)
    assert result.reachable and result.detail is None
    server.close()
    await server.wait_closed()
    refused = await probe("tcp", f"127.0.0.1:{free_port()}", 2.0)
    assert not refused.reachable and refused.detail == "connection refused"


async def test_http_status_timeouts_and_refusals() -> None:
    routes = {"/ok": (200, b"{}"), "/gone": (503, b"down"), "/made": (201, b"{}")}
    async with http_server(lambda path: routes.get(path)) as base, httpx.AsyncClient() as client:
        assert (await probe("http", f"{base}/ok", 2.0, client=client)).reachable
        wrong = await probe("http", f"{base}/gone", 2.0, client=client)
        assert not wrong.reachable and wrong.detail == "HTTP 503, expected 200"
        assert (await probe("http", f"{base}/made", 2.0, expected_status=201, client=client)).reachable
        hang = await probe("http", f"{base}/hang", 0.3, client=client)
        assert not hang.reachable and hang.detail is not None and hang.seconds < 1.0
    refused = await probe("http", f"http://127.0.0.1:{free_port()}/", 2.0)
    assert not refused.reachable and refused.detail == "connection refused"


async def test_a_vim_must_answer_an_identity_version_document() -> None:
    routes = {
        "/v3": (200, json.dumps(KEYSTONE_V3).encode()),
        "/": (300, json.dumps(KEYSTONE_ROOT).encode()),
        "/nginx": (200, b'{"hello": "world"}'),
        "/html": (200, b"<html>maintenance</html>"),
        "/down": (502, b"bad gateway"),
    }
    async with http_server(lambda path: routes.get(path)) as base:
        assert (await probe("vim", f"{base}/v3", 2.0)).reachable
        assert (await probe("vim", f"{base}/", 2.0)).reachable
        for path, words in (("/nginx", "version document"), ("/html", "JSON"), ("/down", "HTTP 502")):
            result = await probe("vim", f"{base}{path}", 2.0)
            assert not result.reachable and result.detail is not None and words in result.detail, path


def test_version_documents() -> None:
    assert is_version_document(KEYSTONE_V3) and is_version_document(KEYSTONE_ROOT)
    assert is_version_document({"versions": [{"id": "v2.0"}]})
    for other in ({}, {"version": "3"}, {"versions": {"values": []}}, [], "v3"):
        assert not is_version_document(other)


async def test_an_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="kind"):
        await probe("icmp", "127.0.0.1", 1.0)
