"""The SSRF policy: where a URL given by a client may lead the service (docs/ssrf.md).

A client names URLs (a WES ``workflow_url``, a dataset's ``https://`` URI) that the service, or
an engine on its behalf, would otherwise fetch from inside the site's network. Every such URL
goes through :func:`check_url`: its host is resolved and every address must be public
(:func:`flowdeck.domain.addresses.forbidden_reason`) unless the operator allowlists the host or
its network (``FLOWDECK_OUTBOUND_ALLOWLIST``). :func:`fetch` is the one way flowdeck itself
reads such a URL: each redirect hop is checked again, and the connection goes to the very
address that was checked (the name is not resolved a second time, so DNS rebinding cannot swap
it), with TLS still verified against the host name.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from flowdeck.domain.addresses import Address, forbidden_reason
from flowdeck.errors import InvalidInput
from flowdeck.settings import Settings

if TYPE_CHECKING:
    import httpx

MAX_REDIRECTS = 5
SCHEMES = {"http": 80, "https": 443}
Resolver = Callable[[str, int], list[Address]]


def system_resolver(host: str, port: int) -> list[Address]:
    """Every address the system's resolver gives for ``host``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


# The seam tests replace to answer a name with an address of each forbidden range.
resolve: Resolver = system_resolver


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect and what to call the host."""

    url: str
    host: str
    port: int
    address: Address


def check_url(settings: Settings, url: str, *, what: str) -> Target:
    """The address ``url`` may be fetched from, or InvalidInput naming the rule it breaks.

    Blocking (it resolves the host): call it off the event loop.
    """
    target = _checked(settings, url, what, allow_unresolved=False)
    assert target is not None
    return target


def check_reference(settings: Settings, url: str, *, what: str) -> None:
    """For a URL another server fetches (Galaxy, for a dataset): refused when it resolves to an
    address the policy forbids; a name that does not resolve here is let through, since it
    reaches nothing from here (it is checked again when a run hands it on)."""
    _checked(settings, url, what, allow_unresolved=True)


def remote_references(references: Iterable[object]) -> list[str]:
    """The ``http(s)://`` URIs among ``{"uri": …}`` references a run hands its engine."""
    return [
        ref["uri"]
        for ref in references
        if isinstance(ref, dict)
        and isinstance(ref.get("uri"), str)
        and ref["uri"].lower().startswith(("http:", "https:"))
    ]


def check_run_references(settings: Settings, uris: Iterable[str]) -> None:
    """Each input URI checked again at dispatch: a name that resolved to a public address at
    registration may not any more. Blocking (it resolves): call it off the event loop."""
    for uri in uris:
        check_reference(settings, uri, what="input")


def _checked(settings: Settings, url: str, what: str, *, allow_unresolved: bool) -> Target | None:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or not parts.hostname:
        raise InvalidInput(f"{what} {url[:200]!r}: only http:// and https:// URLs with a host can be fetched")
    host = parts.hostname.lower()
    try:
        port = parts.port or SCHEMES[scheme]
    except ValueError:
        raise InvalidInput(f"{what} {url[:200]!r}: the port is not a number from 0 to 65535") from None
    addresses = _addresses(host, port)
    if not addresses:
        if allow_unresolved:
            return None
        raise InvalidInput(f"{what} {url[:200]!r}: the host {host} cannot be resolved")
    allowed_hosts, allowed_networks = _allowlist(settings)
    if host not in allowed_hosts:
        for address in addresses:
            reason = forbidden_reason(address)
            if reason and not any(address in network for network in allowed_networks):
                raise InvalidInput(
                    f"{what} {url[:200]!r}: {host} resolves to {address}, {reason}; the SSRF policy refuses it "
                    "(an operator may allow it in FLOWDECK_OUTBOUND_ALLOWLIST)"
                )
    return Target(url, host, port, addresses[0])


def _addresses(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        return resolve(host, port)
    except (OSError, UnicodeError):
        return []


def _allowlist(settings: Settings) -> tuple[frozenset[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    hosts: set[str] = set()
    networks = []
    for entry in settings.outbound_allowlist:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            hosts.add(entry.strip().lower())
    return frozenset(hosts), networks


def fetch(settings: Settings, url: str, *, what: str, max_bytes: int) -> bytes:
    """The body of ``url`` (at most ``max_bytes``), every hop checked by :func:`check_url`.

    Blocking: call it off the event loop. Failures are InvalidInput naming the URL.
    """
    import httpx  # the API process imports it only when a remote URL is fetched

    current = url
    with httpx.Client(timeout=settings.remote_fetch_timeout_seconds, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            target = check_url(settings, current, what=what)
            try:
                with client.stream(
                    "GET",
                    _pinned(target),
                    headers={"Host": _host_header(target)},
                    extensions={"sni_hostname": target.host},
                ) as response:
                    if response.is_redirect and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise InvalidInput(f"{what} {url[:200]!r}: the server answered {response.status_code}")
                    return _bounded(response.iter_bytes(), max_bytes, what, url)
            except httpx.HTTPError as exc:
                raise InvalidInput(f"{what} {url[:200]!r} could not be fetched: {type(exc).__name__}") from None
    raise InvalidInput(f"{what} {url[:200]!r}: more than {MAX_REDIRECTS} redirects")


def post(
    settings: Settings,
    url: str,
    *,
    what: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    client: httpx.Client | None = None,
) -> int:
    """POST ``body`` to ``url`` once, after :func:`check_url`, to the very address checked; the
    answer's status code (a redirect is not followed). ``client``: one to reuse (building one
    loads the CA bundle). Blocking: call it off the event loop. Raises InvalidInput when the
    policy refuses the URL, httpx's errors when the request fails."""
    import httpx

    target = check_url(settings, url, what=what)
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(httpx.Client(follow_redirects=False, trust_env=False))
        response = client.post(
            _pinned(target),
            content=body,
            headers={**headers, "Host": _host_header(target)},
            extensions={"sni_hostname": target.host},
            timeout=timeout,
            follow_redirects=False,
        )
    return response.status_code


def _pinned(target: Target) -> str:
    """The URL with its host replaced by the checked address."""
    parts = urlsplit(target.url)
    literal = f"[{target.address}]" if target.address.version == 6 else str(target.address)
    return parts._replace(netloc=f"{literal}:{target.port}").geturl()


def _host_header(target: Target) -> str:
    default = SCHEMES[urlsplit(target.url).scheme.lower()]
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == default else f"{host}:{target.port}"


def _bounded(chunks: Iterator[bytes], max_bytes: int, what: str, url: str) -> bytes:
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > max_bytes:
            raise InvalidInput(f"{what} {url[:200]!r} is larger than {max_bytes} bytes")
    return bytes(body)
