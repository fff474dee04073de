"""Server-side image commands: ``flowdeck images import FILE [--name NAME]`` and ``flowdeck images list``.

Run them on the worker's machine, as the service's user, with its settings: they
talk to the same podman (and containers.conf) the runs use.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flowdeck.services.pipelines import images
from flowdeck.settings import Settings


def images_import(args: argparse.Namespace) -> int:
    print(images.import_image(Settings(), Path(args.file), args.name))
    return 0


def images_list(args: argparse.Namespace) -> int:
    for image in images.list_images(Settings()):
        print(f"{image['name']}\t{image['id']}\t{image['size']}")
    return 0


def register(sub: Any) -> None:
    """Add ``images import`` and ``images list`` to the ``flowdeck`` parser."""
    group = sub.add_parser("images", help="container images for podman (server side)").add_subparsers(
        dest="images_command", required=True
    )
    p = group.add_parser("import", help="add an image archive (podman load) or a root file system tar (podman import)")
    p.add_argument("file")
    p.add_argument("--name", help="the image's name (required for a root file system tar)")
    p.set_defaults(func=images_import)
    group.add_parser("list", help="the images runs can use").set_defaults(func=images_list)
