"""A trigram index on runs.description, so a description filter stops scanning the table

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 06:30:00

The runs list's ``description_contains`` is a case-insensitive substring test (db/runs.py). A
trigram index finds the runs holding a needle's trigrams; the query still applies the substring
test to them, so what matches is decided by the test, never by the index (the index only has to
find every match, which a trigram index does for needles of three characters or more).

- PostgreSQL: a ``pg_trgm`` GIN index, which ILIKE uses by itself. ``pg_trgm`` is a trusted
  extension: a role with CREATE on the database makes it. A role that cannot gets a warning, no
  index and the scan as before; the operator runs ``CREATE EXTENSION pg_trgm`` and
  ``CREATE INDEX ix_runs_description_trgm ON runs USING gin (description gin_trgm_ops)``.
- SQLite: an FTS5 table with the trigram tokenizer (SQLite 3.34+) over runs' rowid, its content
  read from ``runs`` and kept in step by triggers. A rebuild of ``runs`` (a batch migration,
  VACUUM of a table without an INTEGER PRIMARY KEY) may renumber rowids: rebuild the index after
  one (``INSERT INTO runs_description_fts(runs_description_fts) VALUES ('rebuild')``).
- MariaDB: nothing. FULLTEXT indexes words, not substrings, and MariaDB has no n-gram parser
  (MySQL's is not in InnoDB here), so no index keeps the substring semantics: the scan stays.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

FTS = "runs_description_fts"
PG_INDEX = "ix_runs_description_trgm"
_SQLITE_UP = (
    f"CREATE VIRTUAL TABLE {FTS} USING fts5(description, content='runs', content_rowid='rowid', tokenize='trigram')",
    f"CREATE TRIGGER {FTS}_insert AFTER INSERT ON runs BEGIN "
    f"INSERT INTO {FTS}(rowid, description) VALUES (NEW.rowid, NEW.description); END",
    f"CREATE TRIGGER {FTS}_delete AFTER DELETE ON runs BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, description) VALUES ('delete', OLD.rowid, OLD.description); END",
    # OF description: the many bookkeeping updates of a run's other columns do not touch the index.
    f"CREATE TRIGGER {FTS}_update AFTER UPDATE OF description ON runs BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, description) VALUES ('delete', OLD.rowid, OLD.description); "
    f"INSERT INTO {FTS}(rowid, description) VALUES (NEW.rowid, NEW.description); END",
    f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')",
)
_log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in _SQLITE_UP:
            op.execute(statement)
    elif dialect == "postgresql" and _pg_trgm():
        op.execute(f"CREATE INDEX {PG_INDEX} ON runs USING gin (description gin_trgm_ops)")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for suffix in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {FTS}_{suffix}")
        op.execute(f"DROP TABLE IF EXISTS {FTS}")
    elif dialect == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {PG_INDEX}")  # the extension stays: others may use it


def _pg_trgm() -> bool:
    """Whether pg_trgm is there or could be made; a refusal rolls back only its savepoint."""
    conn = op.get_bind()
    try:
        with conn.begin_nested():
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        _log.warning("no pg_trgm (%s): runs' description filter keeps scanning; see docs/deploy.md", exc.orig)
        return False
    return True
