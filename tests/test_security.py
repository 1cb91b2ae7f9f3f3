"""Passwords are stored as argon2id hashes and verified in constant time by argon2-cffi."""
import pytest

from engine.access.passwords import hash_password, verify_password


def test_password_hash_round_trip_and_rejection():
    h = hash_password("mat-khau-dai")
    assert h.startswith("$argon2id$") and "mat-khau-dai" not in h
    assert verify_password(h, "mat-khau-dai")
    assert not verify_password(h, "mat-khau-sai")
    assert not verify_password("not-a-hash", "mat-khau-dai")


def test_short_passwords_are_refused():
    with pytest.raises(ValueError):
        hash_password("ngan")
