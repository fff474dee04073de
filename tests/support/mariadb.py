"""A throwaway MariaDB server for the test session.

    server = shared_server()                           # one per process, stopped at exit
    url = server.create_database()                     # mysql+asyncmy://flowdeck:…@127.0.0.1:…/db_1_…
    server.create_template("migrated", setup=migrate)  # migrate(url) runs once
    url = server.create_database(template="migrated")  # its tables and triggers, without rows

Like tests/support/postgres.py: the server runs as a non-root user (the ``mysql`` system user
through runuser when we are root, else the current user), listens on 127.0.0.1 only on a free
port, keeps its socket and data in a temporary folder, and trades durability for speed. MariaDB
has no template databases: a copy replays the template's ``SHOW CREATE`` statements (tables,
then triggers) and its ``alembic_version``. Administration goes through the ``mariadb`` client on
the socket, as the operating-system user (unix_socket authentication); the tests connect over
TCP as ``flowdeck``.
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

from tests.support.db_server import HOST, Shared, ThrowawayServer, free_port

USER, PASSWORD = "flowdeck", "flowdeck"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
INSTALL_HINT = (
    "MariaDB (mariadbd, mariadb-install-db, mariadb) was not found on PATH or in /usr/sbin. Install it with "
    "`make install` (as root on Debian it installs mariadb-server), or `sudo apt-get install -y mariadb-server`."
)
SETTINGS = (
    f"--bind-address={HOST}",
    "--skip-name-resolve",
    "--skip-log-bin",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--innodb-buffer-pool-size=64M",
    "--innodb-log-file-size=64M",
    "--sync-frm=0",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_bin",
    "--max-connections=300",
    "--default-time-zone=+00:00",
)
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class MariaDBNotInstalled(RuntimeError):
    """The MariaDB server binaries are not on this machine."""


class MariaDBStartError(RuntimeError):
    """mariadb-install-db or the server failed; the message carries the server's log."""


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise MariaDBNotInstalled(INSTALL_HINT)
    return found


class MariaDBServer(ThrowawayServer):
    """One MariaDB server in a temporary folder, for tests; see the module docstring."""

    prefix = "flowdeck-mariadb-"
    log_name = "mysqld.log"

    def __init__(self) -> None:
        super().__init__("mysql")
        self._templates: dict[str, list[str]] = {}
        self._admin_user = "root" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def url(self, database: str) -> str:
        return f"mysql+asyncmy://{USER}:{PASSWORD}@{HOST}:{self.port}/{database}"

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """Create a fresh database (with ``template``'s schema) and return its SQLAlchemy URL."""
        name = name or self._new_name()
        statements = [f"CREATE DATABASE {_ident(name)}", f"USE {_ident(name)}"]
        if template is not None:
            statements += self._templates[template]
        # A trigger's body holds semicolons: the client splits statements on another delimiter.
        self.execute("DELIMITER $$\n" + "$$\n".join(statements) + "$$\n")
        return self.url(name)

    def create_template(self, name: str, setup: Callable[[str], object] | None = None) -> str:
        """Create database ``name`` once, filled by ``setup(url)``, and keep its schema for copies."""
        with self._lock:
            if name in self._templates:
                return self.url(name)
            url = self.create_database(name)
            if setup is not None:
                setup(url)
            self._templates[name] = self._schema(name)
            return url

    def execute(self, sql: str, database: str | None = None) -> str:
        """Run ``sql`` (statements separated by ``;``) as the administrator; the output, tab-separated."""
        argv = [_binary("mariadb"), f"--socket={self.base_dir / 'mysqld.sock'}", "-u", self._admin_user]
        argv += ["--batch", "--skip-column-names", "--raw", *([database] if database else [])]
        done = subprocess.run(argv, input=sql, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb failed ({done.returncode}): {done.stderr.strip()}\n{sql[:2000]}")
        return done.stdout

    def _schema(self, database: str) -> list[str]:
        """The statements that remake ``database``'s tables, triggers and Alembic revision."""
        db = _ident(database)
        tables = self.execute(f"SHOW FULL TABLES FROM {db} WHERE Table_type = 'BASE TABLE'").split("\n")
        statements = ["SET FOREIGN_KEY_CHECKS = 0"]
        for line in filter(None, tables):
            table = line.split("\t")[0]
            out = self.execute(f"SHOW CREATE TABLE {db}.`{table}`")
            statements.append(out.split("\t", 1)[1].rstrip("\n"))
        names = f"SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = '{database}'"
        for trigger in filter(None, self.execute(names).split("\n")):
            out = self.execute(f"SHOW CREATE TRIGGER {db}.`{trigger}`")
            statements.append(out.split("\t")[2])
        for version in filter(None, self.execute(f"SELECT version_num FROM {db}.alembic_version").split("\n")):
            statements.append(f"INSERT INTO alembic_version VALUES ('{version}')")
        return [*statements, "SET FOREIGN_KEY_CHECKS = 1"]

    def _disconnect(self) -> None:
        """Administration runs the ``mariadb`` client per call: no connection to close."""

    def _forget_templates(self) -> None:
        self._templates.clear()

    def _install(self) -> None:
        if self._run_as is not None:
            owner = pwd.getpwnam(self._run_as)
            os.chown(self.base_dir, owner.pw_uid, owner.pw_gid)
        argv = [_binary("mariadb-install-db"), "--no-defaults", f"--datadir={self.base_dir / 'data'}"]
        argv += ["--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve"]
        done = subprocess.run(self._as_owner(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise MariaDBStartError(f"mariadb-install-db failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def _launch(self) -> None:
        for _attempt in range(3):
            self.port = free_port()
            argv = [_binary("mariadbd"), "--no-defaults", f"--datadir={self.base_dir / 'data'}"]
            argv += [f"--port={self.port}", f"--socket={self.base_dir / 'mysqld.sock'}"]
            argv += [f"--pid-file={self.base_dir / 'mysqld.pid'}", f"--log-error={self.base_dir / 'mysqld.log'}"]
            self._proc = subprocess.Popen(self._as_owner([*argv, *SETTINGS]), stdin=subprocess.DEVNULL)
            if self._wait_ready():
                grant = f"'{USER}'@'{HOST}' IDENTIFIED BY '{PASSWORD}'"
                self.execute(f"CREATE USER {grant}; GRANT ALL ON *.* TO '{USER}'@'{HOST}'")
                return
            self._proc = None
        raise MariaDBStartError(f"mariadbd did not start; its log:\n{self._log_tail()}")

    def _wait_ready(self) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            if (self.base_dir / "mysqld.sock").exists():
                try:
                    self.execute("SELECT 1")
                    return True
                except RuntimeError:
                    pass
            time.sleep(0.05)
        raise MariaDBStartError(f"mariadbd not ready after {START_TIMEOUT:.0f}s; its log:\n{self._log_tail()}")

    def _shutdown(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM (runuser passes it on to mariadbd, which shuts down cleanly), then SIGKILL."""
        for sig, timeout in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 10.0)):
            if proc.poll() is not None:
                return
            try:
                proc.send_signal(sig)
                proc.wait(timeout)
                return
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue


def _ident(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain lower-case SQL identifier: {name!r}")
    return f"`{name}`"


_shared = Shared(MariaDBServer)


def shared_server() -> MariaDBServer:
    """The process-wide server, started on first use and stopped at interpreter exit."""
    return _shared.get()
