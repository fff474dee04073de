"""Password hashing: argon2id through argon2-cffi.

Hashing is deliberately slow and memory-hard (the library's RFC 9106 profile:
64 MiB, 3 passes), so it runs in a worker thread, never on the event loop, and
at most ``max_concurrent`` at once: a flood of Basic requests must neither
stall every other request nor exhaust memory.
"""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowdeck.errors import InvalidInput

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_LENGTH = 8
MAX_LENGTH = 1024  # argon2 takes any length; this only bounds the work a request can ask for


def prepare(password: str) -> str:
    """NFC-normalise, so the same password typed on macOS (NFD) and Linux (NFC) matches."""
    return unicodedata.normalize("NFC", password)


def check_policy(password: str) -> str:
    """The password to hash, or :class:`InvalidInput` saying which rule it breaks."""
    if not isinstance(password, str):
        raise InvalidInput("password must be a string")
    password = prepare(password)
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidInput(f"password must be {MIN_LENGTH} to {MAX_LENGTH} characters long")
    if not password.isprintable():
        raise InvalidInput("password must not contain control or invisible format characters")
    return password


@dataclass(frozen=True)
class Verified:
    """The outcome of a verification; ``new_hash`` is set when the stored hash should be replaced."""

    ok: bool
    new_hash: str | None = None


class Passwords:
    """Hash and verify passwords without blocking the event loop."""

    def __init__(self, hasher: PasswordHasher | None = None, max_concurrent: int = 4) -> None:
        # argon2-cffi (~0.5 MB) only once passwords are used (auth_mode basic, the users
        # commands): the API server imports this module with its routes whatever the auth mode.
        from argon2 import PasswordHasher

        self.hasher = hasher or PasswordHasher()
        self._slots = asyncio.Semaphore(max_concurrent)
        # A real hash of a random password: verifying against it for an unknown
        # user costs what a real check costs, so response time does not reveal
        # which usernames exist.
        self._dummy_hash = self.hasher.hash("flowdeck-dummy-password-for-timing")

    def hash_sync(self, password: str) -> str:
        """Hash a password that passed :func:`check_policy` (blocking)."""
        return self.hasher.hash(prepare(password))

    def verify_sync(self, stored_hash: str | None, password: str) -> Verified:
        """Check ``password`` against ``stored_hash`` (blocking); ``None`` runs the dummy check."""
        if stored_hash is None:
            self._verify(self._dummy_hash, password)
            return Verified(ok=False)
        if not self._verify(stored_hash, password):
            return Verified(ok=False)
        if self.hasher.check_needs_rehash(stored_hash):
            return Verified(ok=True, new_hash=self.hasher.hash(prepare(password)))
        return Verified(ok=True)

    def _verify(self, stored_hash: str, password: str) -> bool:
        from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

        try:
            return self.hasher.verify(stored_hash, prepare(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hash_sync, password)

    async def verify(self, stored_hash: str | None, password: str) -> Verified:
        async with self._slots:
            return await asyncio.to_thread(self.verify_sync, stored_hash, password)
