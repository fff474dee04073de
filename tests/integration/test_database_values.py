"""Values come back from every database as they went in: 4-byte UTF-8 (emoji) in tags and
parameters, case kept apart, datetimes to the microsecond in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from flowdeck.db import runs as run_rows
from flowdeck.db.tables import runs
from flowdeck.domain.filters import RunFilter
from flowdeck.domain.principal import LOCAL_USER
from flowdeck.services.core.context import AppContext
from flowdeck.services.runs.service import NewRun, get_visible, list_page, submit

EMOJI = "🧬🦠 ünï"


async def _submit(services: AppContext, tags: dict[str, str]) -> str:
    new = NewRun(
        workflow_type="DEMO",
        workflow_type_version="1.0",
        workflow_url="demo://x",
        workflow_params={"sample": EMOJI},
        tags=tags,
    )
    return await submit(services, new, LOCAL_USER)


async def test_four_byte_text_round_trips_and_filters(services: AppContext) -> None:
    run_id = await _submit(services, {"organism": EMOJI, "Case": "A"})
    other = await _submit(services, {"organism": "plain", "case": "a"})
    run = await get_visible(services, run_id, LOCAL_USER)
    assert run.tags == {"organism": EMOJI, "Case": "A"}
    assert run.workflow_params == {"sample": EMOJI}
    found, _ = await list_page(services, LOCAL_USER, RunFilter(tags={"organism": EMOJI}), 10, None)
    assert [row.id for row in found] == [run_id]
    # Tag keys and values compare byte for byte (MariaDB's default collations would not).
    found, _ = await list_page(services, LOCAL_USER, RunFilter(tags={"case": "a"}), 10, None)
    assert [row.id for row in found] == [other]


async def test_datetimes_keep_microseconds_in_utc(services: AppContext) -> None:
    run_id = await _submit(services, {})
    at = datetime(2026, 12, 5, 16, 30, 1, 123456, tzinfo=UTC)
    async with services.db.write() as conn:
        await run_rows.update(conn, run_id, {"next_check_at": at})
    async with services.db.read() as conn:
        stored = (await conn.execute(sa.select(runs.c.next_check_at).where(runs.c.id == run_id))).scalar_one()
    assert stored == at
    assert stored.tzinfo is UTC
