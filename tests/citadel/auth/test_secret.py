"""The JWT secret: generated once with mode 0600, stable across restarts; the env var wins."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from citadel.auth import SECRET_ENV, SECRET_FILENAME, SecretError, load_jwt_secret


def test_generated_secret_is_private_and_stable(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = load_jwt_secret(data_dir, environ={})
    path = data_dir / SECRET_FILENAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 32
    assert path.read_text().strip() == first.hex()
    # A restart reads the same secret back instead of generating another.
    assert load_jwt_secret(data_dir, environ={}) == first
    assert [p.name for p in data_dir.iterdir()] == [SECRET_FILENAME]  # no temp files left


def test_different_data_dirs_get_different_secrets(tmp_path: Path) -> None:
    assert load_jwt_secret(tmp_path / "a", environ={}) != load_jwt_secret(
        tmp_path / "b", environ={}
    )


def test_env_secret_wins(tmp_path: Path) -> None:
    load_jwt_secret(tmp_path, environ={})
    env_secret = "x" * 40
    assert load_jwt_secret(tmp_path, environ={SECRET_ENV: env_secret}) == env_secret.encode()


def test_env_secret_does_not_create_a_file(tmp_path: Path) -> None:
    load_jwt_secret(tmp_path / "d", environ={SECRET_ENV: "y" * 32})
    assert not (tmp_path / "d" / SECRET_FILENAME).exists()


def test_short_env_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match=SECRET_ENV):
        load_jwt_secret(tmp_path, environ={SECRET_ENV: "short"})


@pytest.mark.parametrize("content", [b"not hex at all\n", b"abcd\n", b"\xff\xfe\x00"])
def test_corrupt_secret_file_is_refused_not_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / SECRET_FILENAME
    path.write_bytes(content)
    with pytest.raises(SecretError, match=SECRET_FILENAME):
        load_jwt_secret(tmp_path, environ={})
    assert path.read_bytes() == content
