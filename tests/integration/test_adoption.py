"""Citadel killed and started again: running servers are adopted, dead ones reported crashed.

Citadel runs here as a real ``citadel serve`` process (so it can be SIGKILLed); the game
servers are real simulator processes in their own sessions, which survive it. Waiting for an
external process to become ready has no event to wait on, so these tests poll its REST API,
always under a bound.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.integration._sim import alive, kill_leftovers, sim_config

pytestmark = pytest.mark.slow
PASSWORD = "adoption-test-password"
BOUND = 30.0


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(tmp_path: Path) -> Path:
    server = sim_config(tmp_path, "alpha", auto_start=True, auto_restart=True)
    rcon = server.rcon
    assert rcon is not None
    env = "\n".join(f'{k} = "{v}"' for k, v in server.env.items())
    args = ", ".join(f'"{a}"' for a in server.args)
    text = f"""
[citadel]
data_dir = "{tmp_path / "data"}"

[[servers]]
id = "alpha"
name = "Alpha"
install_dir = "{server.install_dir}"
executable = "{server.executable}"
args = [{args}]
auto_start = true
start_timeout = 30
stop_timeout = 3
kill_timeout = 2
restart_backoff_base = 0.2
restart_backoff_cap = 1

[servers.env]
{env}

[servers.rcon]
host = "127.0.0.1"
port = {rcon.port}
password = "{rcon.password}"
"""
    path = tmp_path / "citadel.toml"
    path.write_text(text)
    return path


class Citadel:
    """A ``citadel serve`` child process."""

    def __init__(self, config: Path, port: int) -> None:
        env = {**os.environ, "CITADEL_ADMIN_PASSWORD": PASSWORD}
        env.pop("CITADEL_JWT_SECRET", None)
        citadel = Path(sys.executable).parent / "citadel"
        self.process = subprocess.Popen(
            [str(citadel), "serve", "--config", str(config), "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{port}"
        self.token = ""

    def wait_ready(self) -> None:
        def ready() -> bool:
            try:
                return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        poll(ready, f"citadel at {self.url} never became ready")
        response = httpx.post(
            f"{self.url}/api/auth/login", json={"username": "admin", "password": PASSWORD}
        )
        self.token = response.json()["token"]

    def status(self, server_id: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.url}/api/servers/{server_id}/status",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=5,
        )
        result: dict[str, Any] = response.json()
        return result

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=BOUND)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=BOUND)


def poll(predicate: Callable[[], bool], message: str) -> None:
    deadline = time.monotonic() + BOUND
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.1)


def simulators(install_dir: str) -> list[int]:
    found = []
    for process in psutil.process_iter(["pid", "cwd", "status"]):
        if process.info["cwd"] == install_dir and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process.pid)
    return found


@pytest.fixture
def citadels(tmp_path: Path) -> Iterator[list[Citadel]]:
    started: list[Citadel] = []
    yield started
    for citadel in started:
        citadel.stop()
    assert kill_leftovers(tmp_path) == [], "simulators were left running"


def test_killed_citadel_adopts_running_servers_and_reports_dead_ones(
    tmp_path: Path, citadels: list[Citadel]
) -> None:
    config = write_config(tmp_path)
    port = free_tcp_port()
    install = str(tmp_path / "alpha")

    first = Citadel(config, port)
    citadels.append(first)
    first.wait_ready()
    poll(lambda: first.status("alpha")["status"] == "running", "alpha never ran")
    pid = first.status("alpha")["pid"]
    first.kill()
    assert alive(pid), "the game server must survive its supervisor"

    second = Citadel(config, port)
    citadels.append(second)
    second.wait_ready()
    adopted = second.status("alpha")
    assert adopted["status"] == "running"
    assert adopted["pid"] == pid
    assert "adopted" in adopted["reason"]
    assert simulators(install) == [pid], "adoption must not start a second server"

    # Now the server dies while Citadel is down: the next Citadel reports and restarts it.
    second.kill()
    os.kill(pid, signal.SIGKILL)
    poll(lambda: not alive(pid), "the simulator did not die")
    third = Citadel(config, port)
    citadels.append(third)
    third.wait_ready()
    poll(
        lambda: (
            third.status("alpha")["status"] == "running" and third.status("alpha")["pid"] != pid
        ),
        "the dead server was not restarted",
    )
    assert len(simulators(install)) == 1
    third.stop()
    assert simulators(install) == [], "a stopped Citadel stops its servers"
