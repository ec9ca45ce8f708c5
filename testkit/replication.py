"""A PostgreSQL primary and a synchronous standby on loopback ports, made from scratch for one test.

`initdb` a primary, `pg_basebackup -R` a standby from it, `synchronous_standby_names` naming the
standby with `synchronous_commit = on`: a COMMIT is acknowledged only once the standby has the
WAL on disk, so nothing acknowledged is lost when the primary dies and the standby is promoted.
The replication settings are `deploy/postgresql-replication.conf`, appended to each cluster's
configuration, so what is tested is what the operator recipe says.

As root (PostgreSQL refuses to run as root), every binary runs as the `postgres` OS user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from testkit.processes import PROJECT_ROOT, free_port

REPLICATION_CONF = PROJECT_ROOT / "deploy" / "postgresql-replication.conf"
STANDBY_NAME = "taskpilot_standby"


def postgres_bin_dir() -> Path | None:
    """The directory of `initdb`/`pg_ctl`/`pg_basebackup` (Debian's /usr/lib/postgresql/<version>/bin,
    outside PATH), resolved through a symlink of `initdb` on PATH when there is one."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted((p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")), reverse=True)
    return next((c for c in candidates if (c / "pg_basebackup").exists() and (c / "pg_ctl").exists()), None)


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class Cluster:
    name: str
    port: int
    data: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class ReplicatedPostgres:
    bin_dir: Path
    primary: Cluster
    standby: Cluster

    def run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            _as_owner([str(self.bin_dir / tool), *args]), capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result

    def url(self, database: str = "postgres", *, hosts: tuple[Cluster, ...] | None = None) -> str:
        """A SQLAlchemy URL; with several clusters, the multi-host form TaskPilot fails over with."""
        clusters = hosts or (self.primary,)
        if len(clusters) == 1:
            return f"postgresql+asyncpg://postgres@127.0.0.1:{clusters[0].port}/{database}"
        query = "&".join(f"host=127.0.0.1:{cluster.port}" for cluster in clusters)
        return f"postgresql+asyncpg://postgres@/{database}?{query}&target_session_attrs=read-write"

    def stop_hard(self, cluster: Cluster) -> None:
        """`pg_ctl stop -m immediate`: every backend killed at once, no checkpoint (a crash)."""
        self.run("pg_ctl", "stop", "-D", str(cluster.data), "-m", "immediate", "-w", timeout=30)

    def promote(self, cluster: Cluster) -> None:
        self.run("pg_ctl", "promote", "-D", str(cluster.data), "-w", timeout=30)

    def start(self, cluster: Cluster) -> None:
        self.run("pg_ctl", "start", "-D", str(cluster.data), "-l", str(cluster.log_path), "-w", timeout=60)

    def stop(self, cluster: Cluster) -> None:
        if (cluster.data / "postmaster.pid").exists():
            with suppress(RuntimeError, subprocess.TimeoutExpired):
                self.run("pg_ctl", "stop", "-D", str(cluster.data), "-m", "immediate", "-w", timeout=30)


def _configure(cluster: Cluster, extra: str) -> None:
    with (cluster.data / "postgresql.auto.conf").open("a") as conf:
        conf.write(extra)


@contextmanager
def replicated_postgres() -> Iterator[ReplicatedPostgres]:
    """A primary with one synchronous standby streaming from it; both stopped and removed afterwards."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL's server binaries (initdb, pg_ctl, pg_basebackup) are not installed")
    base = Path(tempfile.mkdtemp(prefix="taskpilot-replication-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
    primary = Cluster("primary", free_port(), base / "primary", base / "primary.log")
    standby = Cluster("standby", free_port(), base / "standby", base / "standby.log")
    pair = ReplicatedPostgres(bin_dir, primary, standby)
    try:
        pair.run("initdb", "-D", str(primary.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        common = REPLICATION_CONF.read_text() + (
            f"\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{base}'\n"
            "shared_buffers = '32MB'\nmax_connections = 100\nfsync = on\n"
        )
        _configure(primary, common + f"port = {primary.port}\ncluster_name = 'taskpilot_primary'\n")
        pair.start(primary)
        pair.run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
            "-D", str(standby.data), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync",
        )  # fmt: skip
        # The walreceiver reports `cluster_name` as its application_name: the name the primary's
        # synchronous_standby_names waits for. Promoted, this one has no standby of its own yet:
        # it must not wait for one (see docs/production.md's failover steps).
        _configure(standby, f"port = {standby.port}\ncluster_name = '{STANDBY_NAME}'\nsynchronous_standby_names = ''\n")
        pair.start(standby)
        _wait_synchronous(pair)
        yield pair
    finally:
        pair.stop(standby)
        pair.stop(primary)
        with suppress(OSError):
            shutil.rmtree(base)


def _wait_synchronous(pair: ReplicatedPostgres, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    query = f"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'"
    while time.monotonic() < deadline:
        result = pair.run("psql", "-h", "127.0.0.1", "-p", str(pair.primary.port), "-U", "postgres", "-Atc", query)
        if result.stdout.strip() == "sync":
            return
        time.sleep(0.2)
    raise RuntimeError(f"the standby did not become synchronous:\n{pair.standby.log()[-2000:]}")
