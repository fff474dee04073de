"""A client command imports no server stack: `flowdeck runs list` used to import sqlalchemy through
the admin commands (about 1.5 s of CPU; bench/NOTES.md). Each case runs the real entry point in a
fresh interpreter and reads which heavy modules it loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("sqlalchemy", "fastapi", "starlette", "alembic", "flowdeck.db", "flowdeck.settings")
SCRIPT = f"""
import sys
from flowdeck.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("LOADED", *sorted(m for m in {HEAVY!r} if m in sys.modules))
"""


def _loaded(tmp_path: Path, *argv: str) -> tuple[set[str], str]:
    # Port 9 (discard) refuses at once: the command runs its whole client path and fails there.
    env = {**os.environ, "FLOWDECK_SERVER": "http://127.0.0.1:9", "XDG_CONFIG_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("LOADED"), done.stdout + done.stderr
    return set(last.split()[1:]), done.stdout + done.stderr


@pytest.mark.parametrize(
    "argv", [["runs", "list"], ["jobs", "get", "x"], ["datasets", "--help"], ["pipelines", "list"]]
)
def test_a_client_command_imports_no_server_stack(tmp_path: Path, argv: list[str]) -> None:
    loaded, output = _loaded(tmp_path, *argv)
    assert loaded == set(), output


def test_a_server_command_and_the_top_help_still_have_every_group(tmp_path: Path) -> None:
    loaded, _output = _loaded(tmp_path, "users", "--help")
    assert {"sqlalchemy", "flowdeck.db"} <= loaded  # what the check above would see, had a client loaded it
    _loaded_top, output = _loaded(tmp_path, "--help")
    for group in ("runs", "users", "groups", "tokens", "images", "references", "purge"):
        assert group in output
