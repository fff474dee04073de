"""Server-side reference commands: ``flowdeck references list`` and ``flowdeck references index NAME``.

Run them where the reference files live, with the service's settings (``FLOWDECK_REFERENCES_DIR``).
``index`` builds what a reference's aligner or quantifier needs, once (docs/references.md).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from flowdeck.services.pipelines import references
from flowdeck.settings import Settings


def references_list(args: argparse.Namespace) -> int:
    registry = references.load_registry(Settings())
    for ref in registry:
        state = "indexed" if ref.indexed else f"not indexed (missing: {', '.join(ref.missing)})"
        print(f"{ref.name}\t{ref.kind}\t{ref.fasta}\t{state}")
    return 0


def references_index(args: argparse.Namespace) -> int:
    ref = references.load_registry(Settings()).get(args.name)
    built = references.build_indexes(ref, rebuild=args.rebuild, threads=args.threads)
    print(f"{ref.name}: built {', '.join(built)}" if built else f"{ref.name}: every index is already built")
    return 0


def register(sub: Any) -> None:
    """Add ``references list`` and ``references index`` to the ``flowdeck`` parser."""
    group = sub.add_parser("references", help="reference genomes and transcriptomes (server side)").add_subparsers(
        dest="references_command", required=True
    )
    group.add_parser("list", help="registered references and their index status").set_defaults(func=references_list)
    p = group.add_parser("index", help="build a reference's missing indexes (bwa/faidx/dict, salmon/kallisto)")
    p.add_argument("name")
    p.add_argument("--rebuild", action="store_true", help="build every index again")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for salmon (default: all)")
    p.set_defaults(func=references_index)
