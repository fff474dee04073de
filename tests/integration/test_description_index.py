"""The description filter finds the same runs with its trigram index as the scan does (migration 0014).

Differential: each needle's matches through db/runs.py's filter (the index in play: FTS5 on
SQLite, the pg_trgm GIN index on PostgreSQL, shown by the query plans) against the plain
substring test the index must never change (a scan), on runs whose descriptions were also
updated and deleted, so the triggers that keep SQLite's index in step are part of what is tested.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdeck.db import runs as run_rows
from flowdeck.db.migrate import upgrade
from flowdeck.db.tables import runs
from flowdeck.domain.filters import RunFilter
from flowdeck.domain.principal import LOCAL_USER
from flowdeck.services.core.context import AppContext
from flowdeck.services.runs.service import list_page
from flowdeck.settings import Settings
from tests.conftest import make_settings

CORPUS = [
    "RNA-seq of liver, batch 7",
    "rna-SEQ OF LIVER (redo)",
    "50% downsampled; 100_000 reads",
    "50 percent, not a wildcard",
    "path/to/sample_01 with a / and a \\ and 'quotes' and \"double\"",
    "Größe STRASSE straße",
    "ÉCOLE école Ecole",
    "Δέλτα δέλτα ΔΈΛΤΑ",
    "emoji 🧬🧬 dna 🧪",
    "e\u0301 combining acute",
    "ab",
    "a",
    "",
    None,
    "tabs\tand\nnewlines",
    "x" * 300 + "needle-at-the-end",
    None,
    "described, then not",
]
EDITS = {0: "kidney, batch 8", 8: "🧬 edited 🧬", 13: "was NULL, now 50%_x", 17: None}
DELETED = (2, 6, 16)  # 16: a run without a description (never in SQLite's index)
# Text that PostgreSQL stores: no NUL, no lone surrogates.
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8)


def _needles() -> st.SearchStrategy[str]:
    stored = [d for i, d in enumerate(CORPUS) if d and i not in DELETED] + [d for d in EDITS.values() if d]

    @st.composite
    def piece(draw: st.DrawFn) -> str:
        text = draw(st.sampled_from(stored))
        start = draw(st.integers(0, len(text)))
        cut = text[start : start + draw(st.integers(1, 12))]
        return draw(st.sampled_from([cut, cut.upper(), cut.lower(), cut.swapcase()]))

    # An empty needle is no filter at all (every run, with a description or not): not a search.
    return st.one_of(
        piece().filter(bool), TEXT.filter(bool), st.sampled_from(["%", "_", "/", "%_", "50%", "0_0", '"', "''"])
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A synchronous engine on a migrated database holding CORPUS, edited and pruned."""
    if request.param == "sqlite":
        db: Settings = make_settings(tmp_path)
        upgrade(db)
    else:
        server = request.getfixturevalue("postgres_server")
        template = request.getfixturevalue("migrated_template")
        db = make_settings(tmp_path, database_url=server.create_database(template=template))
    url = db.resolved_database_url.replace("+aiosqlite", "")
    made = sa.create_engine(url)
    with made.begin() as conn:
        _fill(conn)
    yield made
    made.dispose()


def _fill(conn: sa.Connection) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [_row(i, text, start + timedelta(minutes=i)) for i, text in enumerate(CORPUS)]
    conn.execute(sa.insert(runs), rows)
    for i, text in EDITS.items():
        conn.execute(sa.update(runs).where(runs.c.id == f"r{i:04}").values(description=text))
    conn.execute(sa.delete(runs).where(runs.c.id.in_([f"r{i:04}" for i in DELETED])))


def _row(i: int, description: str | None, at: datetime) -> dict[str, object]:
    return {
        "id": f"r{i:04}",
        "workflow_type": "DEMO",
        "workflow_type_version": "1.0",
        "workflow_url": "demo://x",
        "workflow_params": {},
        "workflow_engine_parameters": {},
        "tags": {},
        "attachments": [],
        "backend": "demo",
        "backend_data": {},
        "state": "QUEUED",
        "system_logs": [],
        "description": description,
        "created_at": at,
        "updated_at": at,
    }


def _ids(conn: sa.Connection, where: list[sa.ColumnElement[bool]]) -> set[str]:
    return set(conn.execute(sa.select(runs.c.id).where(*where)).scalars())


def _indexed(conn: sa.Connection, needle: str) -> set[str]:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))  # the GIN index, wherever it can serve
    return _ids(conn, _filtered(conn, needle))


def _filtered(conn: sa.Connection, needle: str) -> list[sa.ColumnElement[bool]]:
    """db/runs.py's clauses, SQLite's index in whenever it can serve (whatever its hit count)."""
    fts = conn.dialect.name == "sqlite" and run_rows.fts_serves(needle)
    return run_rows._where(RunFilter(description_contains=needle), fts=fts)


def _scanned(conn: sa.Connection, needle: str) -> set[str]:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SET LOCAL enable_bitmapscan = off"))
        conn.execute(sa.text("SET LOCAL enable_indexscan = off"))
    return _ids(conn, [runs.c.description.icontains(needle, autoescape=True)])


def _plan(conn: sa.Connection, needle: str) -> str:
    query = sa.select(runs.c.id).where(*_filtered(conn, needle))
    compiled = query.compile(dialect=conn.dialect)
    params = compiled.params
    args = tuple(params[name] for name in compiled.positiontup or ()) if compiled.positional else params
    with conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        explain = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
        return "\n".join(str(line) for line in conn.exec_driver_sql(explain + str(compiled), args))


def test_the_index_serves_needles_of_three_characters_and_more(engine: sa.Engine) -> None:
    index = "runs_description_fts" if engine.dialect.name == "sqlite" else "ix_runs_description_trgm"
    with engine.connect() as conn:
        assert index in _plan(conn, "liver")
        if engine.dialect.name == "sqlite":  # FTS5 finds nothing for fewer than 3 characters: the scan does it
            assert index not in _plan(conn, "ab")


def test_sqlites_index_agrees_with_its_content_after_edits_deletes_and_a_rebuild(engine: sa.Engine) -> None:
    """FTS5's own check of the index against ``runs`` (rank 1: the content table too), after the
    corpus's edits and deletes through the triggers and after the rebuild an operator runs."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's FTS5 index")
    fts = "runs_description_fts"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO {fts}({fts}, rank) VALUES ('integrity-check', 1)")
        conn.exec_driver_sql(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
        conn.exec_driver_sql(f"INSERT INTO {fts}({fts}, rank) VALUES ('integrity-check', 1)")
        assert _indexed(conn, "described") == set()  # r0017's description was removed
        assert _indexed(conn, "needle-at") == {"r0015"}


def test_index_and_scan_find_the_same_runs(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        with conn.begin():
            assert _scanned(conn, "LIVER") == {"r0001"}  # r00's text was edited away
            assert _indexed(conn, "LIVER") == {"r0001"}

        @settings(max_examples=150, deadline=None, database=None)
        @given(needle=_needles())
        def same(needle: str) -> None:
            with conn.begin():
                indexed = _indexed(conn, needle)
            with conn.begin():
                assert indexed == _scanned(conn, needle), needle

        same()


async def test_pages_and_counts_through_the_service_whichever_way_the_filter_goes(services: AppContext) -> None:
    """A common needle (more hits than SQLite's index drives a page for), a rare one, a short one."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    common = run_rows.FTS_MAX_HITS + 5
    made = [
        _row(i, f"bulk run {i}" + (" Rare-Word" if i % 500 == 7 else ""), start + timedelta(seconds=i))
        for i in range(common)
    ]
    async with services.db.write() as conn:
        await conn.execute(sa.insert(runs), made)
    newest = [row["id"] for row in reversed(made)]
    for needle, size in (("BULK RUN", common), ("rare-word", 2), ("rE", 2), ("no such text", 0)):
        expected = [
            i for i in newest if needle.lower() in str(next(r for r in made if r["id"] == i)["description"]).lower()
        ]
        assert len(expected) == size
        flt = RunFilter(description_contains=needle)
        rows, _token = await list_page(services, LOCAL_USER, flt, 20, None)
        assert [row.id for row in rows] == expected[:20], needle
        async with services.db.read() as conn:
            assert await run_rows.count(conn, flt) == size, needle
            sqlite = conn.dialect.name == "sqlite"  # both ways are taken: index and scan
            assert await run_rows._use_fts(conn, flt) == (sqlite and len(needle) >= 3 and size <= run_rows.FTS_MAX_HITS)
