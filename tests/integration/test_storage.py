"""Local and S3 storage behind one interface; S3 against moto's server on loopback."""

from __future__ import annotations

import io
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.errors import InvalidInput, NotFound
from flowdeck.services.core.storage import LocalStorage, S3Storage, Storage, make_token, open_storage
from tests.conftest import make_settings
from tests.support.network import moto_s3


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_s3() as url:
        yield url


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Storage:
    if request.param == "local":
        return open_storage(make_settings(tmp_path))
    url = request.getfixturevalue("moto_url")
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
        monkeypatch.setenv(name, value)
    settings = make_settings(tmp_path, storage="s3", s3_bucket=f"b{time.time_ns()}", s3_endpoint_url=url)
    s3 = open_storage(settings)
    assert isinstance(s3, S3Storage)
    s3.client.create_bucket(Bucket=settings.s3_bucket)
    return s3


def test_put_open_exists_delete(store: Storage) -> None:
    store.put_bytes("a/b.txt", b"hello")
    assert store.exists("a/b.txt")
    assert store.size("a/b.txt") == 5
    with store.open("a/b.txt") as handle:
        assert handle.read() == b"hello"
    assert store.put_stream("c.bin", io.BytesIO(b"x" * 3_000_000)) == 3_000_000
    store.delete("a/b.txt")
    assert not store.exists("a/b.txt")
    with pytest.raises(NotFound):
        store.open("a/b.txt")
    with pytest.raises(InvalidInput):
        store.put_bytes("../escape", b"x")


def test_s3_presigned_urls_work_over_http(store: Storage) -> None:
    if not isinstance(store, S3Storage):
        pytest.skip("local URLs are checked through the API (test_datasets_api)")
    put = urllib.request.Request(
        store.presign("up.txt", "PUT", ""), data=b"signed", method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(put) as answer:
        assert answer.status == 200
    with urllib.request.urlopen(store.presign("up.txt", "GET", "")) as answer:
        assert answer.read() == b"signed"


def test_local_tokens_expire_and_bind_method(tmp_path: Path) -> None:
    store = open_storage(make_settings(tmp_path))
    assert isinstance(store, LocalStorage)
    url = store.presign("k.txt", "GET", "http://h")
    token = url.rsplit("/", 1)[1]
    assert store.verify(token, "GET") == "k.txt"
    with pytest.raises(NotFound):
        store.verify(token, "PUT")
    expired: Any = make_token(store.secret, "k.txt", "GET", int(time.time()) - 1)
    with pytest.raises(NotFound, match="expired"):
        store.verify(expired, "GET")
    again = open_storage(make_settings(tmp_path))
    assert isinstance(again, LocalStorage)
    assert again.secret == store.secret
