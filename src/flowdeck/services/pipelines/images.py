"""Container images the worker's podman has: import an archive, list them (docs/adr/0013)."""

from __future__ import annotations

from pathlib import Path

from flowdeck.backends.local import containers
from flowdeck.settings import Settings


def import_image(settings: Settings, archive: Path, name: str | None) -> str:
    """Add an image from ``archive`` (an image archive, or a root file system tar named ``name``)."""
    return containers.import_image(settings, archive, name)


def list_images(settings: Settings) -> list[dict[str, str]]:
    """The images available to containerised steps."""
    return containers.list_images(settings)
