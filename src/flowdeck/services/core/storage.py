"""Where flowdeck keeps files it owns: a local folder or an S3 bucket.

Both stores offer the same operations, including pre-signed upload (PUT) and
download (GET) URLs. S3 signs its own URLs. The local store's URLs point back
at flowdeck (``/storage/{token}``) and carry an HMAC-signed, expiring token
naming the key and the method; the API checks it with :func:`verify_token`.
The HMAC key is ``settings.storage_secret``, else a random secret generated
once and kept in ``data_dir`` (so URLs survive a restart).

Engines cannot read flowdeck's S3 credentials: :func:`for_engine` turns the
``s3://`` dataset references of a run into pre-signed HTTP(S) URLs, made just
before the run is handed to its backend (never stored), that the engine fetches.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal, Protocol, TypeGuard

from flowdeck.domain.runs import RunSpec
from flowdeck.errors import ConfigurationError, InvalidInput, NotFound
from flowdeck.settings import Settings

Method = Literal["GET", "PUT"]
CHUNK = 1024 * 1024


class Storage(Protocol):
    """A flat namespace of keys (``a/b/c`` paths) holding bytes."""

    def put_bytes(self, key: str, data: bytes) -> None: ...
    def put_stream(self, key: str, stream: BinaryIO) -> int: ...
    def open(self, key: str) -> BinaryIO: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def presign(self, key: str, method: Method, base_url: str) -> str: ...


def check_key(key: str) -> str:
    """A relative key without parent references (keys come partly from clients)."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidInput(f"invalid storage key {key!r}")
    return key


class LocalStorage:
    """Files under one folder; pre-signed URLs are flowdeck's own, HMAC-signed."""

    def __init__(self, root: Path, secret: bytes, lifetime: int) -> None:
        self.root = root
        self.secret = secret
        self.lifetime = lifetime

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        os.replace(partial, path)

    def put_stream(self, key: str, stream: BinaryIO) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with partial.open("wb") as out:
            shutil.copyfileobj(stream, out, CHUNK)
        os.replace(partial, path)  # readers never see half a file
        return path.stat().st_size

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise NotFound(f"stored object {key!r} not found") from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"stored object {key!r} not found") from None

    def file_path(self, key: str) -> Path:
        """The file behind ``key`` (local only: the API streams it)."""
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"stored object {key!r} not found")
        return path

    def presign(self, key: str, method: Method, base_url: str) -> str:
        return f"{base_url}/storage/{make_token(self.secret, check_key(key), method, int(time.time()) + self.lifetime)}"

    def verify(self, token: str, method: Method) -> str:
        return verify_token(self.secret, token, method)


class S3Storage:
    """Objects under ``prefix`` in one bucket (boto3; any S3-compatible endpoint)."""

    def __init__(self, settings: Settings) -> None:
        import boto3  # only the S3 store needs boto3

        if not settings.s3_bucket:
            raise ConfigurationError("storage=s3 needs s3_bucket", field="s3_bucket")
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self.lifetime = settings.presign_seconds
        self.client: Any = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def uri(self, key: str) -> str:
        """The object's lasting ``s3://`` name (a run keeps this, not a link that expires)."""
        return f"s3://{self.bucket}/{self._key(key)}"

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_stream(self, key: str, stream: BinaryIO) -> int:
        self.client.upload_fileobj(stream, self.bucket, self._key(key))
        return self.size(key)

    def open(self, key: str) -> BinaryIO:
        try:
            body: BinaryIO = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except self.client.exceptions.NoSuchKey:
            raise NotFound(f"stored object {key!r} not found") from None
        return body

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError:
            return False
        return True

    def size(self, key: str) -> int:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError:
            raise NotFound(f"stored object {key!r} not found") from None
        return int(head["ContentLength"])

    def presign(self, key: str, method: Method, base_url: str) -> str:
        operation = "get_object" if method == "GET" else "put_object"
        url: str = self.client.generate_presigned_url(
            operation, Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=self.lifetime
        )
        return url


def open_storage(settings: Settings) -> Storage:
    """The store settings.storage names."""
    if settings.storage == "s3":
        return S3Storage(settings)
    return LocalStorage(settings.storage_dir, local_secret(settings), settings.presign_seconds)


# --- s3:// references made fetchable for engines

_clients: dict[tuple[str | None, str], Any] = {}
_clients_lock = threading.Lock()


def _s3_client(settings: Settings) -> Any:
    """One boto3 client per endpoint and region (clients are thread-safe and slow to make)."""
    try:
        import boto3
    except ImportError:
        raise ConfigurationError("s3:// datasets need boto3 (pip install 'flowdeck[s3]')") from None
    with _clients_lock:
        client = _clients.get((settings.s3_endpoint_url, settings.s3_region))
        if client is None:
            client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region)
            _clients[(settings.s3_endpoint_url, settings.s3_region)] = client
        return client


def s3_location(uri: str) -> tuple[str, str]:
    """Bucket and key of ``s3://bucket/key``; the key is taken literally, as the AWS CLI
    does (no percent-decoding; ``?`` and ``#`` are part of it)."""
    bucket, _, key = uri[len("s3://") :].partition("/") if uri.lower().startswith("s3://") else ("", "", "")
    if not bucket or not key:
        raise InvalidInput(f"not an s3://bucket/key URI: {uri[:200]!r}")
    return bucket, key


def presign_s3_uri(settings: Settings, uri: str) -> str:
    """A pre-signed GET URL (``presign_seconds`` long) for ``s3://bucket/key``, signed with
    flowdeck's S3 credentials and endpoint (``s3_endpoint_url``, ``s3_region``)."""
    bucket, key = s3_location(uri)
    client = _s3_client(settings)
    from botocore.exceptions import BotoCoreError  # installed with boto3

    try:
        url: str = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=settings.presign_seconds
        )
    except BotoCoreError as exc:  # e.g. no credentials: the engine could not be given a link
        raise ConfigurationError(f"cannot make a download link for {uri[:200]!r}: {exc}") from None
    return url


def _fetchable(settings: Settings, ref: dict[str, Any]) -> dict[str, Any]:
    uri = ref.get("uri")
    if not (isinstance(uri, str) and uri.lower().startswith("s3://")):
        return ref
    # A name from the key, not from the link (whose query string is a credential).
    name = ref.get("name") or s3_location(uri)[1].rstrip("/").rsplit("/", 1)[-1] or "dataset"
    return {**ref, "uri": presign_s3_uri(settings, uri), "name": name}


def _is_ref(value: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and isinstance(value.get("uri"), str)


def for_engine(settings: Settings, spec: RunSpec) -> RunSpec:
    """The spec a backend is given: ``s3://`` dataset references (``spec.dataset`` and
    top-level ``{"uri": ...}`` parameters) replaced by pre-signed URLs; all else as is."""
    dataset = _fetchable(settings, spec.dataset) if _is_ref(spec.dataset) else spec.dataset
    params = {k: _fetchable(settings, v) if _is_ref(v) else v for k, v in spec.workflow_params.items()}
    if dataset is spec.dataset and all(params[k] is spec.workflow_params[k] for k in params):
        return spec
    return replace(spec, dataset=dataset, workflow_params=params)


async def fetchable_spec(settings: Settings, spec: RunSpec) -> RunSpec:
    """:func:`for_engine` off the event loop when there is something to sign (boto3 may
    look for credentials); the spec itself, at once, when there is not."""
    refs = [spec.dataset, *spec.workflow_params.values()]
    if not any(_is_ref(ref) and ref["uri"].lower().startswith("s3://") for ref in refs):
        return spec
    return await asyncio.to_thread(for_engine, settings, spec)


def read_chunks(stream: BinaryIO) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(CHUNK):
            yield chunk


# --- local signed URLs


def local_secret(settings: Settings) -> bytes:
    """The HMAC key: the configured one, else one generated once and kept in data_dir."""
    if settings.storage_secret is not None:
        return settings.storage_secret.get_secret_value().encode()
    path = settings.data_dir / "storage-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: bytes, key: str, method: Method, expires: int) -> str:
    payload = _b64(json.dumps({"k": key, "m": method, "e": expires}, separators=(",", ":")).encode())
    signature = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


def verify_token(secret: bytes, token: str, method: Method) -> str:
    """The key a valid, unexpired token for ``method`` grants; NotFound otherwise (no hint why)."""
    payload, _, signature = token.partition(".")
    expected = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        raise NotFound("this link is not valid")
    try:
        claims = json.loads(_unb64(payload))
    except (ValueError, binascii.Error):
        raise NotFound("this link is not valid") from None
    if claims.get("m") != method:
        raise NotFound("this link is not valid")
    if int(claims.get("e", 0)) < time.time():
        raise NotFound("this link has expired")
    return check_key(str(claims["k"]))
