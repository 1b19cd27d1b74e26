"""The ``citadel`` command's user and token subcommands, run as real processes on a data dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from citadel.auth import DEFAULT_SCRIPT_TOKEN_TTL, load_jwt_secret
from citadel.store import Store

BOUND = 60
CITADEL = str(Path(sys.executable).parent / "citadel")


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CITADEL, *args], input=stdin, capture_output=True, text=True, timeout=BOUND
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    added = run(
        "user",
        "add",
        "admin",
        "--role",
        "admin",
        "--password-stdin",
        "--data-dir",
        str(data),
        stdin="admin-password-1\n",
    )
    assert added.returncode == 0, added.stderr
    return data


@pytest.mark.parametrize("ttl", ["nan", "inf", "-inf", "0", "-5", "31622400", "soon"])
def test_token_refuses_an_unusable_ttl(data_dir: Path, ttl: str) -> None:
    result = run("token", "--user", "admin", "--ttl", ttl, "--data-dir", str(data_dir))
    assert result.returncode == 2
    assert "--ttl" in result.stderr
    assert result.stdout == ""


def test_token_default_ttl_is_an_hour_and_the_json_is_standard(data_dir: Path) -> None:
    result = run("token", "--user", "admin", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = jwt.decode(token, load_jwt_secret(data_dir, environ={}), algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == DEFAULT_SCRIPT_TOKEN_TTL
    assert "NaN" not in jwt.utils.base64url_decode(token.split(".")[1]).decode()
    help_text = " ".join(run("token", "--help").stdout.split())
    assert "default 3600" in help_text
    assert "8 hours" in help_text


@pytest.mark.parametrize("name", ["../evil", "a b", "", "x" * 65, "ünïcode", "semi;colon"])
def test_user_add_refuses_names_the_api_refuses(data_dir: Path, name: str) -> None:
    result = run(
        "user",
        "add",
        name,
        "--password-stdin",
        "--data-dir",
        str(data_dir),
        stdin="long-enough-1\n",
    )
    assert result.returncode == 2
    assert "invalid username" in result.stderr
    with Store.open(data_dir) as store:
        assert [u.username for u in store.list_users()] == ["admin"]


def test_user_add_accepts_what_the_api_accepts(data_dir: Path) -> None:
    result = run(
        "user",
        "add",
        "ops.team_1-a",
        "--password-stdin",
        "--data-dir",
        str(data_dir),
        stdin="long-enough-1\n",
    )
    assert result.returncode == 0, result.stderr
    with Store.open(data_dir) as store:
        assert store.get_user("ops.team_1-a") is not None
