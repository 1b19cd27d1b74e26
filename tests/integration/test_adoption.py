"""Citadel killed and started again: running servers are adopted, dead ones reported crashed.

Citadel runs here as a real ``citadel serve`` process (so it can be SIGKILLed); the game
servers are real simulator processes in their own sessions, which survive it. Waiting for an
external process to become ready has no event to wait on, so these tests poll its REST API,
always under a bound. What a dashboard sees across the restart (``seq``, notification ids) is
observed with real Socket.IO clients, and what was stored in the real SQLite file.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
import psutil
import pytest

from citadel.config import ServerConfig
from citadel.demo import simulator_executable
from citadel.store import DB_FILENAME
from tests.integration._clients import Client
from tests.integration._sim import alive, kill_leftovers, sim_config
from tests.integration.conftest import poll

pytestmark = pytest.mark.slow
PASSWORD = "adoption-test-password"
BOUND = 30.0


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(tmp_path: Path, *servers: ServerConfig) -> Path:
    """A citadel.toml for ``servers`` (default: one quick simulator, "alpha")."""
    if not servers:
        servers = (sim_config(tmp_path, "alpha", auto_start=True),)
    text = f'[citadel]\ndata_dir = "{tmp_path / "data"}"\n'
    for server in servers:
        rcon = server.rcon
        assert rcon is not None
        env = "\n".join(f'{k} = "{v}"' for k, v in server.env.items())
        args = ", ".join(f'"{a}"' for a in server.args)
        text += f"""
[[servers]]
id = "{server.id}"
name = "{server.name}"
install_dir = "{server.install_dir}"
executable = "{server.executable}"
args = [{args}]
auto_start = true
start_timeout = {server.start_timeout}
stop_timeout = 3
kill_timeout = 2
restart_backoff_base = {server.restart_backoff_base}
restart_backoff_cap = {server.restart_backoff_cap}

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

    def post(self, path: str) -> int:
        response = httpx.post(
            f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token}"}, timeout=5
        )
        return response.status_code

    def status(self, server_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/api/servers/{server_id}/status")
        return result

    def get(self, path: str) -> Any:
        response = httpx.get(
            f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token}"}, timeout=5
        )
        return response.json()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=BOUND)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=BOUND)


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


def stored_notifications(tmp_path: Path) -> list[tuple[int, str, str]]:
    """(id, title, message) of every notification in the data dir's SQLite file."""
    with sqlite3.connect(tmp_path / "data" / DB_FILENAME) as db:
        rows = db.execute("SELECT id, title, message FROM notifications ORDER BY id").fetchall()
    return [(int(i), str(t), str(m)) for i, t, m in rows]


def test_killed_citadel_adopts_running_servers_and_reports_dead_ones(
    tmp_path: Path, citadels: list[Citadel]
) -> None:
    # A backoff long enough to see the crashed state over REST before the restart.
    server = sim_config(
        tmp_path, "alpha", auto_start=True, restart_backoff_base=3.0, restart_backoff_cap=3.0
    )
    config = write_config(tmp_path, server)
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

    # The adopted run dies under the second Citadel: seen, though its status is unreadable.
    os.kill(pid, signal.SIGKILL)
    poll(lambda: second.status("alpha")["status"] == "crashed", "the adopted run's exit missed")
    assert "the run was adopted" in second.status("alpha")["reason"]
    poll(lambda: running_after(adopted, second.status("alpha")), "alpha was not restarted")
    pid = second.status("alpha")["pid"]
    before = second.status("alpha")["seq"]

    # Now the server dies while Citadel is down: the next Citadel reports and restarts it.
    second.kill()
    os.kill(pid, signal.SIGKILL)
    poll(lambda: not alive(pid), "the simulator did not die")
    third = Citadel(config, port)
    citadels.append(third)
    third.wait_ready()
    found = third.status("alpha")
    assert found["status"] == "crashed"
    assert found["reason"] == "the server exited while Citadel was not running"
    assert found["restartIn"] is not None
    assert found["restartIn"] > 0
    assert found["seq"] == before + 1
    poll(
        lambda: (
            third.status("alpha")["status"] == "running" and third.status("alpha")["pid"] != pid
        ),
        "the dead server was not restarted",
    )
    assert len(simulators(install)) == 1
    third.stop()
    assert simulators(install) == [], "a stopped Citadel stops its servers"
    with sqlite3.connect(tmp_path / "data" / DB_FILENAME) as db:
        (record,) = db.execute("SELECT run FROM server_runs WHERE server_id = 'alpha'").fetchone()
    assert '"status":"stopped"' in record, "the final stop is on disk for the next Citadel"
    notes = stored_notifications(tmp_path)
    dead = [m for _, t, m in notes if t == "Alpha: Server exited while Citadel was down"]
    assert len(dead) == 1
    assert re.search(r"; restarting in \d+ s$", dead[0]), dead
    ids = [i for i, _, _ in notes]
    assert ids == sorted(set(ids)), "notification ids are unique across Citadel restarts"


def start_citadel(config: Path, port: int, citadels: list[Citadel]) -> Citadel:
    citadel = Citadel(config, port)
    citadels.append(citadel)
    citadel.wait_ready()
    return citadel


async def listen(citadel: Citadel) -> Client:
    client = Client()
    await client.connect(citadel.url, citadel.token)
    return client


def running_after(earlier: dict[str, Any], status: dict[str, Any]) -> bool:
    return bool(status["status"] == "running" and status["seq"] > earlier["seq"])


def seqs(client: Client, server_id: str) -> list[int]:
    return [d["seq"] for d in client.of("serverStatus", server_id)]


@pytest.mark.anyio
async def test_seq_and_notification_ids_continue_across_a_killed_citadel(
    tmp_path: Path, citadels: list[Citadel]
) -> None:
    servers = [sim_config(tmp_path, i, auto_start=True) for i in ("alpha", "bravo", "charlie")]
    config = write_config(tmp_path, *servers)
    port = free_tcp_port()
    first = await anyio.to_thread.run_sync(start_citadel, config, port, citadels)
    client = await listen(first)
    try:
        with anyio.fail_after(BOUND):
            running = {}
            for server in servers:
                running[server.id] = await client.wait_for(
                    "serverStatus", server.id, lambda d: d["status"] == "running"
                )
            # Restarts while the client listens: four notifications per server.
            for server in servers:
                path = f"/api/servers/{server.id}/restart"
                assert await anyio.to_thread.run_sync(first.post, path) == 202
            for server in servers:
                await client.wait_for(
                    "serverStatus", server.id, functools.partial(running_after, running[server.id])
                )
            await client.wait_until(
                lambda events: len([n for n, d in events if n == "notification"]) >= 12
            )
    finally:
        await client.close()
    last = {server.id: seqs(client, server.id)[-1] for server in servers}
    first_ids = [n["id"] for n in client.of("notification")]
    assert len(set(first_ids)) == len(first_ids), "ids repeat across servers"
    first.kill()

    second = await anyio.to_thread.run_sync(start_citadel, config, port, citadels)
    client = await listen(second)
    try:
        with anyio.fail_after(BOUND):
            # The snapshot repeats the seq the dead Citadel published last (adopted, running).
            for server in servers:
                snapshot = await client.wait_for("serverStatus", server.id, lambda d: True)
                assert (snapshot["status"], snapshot["seq"]) == ("running", last[server.id])
            # The next transition is +1.
            assert await anyio.to_thread.run_sync(second.post, "/api/servers/alpha/stop") == 202
            await client.wait_for("serverStatus", "alpha", lambda d: d["status"] == "stopped")
            await client.wait_until(
                lambda events: any(
                    n == "notification" and "stopped" in d["title"] for n, d in events
                )
            )
    finally:
        await client.close()
    assert seqs(client, "alpha") == [last["alpha"], last["alpha"] + 1, last["alpha"] + 2]
    second_ids = [n["id"] for n in client.of("notification")]
    assert second_ids
    assert min(second_ids) > max(first_ids), "ids continue after a Citadel restart"
    await anyio.to_thread.run_sync(second.stop)
    stored = [i for i, _, _ in stored_notifications(tmp_path)]
    assert set(first_ids + second_ids) <= set(stored)


def test_a_server_still_starting_is_adopted_starting_with_its_original_deadline(
    tmp_path: Path, citadels: list[Citadel]
) -> None:
    timeout = 8.0
    server = sim_config(
        tmp_path,
        "alpha",
        env={"DAYZSIM_START_DELAY": "120"},
        auto_start=True,
        start_timeout=timeout,
        restart_backoff_base=60.0,
        restart_backoff_cap=60.0,
    )
    config = write_config(tmp_path, server)
    port = free_tcp_port()
    first = start_citadel(config, port, citadels)
    starting = first.status("alpha")
    assert starting["status"] == "starting"
    seen_starting = time.monotonic()  # the run started before this
    first.kill()

    second = start_citadel(config, port, citadels)
    adopted = second.status("alpha")
    elapsed = time.monotonic() - seen_starting
    assert adopted["status"] == "starting", "readiness is not known: it must not be running"
    assert adopted["pid"] == starting["pid"]
    assert adopted["seq"] == starting["seq"]  # the same status: no transition
    left = re.search(r"still starting \((\d+) s left of its start timeout\)", adopted["reason"])
    assert left is not None, adopted["reason"]
    # Counted from the original start, not afresh (":.0f" rounds by up to half a second).
    assert int(left[1]) <= timeout - elapsed + 0.5
    poll(lambda: second.status("alpha")["status"] == "crashed", "the start never timed out")
    crashed = second.status("alpha")
    assert crashed["reason"] == f"not ready within the start timeout ({timeout:g} s)"
    assert crashed["seq"] == adopted["seq"] + 1


def test_a_server_that_became_ready_while_citadel_was_down_is_adopted_running(
    tmp_path: Path, citadels: list[Citadel]
) -> None:
    server = sim_config(tmp_path, "alpha", env={"DAYZSIM_START_DELAY": "4"}, auto_start=True)
    config = write_config(tmp_path, server)
    port = free_tcp_port()
    first = start_citadel(config, port, citadels)
    starting = first.status("alpha")
    assert starting["status"] == "starting"
    first.kill()

    # Ready while no Citadel watches: only its RPT knows.
    profiles = Path(server.install_dir) / "profiles"

    def ready() -> bool:
        return any("Player connect enabled" in p.read_text() for p in profiles.glob("*.RPT"))

    poll(ready, "the simulator never became ready")
    second = start_citadel(config, port, citadels)
    adopted = second.status("alpha")
    assert adopted["status"] == "running"
    assert adopted["pid"] == starting["pid"]
    assert adopted["seq"] == starting["seq"] + 1  # starting -> running happened meanwhile


# -- servers launched through a /bin/sh wrapper (docs/simulator.md) ------------------------------


def wrapped_config(
    tmp_path: Path, server_id: str, *, use_exec: bool, before: str = ""
) -> ServerConfig:
    """A simulator launched by a ``DayZServer`` shell script that ``exec``s it, or runs it as
    its child (then the recorded pid is the shell's); ``before`` runs first."""
    server = sim_config(tmp_path, server_id, auto_start=True)
    wrapper = Path(server.install_dir) / "DayZServer"
    command = f'"{server.executable}" "$@"'
    wrapper.write_text(f"#!/bin/sh\n{before}{'exec ' if use_exec else ''}{command}\n")
    wrapper.chmod(0o755)
    return msgspec.structs.replace(server, executable="DayZServer")


def game_processes(install_dir: str) -> list[int]:
    """The simulator processes (not a wrapper shell) running in ``install_dir``."""
    found = []
    for process in psutil.process_iter(["pid", "cwd", "cmdline", "status"]):
        info = process.info
        if (
            info["cwd"] == install_dir
            and info["status"] != psutil.STATUS_ZOMBIE
            and simulator_executable() in (info["cmdline"] or ())
        ):
            found.append(process.pid)
    return found


def metrics_after(citadel: Citadel, server_id: str, seen: int) -> bool:
    return len(citadel.get(f"/api/servers/{server_id}/metrics/history")) > seen


@pytest.mark.parametrize("use_exec", [True, False], ids=["exec", "child"])
def test_a_server_behind_a_shell_wrapper_is_adopted_and_stopped(
    tmp_path: Path, citadels: list[Citadel], use_exec: bool
) -> None:
    server = wrapped_config(tmp_path, "alpha", use_exec=use_exec)
    config = write_config(tmp_path, server)
    port = free_tcp_port()
    install = server.install_dir

    first = start_citadel(config, port, citadels)
    poll(lambda: first.status("alpha")["status"] == "running", "alpha never ran")
    running = first.status("alpha")
    games = game_processes(install)
    assert len(games) == 1
    if use_exec:
        assert games == [running["pid"]], "exec keeps the pid"
    else:
        assert psutil.Process(games[0]).ppid() == running["pid"], "the shell is recorded"
    first.kill()

    second = start_citadel(config, port, citadels)
    adopted = second.status("alpha")
    assert (adopted["status"], adopted["pid"]) == ("running", running["pid"]), adopted
    assert "adopted" in adopted["reason"]
    assert adopted["seq"] == running["seq"]
    assert game_processes(install) == games, "adoption must not start a second server"
    # The adopted run is watched as before: metrics flow (the sampler recognises it) and RCON
    # answers, from the adopted process.
    seen = len(second.get("/api/servers/alpha/metrics/history"))
    poll(functools.partial(metrics_after, second, "alpha", seen), "no metrics after adoption")
    poll(lambda: len(second.get("/api/servers/alpha/players")) > 0, "no players over RCON")

    assert second.post("/api/servers/alpha/stop") == 202
    poll(lambda: second.status("alpha")["status"] == "stopped", "alpha never stopped")
    stopped = second.status("alpha")
    assert "RCON #shutdown" in stopped["reason"], stopped
    assert simulators(install) == [], "a stop ends every process of the server"


def test_a_dead_runs_surviving_processes_are_killed_before_a_new_run(
    tmp_path: Path, citadels: list[Citadel]
) -> None:
    # The wrapper shell (the recorded process) dies while Citadel is down; the game it ran
    # lives on, re-parented to init, still carrying the run's marker. The run is dead; the
    # next Citadel must kill that orphan before it starts a new run on the same ports.
    server = msgspec.structs.replace(
        wrapped_config(tmp_path, "alpha", use_exec=False),
        restart_backoff_base=3.0,
        restart_backoff_cap=3.0,
    )
    config = write_config(tmp_path, server)
    port = free_tcp_port()
    first = start_citadel(config, port, citadels)
    poll(lambda: first.status("alpha")["status"] == "running", "alpha never ran")
    shell = first.status("alpha")["pid"]
    (orphan,) = game_processes(server.install_dir)
    first.kill()
    os.kill(shell, signal.SIGKILL)
    poll(lambda: not alive(shell), "the wrapper did not die")
    assert alive(orphan)

    second = start_citadel(config, port, citadels)
    poll(lambda: second.status("alpha")["status"] == "crashed", "the dead run was not reported")
    assert not alive(orphan), "the old run's game must be killed before a new run may start"
    poll(lambda: second.status("alpha")["status"] == "running", "the dead server was not restarted")
    (game,) = game_processes(server.install_dir)
    assert game != orphan


def stored_run(tmp_path: Path, server_id: str) -> dict[str, Any]:
    with sqlite3.connect(tmp_path / "data" / DB_FILENAME) as db:
        (record,) = db.execute(
            "SELECT run FROM server_runs WHERE server_id = ?", (server_id,)
        ).fetchone()
    run: dict[str, Any] = msgspec.json.decode(record)["run"]
    return run


def test_a_wrapper_that_execs_after_citadel_died_is_adopted_by_its_marker(
    tmp_path: Path, citadels: list[Citadel]
) -> None:
    # The wrapper waits on a FIFO before its exec, so the recorded command line is the
    # shell's for sure, and Citadel dies before the run is ready (no refresh): only the run's
    # marker in the environment can recognise the game that now runs under that pid.
    server = wrapped_config(tmp_path, "alpha", use_exec=True, before="read go < ./go\n")
    fifo = Path(server.install_dir) / "go"
    os.mkfifo(fifo)
    config = write_config(tmp_path, server)
    port = free_tcp_port()
    first = start_citadel(config, port, citadels)
    starting = first.status("alpha")
    assert starting["status"] == "starting"
    poll(lambda: stored_run(tmp_path, "alpha")["identity"]["cmdline"][0] == "/bin/sh", "record")
    first.kill()
    go = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # the shell waits in open: no ENXIO
    os.write(go, b"go\n")
    os.close(go)
    poll(lambda: game_processes(server.install_dir) == [starting["pid"]], "no exec")

    second = start_citadel(config, port, citadels)
    adopted = second.status("alpha")
    assert adopted["pid"] == starting["pid"], adopted
    assert "adopted" in adopted["reason"]
    poll(lambda: second.status("alpha")["status"] == "running", "the adopted run never ran")
    assert game_processes(server.install_dir) == [starting["pid"]], "no second server"
    # Once ready, the stored identity names what runs now.
    poll(
        lambda: simulator_executable() in stored_run(tmp_path, "alpha")["identity"]["cmdline"],
        "the identity was not refreshed",
    )
    assert second.post("/api/servers/alpha/stop") == 202
    poll(lambda: second.status("alpha")["status"] == "stopped", "alpha never stopped")
    assert simulators(server.install_dir) == []


# -- a server gone from the configuration while Citadel was down ----------------------------------


def stored_run_ids(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "data" / DB_FILENAME) as db:
        rows = db.execute("SELECT server_id FROM server_runs ORDER BY server_id").fetchall()
    return [str(server_id) for (server_id,) in rows]


def host_notifications(tmp_path: Path) -> list[tuple[str, str, str]]:
    """(title, message, severity) of every host-wide notification (``server_id`` null)."""
    with sqlite3.connect(tmp_path / "data" / DB_FILENAME) as db:
        rows = db.execute(
            "SELECT title, message, severity FROM notifications WHERE server_id IS NULL ORDER BY id"
        ).fetchall()
    return [(str(t), str(m), str(s)) for t, m, s in rows]


def test_a_server_removed_while_citadel_was_down_is_stopped_not_orphaned(
    tmp_path: Path, citadels: list[Citadel]
) -> None:
    # Citadel is killed; meanwhile "bravo" leaves the configuration (its [[servers]] table is
    # deleted). Its game still runs from the killed Citadel's time: nobody would adopt it, so
    # the next Citadel stops it (recognised by the adoption rule, never by name) and says so.
    alpha = sim_config(tmp_path, "alpha", auto_start=True)
    bravo = sim_config(tmp_path, "bravo", auto_start=True)
    port = free_tcp_port()
    first = start_citadel(write_config(tmp_path, alpha, bravo), port, citadels)
    poll(lambda: first.status("alpha")["status"] == "running", "alpha never ran")
    poll(lambda: first.status("bravo")["status"] == "running", "bravo never ran")
    kept, removed = first.status("alpha")["pid"], first.status("bravo")["pid"]
    first.kill()
    assert alive(kept)
    assert alive(removed)

    second = start_citadel(write_config(tmp_path, alpha), port, citadels)
    poll(lambda: not alive(removed), "the removed server's game was left running")
    assert simulators(bravo.install_dir) == [], "nothing of the removed server may live on"
    assert [s["id"] for s in second.get("/api/servers")] == ["alpha"]
    adopted = second.status("alpha")
    assert (adopted["status"], adopted["pid"]) == ("running", kept), adopted
    assert "adopted" in adopted["reason"]
    assert simulators(alpha.install_dir) == [kept]
    (note,) = host_notifications(tmp_path)
    title, message, severity = note
    assert (title, severity) == ("Orphaned server stopped", "warning")
    assert "'bravo'" in message
    assert f"pid {removed}" in message
    assert stored_run_ids(tmp_path) == ["alpha"], "the stale record is not acted on again"

    second.stop()
    assert simulators(alpha.install_dir) == [], "a stopped Citadel stops its servers"
    assert simulators(bravo.install_dir) == []
