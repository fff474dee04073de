"""Warm engine starts: a process that imports an engine once and forks every run's launcher.

Starting a Python engine costs more than most tiny runs take: cwltool spends
~0.9 s of CPU importing itself and parsing the CWL schemas before it reads the
workflow, and a forked copy of a process that already did it starts the same run
in ~0.03 s. A *warm server* is that process, one per engine module, started by
the worker on its first run and ending when the worker ends.

For each run the server forks a child that becomes the run's launcher exactly as
:func:`flowdeck.backends.local.launcher.launch` would start it (a new session, the
run's directory, its stdout/stderr files and environment, the child subreaper
flag), forks the engine from itself (already warm; sandboxed, after spawning the init of
the run's PID namespace: :func:`flowdeck.backends.local.sandbox.spawn_init`) and then
*execs* the small launcher, which adopts the engine as its child. So the launcher's records,
cancel semantics and crash safety are the cold path's; only the engine's
start-up is skipped, and the launcher does not keep the warm server's memory.

An engine module used here provides ``preload()`` (import and load what every
run needs) and ``run(argv) -> int`` (what the engine's command does with
``argv``). Each run is a fresh fork of a server that never runs a workflow
itself, so nothing one run changes in memory reaches another.

This module runs as the warm server (``python -m``) and imports the standard
library only, besides the engine module it is asked to load.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from flowdeck.backends.local import sandbox
from flowdeck.backends.local.procfs import child_start_ticks
from flowdeck.backends.local.records import write_exit

_REQUEST_LIMIT = 4 * 1024 * 1024
_REAP_SECONDS = 0.5
_START_TIMEOUT = 120.0
_CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
_SUBREAPER = 36  # PR_SET_CHILD_SUBREAPER; kept across the launcher's exec


class WarmStartError(RuntimeError):
    """The warm server could not start a run (the caller starts it cold)."""


class WarmServer:
    """The worker's handle on one warm server: started on first use, restarted if it died."""

    def __init__(self, module: str) -> None:
        self.module = module
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._socket: Path | None = None

    def start_launcher(self, request: dict[str, Any], lock: int) -> int:
        """Fork a launcher for one run, handing it the run's start lock; its pid. Raises WarmStartError."""
        path = self._ensure()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(_START_TIMEOUT)
                conn.connect(str(path))
                # The lock travels with the request (SCM_RIGHTS): from here on the server's
                # copy, then the launcher's, holds it even if this worker dies.
                socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [lock])
                answer = json.loads(_read_line(conn) or b"{}")
        except (OSError, ValueError) as exc:
            raise WarmStartError(f"warm server for {self.module}: {exc}") from exc
        if not isinstance(answer.get("pid"), int):
            raise WarmStartError(f"warm server for {self.module}: {answer.get('error', 'no answer')}")
        return int(answer["pid"])

    def pid(self) -> int | None:
        """The server's pid while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def _ensure(self) -> Path:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None and self._socket is not None:
                return self._socket
            self._stop()
            folder = Path(tempfile.mkdtemp(prefix="flowdeck-warm-"))
            path = folder / "server.sock"
            # stdin stays open in this process only: the server ends when it reads EOF there, i.e.
            # when the worker ends, however it ends. Its own session keeps a terminal's ^C (meant
            # for the worker, which stops cleanly) from killing it mid-fork.
            proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(path), self.module],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], _START_TIMEOUT)
            line = proc.stdout.readline() if ready else b""
            if line.strip() != b"ready":
                proc.kill()
                proc.wait()
                for stream in (proc.stdin, proc.stdout):
                    if stream is not None:
                        stream.close()
                with contextlib.suppress(OSError):
                    path.unlink()
                with contextlib.suppress(OSError):
                    folder.rmdir()
                raise WarmStartError(f"warm server for {self.module} did not start (exit {proc.poll()})")
            self._proc, self._socket = proc, path
            return path

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.unlink()
            with contextlib.suppress(OSError):
                self._socket.parent.rmdir()
            self._socket = None


_SERVERS: dict[str, WarmServer] = {}
_SERVERS_LOCK = threading.Lock()


def server_for(module: str) -> WarmServer:
    """This process's warm server for an engine module (one per module)."""
    with _SERVERS_LOCK:
        if module not in _SERVERS:
            _SERVERS[module] = WarmServer(module)
        return _SERVERS[module]


def _read_request(conn: socket.socket) -> tuple[bytes, list[int]]:
    """The request line and the descriptors sent with its first bytes."""
    first, fds, _, _ = socket.recv_fds(conn, 65536, 4)
    if b"\n" in first or not first:
        return first.split(b"\n", 1)[0], fds
    return first + _read_line(conn), fds


def _read_line(conn: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= _REQUEST_LIMIT:
        chunk = conn.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk:
            break
    return b"".join(chunks).split(b"\n", 1)[0]


# --- the warm server: runs in its own process, started by WarmServer -------------------


def serve(path: Path, module_name: str) -> int:
    """Load the engine, then fork a launcher per request until stdin reaches EOF."""
    module = importlib.import_module(module_name)
    module.preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        while True:
            # The worker follows launchers by pidfd, which tells of the exit before the reaping;
            # reaped here (not ignored) so their CPU time adds up in this process's accounts.
            _reap()
            readable, _, _ = select.select([listener, sys.stdin.fileno()], [], [], _REAP_SECONDS)
            if sys.stdin.fileno() in readable and not os.read(sys.stdin.fileno(), 1024):
                return 0
            if listener in readable:
                conn, _ = listener.accept()
                with conn:
                    _answer(conn, listener, module)
    finally:
        listener.close()
        # The worker may be gone without a word (killed): the server clears its own socket.
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _answer(conn: socket.socket, listener: socket.socket, module: ModuleType) -> None:
    conn.settimeout(10)
    fds: list[int] = []
    try:
        line, fds = _read_request(conn)
        request = json.loads(line)
        pid = os.fork()
    except (OSError, ValueError) as exc:
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"error": str(exc)}).encode() + b"\n")
        _close_all(fds)
        return
    if pid == 0:
        code = 127
        try:
            listener.close()
            conn.close()
            for fd in fds:  # the start lock: the launcher keeps it across its exec
                os.set_inheritable(fd, True)
            _become_launcher(request, module)
        except BaseException:  # nothing of the server's loop may run on in a child
            traceback.print_exc()
        finally:
            os._exit(code)
    _close_all(fds)
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _become_launcher(request: dict[str, Any], module: ModuleType) -> None:
    """In the forked child: take the run's session, folder, files and environment, fork the
    engine, and exec the launcher that adopts it. Returns only on failure."""
    import ctypes

    # A cancel that arrives before the launcher's handlers exist waits, blocked, across the exec.
    signal.pthread_sigmask(signal.SIG_BLOCK, _CANCEL_SIGNALS)
    os.setsid()
    control = Path(request["control"])
    os.chdir(request["cwd"])
    _redirect(0, os.devnull, os.O_RDONLY)
    _redirect(1, str(control / "stdout.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    _redirect(2, str(control / "stderr.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.environ.clear()
    os.environ.update(request["env"])
    # Read again from the run's environment (TMPDIR is inside the run directory).
    tempfile.tempdir = None
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_SUBREAPER, 1, 0, 0, 0)
    argv = [str(arg) for arg in request["argv"]]
    plan = request.get("sandbox")
    init_alive: int | None = None  # the sandbox's init lives while the engine keeps this open
    if plan is not None:
        sandbox.join_cgroup(plan)
        try:
            init_alive = sandbox.spawn_init()
        except sandbox.SandboxError as exc:
            write_exit(control, 126, start_error=f"the run's sandbox could not be set up: {exc}")
            raise
    engine = os.fork()
    if engine == 0:
        os._exit(_run_engine(module, argv, plan))
    if init_alive is not None:
        os.close(init_alive)
    launcher = [
        sys.executable,
        "-m",
        "flowdeck.backends.local.launcher",
        "--adopt",
        f"{engine}:{child_start_ticks(engine) or ''}",
        str(control),
        str(int(request["cancel_signal"])),
        "group" if request["group"] else "pid",
        str(float(request["grace"])),
        "--",
        *argv,
    ]
    try:
        os.execv(sys.executable, launcher)  # noqa: S606 - an argument list, no shell involved
    except OSError as exc:
        # No launcher: the engine must not run unwatched, and the run ends with the reason.
        with contextlib.suppress(ProcessLookupError):
            os.kill(engine, signal.SIGKILL)
        write_exit(control, 127, start_error=f"the launcher could not start: {exc.strerror or exc}")
        raise


def _redirect(fd: int, path: str, flags: int) -> None:
    opened = os.open(path, flags, 0o644)
    os.dup2(opened, fd)
    os.close(opened)


def _run_engine(module: ModuleType, argv: list[str], plan: dict[str, Any] | None = None) -> int:
    """In the engine's process: its sandbox, the engine's own signal dispositions, then its command."""
    if plan is not None:
        try:
            sandbox.enter_engine(plan)  # pid 2 of the run's PID namespace, now inside the rest
        except BaseException as exc:
            sys.stderr.write(f"flowdeck: the run's sandbox could not be set up: {exc}\n")
            return 126
    for signum in _CANCEL_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    # Python's own start-up gives SIGINT this handler; a cold engine would have it too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _CANCEL_SIGNALS)
    sys.argv = list(argv)
    code: int = 1
    try:
        code = int(module.run(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            sys.stderr.write(f"{exc.code}\n")
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    return code & 0xFF


def main(args: list[str]) -> int:
    """Warm server entry point: SOCKET_PATH ENGINE_MODULE."""
    if len(args) != 2:
        sys.stderr.write("usage: SOCKET_PATH ENGINE_MODULE\n")
        return 2
    return serve(Path(args[0]), args[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
