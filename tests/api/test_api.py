"""The REST API as python-vitrageclient 5.4.0 calls it (bodies captured from the real client)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from vitrail.api.app import create_app
from vitrail.graph.identity import vitrage_id_for
from vitrail.services.graph import GraphService

ADMIN = {"x-user-id": "u1", "x-project-id": "project-0", "x-roles": "admin"}
MEMBER = {"x-user-id": "u2", "x-project-id": "project-1", "x-roles": "member"}
CLIENT_TOPOLOGY = {"depth": None, "graph_type": "graph", "query": None, "root": None, "all_tenants": False}
HOST_0 = vitrage_id_for("RESOURCE", "nova.host", "host-00000")
CLUSTER = vitrage_id_for("RESOURCE", "openstack.cluster", "OpenStack Cluster")


def by_type(nodes: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in nodes:
        counts[node["vitrage_type"]] = counts.get(node["vitrage_type"], 0) + 1
    return counts


def assert_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "title", "description"}
    assert body["code"] == status
    for word in words:
        assert word in body["description"]
    assert "Traceback" not in response.text


async def test_topology_is_node_link_json_like_vitrage(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/topology/", json=CLIENT_TOPOLOGY)
    assert response.status_code == 200
    data = response.json()
    assert {"directed", "multigraph", "graph", "nodes", "links", "raw"} <= set(data)
    assert data["directed"] is True and data["multigraph"] is True and data["raw"] is True
    assert by_type(data["nodes"]) == {"openstack.cluster": 1, "nova.zone": 1, "nova.host": 3, "nova.instance": 6}
    assert len(data["links"]) == 10
    for index, node in enumerate(data["nodes"]):
        assert node["graph_index"] == index
        assert node["is_real_vitrage_id"] is True
    for link in data["links"]:
        assert isinstance(link["source"], int) and isinstance(link["target"], int)
        assert link["key"] == link["relationship_type"] == "contains"
        assert link["vitrage_is_deleted"] is False
        parent = data["nodes"][link["source"]]["vitrage_type"]
        child = data["nodes"][link["target"]]["vitrage_type"]
        assert (parent, child) in {
            ("openstack.cluster", "nova.zone"),
            ("nova.zone", "nova.host"),
            ("nova.host", "nova.instance"),
        }


async def test_topology_without_trailing_slash_and_by_get(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/topology", json=CLIENT_TOPOLOGY)).status_code == 200
    response = await client.get("/v1/topology/", params={"graph_type": "tree"})
    assert response.status_code == 200
    assert response.json()["vitrage_type"] == "openstack.cluster"


async def test_tenant_sees_own_instances_and_the_path_above_them(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/topology/", json=CLIENT_TOPOLOGY, headers=MEMBER)
    nodes = response.json()["nodes"]
    instances = [n for n in nodes if n["vitrage_type"] == "nova.instance"]
    assert len(instances) == 3
    assert {n["project_id"] for n in instances} == {"project-1"}
    assert {"openstack.cluster", "nova.zone", "nova.host"} <= set(by_type(nodes))


async def test_all_tenants_needs_the_admin_role(client: httpx.AsyncClient) -> None:
    body = {**CLIENT_TOPOLOGY, "all_tenants": True}
    assert_error(await client.post("/v1/topology/", json=body, headers=MEMBER), 403, "admin")
    response = await client.post("/v1/topology/", json=body, headers=ADMIN)
    assert len(response.json()["nodes"]) == 11


async def test_tree_nests_children_and_leaves_have_none(client: httpx.AsyncClient) -> None:
    body = {**CLIENT_TOPOLOGY, "graph_type": "tree"}
    tree = (await client.post("/v1/topology/", json=body)).json()
    assert tree["vitrage_type"] == "openstack.cluster"
    (zone,) = tree["children"]
    assert len(zone["children"]) == 3
    for host in zone["children"]:
        assert {c["vitrage_type"] for c in host["children"]} == {"nova.instance"}
        assert all("children" not in leaf for leaf in host["children"])


async def test_root_and_depth_walk_both_directions(client: httpx.AsyncClient) -> None:
    body = {**CLIENT_TOPOLOGY, "root": HOST_0, "depth": 1}
    nodes = (await client.post("/v1/topology/", json=body)).json()["nodes"]
    assert by_type(nodes) == {"nova.host": 1, "nova.zone": 1, "nova.instance": 2}


async def test_filter_query_is_a_json_string(client: httpx.AsyncClient) -> None:
    query = orjson.dumps({"or": [{"==": {"vitrage_type": "nova.host"}}, {"==": {"vitrage_type": "nova.zone"}}]})
    body = {**CLIENT_TOPOLOGY, "query": query.decode(), "all_tenants": True}
    nodes = (await client.post("/v1/topology/", json=body, headers=ADMIN)).json()["nodes"]
    assert by_type(nodes) == {"nova.zone": 1, "nova.host": 3}
    negated = {**body, "query": '{"not": {"==": {"vitrage_type": "nova.instance"}}}'}
    nodes = (await client.post("/v1/topology/", json=negated, headers=ADMIN)).json()["nodes"]
    assert "nova.instance" not in by_type(nodes)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"query": "{not json"}, 422, ["query", "JSON"]),
        ({"query": '{"~=": {"a": 1}}'}, 422, ["query", "unknown operator"]),
        ({"query": '{"and": {"==": {"a": 1}}}'}, 422, ["query.and", "list"]),
        ({"query": "[1, 2]"}, 422, ["query", "object"]),
        ({"depth": "deep"}, 422, ["depth"]),
        ({"depth": -1}, 422, ["depth"]),
        ({"graph_type": "star"}, 422, ["graph_type"]),
        ({"all_tenants": "maybe"}, 422, ["all_tenants"]),
        ({"depth": 2}, 422, ["root"]),
        ({"root": "no-such-vertex", "depth": 1}, 404, ["no-such-vertex"]),
    ],
)
async def test_bad_topology_requests_name_the_parameter(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, words: list[str]
) -> None:
    assert_error(await client.post("/v1/topology/", json={**CLIENT_TOPOLOGY, **body}), status, *words)


async def test_malformed_json_body_is_a_clear_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/topology/", content=b"{oops", headers={"content-type": "application/json"})
    assert_error(response, 422, "JSON")


async def test_resource_list_is_a_bare_list(client: httpx.AsyncClient) -> None:
    body = {"resource_type": None, "all_tenants": False, "query": None}
    rows = (await client.post("/v1/resources/", json=body)).json()
    assert isinstance(rows, list) and len(rows) == 11
    typed = (await client.post("/v1/resources/", json={**body, "resource_type": "nova.host"})).json()
    assert {r["vitrage_type"] for r in typed} == {"nova.host"}
    mine = (await client.post("/v1/resources/", json=body, headers=MEMBER)).json()
    assert {r["project_id"] for r in mine} == {"project-1"}
    admin = (await client.post("/v1/resources/", json=body, headers=ADMIN)).json()
    assert {r.get("project_id") for r in admin} == {"project-0", None}


async def test_resource_show_and_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/resources/{HOST_0}")
    assert response.status_code == 200
    assert response.json()["name"] == "host-00000"
    assert_error(await client.get("/v1/resources/nope"), 404, "nope")
    assert_error(await client.get(f"/v1/resources/{HOST_0}", headers=MEMBER), 404)


async def test_resource_count_is_flat(client: httpx.AsyncClient) -> None:
    body = {"resource_type": None, "all_tenants": False, "query": None, "group_by": "vitrage_type"}
    counts = (await client.post("/v1/resources/count/", json=body)).json()
    assert counts == {"openstack.cluster": 1, "nova.zone": 1, "nova.host": 3, "nova.instance": 6}
    states = (await client.post("/v1/resources/count/", json={**body, "group_by": "vitrage_operational_state"})).json()
    assert states == {"OK": 10, "ERROR": 1}


async def test_service_status_health_versions_metrics_docs(client: httpx.AsyncClient) -> None:
    services = (await client.get("/v1/service/")).json()
    assert [s["name"] for s in services] == ["vitrail-api", "vitrail-collector", "vitrail-graph"]
    assert {"name", "process", "hostname", "created"} == set(services[0])
    assert (await client.get("/v1/status/")).json() == {"reason": "OK"}
    detailed = (await client.get("/v1/status", params={"detailed": "true"})).json()
    assert detailed["details"]["vertices"] == 11
    assert (await client.get("/healthcheck/")).json() == {"detailed": False, "reasons": ["OK"]}
    assert (await client.get("/healthcheck")).status_code == 200
    assert (await client.get("/")).json()["versions"][0]["id"] == "v1.0"
    metrics = (await client.get("/metrics")).text
    assert "vitrail_api_requests_total" in metrics
    assert "/v1/status/" in metrics
    schema = (await client.get("/openapi.json")).json()
    assert "/v1/topology/" in schema["paths"]
    assert (await client.get("/docs")).status_code == 200


async def test_status_is_503_while_loading(client: httpx.AsyncClient, service: GraphService) -> None:
    service.ready.clear()
    service.progress.expected = 10
    service.progress.applied = 4
    assert_error(await client.get("/v1/status/"), 503, "4 of 10")


async def test_unknown_path_and_method_are_json_errors(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/nothing"), 404, "/v1/nothing")
    assert_error(await client.delete("/v1/topology/"), 405, "DELETE")


async def test_unexpected_errors_never_leak_a_traceback(service: GraphService) -> None:
    class Broken:
        async def topology(self, *args: Any) -> Any:
            raise RuntimeError("secret internals")

    transport = httpx.ASGITransport(app=create_app(Broken()), raise_app_exceptions=False)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.post("/v1/topology/", json=CLIENT_TOPOLOGY)
    assert_error(response, 500, "incident")
    assert "secret internals" not in response.text
