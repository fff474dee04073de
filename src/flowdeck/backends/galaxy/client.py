"""A thin, error-translating layer over BioBlend for the Galaxy backend.

Every Galaxy call goes through :meth:`GalaxyApi.call` or the raw helpers, which
turn what can go wrong into flowdeck's errors:

* connection refused, timeouts, HTTP 5xx/408/429 → :class:`EngineUnavailable` (transient)
* HTTP 401/403 → :class:`EngineError` saying the API key was refused
* any other 4xx → :class:`EngineError` carrying Galaxy's own ``err_msg``

The API key travels in a header and is scrubbed from every message, so it never
reaches a log or an error body.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from flowdeck.errors import EngineError, EngineUnavailable

if TYPE_CHECKING:
    import requests
    import urllib3

# BioBlend and requests (with aiohttp and friends, ~17 MB) are imported where a Galaxy is
# first talked to: every process loads this backend's module to ask whether it is configured,
# and most deployments' API servers never call Galaxy themselves.

T = TypeVar("T")
TRANSIENT_STATUS = frozenset({408, 425, 429})
# ids per jobs_summary call: ~36 URL bytes per id keeps the request line far below
# the 16 KiB that uvicorn/h11 accept.
SUMMARY_CHUNK = 150
LISTING_PAGE = 100  # Galaxy's ceiling for one page of /api/invocations
LISTING_MAX_PAGES = 10


class GalaxyApi:
    """One Galaxy server as one user (thread-safe).

    BioBlend sends each request with a new ``requests`` session, so every call opens a
    new connection. Its GETs go through one pooled session instead, with room for
    ``connections`` kept-alive connections: ``requests``' default pool keeps 10 per
    host, fewer than the sync concurrency, and the rest would be opened and closed on
    every call. :meth:`get` (every read of sync) goes to urllib3, which ``requests`` is
    built on, directly: half the CPU of a call through ``requests`` (bench/NOTES.md),
    with the same proxies, CA bundle, timeout and redirects."""

    def __init__(self, url: str, api_key: str, timeout: float, connections: int = 10) -> None:
        from bioblend.galaxy import GalaxyInstance

        self.url = url.rstrip("/")
        self._key = api_key
        self.gi = GalaxyInstance(self.url, key=api_key)
        self.gi.timeout = timeout
        self.session = pooled_session(connections, self.url)
        self.gi.make_get_request = self._get  # type: ignore[method-assign]
        self._pool = direct_pool(self.session, connections, self.url, self.gi.verify)
        self._headers = {k: v if isinstance(v, str) else v.decode() for k, v in self.gi.json_headers.items() if v}
        self._lock = threading.Lock()
        self._user_id: str | None = None

    def _get(self, url: str, **kwargs: Any) -> requests.Response:
        """BioBlend's ``make_get_request`` on the pooled session."""
        kwargs.setdefault("timeout", self.gi.timeout)
        # the session's CA bundle (from the environment) unless BioBlend was told otherwise
        kwargs.setdefault("verify", self.session.verify if self.gi.verify is True else self.gi.verify)
        headers = {k: v for k, v in self.gi.json_headers.items() if v is not None}
        return self.session.get(url, headers=headers, **kwargs)

    def close(self) -> None:
        self.session.close()
        self._pool.clear()

    # --- error translation
    def call(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a BioBlend call, translating its failures (see module docstring)."""
        import requests
        import urllib3
        from bioblend import ConnectionError as BioblendConnectionError

        try:
            return fn(*args, **kwargs)
        except BioblendConnectionError as exc:
            raise self._translate(action, exc.status_code, exc.body, str(exc.args[0])) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise EngineUnavailable(
                self._scrub(f"Galaxy at {self.url} unreachable ({action}): {type(exc).__name__}")
            ) from None

    def get(self, action: str, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``/api/<path>`` and decode the JSON answer."""

        from bioblend import ConnectionError as BioblendConnectionError

        def fetch() -> Any:
            timeout = self.gi.timeout
            response = self._pool.request(
                "GET", f"{self.gi.url}/{path}", fields=params, headers=self._headers, timeout=timeout, retries=False
            )
            if response.status != 200:
                raise BioblendConnectionError("GET failed", response.data.decode(errors="replace"), response.status)
            return json.loads(response.data)

        return self.call(action, fetch)

    def post(self, action: str, path: str, payload: dict[str, Any]) -> Any:
        """POST JSON to ``/api/<path>``."""
        return self.call(action, self.gi.make_post_request, f"{self.gi.url}/{path}", payload=payload)

    def _translate(self, action: str, status: int | None, body: Any, fallback: str) -> EngineError:
        message = self._scrub(_galaxy_message(body) or fallback)
        if status is None or status >= 500 or status in TRANSIENT_STATUS:
            return EngineUnavailable(
                f"Galaxy could not {action} (HTTP {status or 'no answer'}): {message}", galaxy_status=status
            )
        if status in (401, 403) and "key" in message.lower():
            return EngineError(
                f"Galaxy at {self.url} refused flowdeck's API key (HTTP {status}): {message}; "
                "check FLOWDECK_GALAXY_API_KEY",
                galaxy_status=status,
            )
        return EngineError(f"Galaxy refused to {action} (HTTP {status}): {message}", galaxy_status=status)

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    # --- lookups used by submit
    def user_id(self) -> str:
        """The id of the user the API key belongs to (cached)."""
        with self._lock:
            if self._user_id is None:
                self._user_id = str(self.get("read the current user", "users/current")["id"])
            return self._user_id

    def find_history(self, name: str) -> str | None:
        """The id of the newest non-deleted history named exactly ``name``."""
        found = self.get("find the run's history", "histories", {"q": "name-eq", "qv": name})
        return str(found[0]["id"]) if found else None

    def find_workflows(self, name: str) -> list[dict[str, Any]]:
        """The user's workflows named exactly ``name`` (Galaxy's search is a substring match)."""
        found = self.get("list workflows", "workflows", {"search": f'name:"{name}"'})
        return [wf for wf in found if wf.get("name") == name]

    # --- batched state for sync
    def active_invocations(self, max_items: int) -> tuple[dict[str, str], bool]:
        """States of the user's top-level invocations that are still ``new``/``ready``,
        in pages of GET /api/invocations; ``True`` when the listing is complete. Runs past
        ``ready`` are absent, so a short listing says most runs moved on at a glance."""
        states: dict[str, str] = {}
        params: dict[str, Any] = {
            "user_id": self.user_id(),
            "include_terminal": False,
            "include_nested_invocations": False,
            "limit": LISTING_PAGE,
            "view": "collection",
        }
        pages = min(LISTING_MAX_PAGES, max_items // LISTING_PAGE + 1)
        for offset in range(0, pages * LISTING_PAGE, LISTING_PAGE):
            page = self.get("list invocations", "invocations", {**params, "offset": offset})
            states.update({str(inv["id"]): str(inv["state"]) for inv in page})
            if len(page) < LISTING_PAGE:
                return states, True
        return states, False

    def jobs_summaries(self, history_id: str, invocation_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Job-state summaries (subworkflows included) of many invocations in one call:
        GET /api/histories/{any history}/jobs_summary?ids=…&types=WorkflowInvocation,…"""
        ids = list(invocation_ids)
        params = {"ids": ",".join(ids), "types": ",".join(["WorkflowInvocation"] * len(ids))}
        found = self.get("read job summaries", f"histories/{history_id}/jobs_summary", params)
        return {str(item["id"]): item for item in found if item}


def pooled_session(connections: int, url: str) -> requests.Session:
    """A session keeping up to ``connections`` connections per host alive. Never blocking
    on a full pool: callers bound their own concurrency.

    The environment's proxies and CA bundle for ``url`` are read once, here: a session that
    trusts the environment reads them (and ``~/.netrc``) again on every request, which was
    most of a sync call's CPU (bench/NOTES.md). Galaxy takes its key in a header, never
    from ``.netrc``."""
    import os

    import requests
    import requests.adapters
    import requests.utils

    session = requests.Session()
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(10, connections))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def direct_pool(session: requests.Session, connections: int, url: str, verify: Any) -> urllib3.PoolManager:
    """A urllib3 pool as ``session`` would send through: its proxy for ``url``, its CA bundle
    (``requests``' own, certifi's, unless the environment names one), ``verify=False`` kept."""
    import requests.utils
    import urllib3

    tls: dict[str, Any] = {"cert_reqs": "CERT_NONE"} if verify is False else {"cert_reqs": "CERT_REQUIRED"}
    if verify is not False:
        bundle = session.verify if isinstance(session.verify, str) else requests.utils.DEFAULT_CA_BUNDLE_PATH
        tls["ca_certs"] = verify if isinstance(verify, str) else bundle
    pool = {"num_pools": 4, "maxsize": max(10, connections), **tls}
    proxy = requests.utils.select_proxy(url, session.proxies)
    return urllib3.ProxyManager(proxy, **pool) if proxy else urllib3.PoolManager(**pool)


def chunks(items: list[T], size: int = SUMMARY_CHUNK) -> list[list[T]]:
    """``items`` cut into lists of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def _galaxy_message(body: Any) -> str | None:
    """Galaxy's ``err_msg`` from an error body, or the body's start."""
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if not isinstance(body, str) or not body:
        return None
    try:
        decoded = json.loads(body)
    except ValueError:
        return body[:500]
    if isinstance(decoded, dict) and decoded.get("err_msg"):
        return str(decoded["err_msg"])[:1000]
    return body[:500]
