"""py-spy profiles of the live server's workers, summarised by library (where a turn's CPU goes)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench import report


def py_spy_available() -> str | None:
    candidate = Path(sys.executable).with_name("py-spy")
    if candidate.exists():
        return str(candidate)
    return shutil.which("py-spy")


class PySpy:
    """`py-spy record --format raw` of a server's workers while a load runs; summarised by stage."""

    def __init__(
        self, pids: list[int], output_dir: Path, name: str, *, rate: int = 100, nonblocking: bool = False
    ) -> None:
        self.pids = pids
        self.nonblocking = nonblocking
        self.output_dir = output_dir
        self.name = name
        self.rate = rate
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.error: str | None = None

    def start(self, duration: float) -> None:
        binary = py_spy_available()
        if binary is None:
            self.error = "py-spy not installed (pip install py-spy)"
            return
        for pid in self.pids:
            out = self.output_dir / f"{self.name}-{pid}.txt"
            process = subprocess.Popen(
                [
                    binary,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(max(1, round(duration))),
                    "--rate",
                    str(self.rate),
                    "--format",
                    "raw",
                    *(["--nonblocking"] if self.nonblocking else []),
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            self.processes.append((process, out))

    def stop(self) -> list[str]:
        """Wait for the recorders; the collapsed stacks they wrote (one `stack count` per line)."""
        lines: list[str] = []
        for process, out in self.processes:
            try:
                _, stderr = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                _, stderr = process.communicate()
            if out.exists():
                lines += out.read_text(errors="replace").splitlines()
            elif self.error is None:
                self.error = (stderr or b"").decode(errors="replace").strip()[-300:] or "py-spy wrote nothing"
        if lines:
            # The raw collapsed stacks, for digging further (flamegraph.pl, speedscope, grep).
            report.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            (report.RESULTS_DIR / f"profile-{self.name}.json").write_text(json.dumps({"py_spy_raw": lines}))
        return lines


# Where server CPU goes, by the outermost frame of a known kind on each sampled stack
# (outermost first, so "agents" means the Agents SDK's runner and everything under it that is
# not itself a more specific stage). Order matters: the first match from the leaf upward wins
# for "self" time; for "stage" time the rules below are applied to the whole stack.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("db driver (asyncpg)", ("asyncpg/",)),
    ("sqlalchemy + advanced_alchemy", ("sqlalchemy/", "advanced_alchemy/")),
    ("pydantic (validate/serialise)", ("pydantic/", "pydantic_core/")),
    ("HTTP client (httpx, httpcore, h11, anyio)", ("httpx/", "httpcore/", "h11/", "anyio/", "sniffio/")),
    ("openai types", ("openai/",)),
    ("agents SDK", ("agents/",)),
    ("chatkit library", ("chatkit/",)),
    ("litestar (routing, DI, responses)", ("litestar/",)),
    ("auth (pyjwt, cryptography)", ("jwt/", "cryptography/")),
    ("logging / json", ("logging/", "json/")),
    ("asyncio event loop", ("asyncio/", "uvloop/")),
    ("app code (src/app)", ("app/",)),
]


def _frame_file(frame: str) -> str:
    # raw format frames look like "function (path/to/file.py:123)"
    start = frame.rfind("(")
    return frame[start + 1 :] if start >= 0 else frame


def _package_path(where: str) -> str:
    """The frame's file from its top-level package on: py-spy prints "agents/run.py:12" for an
    installed package and "app/agents/stream.py:40" for ours; a full path is cut after
    site-packages/ or src/. Matching from the start keeps our app/agents/ and app/agents/chatkit/
    apart from the Agents SDK (agents/) and the ChatKit library (chatkit/)."""
    for root in ("/site-packages/", "/src/", "/lib/python3."):
        if root in where:
            where = where.rsplit(root, 1)[1]
            if root == "/lib/python3.":
                where = where.partition("/")[2]
    return where


def _classify(frame: str) -> str | None:
    where = _package_path(_frame_file(frame))
    for stage, needles in STAGES:
        if where.startswith(needles):
            return stage
    return None


def summarise_profile(lines: list[str], top: int = 15) -> dict[str, Any]:
    """Self time by library and the hottest functions, from py-spy raw (collapsed) stacks.

    Idle samples (the event loop waiting in select/epoll, granian's threads parked) are counted
    apart: the shares below are of the samples where Python was running.
    """
    by_stage: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    busy = idle = 0
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        leaf = frames[-1]
        if any(
            marker in leaf
            for marker in ("select (selectors.py", "_run_once (asyncio", "run_forever", "poll (", "epoll")
        ) or leaf.startswith(("select ", "wait ", "_wait_for_tstate_lock", "sleep ")):
            idle += count
            continue
        busy += count
        stage = None
        for frame in reversed(frames):
            stage = _classify(frame)
            if stage is not None:
                break
        by_stage[stage or "other (stdlib, C extensions)"] += count
        by_function[leaf] += count
        for seen in {s for s in (_classify(f) for f in frames) if s is not None}:
            inclusive[seen] += count
    if busy == 0:
        return {"samples_busy": 0, "samples_idle": idle, "self_by_stage": {}, "inclusive_by_stage": {}, "top": []}
    return {
        "samples_busy": busy,
        "samples_idle": idle,
        "self_by_stage": {k: round(100 * v / busy, 1) for k, v in by_stage.most_common()},
        "inclusive_by_stage": {k: round(100 * v / busy, 1) for k, v in inclusive.most_common()},
        "top": [{"function": k, "self_pct": round(100 * v / busy, 1)} for k, v in by_function.most_common(top)],
    }


def print_profile(title: str, summary: dict[str, Any], *, top: int = 10) -> None:
    if not summary.get("samples_busy"):
        print(f"\n{title}: no busy samples")
        return
    print(f"\n{title} ({summary['samples_busy']} busy samples, {summary['samples_idle']} idle)")
    print(f"  {'stage':40} {'self %':>7} {'incl %':>7}")
    for stage, share in summary["self_by_stage"].items():
        print(f"  {stage:40} {share:7.1f} {summary['inclusive_by_stage'].get(stage, 0.0):7.1f}")
    print("  hottest functions (self %):")
    for entry in summary["top"][:top]:
        print(f"    {entry['self_pct']:5.1f}  {entry['function'][:110]}")
