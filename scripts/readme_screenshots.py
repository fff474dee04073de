"""Copy the browser test's screenshots that the README shows into docs/images/, small.

    PYTHONPATH=src .venv/bin/pytest tests/browser/test_ui_in_chromium.py
    .venv/bin/python scripts/readme_screenshots.py

Each picture is cropped to its first screenful, scaled to 960 pixels wide and reduced to a
64-colour palette (screenshots of a flat UI lose nothing visible), so each stays under 150 KB.
Needs Pillow.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "browser-screenshots"
IMAGES = ROOT / "docs" / "images"
CHOSEN = {"runs": "ui-runs", "run": "ui-run", "launch-checked": "ui-launch", "overview": "ui-overview"}
WIDTH, MAX_HEIGHT, COLOURS, LIMIT = 960, 800, 64, 150_000


def shrink(source: Path, target: Path) -> int:
    """Write ``source`` cropped, scaled and paletted to ``target``; returns its size in bytes."""
    with Image.open(source) as image:
        shot = image.convert("RGB")
    shot = shot.crop((0, 0, shot.width, min(shot.height, MAX_HEIGHT * shot.width // WIDTH)))
    shot = shot.resize((WIDTH, shot.height * WIDTH // shot.width), Image.Resampling.LANCZOS)
    shot.quantize(colors=COLOURS, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    return target.stat().st_size


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name, picture in CHOSEN.items():
        size = shrink(SHOTS / f"{name}.png", IMAGES / f"{picture}.png")
        print(f"docs/images/{picture}.png: {size / 1024:.1f} KiB")
        if size > LIMIT:
            raise SystemExit(f"{picture}.png is {size} bytes, over {LIMIT}")


if __name__ == "__main__":
    main()
