"""Password hashing with scrypt, in a self-describing format so parameters can change later.

Format: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`` (standard base64 without padding).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
from typing import Final, NamedTuple

SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
SALT_BYTES: Final = 16
HASH_BYTES: Final = 32
# Bounds on parameters read back from the database: a tampered row must not make one login
# allocate gigabytes or spin for minutes.
MAX_N: Final = 2**20
MAX_R: Final = 32
MAX_P: Final = 16
MAXMEM: Final = 2**30
_SCHEME: Final = "scrypt"


class _Parsed(NamedTuple):
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _secret_bytes(password: str) -> bytes:
    # surrogatepass: a JSON body may carry a lone surrogate; hashing must not crash on it.
    return password.encode("utf-8", "surrogatepass")


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        _secret_bytes(password), salt=salt, n=n, r=r, p=p, maxmem=MAXMEM, dklen=length
    )


def _parse(encoded: str) -> _Parsed | None:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error):
        return None
    power_of_two = n > 1 and n & (n - 1) == 0
    if not (power_of_two and n <= MAX_N and 0 < r <= MAX_R and 0 < p <= MAX_P):
        return None
    if not salt or not 16 <= len(digest) <= 64:
        return None
    return _Parsed(n, r, p, salt, digest)


def hash_password(password: str) -> str:
    """Hash a password with scrypt (n=2**14, r=8, p=1) and a fresh 16-byte salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _derive(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES)
    return f"{_SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(encoded: str, password: str) -> bool:
    """Check a password against a stored hash in constant time; False for a malformed hash."""
    parsed = _parse(encoded)
    if parsed is None:
        return False
    candidate = _derive(password, parsed.salt, parsed.n, parsed.r, parsed.p, len(parsed.digest))
    return hmac.compare_digest(candidate, parsed.digest)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def verify_password_or_dummy(encoded: str | None, password: str) -> bool:
    """Like ``verify_password``, but for an unknown user (``None``) burn the same scrypt work.

    The caller then takes as long to refuse an unknown username as a wrong password, so
    response times do not reveal which usernames exist.
    """
    if encoded is None:
        verify_password(_dummy_hash(), password)
        return False
    return verify_password(encoded, password)


def needs_rehash(encoded: str) -> bool:
    """Return whether a stored hash uses other parameters than today's (rehash at next login)."""
    parsed = _parse(encoded)
    return parsed is None or (parsed.n, parsed.r, parsed.p, len(parsed.digest)) != (
        SCRYPT_N,
        SCRYPT_R,
        SCRYPT_P,
        HASH_BYTES,
    )
