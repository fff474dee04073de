"""Every table, in one module. Alembic migrations create them; this module is
the reference the repositories and autogenerate read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import TypeCompiler

# MySQL and MariaDB: the dialect names SQLAlchemy gives them (mysql+… and mariadb+… URLs).
MYSQL_DIALECTS = frozenset({"mysql", "mariadb"})


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite keeps none)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite and MySQL's DATETIME keep no zone: the naive UTC time is stored.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" or dialect.name in MYSQL_DIALECTS else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@compiles(sa.DateTime, "mysql")
@compiles(sa.DateTime, "mariadb")
def _mysql_datetime(type_: sa.DateTime, compiler: TypeCompiler, **kw: Any) -> str:
    """MySQL's DATETIME keeps whole seconds unless told otherwise: every datetime keeps microseconds,
    in migrations too (they import this module through env.py)."""
    return "DATETIME(6)"


JSONType: Any = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _id(name: str = "id") -> sa.Column[str]:
    return sa.Column(name, sa.String(64), primary_key=True)


def _created() -> sa.Column[datetime]:
    return sa.Column("created_at", UTCDateTime(), nullable=False)


research_groups = sa.Table(
    "research_groups",
    metadata,
    _id(),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("description", sa.Text(), nullable=True),
    _created(),
)

users = sa.Table(
    "users",
    metadata,
    _id(),
    sa.Column("username", sa.String(128), nullable=False, unique=True),
    sa.Column("display_name", sa.String(256), nullable=True),
    sa.Column("password_hash", sa.String(256), nullable=True),
    sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("source", sa.String(16), nullable=False, server_default="local"),
    sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    _created(),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("group_id", sa.String(64), sa.ForeignKey("research_groups.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False, server_default="member"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    _id(),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(128), nullable=False, unique=True),
    _created(),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

datasets = sa.Table(
    "datasets",
    metadata,
    _id(),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("research_group", sa.String(128), nullable=True, index=True),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("uri", sa.Text(), nullable=True),
    sa.Column("galaxy_dataset_id", sa.String(64), nullable=True),
    sa.Column("storage_key", sa.Text(), nullable=True),
    sa.Column("checksum", sa.String(128), nullable=True),
    sa.Column("size", sa.BigInteger(), nullable=True),
    sa.Column("media_type", sa.String(128), nullable=True),
    sa.Column("extra", JSONType, nullable=True),
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
)

requests = sa.Table(
    "requests",
    metadata,
    _id(),
    sa.Column("research_group", sa.String(128), nullable=True, index=True),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("pipeline_name", sa.String(128), nullable=True),
    sa.Column("pipeline_version", sa.String(64), nullable=True),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Column("spec", JSONType, nullable=False),
    sa.Column("total_runs", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column(
        "lease_expires_at", UTCDateTime(), nullable=True
    ),  # The request-level step (docs/adr/0019): NULL none, waiting, created, skipped (migration 0009).
    sa.Column("step_state", sa.String(16), nullable=True, index=True),
)

runs = sa.Table(
    "runs",
    metadata,
    _id(),
    sa.Column("request_id", sa.String(64), sa.ForeignKey("requests.id"), nullable=True),
    sa.Column("request_index", sa.Integer(), nullable=True),
    sa.Column("pipeline_name", sa.String(128), nullable=True),
    sa.Column("pipeline_version", sa.String(64), nullable=True),
    sa.Column("dataset_id", sa.String(64), sa.ForeignKey("datasets.id"), nullable=True),
    sa.Column("research_group", sa.String(128), nullable=True),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("origin", sa.String(16), nullable=False, server_default="wes"),
    # What to run (WES RunRequest)
    sa.Column("workflow_type", sa.String(32), nullable=False),
    sa.Column("workflow_type_version", sa.String(32), nullable=False),
    sa.Column("workflow_url", sa.Text(), nullable=False),
    sa.Column("workflow_params", JSONType, nullable=False),
    sa.Column("workflow_engine", sa.String(32), nullable=True),
    sa.Column("workflow_engine_version", sa.String(32), nullable=True),
    sa.Column("workflow_engine_parameters", JSONType, nullable=False),
    sa.Column("tags", JSONType, nullable=False),
    sa.Column("attachments", JSONType, nullable=False),
    # Where it runs
    sa.Column("backend", sa.String(32), nullable=False),
    sa.Column("backend_run_id", sa.String(256), nullable=True),
    sa.Column("backend_data", JSONType, nullable=False),  # the engine's own; nothing of flowdeck's (0013)
    # flowdeck's own bookkeeping, which no backend report can touch (migration 0013, docs/adr/0029)
    sa.Column("pipeline_target", JSONType, nullable=True),
    sa.Column("dataset", JSONType, nullable=True),
    sa.Column("resume_from", sa.String(64), nullable=True),
    sa.Column("cancel_sent_at", UTCDateTime(), nullable=True),
    # The dataset:<id> inputs resolved at submit, staged by the worker (docs/staging.md; migration 0013)
    sa.Column("input_datasets", JSONType, nullable=True),
    # State (changed only through the state machine)
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("state_version", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("error_message", sa.Text(), nullable=True),
    sa.Column("system_logs", JSONType, nullable=False),
    # Run log
    sa.Column("outputs", JSONType, nullable=True),
    sa.Column("output_files", JSONType, nullable=True),
    sa.Column("exit_code", sa.Integer(), nullable=True),
    sa.Column("cmd", JSONType, nullable=True),
    sa.Column("stdout_path", sa.Text(), nullable=True),
    sa.Column("stderr_path", sa.Text(), nullable=True),
    # What the worker put into storage when the run ended (services.results; revision 0007).
    sa.Column("results", JSONType, nullable=True),
    # The bytes ``results`` holds in storage; triggers keep group_stored_bytes in step (revision 0012).
    sa.Column("stored_bytes", sa.BigInteger(), nullable=False, server_default="0"),
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("start_time", UTCDateTime(), nullable=True),
    sa.Column("end_time", UTCDateTime(), nullable=True),
    sa.Column("last_progress_at", UTCDateTime(), nullable=True),
    sa.Column("rerun_of", sa.String(64), sa.ForeignKey("runs.id"), nullable=True),
    # Call caching (migration 0010, docs/adr/0026): the key of what the result depends on, and the
    # completed run whose outputs answered this one (no foreign key: that run may be deleted).
    sa.Column("cache_key", sa.String(64), nullable=True),
    sa.Column("cached_from", sa.String(64), nullable=True),
    # The input checksums the key was made of, checked again at staging (migration 0013; was in backend_data).
    sa.Column("cache_inputs", JSONType, nullable=True),
    # Worker bookkeeping
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
    sa.Column("next_check_at", UTCDateTime(), nullable=True),
    sa.Column("check_failures", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_check_error", sa.Text(), nullable=True),
    sa.UniqueConstraint("request_id", "request_index"),
    sa.Index("ix_runs_created_at_id", "created_at", "id"),
    sa.Index("ix_runs_group_created_at_id", "research_group", "created_at", "id"),
    sa.Index("ix_runs_state_next_check_at", "state", "next_check_at"),
    sa.Index("ix_runs_backend_backend_run_id", "backend", "backend_run_id"),
    # One per list filter, newest first: a filter that matches nothing ends at once (migration 0004).
    sa.Index("ix_runs_state_created_at_id", "state", "created_at", "id"),
    sa.Index("ix_runs_pipeline_name_created_at_id", "pipeline_name", "created_at", "id"),
    sa.Index("ix_runs_dataset_id_created_at_id", "dataset_id", "created_at", "id"),
    sa.Index("ix_runs_request_id_created_at_id", "request_id", "created_at", "id"),
    # Fair-share dispatch (migration 0008): a group's next queued runs, and executing runs per
    # (backend, group) read from the index alone.
    sa.Index("ix_runs_state_group_next_check_at", "state", "research_group", "next_check_at", "created_at"),
    sa.Index("ix_runs_state_backend_group", "state", "backend", "research_group"),
    sa.Index("ix_runs_state_end_time", "state", "end_time"),  # the retention purge (revision 0007)
    sa.Index("ix_runs_cache_key_group_state_end_time", "cache_key", "research_group", "state", "end_time"),
)

# Signed deltas of runs per (research group, pipeline, state; '' for none), appended by triggers on
# ``runs`` in the writing transaction (migration 0004) and folded by db.run_counts.compact: the
# aggregates sum this, never count the runs table. Appending, unlike updating one counter row,
# takes no lock another writer can wait for, so concurrent writers never deadlock on it.
run_state_counts = sa.Table(
    "run_state_counts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("research_group", sa.String(128), nullable=False),
    sa.Column("pipeline_name", sa.String(128), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("n", sa.BigInteger(), nullable=False),
)

# Signed deltas of the bytes each research group holds in storage, appended by triggers on ``runs``
# (revision 0012) and folded with the run counts (db.run_counts.compact).
group_stored_bytes = sa.Table(
    "group_stored_bytes",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("research_group", sa.String(128), nullable=False),
    sa.Column("bytes", sa.BigInteger(), nullable=False),
    sa.Index("ix_group_stored_bytes_research_group_bytes", "research_group", "bytes"),
)

run_tags = sa.Table(
    "run_tags",
    metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
    # The run's, so that a tag filter pages newest first from its own index.
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index(
        "ix_run_tags_key_value_created_at_run_id", "key", "value", "created_at", "run_id", mysql_length={"value": 255}
    ),
)

# The uploaded workflow attachments of a run, stored with the run in its own transaction: the
# database is their record (a run's folder is written from it when the run is dispatched), so a
# submission is one commit, and a worker that shares no filesystem with the API can run it.
run_attachments = sa.Table(
    "run_attachments",
    metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(512), primary_key=True),
    sa.Column("content", sa.LargeBinary(), nullable=False),
)

tasks = sa.Table(
    "tasks",
    metadata,
    _id(),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("backend_task_id", sa.String(256), nullable=False),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("start_time", UTCDateTime(), nullable=True),
    sa.Column("end_time", UTCDateTime(), nullable=True),
    sa.Column("exit_code", sa.Integer(), nullable=True),
    sa.Column("cmd", JSONType, nullable=True),
    sa.Column("stdout_path", sa.Text(), nullable=True),
    sa.Column("stderr_path", sa.Text(), nullable=True),
    sa.Column("system_logs", JSONType, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("run_id", "backend_task_id"),
    sa.Index("ix_tasks_run_id_position", "run_id", "position"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=True, index=True),
    sa.Column("request_id", sa.String(64), sa.ForeignKey("requests.id", ondelete="CASCADE"), nullable=True, index=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("from_state", sa.String(16), nullable=True),
    sa.Column("to_state", sa.String(16), nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("actor", sa.String(128), nullable=True),
)

workers = sa.Table(
    "workers",
    metadata,
    _id(),
    sa.Column("hostname", sa.String(256), nullable=False),
    sa.Column("pid", sa.Integer(), nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("heartbeat_at", UTCDateTime(), nullable=False, index=True),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("scope", sa.String(128), primary_key=True),
    sa.Column("endpoint", sa.String(128), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("body_hash", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer(), nullable=True),
    sa.Column("response", JSONType, nullable=True),
    _created(),
)

# The run an Idempotency-Key created, committed with the run itself (revision 0003).
idempotency_runs = sa.Table(
    "idempotency_runs",
    metadata,
    sa.Column("scope", sa.String(128), primary_key=True),
    sa.Column("endpoint", sa.String(128), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
)

# Webhook endpoints (revision 0006): a research group's, or service-wide (research_group NULL).
webhooks = sa.Table(
    "webhooks",
    metadata,
    _id(),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("event_types", JSONType, nullable=False),
    sa.Column("research_group", sa.String(128), nullable=True, index=True),
    sa.Column("pipeline_name", sa.String(128), nullable=True),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("owner", sa.String(128), nullable=True),
    _created(),
)

# Per-user e-mail notifications (revision 0006), keyed by the principal's name.
notification_preferences = sa.Table(
    "notification_preferences",
    metadata,
    sa.Column("username", sa.String(128), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("on_completion", sa.Boolean(), nullable=False),
    sa.Column("on_failure", sa.Boolean(), nullable=False),
    sa.Column("request_summary", sa.Boolean(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# The outbox (revision 0006): one row per (webhook endpoint or e-mail, event), written in the
# transaction that writes the event. ``queue`` orders delivery: rows of one queue go out in id order.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("webhook_id", sa.String(64), sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=True),
    sa.Column("recipient", sa.String(320), nullable=True),
    sa.Column("queue", sa.String(160), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("last_status", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    _created(),
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
    sa.Index("ix_deliveries_state_queue_id", "state", "queue", "id"),
    sa.Index("ix_deliveries_webhook_id_id", "webhook_id", "id"),
)

# One row per lock name (migration 0008): a worker locks ``dispatch`` (SELECT ... FOR UPDATE) while it
# counts executing runs and claims queued ones, so two workers never both fill the same free slot.
dispatch_locks = sa.Table(
    "dispatch_locks",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
)

# One audit row per deleted or purged run (revision 0007): a run's events go with its row, so the
# record of who removed it, when and why lives here, with no foreign key to the row it outlives.
run_deletions = sa.Table(
    "run_deletions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("research_group", sa.String(128), nullable=True, index=True),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("pipeline_name", sa.String(128), nullable=True),
    sa.Column("workflow_url", sa.Text(), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("run_created_at", UTCDateTime(), nullable=True),
    sa.Column("run_end_time", UTCDateTime(), nullable=True),
    sa.Column("files", sa.Integer(), nullable=False),
    sa.Column("bytes", sa.BigInteger(), nullable=False),
    sa.Column("actor", sa.String(128), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("deleted_at", UTCDateTime(), nullable=False),
)

# Made by migration 0014 beside this metadata, which cannot describe them: SQLite's FTS5 trigram
# index of runs.description (a virtual table and its shadow tables) and PostgreSQL's pg_trgm index.
UNMODELLED = frozenset(
    {"runs_description_fts", *(f"runs_description_fts_{shadow}" for shadow in ("data", "idx", "docsize", "config"))}
    | {"ix_runs_description_trgm"}
)
