"""Compare graph data structures for the entity graph: plain slotted objects, NetworkX, rustworkx.

Each backend builds the same cloud (a zone, N hosts, 10 instances per host, the
Vitrage property set on every vertex) in a fresh subprocess, so resident memory is
measured without the others' leftovers. Run: ``python -m benchmarks structures``.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from typing import Any

import psutil

BACKENDS = ("vitrail", "networkx", "rustworkx")


def _props(i: int, kind: str, parent: str | None) -> dict[str, Any]:
    from vitrail.graph.identity import vitrage_id_for

    ident = f"{kind}-{i:07d}"
    return _clean(
        {
            "vitrage_id": vitrage_id_for("RESOURCE", kind, ident),
            "vitrage_category": "RESOURCE",
            "vitrage_type": kind,
            "id": ident,
            "name": f"{kind}-name-{i}",
            "state": "ACTIVE",
            "vitrage_aggregated_state": "ACTIVE",
            "vitrage_operational_state": "OK",
            "vitrage_sample_timestamp": "2026-11-22 00:00:00.000000+00:00",
            "update_timestamp": "2026-11-22 00:00:00.000000+00:00",
            "vitrage_is_deleted": False,
            "vitrage_is_placeholder": False,
            "project_id": "demo-project" if kind == "nova.instance" else None,
            "vitrage_datasource_name": kind,
        }
    )


def _entities(hosts: int):
    zone = _props(0, "nova.zone", None)
    yield zone, None
    for h in range(hosts):
        host = _props(h, "nova.host", None)
        yield host, zone["vitrage_id"]
        for k in range(10):
            yield _props(h * 10 + k, "nova.instance", None), host["vitrage_id"]


def _clean(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if v is not None}


def _median_time(probe: list[str], query: Any) -> float:
    """Median seconds of one neighbour query (the zone's 10,000 hosts would dominate a mean)."""
    samples = []
    for vid in probe:
        started = time.perf_counter()
        query(vid)
        samples.append(time.perf_counter() - started)
    samples.sort()
    return samples[len(samples) // 2]


def run_one(backend: str, hosts: int) -> dict[str, Any]:
    gc.collect()
    proc = psutil.Process()
    t0 = time.perf_counter()
    probe = [p["vitrage_id"] for p, _ in _entities(hosts)][:: max(1, hosts * 11 // 1000)]
    generation = time.perf_counter() - t0  # the cost of making the input, not of the graph
    gc.collect()
    rss0 = proc.memory_info().rss  # before the entities exist: their strings count too
    entities = _entities(hosts)  # one at a time, as events arrive
    t0 = time.perf_counter() + generation
    if backend == "vitrail":
        from vitrail.graph.canonical import dump_graph
        from vitrail.graph.entity_graph import EntityGraph
        from vitrail.graph.model import Vertex

        g = EntityGraph()
        for props, parent in entities:
            g.add_vertex(Vertex(props["vitrage_id"], props))
            if parent is not None:
                g.add_edge(parent, props["vitrage_id"], "contains")
        build = time.perf_counter() - t0
        query = _median_time(probe, g.neighbors)
        t2 = time.perf_counter()
        dump_graph(g)
        dump = time.perf_counter() - t2
    elif backend == "networkx":
        import networkx as nx

        g = nx.MultiDiGraph()
        for props, parent in entities:
            g.add_node(props["vitrage_id"], **props)
            if parent is not None:
                g.add_edge(
                    parent, props["vitrage_id"], key="contains", relationship_type="contains", vitrage_is_deleted=False
                )
        build = time.perf_counter() - t0
        query = _median_time(probe, lambda vid: set(g.successors(vid)) | set(g.predecessors(vid)))
        t2 = time.perf_counter()
        import orjson

        orjson.dumps(nx.node_link_data(g, edges="links"), option=orjson.OPT_SORT_KEYS)
        dump = time.perf_counter() - t2
    else:
        import orjson
        import rustworkx as rx

        g = rx.PyDiGraph(multigraph=True)
        index: dict[str, int] = {}
        for props, parent in entities:
            index[props["vitrage_id"]] = g.add_node(props)
            if parent is not None:
                g.add_edge(
                    index[parent],
                    index[props["vitrage_id"]],
                    {"relationship_type": "contains", "vitrage_is_deleted": False},
                )
        build = time.perf_counter() - t0
        query = _median_time(probe, lambda vid: [g[n] for n in g.neighbors_undirected(index[vid])])
        t2 = time.perf_counter()
        orjson.dumps(
            {"nodes": list(g.nodes()), "links": [(a, b, d) for a, b, d in g.weighted_edge_list()]},
            option=orjson.OPT_SORT_KEYS,
        )
        dump = time.perf_counter() - t2
    gc.collect()
    rss = proc.memory_info().rss - rss0
    n = 1 + hosts * 11
    return {
        "backend": backend,
        "hosts": hosts,
        "entities": n,
        "build_s": round(build, 3),
        "build_vertices_per_s": round(n / build),
        "rss_bytes_per_entity": round(rss / n),
        "neighbors_us": round(query * 1e6, 2),
        "dump_s": round(dump, 3),
    }


COLUMNS = [
    ("backend", "structure"),
    ("entities", "entities"),
    ("build_vertices_per_s", "vertices+edges/s"),
    ("rss_bytes_per_entity", "RSS B/entity"),
    ("neighbors_us", "neighbours p50 us"),
    ("dump_s", "dump s"),
]


def run(hosts: list[int], json_path: Any) -> list[dict[str, Any]]:
    from benchmarks.report import print_table, write_json

    rows = []
    for n in hosts:
        for backend in BACKENDS:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.graph_structures", backend, str(n)],
                check=True,
                capture_output=True,
                text=True,
            )
            rows.append(json.loads(out.stdout))
    print_table("Graph data structures (same cloud, same properties, one subprocess each)", rows, COLUMNS)
    write_json(json_path, "structures", rows)
    return rows


if __name__ == "__main__":
    print(json.dumps(run_one(sys.argv[1], int(sys.argv[2]))))
