"""The README's pictures exist, are PNGs and stay small (scripts/readme_screenshots.py)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_picture_the_readme_shows_is_a_small_png() -> None:
    shown = re.findall(r"!\[[^\]]*\]\((docs/images/[^)]+)\)", (ROOT / "README.md").read_text())
    assert len(shown) >= 3
    for path in shown:
        data = (ROOT / path).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
        assert len(data) < 150_000, f"{path}: {len(data)} bytes"
