"""Dataset rows: insert, read, keyset pages, soft delete, and the runs that use one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdeck.db.tables import datasets, runs
from flowdeck.domain.datasets import DatasetRecord
from flowdeck.domain.filters import DatasetFilter

_FIELDS = tuple(f.name for f in fields(DatasetRecord))


def record_of(row: Mapping[Any, Any]) -> DatasetRecord:
    """The typed record of a datasets row: the one place that reads a NULL ``extra`` as empty."""
    values = {name: row[name] for name in _FIELDS}
    values["extra"] = values["extra"] or {}
    return DatasetRecord(**values)


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(sa.insert(datasets), values)


async def get(conn: AsyncConnection, dataset_id: str) -> DatasetRecord | None:
    """One dataset that is not deleted, or None."""
    query = sa.select(datasets).where(datasets.c.id == dataset_id, datasets.c.deleted_at.is_(None))
    row = (await conn.execute(query)).mappings().first()
    return record_of(row) if row is not None else None


async def update(conn: AsyncConnection, dataset_id: str, values: dict[str, Any]) -> None:
    await conn.execute(sa.update(datasets).where(datasets.c.id == dataset_id).values(**values))


def _where(flt: DatasetFilter) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = [datasets.c.deleted_at.is_(None)]
    if flt.groups is not None:
        clauses.append(datasets.c.research_group.in_(sorted(flt.groups)))
    for column, value in (
        (datasets.c.research_group, flt.research_group),
        (datasets.c.name, flt.name),
        (datasets.c.owner, flt.owner),
    ):
        if value is not None:
            clauses.append(column == value)
    return clauses


async def page(
    conn: AsyncConnection, flt: DatasetFilter, limit: int, after: tuple[datetime, str] | None
) -> list[DatasetRecord]:
    """Newest first; ``after`` is the (created_at, id) of the last row already seen."""
    query = sa.select(datasets).where(*_where(flt))
    if after is not None:
        created, dataset_id = after
        query = query.where(
            sa.or_(
                datasets.c.created_at < created, sa.and_(datasets.c.created_at == created, datasets.c.id < dataset_id)
            )
        )
    query = query.order_by(datasets.c.created_at.desc(), datasets.c.id.desc()).limit(limit)
    return [record_of(row) for row in (await conn.execute(query)).mappings()]


async def runs_using(conn: AsyncConnection, dataset_id: str) -> int:
    query = sa.select(sa.func.count()).select_from(runs).where(runs.c.dataset_id == dataset_id)
    return int((await conn.execute(query)).scalar_one())


async def latest_run_id(
    conn: AsyncConnection, dataset_id: str, pipeline_name: str | None, workflow_url: str
) -> str | None:
    """The id of the newest run of this workflow (by pipeline, else by workflow_url) on the dataset."""
    query = sa.select(runs.c.id).where(runs.c.dataset_id == dataset_id)
    query = query.where(runs.c.pipeline_name == pipeline_name if pipeline_name else runs.c.workflow_url == workflow_url)
    query = query.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(1)
    return (await conn.execute(query)).scalar_one_or_none()
