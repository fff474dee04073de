"""argon2id hashing, verification, rehash and the password policy."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from flowdeck.errors import InvalidInput
from flowdeck.services.auth.passwords import Passwords, check_policy
from tests.support.auth import cheap_passwords


def test_hash_is_argon2id_and_verifies() -> None:
    passwords = cheap_passwords()
    stored = passwords.hash_sync("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert passwords.verify_sync(stored, "correct horse battery").ok
    assert not passwords.verify_sync(stored, "correct horse batterY").ok


def test_the_same_password_hashes_differently_each_time() -> None:
    passwords = cheap_passwords()
    assert passwords.hash_sync("same password") != passwords.hash_sync("same password")


def test_verify_with_outdated_parameters_returns_a_rehash() -> None:
    old = cheap_passwords().hash_sync("long enough password")
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    result = stronger.verify_sync(old, "long enough password")
    assert result.ok
    assert result.new_hash is not None
    assert not stronger.hasher.check_needs_rehash(result.new_hash)
    assert stronger.verify_sync(result.new_hash, "long enough password").new_hash is None


def test_a_wrong_password_never_returns_a_rehash() -> None:
    old = cheap_passwords().hash_sync("long enough password")
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    assert stronger.verify_sync(old, "wrong password!!") == stronger.verify_sync(None, "x")


def test_unknown_user_runs_a_real_dummy_verification() -> None:
    checked: list[str] = []

    class Recording(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            checked.append(str(hash))
            return super().verify(hash, password)

    passwords = Passwords(Recording(time_cost=1, memory_cost=8, parallelism=1))
    assert not passwords.verify_sync(None, "anything at all").ok
    assert checked == [passwords._dummy_hash]


def test_garbage_stored_hash_is_a_failed_check_not_a_crash() -> None:
    assert not cheap_passwords().verify_sync("not-a-hash", "whatever password").ok


def test_nfc_and_nfd_spellings_of_a_password_match() -> None:
    passwords = cheap_passwords()
    stored = passwords.hash_sync("caf\u00e9-au-lait")  # composed é
    assert passwords.verify_sync(stored, "cafe\u0301-au-lait").ok  # e + combining accent


@pytest.mark.parametrize("bad", ["short", "x" * 1025, "tab\there-long", "nul\x00inside-long", "rtl\u202eoverride"])
def test_policy_refuses(bad: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_policy(bad)
    assert bad not in caught.value.detail


async def test_async_hash_and_verify_run_off_the_event_loop() -> None:
    passwords = cheap_passwords()
    stored = await passwords.hash("an async password")
    assert (await passwords.verify(stored, "an async password")).ok
