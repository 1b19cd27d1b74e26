"""scrypt password hashing: format, verify, malformed hashes, the dummy path."""

from __future__ import annotations

import pytest

from citadel.auth import (
    hash_password,
    needs_rehash,
    verify_password,
    verify_password_or_dummy,
)


def test_hash_format_carries_its_parameters() -> None:
    encoded = hash_password("correct horse")
    scheme, n, r, p, salt, digest = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(salt) == 22  # 16 bytes, base64 without padding
    assert len(digest) == 43  # 32 bytes
    assert not needs_rehash(encoded)


def test_verify_accepts_right_and_refuses_wrong() -> None:
    encoded = hash_password("correct horse")
    assert verify_password(encoded, "correct horse")
    assert not verify_password(encoded, "correct horse ")
    assert not verify_password(encoded, "")


def test_salts_differ() -> None:
    assert hash_password("same") != hash_password("same")


def test_non_ascii_and_lone_surrogate_passwords() -> None:
    encoded = hash_password("пароль-Игрок_3")
    assert verify_password(encoded, "пароль-Игрок_3")
    odd = hash_password("\ud800 lone surrogate")
    assert verify_password(odd, "\ud800 lone surrogate")
    assert not verify_password(odd, "\ud801 lone surrogate")


def test_parameters_are_read_from_the_hash() -> None:
    # A hash made with other (cheaper) parameters still verifies, and is flagged for rehash.
    import base64
    import hashlib

    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"pw", salt=salt, n=2**10, r=4, p=2, dklen=32)

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode().rstrip("=")

    encoded = f"scrypt$1024$4$2${b64(salt)}${b64(digest)}"
    assert verify_password(encoded, "pw")
    assert not verify_password(encoded, "pW")
    assert needs_rehash(encoded)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "garbage",
        "bcrypt$16384$8$1$c2FsdA$ZGlnZXN0",
        "scrypt$16384$8$1$!!!$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
        "scrypt$abc$8$1$c2FsdHNhbHQ$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
        "scrypt$1000$8$1$c2FsdHNhbHQ$ZGlnZXN0ZGlnZXN0ZGlnZXN0",  # n not a power of two
        "scrypt$1073741824$8$1$c2FsdHNhbHQ$ZGlnZXN0ZGlnZXN0ZGlnZXN0",  # n absurdly large
        "scrypt$16384$0$1$c2FsdHNhbHQ$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
        "scrypt$16384$8$1$$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
        "scrypt$16384$8$1$c2FsdHNhbHQ$",
        "scrypt$16384$8$1$c2FsdHNhbHQ$ZGlnZXN0$extra",
    ],
)
def test_malformed_hashes_never_verify(encoded: str) -> None:
    assert not verify_password(encoded, "anything")
    assert needs_rehash(encoded)


def test_dummy_path_for_unknown_users_refuses() -> None:
    assert not verify_password_or_dummy(None, "anything")
    encoded = hash_password("pw")
    assert verify_password_or_dummy(encoded, "pw")
    assert not verify_password_or_dummy(encoded, "nope")
