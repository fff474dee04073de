"""The kept run counts (appended deltas, folded by compaction) always equal COUNT(*) of the runs
table, under concurrent writers and compactions, on SQLite and PostgreSQL; every list filter
pages exactly its matches."""

from __future__ import annotations

import asyncio
import itertools
import random

import sqlalchemy as sa

from flowdeck.db import run_counts
from flowdeck.db import runs as run_rows
from flowdeck.db.tables import run_state_counts, runs
from flowdeck.domain.filters import RunFilter
from flowdeck.domain.principal import LOCAL_USER
from flowdeck.domain.states import State
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.runs import run_counts as run_count_service
from flowdeck.services.runs import state_machine
from flowdeck.services.runs.service import NewRun, list_page, submit

PATH = [State.QUEUED, State.INITIALIZING, State.RUNNING, State.COMPLETE]


async def _submit(services: AppContext, group: str | None, tags: dict[str, str] | None = None) -> str:
    new = NewRun(
        workflow_type="DEMO",
        workflow_type_version="1.0",
        workflow_url="demo://x",
        research_group=group,
        tags=tags or {},
    )
    return await submit(services, new, LOCAL_USER)


async def _advance(services: AppContext, run_id: str, steps: int) -> None:
    for before, after in itertools.pairwise(PATH[: steps + 1]):
        async with services.db.write() as conn:
            assert await state_machine.transition(conn, run_id, before, after, now=utcnow())


async def _delete(services: AppContext, run_id: str) -> None:
    async with services.db.write() as conn:
        await conn.execute(sa.delete(runs).where(runs.c.id == run_id))


async def _truth(services: AppContext) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """(COUNT(*) of runs per group and state, the sums of the kept deltas), over every pipeline."""
    async with services.db.read() as conn:
        group = sa.func.coalesce(runs.c.research_group, sa.literal_column("''")).label("g")
        counted = await conn.execute(sa.select(group, runs.c.state, sa.func.count()).group_by(group, runs.c.state))
        c = run_state_counts.c
        kept = await conn.execute(
            sa.select(c.research_group, c.state, sa.func.sum(c.n)).group_by(c.research_group, c.state)
        )
        return {(g, s): int(n) for g, s, n in counted}, {(g, s): int(n) for g, s, n in kept if n}


async def test_counts_equal_count_star_under_concurrent_writes_and_compactions(services: AppContext) -> None:
    rng = random.Random(13)
    groups = ["g1", "g2", None]
    first = await asyncio.gather(*(_submit(services, rng.choice(groups)) for _ in range(30)))
    work = [_submit(services, rng.choice(groups)) for _ in range(30)]
    work += [_advance(services, run_id, rng.randint(1, 3)) for run_id in first[:20]]
    work += [_delete(services, run_id) for run_id in first[20:26]]
    work += [run_count_service.compact(services) for _ in range(6)]
    rng.shuffle(work)
    await asyncio.gather(*work)
    counted, kept = await _truth(services)
    assert counted == kept
    assert sum(counted.values()) == 54


async def test_compaction_folds_the_deltas_into_one_row_per_group_and_state(services: AppContext) -> None:
    one = await _submit(services, "g1")
    await _submit(services, "g2")
    await _advance(services, one, 3)
    async with services.db.read() as conn:
        before = await run_counts.rows(conn)
    assert before == 2 + 3 * 2  # two inserts, three state changes of one run (-1 and +1 each)
    assert await run_count_service.compact(services)
    async with services.db.read() as conn:
        assert await run_counts.rows(conn) == 2  # g1 COMPLETE, g2 QUEUED; zero sums are dropped
    counted, kept = await _truth(services)
    assert counted == kept == {("g1", "COMPLETE"): 1, ("g2", "QUEUED"): 1}


async def test_counts_by_state_cover_only_the_visible_groups(services: AppContext) -> None:
    one = await _submit(services, "g1")
    await _submit(services, "g2")
    await _advance(services, one, 2)
    async with services.db.read() as conn:
        everyone = await run_counts.by_state(conn, None)
        g1 = await run_counts.by_state(conn, frozenset({"g1"}))
        nobody = await run_counts.by_state(conn, frozenset())
    assert everyone == {"QUEUED": 1, "RUNNING": 1}
    assert g1 == {"RUNNING": 1}
    assert nobody == {}


async def test_a_total_from_the_kept_counts_equals_the_counted_one(services: AppContext) -> None:
    ids = [await _submit(services, group) for group in ("g1", "g1", "g2", None)]
    await _advance(services, ids[0], 3)
    async with services.db.write() as conn:  # pipelines as the jobs door sets them
        await conn.execute(sa.update(runs).where(runs.c.id.in_(ids[:3])).values(pipeline_name="p1"))
    await run_count_service.compact(services)
    async with services.db.read() as conn:
        for groups, states, pipeline, group in itertools.product(
            (None, frozenset({"g1"}), frozenset({"g1", "g2"})),
            (None, frozenset({State.QUEUED, State.COMPLETE})),
            (None, "p1", "p2"),
            (None, "g1", "g3"),
        ):
            flt = RunFilter(groups=groups, states=states, pipeline_name=pipeline, research_group=group)
            kept = await run_rows.count(conn, flt)
            query = sa.select(sa.func.count()).select_from(runs)
            if groups is not None:
                query = query.where(runs.c.research_group.in_(sorted(groups)))
            if states is not None:
                query = query.where(runs.c.state.in_(sorted(states)))
            if pipeline is not None:
                query = query.where(runs.c.pipeline_name == pipeline)
            if group is not None:
                query = query.where(runs.c.research_group == group)
            assert kept == (await conn.execute(query)).scalar_one(), flt


async def test_every_list_filter_pages_exactly_its_matches_newest_first(services: AppContext) -> None:
    made = []
    for i in range(7):
        tags = {"project": f"p{i % 2}", **({"lane": "L1"} if i % 3 == 0 else {})}
        made.append(await _submit(services, "g1" if i < 5 else "g2", tags))
    await _advance(services, made[1], 1)
    newest = list(reversed(made))
    cases = [
        (RunFilter(tags={"project": "p0"}), [r for r in newest if made.index(r) % 2 == 0]),
        (RunFilter(tags={"project": "p0", "lane": "L1"}), [made[6], made[0]]),
        (RunFilter(tags={"project": "p0"}, groups=frozenset({"g1"})), [made[4], made[2], made[0]]),
        (RunFilter(tags={"project": "none"}), []),
        (RunFilter(states=frozenset({State.INITIALIZING})), [made[1]]),
        (RunFilter(states=frozenset({State.PAUSED})), []),
        (RunFilter(pipeline_name="nonexistent"), []),
        (RunFilter(research_group="g2"), [made[6], made[5]]),
    ]
    for flt, expected in cases:
        for size in (1, 2, 10):
            seen, token = [], None
            while token != "":
                rows, token = await list_page(services, LOCAL_USER, flt, size, token)
                seen += [row.id for row in rows]
            assert seen == expected, (flt, size)
