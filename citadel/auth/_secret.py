"""The JWT signing secret: from ``CITADEL_JWT_SECRET``, or generated once into the data dir."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

SECRET_ENV: Final = "CITADEL_JWT_SECRET"
SECRET_FILENAME: Final = "jwt-secret"
SECRET_BYTES: Final = 32
MIN_ENV_SECRET_BYTES: Final = 32
"""HS256 wants a key at least as long as its 256-bit output (RFC 7518 §3.2)."""


class SecretError(Exception):
    """The JWT secret cannot be loaded or created (bad file, too short, unwritable)."""


def _read(path: Path) -> bytes:
    text = path.read_bytes().strip()
    try:
        secret = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SecretError(f"{path}: not a hex secret; delete it to generate a new one") from exc
    if len(secret) < SECRET_BYTES:
        raise SecretError(f"{path}: secret shorter than {SECRET_BYTES} bytes")
    return secret


def _create(path: Path) -> bytes:
    """Write a fresh secret atomically, never replacing one another process wrote first."""
    secret = secrets.token_bytes(SECRET_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(secret.hex().encode("ascii") + b"\n")
            file.flush()
            os.fsync(file.fileno())
        # link() fails if the name exists: the first writer wins and a reader never sees a
        # half-written file.
        os.link(tmp, path)
    except FileExistsError:
        return _read(path)
    finally:
        tmp.unlink(missing_ok=True)
    return secret


def load_jwt_secret(data_dir: str | Path, environ: Mapping[str, str] | None = None) -> bytes:
    """Return the JWT secret: ``CITADEL_JWT_SECRET`` if set, else ``<data_dir>/jwt-secret``.

    The file is created on first use (32 random bytes, hex, mode 0600) and read unchanged
    afterwards, so tokens survive restarts.

    Raises:
        SecretError: The env secret is shorter than 32 bytes, or the file is unusable.
    """
    env = os.environ if environ is None else environ
    value = env.get(SECRET_ENV)
    if value:
        secret = value.encode("utf-8", "surrogatepass")
        if len(secret) < MIN_ENV_SECRET_BYTES:
            raise SecretError(f"{SECRET_ENV} must be at least {MIN_ENV_SECRET_BYTES} bytes")
        return secret
    directory = Path(data_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / SECRET_FILENAME
    try:
        if path.exists():
            return _read(path)
        return _create(path)
    except OSError as exc:
        raise SecretError(f"{path}: {exc.strerror or exc}") from exc
