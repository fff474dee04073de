"""A throwaway PostgreSQL server for the test session.

    server = shared_server()                           # one per process, stopped at exit
    url = server.create_database()                     # postgresql+psycopg://postgres@127.0.0.1:…
    server.create_template("migrated", setup=migrate)  # migrate(url) runs once
    url = server.create_database(template="migrated")  # a copy of it, in milliseconds

The server runs as a non-root user (the ``postgres`` system user through runuser when we are
root, else the current user), listens on 127.0.0.1 only on a free port, keeps its socket in a
folder of its own, and trades durability for speed (fsync off). ``stop()`` sends SIGINT to the
postmaster (fast shutdown), waits, and removes every file; it also runs at interpreter exit.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.db_server import HOST, Shared, ThrowawayServer, free_port

if TYPE_CHECKING:
    import psycopg

SUPERUSER = "postgres"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, postgres) were not found in /usr/lib/postgresql/*/bin, "
    "`pg_config --bindir`, $FLOWDECK_PG_BINDIR or PATH. Install them with `make install` "
    "(as root on Debian it runs `apt-get install -y postgresql`), or by hand: "
    "`sudo apt-get install -y postgresql`."
)
SETTINGS = {
    "listen_addresses": HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "1GB",
    "checkpoint_timeout": "1h",
    "max_connections": "200",
    "jit": "off",
    "timezone": "UTC",
    "log_timezone": "UTC",
    "logging_collector": "off",
    "log_min_messages": "warning",
}
_TERMINATE = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_BIND_FAILURE = re.compile(r"could not (bind|create listen socket)|address already in use", re.I)


class PostgresNotInstalled(RuntimeError):
    """The PostgreSQL server binaries are not on this machine."""


class PostgresStartError(RuntimeError):
    """initdb or the server failed; the message carries the server's log."""


def find_bindir() -> Path:
    """Return the folder holding ``initdb`` and ``postgres``, newest version first."""
    for candidate in _bindir_candidates():
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    raise PostgresNotInstalled(INSTALL_HINT)


def _bindir_candidates() -> list[Path]:
    found = [Path(p) for p in [os.environ.get("FLOWDECK_PG_BINDIR", "")] if p]
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    found += sorted(debian, key=lambda p: _major(p.parent.name), reverse=True)
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        found += [Path(out.stdout.strip())] if out.returncode == 0 else []
    if initdb := shutil.which("initdb"):
        found.append(Path(initdb).parent)
    return found


def _major(version: str) -> float:
    try:
        return float(version)
    except ValueError:
        return 0.0


class PostgresServer(ThrowawayServer):
    """One PostgreSQL cluster in a temporary folder (``data/``, ``sockets/``, ``postgres.log``),
    for tests; see the module docstring."""

    prefix = "flowdeck-pg-"
    log_name = "postgres.log"

    def __init__(self, parent_dir: str | Path | None = None) -> None:
        self.bindir = find_bindir()
        super().__init__(SUPERUSER, parent_dir)
        self._admin: psycopg.Connection[Any] | None = None
        self._templates: set[str] = set()

    def url(self, database: str, driver: str = "psycopg") -> str:
        """SQLAlchemy URL of ``database``; ``driver=""`` gives a plain libpq URL."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def create_database(self, name: str | None = None, template: str = "template1") -> str:
        """Create a fresh database (a copy of ``template``) and return its SQLAlchemy URL."""
        name = name or self._new_name()
        copy = f"TEMPLATE {_ident(template)} STRATEGY FILE_COPY"
        self.execute(f"CREATE DATABASE {_ident(name)} {copy}")
        return self.url(name)

    def create_template(self, name: str, setup: Callable[[str], object] | None = None) -> str:
        """Create template ``name`` once, filled by ``setup(url)``; return its URL.

        Later calls with the same name return at once. ``setup`` is synchronous: wrap async
        work (such as Alembic on an async engine) in ``asyncio.run``. Once set up the template
        takes no connections, so that copies of it never fail on a lingering session.
        """
        with self._lock:
            if name in self._templates:
                return self.url(name)
            url = self.create_database(name)
            if setup is not None:
                setup(url)
            freeze = "IS_TEMPLATE true ALLOW_CONNECTIONS false"
            self.execute(f"ALTER DATABASE {_ident(name)} WITH {freeze}")
            self.execute(_TERMINATE, name)
            self._templates.add(name)
            return url

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending any session still connected to it."""
        self.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")

    def execute(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        """Run one statement as superuser in the ``postgres`` database (autocommit)."""
        with self._lock:
            cursor = self._admin_connection().execute(statement.encode(), params or None)
            return cursor.fetchall() if cursor.description else []

    def halt(self) -> None:
        """Stop the server (fast shutdown), keeping its files for :meth:`resume_after_halt`."""
        with self._lock:
            self._disconnect()
            if self._proc is not None:
                self._shutdown(self._proc)
                self._proc = None

    def resume_after_halt(self) -> None:
        """Start the halted server again on the same port and data."""
        with self._lock:
            if not self._start_postmaster():
                raise PostgresStartError(f"postgres did not restart; its log:\n{self._log_tail()}")

    def freeze(self, frozen: bool = True) -> None:
        """SIGSTOP (or SIGCONT) the postmaster and every backend: a hung server that still
        accepts TCP connections in the kernel but answers nothing."""
        assert self._proc is not None
        for pid in _process_tree(self._postmaster_pid(self._proc)):
            os.kill(pid, signal.SIGSTOP if frozen else signal.SIGCONT)

    def _admin_connection(self) -> psycopg.Connection[Any]:
        if not self.running:
            raise RuntimeError("the PostgreSQL server is not running")
        if self._admin is None or self._admin.closed:
            import psycopg

            dsn = self.url("postgres", driver="")
            self._admin = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        return self._admin

    def _disconnect(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    def _forget_templates(self) -> None:
        self._templates.clear()

    def _install(self) -> None:
        self._prepare_dirs()
        self._initdb()

    def _prepare_dirs(self) -> None:
        (self.base_dir / "sockets").mkdir()
        if self._run_as is None:
            return
        try:
            owner = pwd.getpwnam(self._run_as)
        except KeyError:
            raise PostgresNotInstalled(f"no '{self._run_as}' system user. {INSTALL_HINT}") from None
        for path in (self.base_dir, self.base_dir / "sockets"):
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _initdb(self) -> None:
        argv = [str(self.bindir / "initdb"), "-D", str(self.base_dir / "data"), "-U", SUPERUSER]
        argv += ["-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"]
        argv = self._as_owner(argv)
        done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            output = done.stdout + done.stderr
            raise PostgresStartError(f"initdb failed ({done.returncode}):\n{output}")

    def _launch(self) -> None:
        for _attempt in range(3):
            self.port = free_port()
            if self._start_postmaster():
                return
            if not _BIND_FAILURE.search(self._log_tail()):
                break
        raise PostgresStartError(f"postgres did not start; its log:\n{self._log_tail()}")

    def _start_postmaster(self) -> bool:
        argv = [str(self.bindir / "postgres"), "-D", str(self.base_dir / "data")]
        argv += ["-p", str(self.port), "-k", str(self.base_dir / "sockets")]
        argv += [f"-c{key}={value}" for key, value in SETTINGS.items()]
        with (self.base_dir / "postgres.log").open("ab") as log:
            argv = self._as_owner(argv)
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        if self._wait_ready():
            return True
        self._proc = None
        return False

    def _wait_ready(self) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            if self._status() == "ready":
                return True
            time.sleep(0.02)
        log = self._log_tail()
        raise PostgresStartError(f"postgres not ready after {START_TIMEOUT:.0f}s; its log:\n{log}")

    def _pid_file(self) -> list[str]:
        try:
            return (self.base_dir / "data" / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return []

    def _status(self) -> str:
        lines = self._pid_file()
        return lines[7].strip() if len(lines) > 7 and lines[3] == str(self.port) else ""

    def _postmaster_pid(self, proc: subprocess.Popen[bytes]) -> int:
        lines = self._pid_file() if self._base is not None else []
        return int(lines[0]) if lines and lines[0].isdigit() else proc.pid

    def _shutdown(self, proc: subprocess.Popen[bytes]) -> None:
        """Fast shutdown (SIGINT to the postmaster), then SIGQUIT, then kill."""
        for sig, timeout in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGQUIT, 10.0)):
            if proc.poll() is not None:
                return
            try:
                os.kill(self._postmaster_pid(proc), sig)
                proc.wait(timeout)
                return
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        proc.kill()
        proc.wait()


def _process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _ident(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain lower-case SQL identifier: {name!r}")
    return f'"{name}"'


_shared = Shared(PostgresServer)


def shared_server() -> PostgresServer:
    """The process-wide server, started on first use and stopped at interpreter exit."""
    return _shared.get()
