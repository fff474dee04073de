"""db.binds: the insert path's cheaper bind processors return exactly what SQLAlchemy's own do."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from flowdeck.db import binds
from flowdeck.db.tables import events, runs

SQLITE = sqlite.dialect()
UTC_COLUMNS = [runs.c.created_at, runs.c.next_check_at, events.c.at]
JSON_COLUMNS = [runs.c.workflow_params, runs.c.tags, runs.c.outputs]


def _standard(column: sa.Column[Any], dialect: Dialect) -> Any:
    return column.type.dialect_impl(dialect).bind_processor(dialect)


def _outcome(process: Any, value: Any) -> tuple[str, Any]:
    try:
        return "value", process(value)
    except Exception as exc:  # the same error, type and message, for a value SQLAlchemy refuses
        return type(exc).__name__, str(exc)


DATETIMES = [
    datetime(2026, 11, 21, 12, 0, tzinfo=UTC),
    datetime(2026, 11, 21, 12, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, 59, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(1, 1, 1, 23, 0, tzinfo=timezone(timedelta(hours=-1))),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 11, 21, 12, 0),  # naive: refused
    date(2026, 11, 21),  # not a datetime: refused
    "2026-11-21 12:00:00",  # a string: refused
    None,
]


@pytest.mark.parametrize("column", UTC_COLUMNS, ids=lambda c: str(c))
@pytest.mark.parametrize("value", DATETIMES, ids=repr)
def test_utc_datetimes_on_sqlite_are_the_text_sqlalchemy_writes(column: sa.Column[Any], value: Any) -> None:
    fast = binds.bind_processor(column.type, SQLITE)
    assert fast is not _standard(column, SQLITE)  # the cheaper one is in use
    assert _outcome(fast, value) == _outcome(_standard(column, SQLITE), value)


@given(st.datetimes(timezones=st.timezones()))
def test_any_aware_datetime_is_the_text_sqlalchemy_writes(value: datetime) -> None:
    column = runs.c.created_at
    fast = binds.bind_processor(column.type, SQLITE)
    assert fast is not None
    assert fast(value) == _standard(column, SQLITE)(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_json_documents_are_the_text_sqlalchemy_writes(value: Any) -> None:
    for column in JSON_COLUMNS:
        fast = binds.bind_processor(column.type, SQLITE)
        assert _outcome(fast, value) == _outcome(_standard(column, SQLITE), value)


@pytest.mark.parametrize(
    "value", [sa.JSON.NULL, sa.null(), None, {1: "int key"}, {"t": (1, 2)}, {"s": {1}}, "text", float("nan")], ids=repr
)
def test_json_special_values_are_what_sqlalchemy_writes(value: Any) -> None:
    for column in JSON_COLUMNS:
        fast = binds.bind_processor(column.type, SQLITE)
        assert fast is not _standard(column, SQLITE)
        assert _outcome(fast, value) == _outcome(_standard(column, SQLITE), value)


def test_other_types_dialects_and_serializers_keep_sqlalchemys_processor() -> None:
    pg = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
    custom = sqlite.dialect(json_serializer=lambda value: "custom")
    for column, dialect in [
        (runs.c.created_at, pg),
        (runs.c.workflow_params, pg),
        (runs.c.workflow_params, custom),
        (runs.c.id, SQLITE),
        (runs.c.request_index, SQLITE),
    ]:
        fast = binds.bind_processor(column.type, dialect)
        standard = _standard(column, dialect)
        if standard is None:
            assert fast is None
            continue
        assert fast is not None
        assert fast.__qualname__ == standard.__qualname__  # SQLAlchemy's own, not one of db.binds
        value = datetime(2026, 11, 21, tzinfo=UTC) if column is runs.c.created_at else {"a": 1}
        assert repr(fast(value)) == repr(standard(value))
