"""A PgBouncer of its own on a loopback port, in front of a given PostgreSQL (tests and benchmarks).

Debian 12's `pgbouncer` (1.18: no `max_prepared_statements`, so transaction pooling carries no
prepared statements). The configuration is `deploy/pgbouncer.ini` with the listen port, the
server and the pool size filled in, so what is tested is what the operator recipe says.
PgBouncer refuses to run as root: as root it is started with `-u postgres` (its files readable
by that user).
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

from sqlalchemy.engine import make_url

from testkit.processes import PROJECT_ROOT, free_port

CONFIG_TEMPLATE = PROJECT_ROOT / "deploy" / "pgbouncer.ini"
CANDIDATES = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")


def pgbouncer_binary() -> str | None:
    found = shutil.which("pgbouncer")
    return found or next((path for path in CANDIDATES if os.access(path, os.X_OK)), None)


@dataclass
class PgBouncer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    def url(self, database_url: str) -> str:
        """`database_url` (a PostgreSQL URL) with this PgBouncer as its host."""
        url = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return url.render_as_string(hide_password=False)

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""


def render_config(*, listen_port: int, server_host: str, server_port: int, pool_size: int, directory: Path) -> str:
    """deploy/pgbouncer.ini for a scratch PgBouncer: its port, server, pool size, files and trust auth."""
    text = CONFIG_TEMPLATE.read_text()
    replacements = {
        "listen_addr = 0.0.0.0": "listen_addr = 127.0.0.1",
        "listen_port = 6432": f"listen_port = {listen_port}",
        "host=db.internal port=5432": f"host={server_host} port={server_port}",
        "default_pool_size = 20": f"default_pool_size = {pool_size}",
        "auth_type = scram-sha-256": "auth_type = trust",
        "auth_file = /etc/pgbouncer/userlist.txt": f"auth_file = {directory}/userlist.txt",
    }
    for old, new in replacements.items():
        assert old in text, f"deploy/pgbouncer.ini no longer has {old!r}"
        text = text.replace(old, new)
    text += f"\nlogfile = {directory}/pgbouncer.log\npidfile = {directory}/pgbouncer.pid\nunix_socket_dir =\n"
    return text


@contextmanager
def running_pgbouncer(server_url: str, *, pool_size: int = 5, ready_seconds: float = 10) -> Iterator[PgBouncer]:
    """PgBouncer in `pool_mode = transaction` with `pool_size` server connections per database/user."""
    binary = pgbouncer_binary()
    if binary is None:
        raise FileNotFoundError("pgbouncer is not installed (apt-get install pgbouncer)")
    server = make_url(server_url)
    directory = Path(tempfile.mkdtemp(prefix="taskpilot-pgbouncer-"))
    port = free_port()
    user = server.username or "postgres"
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    config = directory / "pgbouncer.ini"
    config.write_text(
        render_config(
            listen_port=port,
            server_host=server.host or "127.0.0.1",
            server_port=server.port or 5432,
            pool_size=pool_size,
            directory=directory,
        )
    )
    command = [binary, str(config)]
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (directory, *directory.iterdir()):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        command = [binary, "-u", "postgres", str(config)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    bouncer = PgBouncer(port=port, directory=directory, process=process)
    try:
        _wait_listening(bouncer, ready_seconds)
        yield bouncer
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        with suppress(OSError):
            shutil.rmtree(directory)


def _wait_listening(bouncer: PgBouncer, seconds: float) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if bouncer.process.poll() is not None:
            stderr = bouncer.process.stderr.read().decode(errors="replace") if bouncer.process.stderr else ""
            raise RuntimeError(f"pgbouncer exited with {bouncer.process.returncode}: {stderr}{bouncer.log()}")
        with socket.socket() as sock, suppress(OSError):
            sock.settimeout(0.2)
            sock.connect(("127.0.0.1", bouncer.port))
            return
        time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen on {bouncer.port} within {seconds:.0f} s: {bouncer.log()}")
