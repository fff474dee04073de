"""The client's two errors: what the server answered, and a bad argument (docs/cli.md)."""

from __future__ import annotations


class ClientError(Exception):
    """The server answered with an error; the message is its own (exit 1)."""


class UsageError(Exception):
    """A bad argument or an unreadable file named on the command line (exit 2)."""
