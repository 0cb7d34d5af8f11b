"""Dead letters through the API, on a real SQLite dead-letter store and the in-process bus."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.api.test_api import assert_error
from vitrail.api.app import create_app
from vitrail.bus import InProcessBus
from vitrail.datasources import doctor
from vitrail.services.dead_letter_admin import DeadLetterAdmin
from vitrail.services.graph import GraphService
from vitrail.services.local_backend import LocalGraphBackend
from vitrail.services.topics import BULK_EVENTS, GRAPH_GROUP, PRIORITY_EVENTS, encode
from vitrail.storage import DeadLetterStore, create_engine, upgrade

WHEN = datetime(2026, 11, 22, 0, 37, 7, 123456, tzinfo=UTC)
PRIORITY = f"{PRIORITY_EVENTS}/{GRAPH_GROUP}"
BULK = f"{BULK_EVENTS}/{GRAPH_GROUP}"
SUMMARY_KEYS = {"id", "created_at", "source", "reason", "content_type", "size", "retries", "retried_at"}


def host_down_records(hostname: str = "host-00001") -> list[dict[str, Any]]:
    """What the API's event endpoint puts on the priority topic for a host going down."""
    body = {"type": "compute.host.down", "details": {"hostname": hostname, "status": "down"}}
    return encode(doctor.parse_event(body, "2026-11-22 00:00:00.000000+00:00"))


@dataclass
class Harness:
    http: httpx.AsyncClient
    store: DeadLetterStore
    bus: InProcessBus
    published: list[tuple[str, Any]] = field(default_factory=list)

    async def add(self, source: str, body: bytes, created_at: datetime | None = WHEN, **extra: Any) -> int:
        return await self.store.add(source, extra.pop("reason", "unparsable"), body, created_at=created_at, **extra)


@pytest.fixture
async def harness(service: GraphService, tmp_path: Path) -> AsyncIterator[Harness]:
    engine = create_engine(f"sqlite:///{tmp_path / 'vitrail.db'}")
    await upgrade(engine)
    bus = InProcessBus()
    for topic in (PRIORITY_EVENTS, BULK_EVENTS):
        await bus.declare(topic, GRAPH_GROUP)
    store = DeadLetterStore(engine)
    app = create_app(LocalGraphBackend(service, ["api", "graph"]))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://vitrail.test") as http:
        harness = Harness(http, store, bus)

        async def publish(topic: str, body: Any) -> None:
            harness.published.append((topic, body))
            await bus.publish(topic, body)

        app.state.dead_letters = DeadLetterAdmin(store, publish)
        yield harness
    await bus.close()
    await engine.dispose()


async def test_list_is_newest_first_paged_by_marker_and_filtered_by_source(harness: Harness) -> None:
    sources = [PRIORITY, BULK, PRIORITY, "events.processed/persistor", PRIORITY]
    ids = [await harness.add(s, b"x" * n, content_type="text/plain") for n, s in enumerate(sources, 1)]
    http = harness.http
    first = (await http.get("/v1/dead_letters/", params={"limit": 2})).json()
    assert [row["id"] for row in first] == ids[::-1][:2]
    assert set(first[0]) == SUMMARY_KEYS  # no body in a listing
    assert first[0] == {
        "id": ids[4],
        "created_at": "2026-11-22 00:37:07.123456+00:00",
        "source": PRIORITY,
        "reason": "unparsable",
        "content_type": "text/plain",
        "size": 5,
        "retries": 0,
        "retried_at": None,
    }
    second = (await http.get("/v1/dead_letters/", params={"limit": 2, "marker": first[-1]["id"]})).json()
    assert [row["id"] for row in second] == [ids[2], ids[1]]
    last = (await http.get("/v1/dead_letters", params={"limit": 2, "marker": second[-1]["id"]})).json()
    assert [row["id"] for row in last] == [ids[0]]
    every = (await http.get("/v1/dead_letters/")).json()  # default limit: 50
    assert [row["id"] for row in every] == ids[::-1]
    priority = (await http.get("/v1/dead_letters/", params={"source": PRIORITY})).json()
    assert [row["id"] for row in priority] == [ids[4], ids[2], ids[0]]
    paged = (await http.get("/v1/dead_letters/", params={"source": PRIORITY, "marker": ids[4], "limit": 1})).json()
    assert [row["id"] for row in paged] == [ids[2]]
    assert (await http.get("/v1/dead_letters/", params={"source": "nowhere/none"})).json() == []


async def test_limit_and_marker_are_validated(harness: Harness) -> None:
    await harness.add(PRIORITY, b"{}")
    for bad in (0, 1001, "many"):
        assert_error(await harness.http.get("/v1/dead_letters/", params={"limit": bad}), 422, "limit")
    assert_error(await harness.http.get("/v1/dead_letters/", params={"marker": -1}), 422, "marker")
    assert len((await harness.http.get("/v1/dead_letters/", params={"limit": 1000})).json()) == 1


async def test_show_gives_the_exact_bytes_and_the_text_when_it_is_utf8(harness: Harness) -> None:
    binary = bytes(range(256))
    text = "événement 🦉 {not json".encode()
    binary_id = await harness.add(BULK, binary, content_type="application/octet-stream", reason="not JSON")
    text_id = await harness.add(PRIORITY, text)
    shown = (await harness.http.get(f"/v1/dead_letters/{binary_id}")).json()
    assert set(shown) == SUMMARY_KEYS | {"body_base64", "body_text"}
    assert base64.b64decode(shown["body_base64"]) == binary
    assert shown["body_text"] is None
    assert (shown["size"], shown["reason"], shown["content_type"]) == (256, "not JSON", "application/octet-stream")
    shown = (await harness.http.get(f"/v1/dead_letters/{text_id}")).json()
    assert shown["body_text"] == "événement 🦉 {not json"
    assert base64.b64decode(shown["body_base64"]) == text
    assert shown["size"] == len(text)


async def test_retry_republishes_the_stored_json_to_its_topic_and_counts(harness: Harness) -> None:
    records = host_down_records()
    stored = orjson.dumps(records)
    letter_id = await harness.add(PRIORITY, stored, content_type="application/json")
    response = await harness.http.post(f"/v1/dead_letters/{letter_id}/retry")
    assert response.status_code == 200, response.text
    retried = response.json()
    assert retried["republished_to"] == PRIORITY_EVENTS
    assert (retried["id"], retried["retries"]) == (letter_id, 1)
    assert retried["retried_at"] is not None
    assert harness.published == [(PRIORITY_EVENTS, orjson.loads(stored))]
    delivery = await asyncio.wait_for(harness.bus.get(PRIORITY_EVENTS, GRAPH_GROUP), 5)
    assert delivery.body == records  # what the graph reads
    # kept, its count grows: the operator purges it
    assert (await harness.http.get(f"/v1/dead_letters/{letter_id}")).json()["retries"] == 1
    again = (await harness.http.post(f"/v1/dead_letters/{letter_id}/retry")).json()
    assert again["retries"] == 2
    assert len(harness.published) == 2


async def test_retry_of_one_event_record_publishes_a_message_of_one(harness: Harness) -> None:
    """The graph keeps each bad event of a message alone; a message is a list of events."""
    (record,) = host_down_records("host-00002")
    letter_id = await harness.add(BULK, orjson.dumps(record))
    retried = (await harness.http.post(f"/v1/dead_letters/{letter_id}/retry")).json()
    assert retried["republished_to"] == BULK_EVENTS
    assert harness.published == [(BULK_EVENTS, [record])]


@pytest.mark.parametrize(
    ("source", "body", "words"),
    [
        (PRIORITY, b"\x80\xff not json", ("not JSON", "fail the same way")),
        (BULK, b'{"hello": "world"}', ("not events", "id")),
        (PRIORITY, b'[{"id": "e1"}]', ("not events", "datasource")),
        ("events.processed/persistor", orjson.dumps({"epoch": 1, "events": []}), ("events.processed", "epoch")),
        ("events.processed", b"[]", ("events.processed", "fenced")),
        ("notifications.info/vitrail", orjson.dumps(host_down_records()), ("notifications.info/vitrail", "input")),
        ("listener", orjson.dumps(host_down_records()), ("from listener", "not a Vitrail input topic")),
    ],
)
async def test_retry_refuses_what_would_fail_again_or_is_not_an_input(
    harness: Harness, source: str, body: bytes, words: tuple[str, ...]
) -> None:
    letter_id = await harness.add(source, body)
    assert_error(await harness.http.post(f"/v1/dead_letters/{letter_id}/retry"), 409, *words)
    assert harness.published == []
    assert (await harness.http.get(f"/v1/dead_letters/{letter_id}")).json()["retries"] == 0


async def test_unknown_and_malformed_ids(harness: Harness) -> None:
    http = harness.http
    assert_error(await http.get("/v1/dead_letters/999"), 404, "dead letter 999")
    assert_error(await http.post("/v1/dead_letters/999/retry"), 404, "dead letter 999")
    assert_error(await http.delete("/v1/dead_letters/999"), 404, "dead letter 999")
    assert_error(await http.get("/v1/dead_letters/abc"), 422, "letter_id")
    assert_error(await http.get("/v1/dead_letters/0"), 422, "letter_id")
    assert_error(await http.get(f"/v1/dead_letters/{2**64}"), 422, "letter_id")
    assert harness.published == []


async def test_delete_one(harness: Harness) -> None:
    kept = await harness.add(PRIORITY, b"kept")
    gone = await harness.add(PRIORITY, b"gone")
    response = await harness.http.delete(f"/v1/dead_letters/{gone}")
    assert response.status_code == 204 and response.content == b""
    assert_error(await harness.http.get(f"/v1/dead_letters/{gone}"), 404, str(gone))
    assert_error(await harness.http.delete(f"/v1/dead_letters/{gone}"), 404, str(gone))
    assert [row["id"] for row in (await harness.http.get("/v1/dead_letters/")).json()] == [kept]


async def test_purge_must_name_what_it_deletes(harness: Harness) -> None:
    http = harness.http
    old = await harness.add(PRIORITY, b"old", created_at=WHEN - timedelta(days=2))
    await harness.add(BULK, b"old bulk", created_at=WHEN - timedelta(days=1))
    recent_bulk = await harness.add(BULK, b"recent bulk", created_at=WHEN)
    recent = await harness.add(PRIORITY, b"recent", created_at=WHEN)
    assert_error(await http.delete("/v1/dead_letters/"), 422, "before", "source", "all")
    assert_error(await http.delete("/v1/dead_letters/", params={"all": "false"}), 422, "all=true")
    assert_error(await http.delete("/v1/dead_letters/", params={"all": "true", "source": BULK}), 422, "all")
    assert_error(await http.delete("/v1/dead_letters/", params={"before": "yesterday"}), 422, "before")
    assert_error(await http.delete("/v1/dead_letters/", params={"all": "maybe"}), 422, "all")
    assert len((await http.get("/v1/dead_letters/")).json()) == 4  # nothing was purged by a refusal

    before = (WHEN - timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    purged = await http.delete("/v1/dead_letters", params={"before": before, "source": BULK})
    assert purged.json() == {"purged": 1}
    remaining = [row["id"] for row in (await http.get("/v1/dead_letters/")).json()]
    assert remaining == [recent, recent_bulk, old]
    assert (await http.delete("/v1/dead_letters/", params={"before": before})).json() == {"purged": 1}
    assert (await http.delete("/v1/dead_letters/", params={"source": BULK})).json() == {"purged": 1}
    assert [row["id"] for row in (await http.get("/v1/dead_letters/")).json()] == [recent]
    assert (await http.delete("/v1/dead_letters/", params={"all": "true"})).json() == {"purged": 1}
    assert (await http.get("/v1/dead_letters/")).json() == []


async def test_purge_before_takes_naive_times_as_utc(harness: Harness) -> None:
    await harness.add(PRIORITY, b"a", created_at=WHEN)
    just_before = (WHEN - timedelta(microseconds=1)).replace(tzinfo=None).isoformat()
    assert (await harness.http.delete("/v1/dead_letters/", params={"before": just_before})).json() == {"purged": 0}
    just_after = (WHEN + timedelta(microseconds=1)).replace(tzinfo=None).isoformat()
    assert (await harness.http.delete("/v1/dead_letters/", params={"before": just_after})).json() == {"purged": 1}


async def test_identity_headers_need_the_admin_role(harness: Harness) -> None:
    letter_id = await harness.add(PRIORITY, b"secret of project-1")
    member = {"x-user-id": "u", "x-project-id": "project-0", "x-roles": "member"}
    assert_error(await harness.http.get("/v1/dead_letters/", headers=member), 403, "admin")
    assert_error(await harness.http.get(f"/v1/dead_letters/{letter_id}", headers=member), 403, "admin")
    assert_error(await harness.http.delete("/v1/dead_letters/", params={"all": "true"}, headers=member), 403)
    admin = {**member, "x-roles": "member,admin"}
    assert [row["id"] for row in (await harness.http.get("/v1/dead_letters/", headers=admin)).json()] == [letter_id]


async def test_unavailable_without_a_store(service: GraphService) -> None:
    app = create_app(LocalGraphBackend(service, ["api", "graph"]))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://vitrail.test") as http:
        assert_error(await http.get("/v1/dead_letters/"), 503, "dead letters are not available")
        assert_error(await http.post("/v1/dead_letters/1/retry"), 503, "dead letters are not available")
