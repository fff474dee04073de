"""``flowdeck login``: check a server and credentials, then save them for later commands.

With ``--token`` the API token is saved as given. With ``--user`` the password (asked for, or read
from stdin with ``--password-stdin``) signs in once to make an API token, and only that token is
saved: the password is never written to disk. With ``--oidc`` the CLI signs in at the server's
OIDC issuer with the device flow (:mod:`flowdeck.cli.client_oidc`) and saves the access token
and, when the issuer gives one, the refresh token that renews it. ``--no-auth`` saves just the
server (auth_mode=none).
"""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import sys
from typing import Any

from flowdeck.cli.client_config import config_path, save_config
from flowdeck.cli.client_http import DEFAULT_SERVER, UsageError, checked

_FROM_STDIN = "-"  # --token - reads the token from stdin


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password on; use --password-stdin")
    return getpass.getpass(f"Password for {args.user}: ")


def _token_from_password(server: str, args: argparse.Namespace) -> str:
    import httpx

    name = f"flowdeck-cli@{socket.gethostname()}"
    with httpx.Client(base_url=server, auth=(args.user, _password(args)), timeout=30) as client:
        return str(checked(client.post("/tokens", json={"name": name}))["token"])


def _oidc_tokens(server: str, args: argparse.Namespace) -> dict[str, str]:
    import httpx

    from flowdeck.cli import client_oidc

    with httpx.Client(timeout=30) as client:
        return client_oidc.device_login(client, client_oidc.issuer_for(client, server, args))


def _whoami(server: str, token: str | None) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=server, headers=headers, timeout=30) as client:
        return dict(checked(client.get("/me")))


def login(args: argparse.Namespace) -> int:
    """Save the server and a token after checking them with ``GET /me``."""
    server = (args.server or os.environ.get("FLOWDECK_SERVER") or DEFAULT_SERVER).rstrip("/")
    if sum(map(bool, (args.token, args.user, args.no_auth, args.oidc))) != 1:
        raise UsageError("give one of --token, --user, --oidc or --no-auth")
    if args.token == _FROM_STDIN:
        args.token = sys.stdin.readline().strip()
    if args.oidc:
        saved = _oidc_tokens(server, args)
    else:
        token = args.token or (_token_from_password(server, args) if args.user else None)
        saved = {"token": token} if token else {}
    me = _whoami(server, saved.get("token"))
    path = save_config({"server": server, **saved})
    print(f"logged in to {server} as {me['name']} (saved in {path})")
    return 0


def logout(args: argparse.Namespace) -> int:
    """Forget the saved token (the server URL stays)."""
    from flowdeck.cli.client_config import load_config
    from flowdeck.cli.client_tokens import forget

    save_config(forget(load_config()))
    print(f"token removed from {config_path()}")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``flowdeck login`` and ``flowdeck logout``."""
    p = sub.add_parser("login", help="save a server and credentials for the client commands")
    p.add_argument("--server", help=f"server URL (default $FLOWDECK_SERVER or {DEFAULT_SERVER})")
    p.add_argument("--token", help="an API token (fd_…; - reads it from stdin)")
    p.add_argument("--user", help="sign in with this user's password to make an API token")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--no-auth", action="store_true", help="the server needs no credentials (auth_mode=none)")
    p.add_argument(
        "--oidc", "--device", action="store_true", help="sign in at the server's OIDC issuer (device flow, RFC 8628)"
    )
    p.add_argument("--issuer", help="with --oidc: the issuer URL (default: the one the server advertises)")
    p.add_argument("--client-id", help="with --oidc: the CLI's client id at the issuer (default: advertised)")
    p.add_argument("--scopes", help="with --oidc: the scopes to ask for (default: advertised)")
    p.set_defaults(func=login)
    sub.add_parser("logout", help="forget the saved token").set_defaults(func=logout)
