"""Start-up rules: the first administrator, and no open service on a public address."""

from __future__ import annotations

import ipaddress

from flowdeck.db import accounts
from flowdeck.db.engine import Database
from flowdeck.domain.accounts import UserRecord
from flowdeck.errors import ConfigurationError
from flowdeck.services.auth.passwords import Passwords
from flowdeck.services.auth.users import create_user
from flowdeck.settings import Settings


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; names are not resolved (unknown: not loopback)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_allowed(settings: Settings, host: str | None = None) -> None:
    """Refuse to serve without authentication on a non-loopback address.

    Auth mode ``none`` makes every caller an administrator; on an address
    others can reach that is an open door, so it takes an explicit
    ``allow_open_on_public_address``.
    """
    host = settings.host if host is None else host
    if settings.auth_mode != "none" or is_loopback(host) or settings.allow_open_on_public_address:
        return
    raise ConfigurationError(
        f"refusing to start: auth_mode is 'none' (everyone is an administrator) and the service "
        f"would listen on {host!r}, which is not a loopback address. Set FLOWDECK_AUTH_MODE=basic "
        "or oidc, bind to 127.0.0.1, or set FLOWDECK_ALLOW_OPEN_ON_PUBLIC_ADDRESS=true if this "
        "network is private and you accept the risk."
    )


async def create_first_admin(
    db: Database, username: str, password: str, *, passwords: Passwords | None = None
) -> UserRecord | None:
    """Create a service administrator unless one exists; ``None`` when one already did.

    Idempotent, so a container entrypoint may call it on every start.
    """
    async with db.read() as conn:
        if await accounts.count_admins(conn) > 0:
            return None
    return await create_user(db, username, password, is_admin=True, passwords=passwords)
