"""multipart/form-data (RFC 7578) read from a body held in memory.

WES submissions are small forms whose files end up in memory anyway (they are stored with
the run), so the body is read whole, within the upload limit, and split with ``bytes.find``:
each byte is looked at by C code, once. python-multipart's streaming parser, which Starlette
uses, runs Python callbacks per header and per chunk and spools each file to a temporary
file: ~87 µs of the benchmark's six-part form against ~19 µs here.

Every refusal is :class:`MalformedForm`. The work is linear in the body's size, headers are
bounded per part and parts per form.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

# RFC 2046 allows 70; python-multipart takes up to 256, and so do we.
MAX_BOUNDARY = 256
# A part's header block (Content-Disposition and Content-Type) is a few hundred bytes.
MAX_PART_HEADERS = 16 * 1024
_CRLF = b"\r\n"
# The escapes of a quoted parameter value. Other backslashes stay: old browsers send Windows
# paths unescaped, as python-multipart reads them.
_QUOTED_PAIR = re.compile(r'\\([\\"])')
# What browsers and client libraries send, read without the general parameter scanner (a
# fifth of the parse). Quoted values with no escapes: nothing to undo.
_PLAIN_DISPOSITION = re.compile(r'form-data; name="([^"\\]*)"(?:; filename="([^"\\]*)")?')


class MalformedForm(ValueError):
    """The body is not a multipart/form-data form this service reads."""


@dataclass(frozen=True, slots=True)
class FilePart:
    """A part with a filename: an uploaded file."""

    filename: str
    content: bytes
    content_type: str | None


FormItem = tuple[str, str | FilePart]


def parameters(header: str) -> tuple[str, dict[str, str]]:
    """A header value's first word, lower-cased, and its ``; key=value`` parameters.

    Quoted values lose their quotes and their ``\\\\`` and ``\\"`` escapes; RFC 5987 ``key*``
    parameters are ignored (RFC 7578 §4.2 forbids them in forms). One pass over the text: a
    quote that is never closed runs to the end.
    """
    value, _, rest = header.partition(";")
    found: dict[str, str] = {}
    position, end = 0, len(rest)
    while position < end:
        equals, semicolon = rest.find("=", position), rest.find(";", position)
        if equals < 0:
            break
        if 0 <= semicolon < equals:  # a parameter without a value
            position = semicolon + 1
            continue
        key = rest[position:equals].strip(" \t").lower()
        start = equals + 1
        while start < end and rest[start] in " \t":
            start += 1
        if start < end and rest[start] == '"':
            close = _closing_quote(rest, start + 1)
            raw = _QUOTED_PAIR.sub(r"\1", rest[start + 1 : close])
            semicolon = rest.find(";", close)
        else:
            raw = rest[start : semicolon if semicolon >= 0 else end].strip(" \t")
        if key and "*" not in key:
            found[key] = raw
        position = end if semicolon < 0 else semicolon + 1
    return value.strip(" \t").lower(), found


def _closing_quote(text: str, start: int) -> int:
    """The index of the quote that closes a quoted string opened before ``start`` (or the end)."""
    position = start
    while (quote := text.find('"', position)) >= 0:
        escapes = 0
        while quote - 1 - escapes >= start and text[quote - 1 - escapes] == "\\":
            escapes += 1
        if escapes % 2 == 0:
            return quote
        position = quote + 1
    return len(text)


def boundary_and_charset(content_type: str) -> tuple[bytes, str]:
    """The form's boundary and its text charset (UTF-8 unless the Content-Type names one)."""
    kind, params = parameters(content_type)
    if kind != "multipart/form-data":
        raise MalformedForm("the body is not multipart/form-data")
    boundary = params.get("boundary", "")
    if not 0 < len(boundary) <= MAX_BOUNDARY or not boundary.isascii() or "\r" in boundary or "\n" in boundary:
        raise MalformedForm(f"the Content-Type needs a boundary of 1 to {MAX_BOUNDARY} ASCII characters")
    charset = params.get("charset", "utf-8")
    try:
        return boundary.encode("ascii"), codecs.lookup(charset).name
    except LookupError:
        raise MalformedForm(f"unknown charset {charset!r}") from None


def parse_form(body: bytes, content_type: str, *, max_files: int, max_fields: int) -> list[FormItem]:
    """The form's items in order: (name, text) for fields, (name, FilePart) for files."""
    boundary, charset = boundary_and_charset(content_type)
    delimiter = b"--" + boundary
    position = _first_delimiter(body, delimiter)
    items: list[FormItem] = []
    files = fields = 0
    while True:
        # After a delimiter: "--" closes the form (an epilogue may follow); otherwise optional
        # transport padding and the line's end, then the part's headers.
        if body.startswith(b"--", position):
            return items
        line_end = body.find(_CRLF, position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise MalformedForm("a boundary line must end right after the boundary")
        headers_start = line_end + 2
        if body.startswith(_CRLF, headers_start):
            headers, content_start = b"", headers_start + 2
        else:
            headers_end = body.find(b"\r\n\r\n", headers_start, headers_start + MAX_PART_HEADERS + 4)
            if headers_end < 0:
                raise MalformedForm(f"a part's headers must end with an empty line within {MAX_PART_HEADERS} bytes")
            headers, content_start = body[headers_start:headers_end], headers_end + 4
        content_end = _next_delimiter(body, delimiter, content_start)
        item = _item(headers, body[content_start:content_end], charset)
        if isinstance(item[1], FilePart):
            files += 1
            if files > max_files:
                raise MalformedForm(f"a form may have at most {max_files} files")
        else:
            fields += 1
            if fields > max_fields:
                raise MalformedForm(f"a form may have at most {max_fields} fields")
        items.append(item)
        position = content_end + 2 + len(delimiter)


def _first_delimiter(body: bytes, delimiter: bytes) -> int:
    """Where the line after the first delimiter begins (a preamble before it is skipped)."""
    if body.startswith(delimiter) and _closes_line(body, len(delimiter)):
        return len(delimiter)
    return _next_delimiter(body, delimiter, 0) + 2 + len(delimiter)


def _next_delimiter(body: bytes, delimiter: bytes, start: int) -> int:
    """Where the CRLF of the next delimiter line begins."""
    marker = _CRLF + delimiter
    found = body.find(marker, start)
    # "--boundaryX" is not a delimiter: the boundary must be followed by "--", padding or CRLF.
    while found >= 0 and not _closes_line(body, found + len(marker)):
        found = body.find(marker, found + 1)
    if found < 0:
        raise MalformedForm("the form does not end with its closing boundary")
    return found


def _closes_line(body: bytes, at: int) -> bool:
    return body[at : at + 2] in (b"--", _CRLF) or body[at : at + 1] in (b" ", b"\t")


def _item(headers: bytes, content: bytes, charset: str) -> FormItem:
    disposition: str | None = None
    content_type: str | None = None
    for line in headers.split(_CRLF) if headers else ():
        header, colon, value = line.partition(b":")
        if not colon or not header or header != header.strip():
            raise MalformedForm("a part's header lines must be 'Name: value'")
        lowered = header.lower()
        if lowered == b"content-disposition":
            disposition = _text(value.strip(b" \t"), "utf-8", "a part's Content-Disposition")
        elif lowered == b"content-type":
            content_type = _text(value.strip(b" \t"), "utf-8", "a part's Content-Type")
    if disposition is None:
        raise MalformedForm("every part needs a Content-Disposition header")
    if simple := _PLAIN_DISPOSITION.fullmatch(disposition):
        name, filename = simple.group(1), simple.group(2)
    else:
        _, params = parameters(disposition)
        if "name" not in params:
            raise MalformedForm('a part\'s Content-Disposition needs a "name"')
        name, filename = params["name"], params.get("filename")
    if filename is None:
        return name, _text(content, charset, f"form field {name!r}")
    if filename[1:3] == ":\\" or filename.startswith("\\\\"):
        filename = filename.rsplit("\\", 1)[-1]  # old browsers send the whole Windows path
    return name, FilePart(filename, content, content_type)


def _text(value: bytes, charset: str, what: str) -> str:
    try:
        return value.decode(charset)
    except UnicodeDecodeError:
        raise MalformedForm(f"{what} is not valid {charset}") from None
