"""flowdeck.api.multipart: the forms HTTP clients send read as Starlette reads them, and anything
else refused with MalformedForm, never another exception."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import UploadFile
from starlette.requests import Request

from flowdeck.api.multipart import (
    _PLAIN_DISPOSITION,
    MAX_PART_HEADERS,
    FilePart,
    MalformedForm,
    parameters,
    parse_form,
)

CT = "multipart/form-data; boundary=XyZ"
Normal = list[tuple[str, Any]]


def _part(disposition: str, content: bytes, *headers: str) -> bytes:
    lines = [f"Content-Disposition: {disposition}", *headers]
    return b"--XyZ\r\n" + "\r\n".join(lines).encode() + b"\r\n\r\n" + content + b"\r\n"


def _parse(body: bytes, content_type: str = CT, max_files: int = 10, max_fields: int = 10) -> Normal:
    return _normal(parse_form(body, content_type, max_files=max_files, max_fields=max_fields))


def _normal(items: list[tuple[str, Any]]) -> Normal:
    return [(k, (v.filename, v.content, v.content_type) if isinstance(v, FilePart) else v) for k, v in items]


async def _starlette(body: bytes, content_type: str) -> Normal:
    """What Starlette's form parser (python-multipart) reads from the same body."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            raise AssertionError("read twice")
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"", "headers": []}
    scope["headers"] = [(b"content-type", content_type.encode())]
    form = await Request(scope, receive).form(max_files=1000, max_fields=1000)
    items: Normal = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            items.append((key, (value.filename, await value.read(), value.headers.get("content-type"))))
        else:
            items.append((key, value))
    await form.close()
    return items


# No backslashes in names: python-multipart misreads a quoted value that ends in one (httpx sends
# it escaped, "a\\", and python-multipart takes the closing quote for an escaped one);
# test_header_parameters holds ours to the RFC there. httpx leaves an empty filename out (the
# part is then a text field), and sends a form without files as x-www-form-urlencoded.
names = st.text(st.characters(blacklist_characters="\\", blacklist_categories=["Cs"]), min_size=1, max_size=20)
texts = st.text(max_size=50)
files = st.tuples(names, names, st.binary(max_size=200), st.sampled_from([None, "text/plain"]))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.lists(st.tuples(names, texts), max_size=5), uploads=st.lists(files, min_size=1, max_size=4))
def test_what_httpx_sends_is_read_as_starlette_reads_it(
    fields: list[tuple[str, str]], uploads: list[tuple[str, str, bytes, str | None]]
) -> None:
    data: dict[str, list[str]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    request = httpx.Request(
        "POST",
        "http://test/",
        data=data,
        files=[(name, (filename, content, kind)) for name, filename, content, kind in uploads],
    )
    body, content_type = request.read(), request.headers["content-type"]
    ours = parse_form(body, content_type, max_files=10, max_fields=10)
    assert _normal(ours) == asyncio.run(_starlette(body, content_type))
    assert len(ours) == len(fields) + len(uploads)


@settings(max_examples=500)
@given(body=st.binary(max_size=300))
def test_any_bytes_parse_or_are_malformed(body: bytes) -> None:
    with contextlib.suppress(MalformedForm):
        _read_from(body)


VALID = _part('form-data; name="a"', b"1") + _part('form-data; name="f"; filename="x.txt"', b"data") + b"--XyZ--\r\n"


@settings(max_examples=500)
@given(cut=st.integers(0, len(VALID)), insert=st.binary(max_size=8), drop=st.integers(0, 8))
def test_damaged_forms_parse_or_are_malformed(cut: int, insert: bytes, drop: int) -> None:
    with contextlib.suppress(MalformedForm):
        _read_from(VALID[:cut] + insert + VALID[cut + drop :])


def _read_from(body: bytes) -> None:
    """Parse; what is read must come from the body, within the limits."""
    items = parse_form(body, CT, max_files=3, max_fields=3)
    assert len(items) <= 6
    for _, value in items:
        assert (value.content if isinstance(value, FilePart) else value.encode()) in body


def test_fields_and_files_in_order() -> None:
    body = (
        _part('form-data; name="workflow_type"', b"CWL")
        + _part('form-data; name="workflow_attachment"; filename="dir/main.cwl"', b"a\r\nb\r\n", "Content-Type: x/y")
        + _part('form-data; name="tags"', b"")
        + b"--XyZ--\r\n"
    )
    assert _parse(body) == [
        ("workflow_type", "CWL"),
        ("workflow_attachment", ("dir/main.cwl", b"a\r\nb\r\n", "x/y")),
        ("tags", ""),
    ]


def test_preamble_padding_and_epilogue_are_skipped() -> None:
    body = b"preamble\r\n--XyZ \t\r\n" + b'Content-Disposition: form-data; name="a"\r\n\r\n1\r\n--XyZ--\r\nepilogue'
    assert _parse(body) == [("a", "1")]
    assert _parse(b"--XyZ--\r\n") == []


def test_boundary_look_alikes_inside_content_are_content() -> None:
    content = b"x\r\n--XyZabc\r\n--XyZ-not\r\n--Xy"
    assert _parse(_part('form-data; name="a"', content) + b"--XyZ--") == [("a", content.decode())]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "closing boundary"),
        (b"no boundary here", "closing boundary"),
        (_part('form-data; name="a"', b"1"), "closing boundary"),  # never closed
        (b'--XyZ\nContent-Disposition: form-data; name="a"\n\n1\n--XyZ--\n', "closing boundary"),  # LF only
        (b"--XyZ junk\r\n\r\n\r\n--XyZ--", "must end right after the boundary"),
        (_part("form-data", b"1") + b"--XyZ--", 'needs a "name"'),
        (_part('form-data; filename="f"', b"1") + b"--XyZ--", 'needs a "name"'),
        (b"--XyZ\r\n\r\n1\r\n--XyZ--", "needs a Content-Disposition"),
        (b'--XyZ\r\nContent-Disposition form-data; name="a"\r\n\r\n1\r\n--XyZ--', "'Name: value'"),
        (b'--XyZ\r\n Content-Disposition: form-data; name="a"\r\n\r\n1\r\n--XyZ--', "'Name: value'"),
        (b"--XyZ\r\nX-Long: " + b"a" * MAX_PART_HEADERS + b"\r\n\r\n1\r\n--XyZ--", "within"),
        (_part('form-data; name="a"', b"\xff\xfe") + b"--XyZ--", "form field 'a' is not valid utf-8"),
        (b'--XyZ\r\nContent-Disposition: form-data; name="\xff"\r\n\r\n1\r\n--XyZ--', "not valid utf-8"),
    ],
)
def test_malformed_forms_say_why(body: bytes, message: str) -> None:
    with pytest.raises(MalformedForm, match=message):
        _parse(body)


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ("multipart/form-data", "boundary"),
        ("multipart/form-data; boundary=", "boundary"),
        ("multipart/form-data; boundary=" + "b" * 257, "boundary"),
        ("multipart/form-data; boundary=bé", "boundary"),
        ("multipart/mixed; boundary=XyZ", "not multipart/form-data"),
        ("multipart/form-data; boundary=XyZ; charset=no-such-charset", "unknown charset"),
    ],
)
def test_content_types_without_a_usable_boundary_are_refused(content_type: str, message: str) -> None:
    with pytest.raises(MalformedForm, match=message):
        _parse(b"--XyZ--", content_type)


def test_quoted_boundary_and_declared_charset() -> None:
    body = _part('form-data; name="a"', "é".encode("latin-1")) + b"--XyZ--"
    assert _parse(body, 'multipart/form-data; boundary="XyZ"; charset=latin-1') == [("a", "é")]


def test_files_and_fields_are_counted_separately() -> None:
    field, upload = _part('form-data; name="a"', b"1"), _part('form-data; name="f"; filename="x"', b"1")
    assert len(_parse(field * 2 + upload * 2 + b"--XyZ--", max_files=2, max_fields=2)) == 4
    with pytest.raises(MalformedForm, match="at most 2 files"):
        _parse(upload * 3 + b"--XyZ--", max_files=2)
    with pytest.raises(MalformedForm, match="at most 2 fields"):
        _parse(field * 3 + b"--XyZ--", max_fields=2)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('form-data; name="a"; filename="b c.txt"', ("form-data", {"name": "a", "filename": "b c.txt"})),
        ('Form-Data;NAME="a;b"', ("form-data", {"name": "a;b"})),
        ('form-data; name="a\\"b\\\\c"', ("form-data", {"name": 'a"b\\c'})),
        ('form-data; name="C:\\dir"', ("form-data", {"name": "C:\\dir"})),  # a lone backslash stays
        ('form-data; name="ends in \\\\"; filename="f"', ("form-data", {"name": "ends in \\", "filename": "f"})),
        ("form-data; name=plain ; other = x", ("form-data", {"name": "plain", "other": "x"})),
        ("form-data; name*=utf-8''x; name=y; flag", ("form-data", {"name": "y"})),
        ('form-data; name="never closed; filename=x', ("form-data", {"name": "never closed; filename=x"})),
        ("form-data", ("form-data", {})),
    ],
)
def test_header_parameters(header: str, expected: tuple[str, dict[str, str]]) -> None:
    assert parameters(header) == expected


def test_a_windows_path_as_filename_keeps_its_last_part() -> None:
    body = _part('form-data; name="f"; filename="C:\\\\Users\\\\me\\\\main.cwl"', b"x") + b"--XyZ--"
    assert _parse(body) == [("f", ("main.cwl", b"x", None))]


plain = st.text(st.characters(blacklist_characters='"\\\r\n', blacklist_categories=["Cs"]), max_size=30)


@given(name=plain, filename=st.none() | plain)
def test_the_plain_disposition_shortcut_reads_what_the_parameter_scanner_reads(name: str, filename: str | None) -> None:
    disposition = f'form-data; name="{name}"' + ("" if filename is None else f'; filename="{filename}"')
    assert _PLAIN_DISPOSITION.fullmatch(disposition)  # the shortcut is taken
    _, scanned = parameters(disposition)
    body = f"--XyZ\r\nContent-Disposition: {disposition}\r\n\r\nv\r\n--XyZ--".encode()
    expected = (scanned["name"], "v" if filename is None else (scanned["filename"], b"v", None))
    assert _parse(body) == [expected]
