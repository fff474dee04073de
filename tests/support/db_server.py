"""What every throwaway database server of the test suite shares (tests/support/postgres.py,
tests/support/mariadb.py): a temporary folder, a server process run as the database's own
system user when we are root, a free loopback port, start once, stop at exit removing every
file, and one shared instance per test process."""

from __future__ import annotations

import atexit
import itertools
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Generic, Self, TypeVar

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class ThrowawayServer(ABC):
    """One database server in a temporary folder. Subclasses say how to install its files
    (``_install``), start it on ``self.port`` (``_launch``) and shut it down (``_shutdown``)."""

    prefix = "flowdeck-db-"
    log_name = "server.log"

    def __init__(self, system_user: str, parent_dir: str | Path | None = None) -> None:
        self.port = 0
        self._parent = parent_dir
        self._base: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        self._lock = threading.RLock()
        self._run_as = system_user if os.geteuid() == 0 else None

    @property
    def base_dir(self) -> Path:
        """The temporary folder holding the server's data, socket and log."""
        if self._base is None:
            raise RuntimeError(f"the {type(self).__name__} is not started")
        return self._base

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Install, start the server and wait until it answers (idempotent)."""
        with self._lock:
            if self._proc is not None:
                return self
            atexit.register(self.stop)
            try:
                self._base = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self._parent))
                self._install()
                self._launch()
            except BaseException:
                self.stop()
                raise
            return self

    def stop(self) -> None:
        """Shut the server down, wait, remove every file (idempotent)."""
        with self._lock:
            atexit.unregister(self.stop)
            self._disconnect()
            if self._proc is not None:
                self._shutdown(self._proc)
                self._proc = None
            if self._base is not None:
                shutil.rmtree(self._base, ignore_errors=True)
                self._base = None
            self._forget_templates()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _new_name(self) -> str:
        return f"db_{next(self._names)}_{secrets.token_hex(3)}"

    def _as_owner(self, argv: list[str]) -> list[str]:
        if self._run_as is None:
            return argv
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return [runuser, "-u", self._run_as, "--", *argv]

    def _log_tail(self, lines: int = 40) -> str:
        try:
            text = (self.base_dir / self.log_name).read_text(errors="replace")
        except (FileNotFoundError, RuntimeError):
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    @abstractmethod
    def _install(self) -> None:
        """Create the server's files under ``base_dir``."""

    @abstractmethod
    def _launch(self) -> None:
        """Start the server on a free port (``self.port``) and wait until it answers."""

    @abstractmethod
    def _shutdown(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop the server process and wait for it."""

    @abstractmethod
    def _disconnect(self) -> None:
        """Close any administration connection (before a shutdown)."""

    @abstractmethod
    def _forget_templates(self) -> None:
        """Forget the templates made on a server that is gone."""


_S = TypeVar("_S", bound=ThrowawayServer)


class Shared(Generic[_S]):
    """The process-wide server of one kind, started on first use and stopped at interpreter exit."""

    def __init__(self, make: Callable[[], _S]) -> None:
        self._make = make
        self._server: _S | None = None
        self._lock = threading.Lock()

    def get(self) -> _S:
        with self._lock:
            if self._server is None or not self._server.running:
                self._server = self._make().start()
            return self._server
