"""Which network addresses a URL given by a client may lead the service to (the SSRF policy).

Pure: it classifies an address; resolving names and the operator's allowlist live in
:mod:`flowdeck.services.core.url_policy`.
"""

from __future__ import annotations

import ipaddress
from typing import TypeAlias

Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata services answer credentials to anything that reaches them.
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")


def forbidden_reason(address: Address) -> str | None:
    """Why a client's URL may not reach ``address`` (None: a public address it may reach).

    IPv4 addresses written as IPv6 (mapped, 6to4, Teredo, NAT64 well-known prefix) are judged as
    the IPv4 address they carry, so ``::ffff:127.0.0.1`` is loopback.
    """
    inner = _embedded_ipv4(address)
    if inner is not None:
        return forbidden_reason(inner)
    if address in METADATA:
        return "a cloud metadata address"
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_multicast, "a multicast address"),
        (isinstance(address, ipaddress.IPv4Address) and address in CGNAT, "a shared (CGNAT) address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for hit, reason in checks if hit), None)


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
