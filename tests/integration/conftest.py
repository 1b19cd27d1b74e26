"""A live Citadel for integration tests: real uvicorn, real sockets, real SQLite, on loopback.

Citadel runs in its own event loop on a thread (anyio's blocking portal), so a test can be a
plain synchronous function using httpx, or an async one using python-socketio's client, and
still reach into Citadel's loop with ``live.portal.call(...)`` (e.g. to publish an event).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from citadel.app import Citadel, open_citadel
from citadel.auth import TokenIssuer, load_jwt_secret
from citadel.config import Config, ServerConfig

ADMIN_PASSWORD = "admin-password-for-tests"
#: Longest wait for something a live Citadel does on its own (a process stopped, a row written).
POLL_BOUND = 30.0


def poll(predicate: Callable[[], bool], message: str, bound: float = POLL_BOUND) -> None:
    """Wait until ``predicate()`` holds (checked every 0.1 s), or fail with ``message``."""
    deadline = time.monotonic() + bound
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.1)


@dataclass
class Live:
    """A running Citadel and the means to talk to it."""

    portal: BlockingPortal
    citadel: Citadel
    url: str

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
        with self.client() as client:
            response = client.post(
                "/api/auth/login", json={"username": username, "password": password}
            )
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    def token_for(self, username: str, ttl: float = 3600) -> str:
        """Mint a token directly (bypasses the login throttle)."""
        user = self.citadel.store.get_user(username)
        assert user is not None
        return TokenIssuer(self.secret, ttl=ttl).issue(user).token

    @property
    def secret(self) -> bytes:
        return load_jwt_secret(self.citadel.data_dir, environ={})

    def add_user(self, username: str, role: str, password: str = "password-1234") -> str:
        admin = self.login()
        with self.client(admin) as client:
            response = client.post(
                "/api/users", json={"username": username, "password": password, "role": role}
            )
        assert response.status_code == 201, response.text
        return password


def demo_configs(*ids: str) -> list[ServerConfig]:
    return [ServerConfig(id=i, name=i.title(), install_dir=".", executable="dayz-sim") for i in ids]


@contextlib.contextmanager
def run_live(data_dir: Path, servers: list[ServerConfig] | None = None) -> Iterator[Live]:
    """Run Citadel on a free loopback port with its data in ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
    env["CITADEL_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    context: Any = open_citadel(
        Config(),
        data_dir=data_dir,
        host="127.0.0.1",
        port=0,
        demo=demo_configs("alpha", "bravo") if servers is None else servers,
        environ=env,
    )
    with (
        start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(context) as citadel,
    ):
        yield Live(portal, citadel, citadel.url)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    with run_live(tmp_path / "data") as running:
        yield running


@pytest.fixture(scope="module")
def shared_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One Citadel for a whole module (fuzzing: hypothesis needs a long-lived target)."""
    with run_live(tmp_path_factory.mktemp("shared") / "data") as running:
        yield running
