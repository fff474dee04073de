"""Input staging: the files a run names by URI are copied into its folder before its engine starts.

A local engine (cwltool, toil, miniwdl, snakemake) reads only its run's folder and has neither
flowdeck's S3 credentials nor a way through the SSRF policy. So the worker fetches every input a
run names as ``s3://`` (with the service's S3 settings), ``https://`` (through the SSRF policy) or
``file:///`` (inside ``dataset_file_roots``) into ``attachments/staged/<n>/<name>`` and hands the
engine that local path, recording each file's size and SHA-256 as an ``input_staged`` run event.
Which values are inputs (docs/staging.md): a CWL ``File``'s ``location``/``path``; for every other
workflow type (WDL, Snakemake config, catalog pipeline parameters), any string value with one of
those schemes. ``dataset:<id>`` names a registered dataset: :mod:`flowdeck.services.datasets.inputs`
resolves it (the datasets' visibility rule) into a :class:`Source`, and it is staged from the
dataset's stored file, or from its URI exactly as that URI given directly would be.

At submit, :func:`check` refuses what is knowable then: an unknown scheme, an ``s3://`` object
outside the prefixes granted to the run's research group (``staging_s3_prefixes``), a host the
SSRF policy forbids, a ``file://`` path outside the roots. At dispatch, :func:`fetch` raises
InvalidInput for what is not (a missing object): the run fails with that reason, never retried.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from flowdeck.domain.runs import DATASET_INPUT, RunSpec
from flowdeck.errors import Forbidden, InvalidInput, NotFound, Problem, ValidationFailed
from flowdeck.services.core import url_policy
from flowdeck.services.core.storage import CHUNK, _s3_client, open_storage, s3_location
from flowdeck.settings import Settings

STAGED = "staged"  # the folder under a run's attachments that staged inputs go to
SCHEMES = ("s3://", "https://", "file:///")
DATASET = DATASET_INPUT  # dataset:<id>, the id GET /datasets answers
EVENT_KIND = "input_staged"
_Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Source:
    """The dataset a ``dataset:<id>`` input names: its stored file, else its URI."""

    dataset_id: str
    filename: str
    storage_key: str | None = None
    uri: str | None = None


@dataclass(frozen=True)
class Input:
    """One value of a run's parameters that names a file to stage."""

    at: _Path  # where it is in workflow_params
    uri: str
    number: int
    source: Source | None = None  # set for dataset:<id> once resolved

    @property
    def dataset_id(self) -> str | None:
        """The id a ``dataset:<id>`` value names; None for a URI."""
        return self.uri[len(DATASET) :] if self.uri.startswith(DATASET) else None

    @property
    def pointer(self) -> str:
        """The JSON pointer of the value (what error messages name)."""
        return "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in self.at)

    @property
    def relative(self) -> str:
        """Its path under the run's attachments once staged."""
        if self.source is not None:
            return f"{STAGED}/{self.number}/{self.source.filename}"
        name = unquote(urlsplit(self.uri).path).rstrip("/").rsplit("/", 1)[-1] or "input"
        return f"{STAGED}/{self.number}/{name}"


@dataclass(frozen=True)
class Staged:
    """A staged input: where it went, its size and SHA-256."""

    input: Input
    path: Path
    size: int
    sha256: str

    def describe(self) -> str:
        """The run event's text."""
        return (
            f"{self.input.pointer}: {self.input.uri} -> {self.input.relative} ({self.size} bytes, sha256:{self.sha256})"
        )


def schemes(settings: Settings) -> list[str]:
    """The input schemes runs on local engines may use here (service-info says these): https
    always (the SSRF policy decides which hosts), s3 once a prefix is granted, file once roots
    are configured."""
    return [
        "https",
        *(["s3"] if settings.staging_s3_prefixes else []),
        *(["file"] if settings.dataset_file_roots else []),
    ]


def find(spec: RunSpec) -> list[Input]:
    """The inputs of ``spec`` to stage, in parameter order."""
    found = _cwl(spec.workflow_params, ()) if spec.workflow_type == "CWL" else _strings(spec.workflow_params, ())
    return [Input(at, uri, number) for number, (at, uri) in enumerate(found)]


def in_values(params: Any) -> list[Input]:
    """Every staged value of plain parameters (a request's items, before their runs exist)."""
    return [Input(at, uri, number) for number, (at, uri) in enumerate(_strings(params, ()))]


def _cwl(node: Any, at: _Path) -> list[tuple[_Path, str]]:
    if isinstance(node, list):
        return [hit for i, item in enumerate(node) for hit in _cwl(item, (*at, i))]
    if not isinstance(node, dict):
        return []
    if node.get("class") in {"File", "Directory"}:
        for key in ("location", "path"):
            value = node.get(key)
            if isinstance(value, str) and _stageable(value):
                if node["class"] == "Directory":
                    raise _refused(at, f"Directory inputs are not staged from {value[:200]!r}; attach the files")
                return [((*at, key), value)]
        return []
    return [hit for key, value in node.items() for hit in _cwl(value, (*at, key))]


def _strings(node: Any, at: _Path) -> list[tuple[_Path, str]]:
    if isinstance(node, str):
        return [(at, node)] if _stageable(node) else []
    if isinstance(node, list):
        return [hit for i, item in enumerate(node) for hit in _strings(item, (*at, i))]
    if isinstance(node, dict):
        return [hit for key, value in node.items() for hit in _strings(value, (*at, key))]
    return []


def _stageable(value: str) -> bool:
    return value.lower().startswith(SCHEMES) or value.startswith(DATASET)


def _refused(at: _Path, message: str) -> ValidationFailed:
    pointer = Input(at, "", 0).pointer
    return ValidationFailed(f"input {pointer}: {message}", [Problem(pointer, message, "staging")])


def check(settings: Settings, inputs: list[Input], group: str | None, *, resolve: bool = True) -> None:
    """Refuse at submit what will not stage: Forbidden for an ``s3://`` object the research group
    may not use, ValidationFailed otherwise. ``resolve``: check ``https://`` hosts against the
    SSRF policy (blocking: it resolves them; call it off the event loop)."""
    for item in map(_as_uri, inputs):
        scheme = item.uri.split("://", 1)[0].lower()
        if item.source is not None:
            continue  # a dataset's stored file: its visibility was the grant
        if scheme == "s3":
            _check_s3(settings, item, group)
        elif scheme == "file":
            local_file(settings, item)
        elif resolve:
            try:
                url_policy.check_reference(settings, item.uri, what=f"input {item.pointer}")
            except InvalidInput as exc:
                raise _refused(item.at, exc.detail) from None


def _as_uri(item: Input) -> Input:
    """A resolved dataset input with a URI as that URI given directly (the same checks and fetch);
    one whose file flowdeck stores as is."""
    if item.dataset_id is None:
        return item
    if item.source is None:
        raise _refused(item.at, f"dataset {item.dataset_id[:64]} was not resolved")  # a caller's bug
    if item.source.storage_key is None and item.source.uri is not None:
        return replace(item, uri=item.source.uri, source=None)
    return item


def _check_s3(settings: Settings, item: Input, group: str | None) -> None:
    try:
        s3_location(item.uri)
    except InvalidInput as exc:
        raise _refused(item.at, exc.detail) from None
    granted = [*settings.staging_s3_prefixes.get("*", []), *settings.staging_s3_prefixes.get(group or "", [])]
    if not any(item.uri.startswith(prefix) for prefix in granted):
        whose = f"research group {group!r}" if group else "runs without a research group"
        raise Forbidden(
            f"input {item.pointer}: {item.uri[:200]!r} is outside the s3:// prefixes {whose} may use "
            f"({', '.join(granted) or 'none'}; staging_s3_prefixes)",
            pointer=item.pointer,
        )


def local_file(settings: Settings, item: Input) -> Path:
    """The file a ``file:///`` input names, if it lies inside ``dataset_file_roots``."""
    roots = [root.resolve() for root in settings.dataset_file_roots]
    path = Path(unquote(urlsplit(item.uri).path)).resolve()
    if not any(path.is_relative_to(root) for root in roots):
        where = ", ".join(map(str, roots)) if roots else "nowhere: no dataset_file_roots are configured"
        raise _refused(item.at, f"file:// inputs must lie under {where}")
    return path


def localized(spec: RunSpec, inputs: list[Input]) -> RunSpec:
    """``spec`` with each input replaced by the absolute path it is (or will be) staged to."""
    params: Any = spec.workflow_params
    for item in inputs:
        params = _replaced(params, item.at, str(spec.attachments_dir / item.relative))
    return replace(spec, workflow_params=params)


def _replaced(node: Any, at: _Path, value: str) -> Any:
    if not at:
        return value
    head, rest = at[0], at[1:]
    if isinstance(node, list) and isinstance(head, int):
        return [_replaced(item, rest, value) if i == head else item for i, item in enumerate(node)]
    assert isinstance(node, dict)
    return {key: _replaced(item, rest, value) if key == head else item for key, item in node.items()}


def placeholders(spec: RunSpec, inputs: list[Input]) -> None:
    """Empty files where the inputs will be staged, so an engine's submit-time checks (which
    want each input file to exist) pass; :func:`fetch` overwrites them at dispatch."""
    for item in inputs:
        path = spec.attachments_dir / item.relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def fetch(settings: Settings, spec: RunSpec, inputs: list[Input], group: str | None) -> list[Staged]:
    """Copy every input into the run's attachments (blocking). InvalidInput, naming the input,
    when one cannot be read: the run then fails with that reason."""
    check(settings, inputs, group, resolve=False)  # grants may have changed since submit
    return [_fetch_one(settings, spec.attachments_dir / item.relative, item) for item in inputs]


def _fetch_one(settings: Settings, target: Path, given: Input) -> Staged:
    target.parent.mkdir(parents=True, exist_ok=True)
    item = _as_uri(given)
    scheme = item.uri.split("://", 1)[0].lower()
    if item.source is not None:
        size, digest = _fetch_stored(settings, target, item, item.source)
    elif scheme == "s3":
        with _s3_object(settings, item) as body:
            size, digest = _copy(body, target)
    elif scheme == "file":
        source = local_file(settings, item)
        try:
            with source.open("rb") as body:
                size, digest = _copy(body, target)
        except OSError as exc:
            raise InvalidInput(f"input {item.pointer}: {item.uri[:200]!r} cannot be read: {exc.strerror}") from None
    else:
        body_bytes = url_policy.fetch(
            settings, item.uri, what=f"input {item.pointer}", max_bytes=settings.staging_max_https_bytes
        )
        target.write_bytes(body_bytes)
        size, digest = len(body_bytes), hashlib.sha256(body_bytes).hexdigest()
    return Staged(given, target, size, digest)


def _fetch_stored(settings: Settings, target: Path, item: Input, source: Source) -> tuple[int, str]:
    assert source.storage_key is not None
    try:
        body = open_storage(settings).open(source.storage_key)
    except NotFound:
        raise InvalidInput(f"input {item.pointer}: dataset {source.dataset_id}'s stored file is gone") from None
    with contextlib.closing(body):
        return _copy(body, target)


@contextlib.contextmanager
def _s3_object(settings: Settings, item: Input) -> Iterator[BinaryIO]:
    """The body of an ``s3://`` input, or InvalidInput saying why it cannot be read."""
    from botocore.exceptions import BotoCoreError, ClientError  # installed with boto3

    bucket, key = s3_location(item.uri)
    try:
        body: Any = _s3_client(settings).get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        why = "does not exist" if code in {"NoSuchKey", "404", "NoSuchBucket"} else f"cannot be read ({code})"
        raise InvalidInput(f"input {item.pointer}: {item.uri[:200]!r} {why}") from None
    except BotoCoreError as exc:
        raise InvalidInput(f"input {item.pointer}: {item.uri[:200]!r} cannot be read: {exc}") from None
    with contextlib.closing(body):
        yield body


def _copy(source: BinaryIO, target: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    partial = target.with_name(target.name + ".partial")
    with partial.open("wb") as out:
        for chunk in _chunks(source):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    partial.replace(target)
    return size, digest.hexdigest()


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    while chunk := source.read(CHUNK):
        yield chunk


def remove_placeholders(spec: RunSpec) -> None:
    """Drop the submit-time placeholders (the run's folder stays as the submit left it)."""
    shutil.rmtree(spec.attachments_dir / STAGED, ignore_errors=True)
