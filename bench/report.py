"""Figures: percentiles, ratios, the machine a run was made on, and the JSON written to `bench/results/`."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

import psutil

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def quick_mode(argv: list[str] | None = None) -> bool:
    """`--quick` or BENCH_QUICK=1: a smoke run that finishes in well under a minute."""
    argv = sys.argv[1:] if argv is None else argv
    return "--quick" in argv or os.environ.get("BENCH_QUICK", "") not in ("", "0", "false")


def machine() -> dict[str, Any]:
    """What the figures came from: CPUs, memory, load average right now, versions."""
    import granian

    load1, load5, load15 = os.getloadavg()
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "hostname": platform.node(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "granian": granian.__version__,
    }


def describe_machine(info: dict[str, Any]) -> str:
    return (
        f"{info['cpus']} CPUs ({info['cpu_model'] or 'unknown CPU'}), {info['memory_gib']} GiB, "
        f"Python {info['python']}, granian {info['granian']}, "
        f"load average {info['load_average'][0]:.2f} / {info['load_average'][1]:.2f} / "
        f"{info['load_average'][2]:.2f} at start"
    )


def write_results(name: str, payload: dict[str, Any]) -> Path:
    path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **payload}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


# ---- statistics ----------------------------------------------------------------------------------


def percentiles(samples: list[float], scale: float = 1000.0) -> dict[str, float | None]:
    """p50/p95/p99/max of `samples` (seconds), in milliseconds by default."""
    if not samples:
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    if len(samples) == 1:
        value = round(samples[0] * scale, 3)
        return {"p50": value, "p95": value, "p99": value, "max": value, "n": 1}
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50": round(q[49] * scale, 3),
        "p95": round(q[94] * scale, 3),
        "p99": round(q[98] * scale, 3),
        "max": round(max(samples) * scale, 3),
        "n": len(samples),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 2)


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# ---- PostgreSQL ----------------------------------------------------------------------------------
