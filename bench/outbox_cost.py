"""What the outbox adds to a run state change when no webhook endpoint exists (SQLite).

Rounds of 300 changes QUEUED -> INITIALIZING, each in its own transaction, alternately with
the outbox's check and with it replaced by nothing; medians of the per-change means.

    PYTHONPATH=src python bench/outbox_cost.py --rounds 6
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from flowdeck.db.migrate import upgrade
from flowdeck.domain.principal import LOCAL_USER
from flowdeck.domain.states import State
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.events import outbox
from flowdeck.services.runs import state_machine
from flowdeck.services.runs.service import NewRun, submit
from flowdeck.settings import Settings


async def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


async def measure(rounds: int, changes: int) -> dict[str, list[float]]:
    settings = Settings(data_dir=Path(tempfile.mkdtemp()))
    upgrade(settings)
    services = AppContext.create(settings)
    spec = NewRun(workflow_type="DEMO", workflow_type_version="1.0", workflow_url="demo://x")
    real = outbox.run_event
    results: dict[str, list[float]] = {"with the check": [], "without": []}
    try:
        for _ in range(rounds):
            for label in results:
                outbox.run_event = real if label == "with the check" else _nothing  # type: ignore[assignment]
                ids = [await submit(services, spec, LOCAL_USER) for _ in range(changes)]
                start = time.perf_counter()
                for run_id in ids:
                    async with services.db.write() as conn:
                        await state_machine.transition(conn, run_id, State.QUEUED, State.INITIALIZING, now=utcnow())
                results[label].append((time.perf_counter() - start) / changes * 1e6)
    finally:
        outbox.run_event = real  # type: ignore[assignment]
        await services.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--changes", type=int, default=300)
    args = parser.parse_args()
    for label, values in asyncio.run(measure(args.rounds, args.changes)).items():
        rounds = ", ".join(f"{v:.0f}" for v in values)
        print(f"{label}: median {statistics.median(values):.0f} µs per state change (rounds: {rounds})")


if __name__ == "__main__":
    main()
