"""Signed browser sessions and CSRF tokens (services/auth/sessions.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from flowdeck.errors import NotFound
from flowdeck.services.auth import sessions
from flowdeck.services.core.storage import local_secret, make_token, verify_token
from flowdeck.settings import Settings


def _keys(tmp_path: Path, secret: str | None = None) -> sessions.Keys:
    return sessions.Keys.of(Settings(data_dir=tmp_path, storage_secret=SecretStr(secret) if secret else None))


def test_a_session_reads_back_until_it_expires(tmp_path: Path) -> None:
    keys = _keys(tmp_path)
    value = sessions.issue(keys, "alice", "basic", now=1000.0)
    assert sessions.read(keys, value, now=1001.0) == sessions.Session(
        "alice", "basic", 1000 + sessions.LIFETIME_SECONDS
    )
    assert sessions.read(keys, value, now=1000.0 + sessions.LIFETIME_SECONDS) is None


def test_the_key_comes_from_the_storage_secret_and_survives_a_restart(tmp_path: Path) -> None:
    value = sessions.issue(_keys(tmp_path), "alice", "basic")
    assert sessions.read(_keys(tmp_path), value) is not None  # the storage-secret file, read again
    assert sessions.read(_keys(tmp_path / "other"), value) is None
    assert sessions.read(_keys(tmp_path, "configured"), value) is None


def test_a_session_is_never_a_storage_link_nor_the_other_way_round(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    keys = sessions.Keys.of(settings)
    link = make_token(local_secret(settings), "runs/a", "GET", 2**40)
    assert sessions.read(keys, link) is None
    with pytest.raises(NotFound):
        verify_token(local_secret(settings), sessions.issue(keys, "alice", "basic"), "GET")


def test_malformed_values_are_no_session(tmp_path: Path) -> None:
    keys = _keys(tmp_path)
    good = sessions.issue(keys, "alice", "basic")
    for bad in (None, "", ".", good + "x", "é" + good, good.replace(".", ""), "a" * 5000):
        assert sessions.read(keys, bad) is None


def test_csrf_tokens_belong_to_one_browser(tmp_path: Path) -> None:
    keys = _keys(tmp_path)
    seed, other = sessions.new_csrf_seed(), sessions.new_csrf_seed()
    token = sessions.csrf_token(keys, seed)
    assert sessions.csrf_ok(keys, seed, token)
    assert not sessions.csrf_ok(keys, other, token)
    assert not sessions.csrf_ok(keys, None, token)
    assert not sessions.csrf_ok(keys, seed, None)
    assert not sessions.csrf_ok(keys, seed, "")
    assert not sessions.csrf_ok(_keys(tmp_path / "elsewhere"), seed, token)
