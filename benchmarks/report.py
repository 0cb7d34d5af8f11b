"""Shared output of every benchmark: a table on stdout and a JSON file with the machine."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "commit": commit or None,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def print_table(title: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """Columns are (key, header)."""
    widths = [max(len(header), *(len(_fmt(r.get(key))) for r in rows)) for key, header in columns]
    print(f"\n{title}")
    print("  ".join(header.rjust(w) for (_, header), w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(_fmt(row.get(key)).rjust(w) for (key, _), w in zip(columns, widths, strict=True)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def write_json(path: Path | None, benchmark: str, results: Any, targets: dict[str, Any] | None = None) -> None:
    if path is None:
        return
    document = {"benchmark": benchmark, "machine": machine(), "targets": targets or {}, "results": results}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")


def best_of(samples: list[dict[str, Any]], rate_key: str, minimum_keys: tuple[str, ...], runs: int) -> dict[str, Any]:
    """One row from repeated runs: the best rate and the best (smallest) times.

    On a shared machine the slower runs measure the neighbours, not the code.
    """
    best = dict(max(samples, key=lambda r: r[rate_key]))
    for key in minimum_keys:
        best[key] = min(r[key] for r in samples)
    best["runs"] = runs
    return best


def run_in_subprocesses(module: str, args: list[str], repeat: int) -> list[dict[str, Any]]:
    """``python -m module args...`` ``repeat`` times, each printing one JSON object."""
    import json

    samples = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-m", module, *args], check=True, capture_output=True, text=True)
        samples.append(json.loads(out.stdout))
    return samples
