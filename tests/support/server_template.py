"""A pre-imported server template: granian servers forked from a process that imported the app once.

Every live server used to be a fresh `python -m granian`, and each of its workers imported the app:
~2.5 s of CPU per worker, ~8 s under `make test`'s branch tracing, ~140 times a run on 2 cores.
Here one helper process per test process (the template, `python -m tests.support.server_template`)
imports the heavy modules once, without coverage and without creating the app. For each server a
test asks for it forks a child that becomes exactly what `python -m granian <granian_argv>` would
be: its own session (so `LiveServer.stop` ends its process group), the test's working directory,
environment (os.environ replaced) and log file, coverage started now if the environment asks for
it (its `fork` and `_exit` patches then measure the workers), then granian's own command line
with the same arguments. Granian forks its workers (multiprocessing's `fork` on Linux): they
inherit the imported modules and only run `create_app`, which reads the environment.

What a module read from the environment while the template imported it is recorded and sent back:
a server whose environment differs on one of those names (PROMETHEUS_MULTIPROC_DIR, which
prometheus-client reads at import; LOG_LEVEL, which chatkit's logger reads at import; anything
PYTHON*) cannot be forked from this template and `start_live_server` starts a fresh process.

The test process only learns a child's exit status through the template (it is not the child's
parent): the template reaps its children and writes `{"exited": pid, "code": n}` lines, and
`TemplateChild` offers what tests use of `subprocess.Popen` (pid, poll, wait, send_signal, kill,
returncode).

A forked server leaves without the interpreter's finalization, which would walk (and so copy) the
whole inherited heap: see `_exit_without_finalizing`.

The template program is single-threaded (a fork copies only the calling thread) and holds no file
descriptor but its two pipes, which the child closes.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, NoReturn

from testkit.processes import PROJECT_ROOT

# What a worker spends its start importing (granian's command line, the app and every library it
# pulls in). Not `create_app`: it builds engines and services from the environment of one server.
HEAVY_MODULES = ("granian.cli", "app.asgi", "app.worker")

# Environment variables whose difference always sends a server to a fresh process: the
# interpreter's own (PYTHONPATH decides what gets imported at all).
_INTERPRETER_PREFIX = "PYTHON"
# Read while importing, but what they did there the app undoes when it starts: chatkit/logger.py
# sets its logger's level and adds a handler from LOG_LEVEL; app.ops.logging removes both.
_RESET_BY_THE_APP = frozenset({"LOG_LEVEL"})


# ---- the template program (runs in its own process) ------------------------------------------------


def _import_recording_reads(modules: tuple[str, ...]) -> set[str]:
    """Import `modules`; return the environment variables they read by name while importing.

    A copy of the whole environment taken at import (wsgiref's `os_environ`, iterated, not looked up
    by name) is not counted: nothing the app runs reads it."""
    environ_class = type(os.environ)
    get_item, contains = environ_class.__getitem__, environ_class.__contains__
    names: set[str] = set()

    def recording_get_item(self: Any, key: str) -> str:
        if sys._getframe(1).f_code.co_name != "__iter__":
            names.add(key)
        return get_item(self, key)

    def recording_contains(self: Any, key: object) -> bool:
        names.add(str(key))
        return contains(self, key)

    environ_class.__getitem__ = recording_get_item  # type: ignore[method-assign]
    environ_class.__contains__ = recording_contains  # type: ignore[method-assign]
    try:
        import importlib

        for module in modules:
            importlib.import_module(module)
    finally:
        environ_class.__getitem__ = get_item  # type: ignore[method-assign]
        environ_class.__contains__ = contains  # type: ignore[method-assign]
    return names


def _send(fd: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def _become_server(request: dict[str, Any]) -> None:
    """In the forked child: become `python -m granian <args>` (or, for a request whose program is
    "app", `python -m app <args>`: the `taskpilot` command) for one test. Never returns: granian's
    command line always ends by raising SystemExit, and the child then ends as `python -m granian`
    would (its threads waited for, atexit handlers run: coverage saves its data there), without the
    interpreter's finalization (`_exit_without_finalizing`). Any other exception of granian's
    propagates; the `taskpilot` command's is printed and ends the child with status 1, as Python does."""
    os.setsid()  # its own session and process group, as `start_new_session=True` gave the subprocess
    os.chdir(request["cwd"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, request["log"]), (2, request.get("errors", request["log"]))):
        if fd == 2 and path == request["log"]:
            os.dup2(1, 2)  # one file, one offset: the server's log
            continue
        opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    os.environ.clear()
    os.environ.update(request["env"])
    if request.get("program") == "app":
        _become_command(request["args"])
    sys.argv = ["granian", *request["args"]]
    # Measured from here on when the environment says so (a measured server's environment carries
    # COVERAGE_PROCESS_CONFIG); the imports above were not traced, and their lines are not lost:
    # every test process imports the same modules under coverage.
    import coverage

    coverage.process_startup()
    from granian.cli import entrypoint

    try:
        entrypoint()
    except SystemExit as stop:
        _exit_without_finalizing(stop.code)


def _become_command(args: list[str]) -> NoReturn:
    """`python -m app <args>`, in the forked child (see `_become_server`)."""
    import coverage

    coverage.process_startup()
    sys.argv = ["taskpilot", *args]  # runpy puts app/__main__.py's path first, as `-m` does
    try:
        runpy.run_module("app", run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        _exit_without_finalizing(stop.code)
    except BaseException:
        traceback.print_exc()
        _exit_without_finalizing(1)
    _exit_without_finalizing(0)


def _exit_without_finalizing(code: object) -> NoReturn:
    """End the forked server as the interpreter would end it, minus the finalization.

    The child inherited the template's whole heap (every module the app imports). Finalizing it
    (the last garbage collection, module teardown) writes to every inherited page, so each
    server copied and walked the template's memory on its way out: ~1 s of CPU per server, and the
    pool's servers all stopping at once at the end of a test process took 8–13 s on 2 cores. What
    an exit must still do is done: non-daemon threads are waited for, atexit handlers run
    (coverage saves its data there), the status is reported as `SystemExit` would report it.
    (Granian's workers already end so: multiprocessing's forked children leave by `os._exit`.)"""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def _serve(requests_fd: int, replies_fd: int) -> None:
    """Fork a server per request line; report each child's pid, then its exit status. Ends at end of
    input (the test process closed its end). In a child, returns only through `_become_server`."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so SIGCHLD writes to the wake-up pipe
    poller = select.poll()
    poller.register(requests_fd, select.POLLIN)
    poller.register(wake_read, select.POLLIN)
    pending = b""
    children: dict[int, int] = {}  # pid -> serial number: a pid is reused, a serial number never
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if wake_read in ready:
            while True:
                try:
                    if not os.read(wake_read, 512):
                        break
                except BlockingIOError:
                    break
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            _send(replies_fd, {"exited": children.pop(pid, -1), "code": os.waitstatus_to_exitcode(status)})
        if requests_fd not in ready:
            continue
        data = os.read(requests_fd, 1 << 16)
        if not data:
            return
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for fd in (wake_read, wake_write, requests_fd, replies_fd):
                    os.close(fd)
                _become_server(request)
                raise AssertionError("granian's command line returned instead of exiting")
            children[pid] = request["serial"]
            _send(replies_fd, {"started": pid})


def main() -> None:
    # The protocol moves off stdin and stdout, so nothing an imported module prints can corrupt it
    # and a child's 0, 1 and 2 are simply replaced.
    requests_fd, replies_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    read_names = _import_recording_reads(HEAVY_MODULES)
    _send(replies_fd, {"ready": {name: os.environ.get(name) for name in sorted(read_names)}})
    _serve(requests_fd, replies_fd)


# ---- the test process's side ------------------------------------------------------------------------


class TemplateChild:
    """A server forked by the template, seen as much like `subprocess.Popen` as tests use it."""

    def __init__(self, template: ServerTemplate, serial: int, pid: int, args: list[str]) -> None:
        self.template = template
        self.serial = serial
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.template.exit_code(self.serial, timeout=0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            code = self.template.exit_code(self.serial, timeout=timeout)
            if code is None:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            self.returncode = code
        return self.returncode

    def send_signal(self, sig: int) -> None:
        # As Popen: never signal a pid whose process is known to have ended (it may be reused).
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ServerTemplate:
    """The template process of this test process: started on first use, ended by `close`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one request at a time: replies to requests come in order
        self._changed = threading.Condition()
        self._process: subprocess.Popen[bytes] | None = None
        self._imported_with: dict[str, str | None] | None = None
        self._started: list[int] = []
        self._exits: dict[int, int] = {}  # serial number -> exit status (as Popen.returncode)
        self._serial = 0
        self._ended = False
        self._workdir: Path | None = None
        self.forked = 0
        self.refused: list[str] = []  # the names that sent servers to a fresh process, for benchmarks

    def can_serve(self, env: Mapping[str, str], base_env: Mapping[str, str]) -> bool:
        """Whether a server with `env` may be forked from a template imported with `base_env`."""
        imported_with = self._ensure_started(base_env)
        differing = [
            name for name, value in imported_with.items() if env.get(name) != value and name not in _RESET_BY_THE_APP
        ]
        differing += [
            name
            for name in {*env, *base_env}
            if name.startswith(_INTERPRETER_PREFIX) and env.get(name) != base_env.get(name)
        ]
        self.refused.extend(differing)
        return not differing

    def start(
        self,
        args: list[str],
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        *,
        program: str = "granian",
        errors_path: Path | None = None,
    ) -> TemplateChild:
        """Fork `granian <args>` (program "app": `python -m app <args>`) with `env` in `cwd`, output
        to `log_path` (standard error to `errors_path` when given)."""
        with self._lock:
            self._serial += 1
            serial = self._serial
            request = {
                "serial": serial,
                "program": program,
                "args": args,
                "env": dict(env),
                "cwd": str(cwd),
                "log": str(log_path),
                "errors": str(errors_path or log_path),
            }
            process = self._process
            assert process is not None and process.stdin is not None, "can_serve starts the template"
            process.stdin.write((json.dumps(request) + "\n").encode())
            process.stdin.flush()
            with self._changed:
                self._changed.wait_for(lambda: bool(self._started) or self._ended, timeout=60)
                if not self._started:
                    raise AssertionError(f"the server template did not fork a server:\n{self._log()}")
                pid = self._started.pop(0)
            self.forked += 1
        return TemplateChild(self, serial, pid, [program, *args])

    def exit_code(self, serial: int, timeout: float | None) -> int | None:
        """The exit status of the `serial`th server (None: still running after `timeout` seconds)."""
        with self._changed:
            self._changed.wait_for(lambda: serial in self._exits or self._ended, timeout=timeout)
            if serial not in self._exits and self._ended:
                raise AssertionError(f"the server template ended; the status of its server is lost:\n{self._log()}")
            return self._exits.get(serial)

    def close(self) -> None:
        """End the template (servers it forked live on in their own sessions: stop them first)."""
        process = self._process
        if process is not None and process.stdin is not None:
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self._process = None
        self._imported_with = None
        if self._workdir is not None:
            import shutil

            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _ensure_started(self, base_env: Mapping[str, str]) -> dict[str, str | None]:
        with self._lock:
            if self._imported_with is None:
                self._workdir = Path(tempfile.mkdtemp(prefix="taskpilot-server-template-"))
                self._ended = False
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "tests.support.server_template"],
                    env=dict(base_env),
                    cwd=PROJECT_ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=(self._workdir / "template.log").open("wb"),
                    start_new_session=True,  # a Ctrl-C in the terminal is for the tests, not for it
                )
                ready: dict[str, Any] = {}
                threading.Thread(target=self._read_replies, args=(ready,), daemon=True).start()
                with self._changed:
                    self._changed.wait_for(lambda: bool(ready) or self._ended, timeout=120)
                if not ready:
                    raise AssertionError(f"the server template did not start:\n{self._log()}")
                self._imported_with = ready["ready"]
            return self._imported_with

    def _read_replies(self, ready: dict[str, Any]) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        for message in _lines(process.stdout):
            with self._changed:
                if "ready" in message:
                    ready.update(message)
                elif "started" in message:
                    self._started.append(int(message["started"]))
                elif "exited" in message:
                    self._exits[int(message["exited"])] = int(message["code"])
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def _log(self) -> str:
        path = self._workdir / "template.log" if self._workdir else None
        return path.read_text(errors="replace")[-5000:] if path and path.exists() else ""


def _lines(stream: IO[bytes]) -> Iterator[dict[str, Any]]:
    for line in stream:
        yield json.loads(line)


TEMPLATE = ServerTemplate()


if __name__ == "__main__":
    main()
