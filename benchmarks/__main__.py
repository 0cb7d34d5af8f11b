"""One entry point for every benchmark.

python -m benchmarks topology --hosts 1000 5000 10000 --json benchmarks/results/topology.json
python -m benchmarks structures --hosts 10000 --json benchmarks/results/structures.json
python -m benchmarks distributed --hosts 1000 10000 --json benchmarks/results/distributed.json
python -m benchmarks replay --hosts 1000 10000 --json benchmarks/results/replay.json
python -m benchmarks snapshots --hosts 1000 10000 --json benchmarks/results/snapshots.json
python -m benchmarks persistor --events 50000 --batch 100 1000 --json benchmarks/results/persistor.json
python -m benchmarks failover --hosts 1000 10000 --json benchmarks/results/failover.json
python -m benchmarks time-travel --hosts 1000 10000 --events 100000 --json benchmarks/results/time_travel.json
python -m benchmarks alarm-history --rows 1000000 --json benchmarks/results/alarm_history.json
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="name", required=True)
    topo = sub.add_parser("topology", help="processor build rate, memory per entity, dump/load time")
    topo.add_argument("--hosts", type=int, nargs="+", default=[1000, 5000, 10000])
    topo.add_argument("--repeat", type=int, default=3, help="runs per size; the best is reported")
    topo.add_argument("--json", type=Path, default=None, help="write the results here")
    evaluator = sub.add_parser("evaluator", help="build with templates live, full pass, alarm and RCA latency")
    evaluator.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    evaluator.add_argument("--alarms", type=int, default=100, help="host-down alarms injected")
    evaluator.add_argument("--repeat", type=int, default=3, help="runs per size; the best is reported")
    evaluator.add_argument("--json", type=Path, default=None)
    structures = sub.add_parser("structures", help="graph data structures compared (docs/graph-structure.md)")
    structures.add_argument("--hosts", type=int, nargs="+", default=[10000])
    structures.add_argument("--json", type=Path, default=None)
    distributed = sub.add_parser(
        "distributed", help="collector -> RabbitMQ -> graph events/s, and the broker's ceiling"
    )
    distributed.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    distributed.add_argument("--repeat", type=int, default=2, help="runs per size; the best is reported")
    distributed.add_argument("--json", type=Path, default=None)
    replay = sub.add_parser("replay", help="a restart: the event log replayed into an empty graph")
    replay.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    replay.add_argument("--repeat", type=int, default=3, help="runs per size; the best is reported")
    replay.add_argument("--json", type=Path, default=None)
    snapshots = sub.add_parser("snapshots", help="processor snapshots: size, encode/load, stall of a forked encode")
    snapshots.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    snapshots.add_argument("--repeat", type=int, default=3, help="runs per size; the best is reported")
    snapshots.add_argument("--json", type=Path, default=None)
    persistor = sub.add_parser(
        "persistor", help="persistor events/s into the event log per database, and the append ceiling"
    )
    persistor.add_argument("--events", type=int, default=50_000)
    persistor.add_argument("--batch", type=int, nargs="+", default=[100, 1000], help="PersistorSettings.batch_size")
    persistor.add_argument("--backends", nargs="+", default=["sqlite", "postgresql", "mariadb"])
    persistor.add_argument("--record-bytes", type=int, default=500, help="JSON bytes per event record (0: as is)")
    persistor.add_argument("--repeat", type=int, default=3, help="runs per case; the best is reported")
    persistor.add_argument("--profile", action="store_true", help="print a cProfile of the persistor runs")
    persistor.add_argument("--json", type=Path, default=None)
    failover = sub.add_parser("failover", help="SIGKILL the graph leader: time until the standby answers the API")
    failover.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    failover.add_argument("--repeat", type=int, default=3, help="runs per size; the best is reported")
    failover.add_argument(
        "--replay", type=int, nargs="+", default=[0], help="events logged after the snapshot before the kill"
    )
    failover.add_argument("--json", type=Path, default=None)
    history = sub.add_parser("alarm-history", help="alarm history write rate and query p50/p99 over many rows")
    history.add_argument("--rows", type=int, default=1_000_000, help="alarm occurrences in the history")
    history.add_argument("--resources", type=int, default=20_000)
    history.add_argument("--samples", type=int, default=200, help="timed runs of each query")
    history.add_argument("--backends", nargs="+", default=["postgresql"])
    history.add_argument("--json", type=Path, default=None)
    time_travel = sub.add_parser("time-travel", help="the graph at a time T: snapshot + events replayed")
    time_travel.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    time_travel.add_argument("--events", type=int, default=100_000, help="events logged after the snapshot")
    time_travel.add_argument(
        "--database", nargs="+", default=["sqlite"], choices=["sqlite", "postgresql", "mariadb"],
        help="databases to measure on (PostgreSQL/MariaDB: scratch databases on the local servers)",
    )  # fmt: skip
    time_travel.add_argument("--repeat", type=int, default=2, help="runs per case; the best is reported")
    time_travel.add_argument("--profile", action="store_true", help="print a cProfile of the cold rebuild")
    time_travel.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.name == "topology":
        from benchmarks.topology import run

        run(args.hosts, args.repeat, args.json)
    elif args.name == "evaluator":
        from benchmarks.evaluator import run as run_evaluator

        run_evaluator(args.hosts, args.alarms, args.repeat, args.json)
    elif args.name == "replay":
        from benchmarks.replay import run as run_replay

        run_replay(args.hosts, args.repeat, args.json)
    elif args.name == "snapshots":
        from benchmarks.snapshots import run as run_snapshots

        run_snapshots(args.hosts, args.repeat, args.json)
    elif args.name == "distributed":
        from benchmarks.distributed import run as run_distributed

        run_distributed(args.hosts, args.repeat, args.json)
    elif args.name == "persistor":
        from benchmarks.durability import run as run_persistor

        run_persistor(args.events, args.batch, args.repeat, args.json, args.record_bytes, args.backends, args.profile)
    elif args.name == "time-travel":
        from benchmarks.time_travel import run as run_time_travel

        run_time_travel(args.hosts, args.events, args.database, args.repeat, args.json, args.profile)
    elif args.name == "failover":
        from benchmarks.failover import run as run_failover

        run_failover(args.hosts, args.repeat, args.json, args.replay)
    elif args.name == "alarm-history":
        from benchmarks.alarm_history import run as run_alarm_history

        run_alarm_history(args.rows, args.resources, args.samples, args.backends, args.json)
    else:
        from benchmarks.graph_structures import run

        run(args.hosts, args.json)


if __name__ == "__main__":
    main()
