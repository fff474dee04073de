"""The RO-Crate tests' validator: ``rocrate-validator`` (PyPI ``roc-validator``), which ``make
install`` puts in a venv of its own (``.venv-rocval``: it pins ``rich<14``, flowdeck's CLI uses
rich 15), or the one ``FLOWDECK_ROC_VALIDATOR`` names, or one on the PATH.

It runs offline: every check of the profile but the two that fetch the JSON-LD contexts from
w3id.org, which a machine without the internet cannot do (docs/ro-crate.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FETCHING = "ro-crate-1.1_3.1,ro-crate-1.1_3.2"


def validator() -> str | None:
    """The validator's command, or None where none is installed."""
    named = os.environ.get("FLOWDECK_ROC_VALIDATOR")
    bundled = ROOT / ".venv-rocval" / "bin" / "rocrate-validator"
    return named or (str(bundled) if bundled.exists() else shutil.which("rocrate-validator"))


def validate(folder: Path, profile: str) -> None:
    """Validate the unpacked crate in ``folder`` for ``profile`` (e.g. ``workflow-run-crate-0.5``);
    skips the test, saying why, where no validator is installed (``make install`` installs one)."""
    command = validator()
    if command is None:
        pytest.skip("rocrate-validator is not installed (make install puts it in .venv-rocval)")
    argv = [command, "validate", "--no-paging", "-v", "--offline", "-s", FETCHING, "-p", profile, str(folder)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
