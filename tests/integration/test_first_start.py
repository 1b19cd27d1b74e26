"""The first admin's generated password survives a failed first start and is kept on disk."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import start_blocking_portal

from citadel.app import ADMIN_PASSWORD_FILE, open_citadel
from citadel.config import Config
from citadel.serve import _banner
from citadel.store import Store


def _open(data_dir: Path, port: int) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
    return open_citadel(
        Config(), data_dir=data_dir, host="127.0.0.1", port=port, demo=[], environ=env
    )


def test_a_start_on_a_busy_port_creates_no_admin(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with (
            start_blocking_portal(backend="asyncio") as portal,
            pytest.raises(OSError, match="cannot listen"),
            portal.wrap_async_context_manager(_open(data, port)),
        ):
            pass
    with Store.open(data) as store:
        assert store.count_users() == 0  # so the next start generates (and shows) one
    assert not (data / ADMIN_PASSWORD_FILE).exists()


def test_the_generated_password_is_kept_in_a_private_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    file = data / ADMIN_PASSWORD_FILE
    with (
        start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(_open(data, 0)) as citadel,
    ):
        password = citadel.admin_password
        assert password
        assert file.read_text() == f"{password}\n"
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        assert citadel.admin_password_file == file
        banner = _banner(citadel.url, data, password, citadel.admin_password_file)
        assert password in banner
        assert str(file) in banner
        login = httpx.post(
            f"{citadel.url}/api/auth/login",
            json={"username": "admin", "password": password},
            timeout=10,
        )
        assert login.status_code == 200, login.text
    # Later starts print no password, but keep pointing at the file until it is deleted.
    with (
        start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(_open(data, 0)) as citadel,
    ):
        assert citadel.admin_password is None
        assert citadel.admin_password_file == file
    file.unlink()
    with (
        start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(_open(data, 0)) as citadel,
    ):
        assert citadel.admin_password_file is None
