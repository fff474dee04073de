"""What every client command shares: the server and credentials, one request, the error and the
printers of a list or one object (docs/cli.md)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowdeck.cli.client_config import load_config, save_config
from flowdeck.cli.client_errors import ClientError, UsageError
from flowdeck.cli.output import emit

if TYPE_CHECKING:
    # httpx is imported when a request is made: ``build_parser`` imports the client modules for every
    # command, and httpx (with its own CLI's click, rich and pygments) would stay in the API server's
    # memory for nothing (~5 MB).
    import httpx

__all__ = ["ClientError", "UsageError"]  # re-exported: client modules take every shared name from here


WES = "/ga4gh/wes/v1"
TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"}
DEFAULT_SERVER = "http://127.0.0.1:8000"


def server_url(args: argparse.Namespace) -> str:
    """``--server``, ``FLOWDECK_SERVER``, the saved login's server, or the local default."""
    given = getattr(args, "server", None) or os.environ.get("FLOWDECK_SERVER")
    return str(given or load_config().get("server") or DEFAULT_SERVER).rstrip("/")


def _credentials(server: str) -> tuple[dict[str, str], tuple[str, str] | None]:
    if token := os.environ.get("FLOWDECK_TOKEN"):
        return {"Authorization": f"Bearer {token}"}, None
    if user := os.environ.get("FLOWDECK_USER"):
        return {}, (user, os.environ.get("FLOWDECK_PASSWORD", ""))
    saved = load_config()
    # The saved token goes only to the server it was made for, never to one named by --server.
    if saved.get("token") and str(saved.get("server", "")).rstrip("/") == server:
        return {"Authorization": f"Bearer {_current_token(saved)}"}, None
    return {}, None


def _current_token(saved: dict[str, Any]) -> str:
    """The saved token, renewed first when it came from ``login --oidc`` and has expired."""
    from flowdeck.cli import client_tokens

    if client_tokens.expired(saved):
        saved = client_tokens.fresh_token(saved)
        save_config(saved)
    return str(saved["token"])


def http_client(args: argparse.Namespace) -> httpx.Client:
    import httpx

    server = server_url(args)
    headers, auth = _credentials(server)
    # Output and log links answer 307 with the store's pre-signed URL (docs/storage.md); httpx
    # drops the credentials when a redirect leaves the server's origin.
    return httpx.Client(base_url=server, headers=headers, auth=auth, timeout=30, follow_redirects=True)


def checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            body = response.json()
            message = body.get("msg") or body.get("detail") or response.text
        except ValueError:
            message = response.text
        raise ClientError(f"{response.status_code}: {message}")
    return None if response.status_code == 204 else response.json()


def call(args: argparse.Namespace, method: str, path: str, **request: Any) -> Any:
    """One request to the server; its answer's JSON (None for 204; an error is a ClientError)."""
    with http_client(args) as client:
        return checked(client.request(method, path, **request))


def show_page(args: argparse.Namespace, path: str, key: str, columns: list[str], **params: Any) -> int:
    """A list command: one page of ``path`` (``--limit`` rows; the filters given), its ``key`` rows
    in ``columns``, and the hint for the next page."""
    given = {k: v for k, v in params.items() if v is not None}
    body = call(args, "GET", path, params={**given, "page_size": args.limit})
    emit(args, body, body[key], columns, more=body.get("next_page_token"))
    return 0


def show_one(args: argparse.Namespace, method: str, path: str, columns: list[str], **request: Any) -> Any:
    """A command about one object: the answer as a listing (or whole for json/yaml); returned."""
    body = call(args, method, path, **request)
    emit(args, body, [body], columns, detail=True)
    return body


def json_argument(text: str, what: str) -> Any:
    """``text`` as JSON, or the JSON in the file it names (a bad one is a UsageError)."""
    path = Path(text)
    source = path.read_text() if not text.lstrip().startswith(("{", "[")) and path.is_file() else text
    try:
        return json.loads(source)
    except ValueError as exc:
        raise UsageError(f"{what} is neither JSON nor a JSON file: {exc}") from None
