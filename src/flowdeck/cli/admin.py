"""Server-side account commands: ``flowdeck users|groups|tokens …``.

They work on the database directly (run them where the service runs, with its
settings), apply migrations first, and call the same services the API does.
Passwords are read with ``getpass`` (or one line of stdin with
``--password-stdin``), never from the command line, where ``ps`` and shell
history would keep them. A new token is printed once, alone on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flowdeck.domain.principal import SYSTEM
from flowdeck.errors import InvalidInput
from flowdeck.services.auth import directory as accounts
from flowdeck.services.core.database import Database, open_database, upgrade
from flowdeck.settings import Settings

Action = Callable[[Database, argparse.Namespace], Awaitable[int]]


def _run(action: Action, args: argparse.Namespace) -> int:
    """Migrate, open the database, run ``action``, close."""
    import logging

    from flowdeck.services.auth.redact import install_redaction

    settings = Settings()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    install_redaction()
    upgrade(settings)

    async def main() -> int:
        db = open_database(settings)
        try:
            return await action(db, args)
        finally:
            await db.dispose()

    return asyncio.run(main())


def read_password(from_stdin: bool, prompt: str = "Password") -> str:
    """One line of stdin, or asked twice on the terminal; never an argument."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InvalidInput("no password on standard input")
        return line
    if not sys.stdin.isatty():
        raise InvalidInput("standard input is not a terminal: pass --password-stdin and pipe the password in")
    first = getpass.getpass(f"{prompt}: ")
    if getpass.getpass(f"{prompt} (again): ") != first:
        raise InvalidInput("the two passwords differ")
    return first


async def users_create(db: Database, args: argparse.Namespace) -> int:
    from flowdeck.services.auth.users import create_user

    password = None if args.token_only else read_password(args.password_stdin)
    user = await create_user(db, args.name, password, is_admin=args.admin, display_name=args.display_name)
    role = "service admin" if user.is_admin else "user"
    print(f"created {role} '{user.username}'" + (" (API tokens only)" if password is None else ""))
    return 0


async def users_passwd(db: Database, args: argparse.Namespace) -> int:
    from flowdeck.services.auth.users import set_password

    user = await accounts.require_user(db, args.name)
    await set_password(db, user.username, read_password(args.password_stdin, f"New password for {user.username}"))
    print(f"password of '{user.username}' changed")
    return 0


async def users_list(db: Database, args: argparse.Namespace) -> int:
    rows = await accounts.users_with_groups(db)
    _table(
        ["USER", "ADMIN", "SOURCE", "DISABLED", "GROUPS"],
        [
            [
                u.username,
                "yes" if u.is_admin else "",
                u.source,
                "yes" if u.disabled else "",
                ", ".join(f"{g}({r})" if r == "admin" else g for g, r in sorted(groups.items())),
            ]
            for u, groups in rows
        ],
    )
    return 0


async def groups_create(db: Database, args: argparse.Namespace) -> int:
    from flowdeck.services.auth.users import create_group

    group = await create_group(db, args.name, args.description)
    print(f"created research group '{group.name}'")
    return 0


async def groups_list(db: Database, args: argparse.Namespace) -> int:
    rows = await accounts.groups_with_members(db)
    _table(
        ["GROUP", "MEMBERS", "DESCRIPTION"],
        [
            [
                g.name,
                ", ".join(f"{m.username}(admin)" if m.role == "admin" else m.username for m in members),
                g.description or "",
            ]
            for g, members in rows
        ],
    )
    return 0


async def groups_add_member(db: Database, args: argparse.Namespace) -> int:
    from flowdeck.services.auth.users import add_member

    await add_member(db, args.user, args.group, args.role)
    print(f"'{accounts.normalize_username(args.user)}' is {args.role} of '{accounts.normalize_group_name(args.group)}'")
    return 0


async def groups_remove_member(db: Database, args: argparse.Namespace) -> int:
    from flowdeck.services.auth.users import remove_member

    await remove_member(db, accounts.normalize_username(args.user), args.group)
    print(f"'{accounts.normalize_username(args.user)}' removed from '{accounts.normalize_group_name(args.group)}'")
    return 0


async def tokens_create(db: Database, args: argparse.Namespace) -> int:
    from flowdeck.services.auth.users import issue_token

    expires = datetime.now(UTC) + timedelta(days=args.expires_in_days) if args.expires_in_days else None
    secret, token = await issue_token(db, SYSTEM, args.name, expires_at=expires, username=args.user)
    print(f"token {token.id} for '{accounts.normalize_username(args.user)}'; it is shown only now:", file=sys.stderr)
    print(secret)
    return 0


async def tokens_list(db: Database, args: argparse.Namespace) -> int:
    from flowdeck.services.auth.users import list_tokens

    found = await list_tokens(db, SYSTEM, args.user)

    def when(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value else ""

    _table(
        ["ID", "NAME", "PREFIX", "CREATED", "EXPIRES", "LAST USED", "REVOKED"],
        [
            [
                t.id,
                t.name,
                f"fd_{t.prefix}_",
                when(t.created_at),
                when(t.expires_at),
                when(t.last_used_at),
                when(t.revoked_at),
            ]
            for t in found
        ],
    )
    return 0


async def tokens_revoke(db: Database, args: argparse.Namespace) -> int:
    from flowdeck.services.auth.users import revoke_token

    token = await revoke_token(db, SYSTEM, args.id)
    print(f"token {token.id} ('{token.name}') revoked")
    return 0


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    for line in [headers, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _command(parser: Any, name: str, action: Action, text: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = parser.add_parser(name, help=text, description=text)
    p.set_defaults(func=lambda args: _run(action, args))
    return p


def register(sub: Any) -> None:
    """Add ``users``, ``groups`` and ``tokens`` to the ``flowdeck`` parser."""
    users = sub.add_parser("users", help="local accounts (server side)").add_subparsers(
        dest="users_command", required=True
    )
    p = _command(users, "create", users_create, "create a user")
    p.add_argument("name")
    p.add_argument("--admin", action="store_true", help="a service administrator")
    p.add_argument("--display-name")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    how.add_argument("--token-only", action="store_true", help="no password: signs in with API tokens only")
    p = _command(users, "passwd", users_passwd, "set a user's password")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    _command(users, "list", users_list, "list users and their groups")

    groups = sub.add_parser("groups", help="research groups (server side)").add_subparsers(
        dest="groups_command", required=True
    )
    p = _command(groups, "create", groups_create, "create a research group")
    p.add_argument("name")
    p.add_argument("--description")
    _command(groups, "list", groups_list, "list research groups and their members")
    p = _command(groups, "add-member", groups_add_member, "add a user to a group, or change their role")
    p.add_argument("group")
    p.add_argument("user")
    p.add_argument("--role", choices=["member", "admin"], default="member")
    p = _command(groups, "remove-member", groups_remove_member, "take a user out of a group")
    p.add_argument("group")
    p.add_argument("user")

    tokens = sub.add_parser("tokens", help="API tokens (server side)").add_subparsers(
        dest="tokens_command", required=True
    )
    p = _command(tokens, "create", tokens_create, "create an API token for a user; prints it once")
    p.add_argument("user")
    p.add_argument("--name", required=True, help="what it is for, e.g. ci")
    p.add_argument("--expires-in-days", type=int, help="default: never expires")
    p = _command(tokens, "list", tokens_list, "list a user's API tokens (never their secrets)")
    p.add_argument("user")
    p = _command(tokens, "revoke", tokens_revoke, "revoke an API token by id")
    p.add_argument("id")
