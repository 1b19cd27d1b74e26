"""A minute of chaos: simulator processes SIGKILLed and internal actors killed at random.

Three simulated servers run under a live Citadel while two real clients listen (python-socketio
and Node's socket.io-client). For a minute a seeded random schedule either SIGKILLs a game
process or kills one of a server's actors (``Address.kill``: process, logs, rcon, metrics,
map). Afterwards every server must be running again, exactly one simulator per server may
exist (no orphan, no duplicate), and each client must have seen every server's
``serverStatus`` ``seq`` without a gap.

The broadcaster itself is spared: events in its mailbox die with it by design (the client is
disconnected and resynchronised by a snapshot), which is a different contract from "no gaps".
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from actors import ActorExited
from citadel.servers.runtime import LOGS, MAP, METRICS, PROCESS, RCON
from tests.citadel.realtime.conftest import NODE_DIR
from tests.integration._clients import Client
from tests.integration._sim import alive, kill_leftovers, sim_config
from tests.integration.conftest import Live, run_live

pytestmark = pytest.mark.slow
CHAOS_SECONDS = float(os.environ.get("CITADEL_CHAOS_SECONDS", "60"))
SERVERS = ("alpha", "bravo", "charlie")
ACTORS = (PROCESS, LOGS, RCON, METRICS, MAP)


class NodeListener:
    """Node's socket.io-client in a child process, its events collected as they arrive."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.ensure_future(self._collect())

    @classmethod
    async def start(cls, url: str, token: str) -> NodeListener:
        proc = await asyncio.create_subprocess_exec(
            "node",
            "bench/client.js",
            url,
            token,
            "websocket",
            cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def _collect(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.events.append(json.loads(line))

    def statuses(self, server_id: str) -> list[dict[str, Any]]:
        return [
            e["data"]
            for e in self.events
            if e["event"] == "serverStatus" and e["data"]["serverId"] == server_id
        ]

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await self.proc.wait()
        await self.task


def has_seq(seq: int, status: dict[str, Any]) -> bool:
    return bool(status["seq"] == seq)


def gaps(sequence: list[int]) -> list[tuple[int, int]]:
    """Consecutive seq pairs that do not increase by exactly one.

    A client connected for the whole run sees the connect snapshot first and then every
    transition: a repeated seq (one number published twice, e.g. with different reasons) is a
    fault just like a skipped one.
    """
    return [(a, b) for a, b in itertools.pairwise(sequence) if b != a + 1]


def test_gaps_rejects_skips_and_repeats() -> None:
    assert gaps([3, 4, 5]) == []
    assert gaps([3, 5]) == [(3, 5)]
    assert gaps([3, 4, 4, 5]) == [(4, 4)]


def simulator_pids(install_dir: str) -> list[int]:
    found = []
    for process in psutil.process_iter(["cwd", "status"]):
        if process.info["cwd"] == install_dir and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process.pid)
    return found


def recovered(live: Live, server_id: str) -> bool:
    """Every actor of the server is up, and it runs a live game process."""
    runtime = live.citadel.fleet.runtimes[server_id]
    actors_up = all(
        (address := live.citadel.registry.whereis(f"{server_id}/{name}")) is not None
        and address.alive
        for name in ACTORS
    )
    snapshot = runtime.state.current
    running = snapshot.status == "running" and snapshot.run is not None and not snapshot.exited
    return actors_up and running and snapshot.run is not None and alive(snapshot.run.pid)


def kill_actor(live: Live, server_id: str, name: str) -> bool:
    address = live.citadel.registry.whereis(f"{server_id}/{name}")
    if address is None:
        return False
    try:
        address.kill("chaos test")
    except ActorExited:
        return False
    return True


@pytest.mark.anyio
@pytest.mark.timeout(240)
async def test_a_minute_of_chaos(tmp_path: Path) -> None:
    configs = [
        sim_config(
            tmp_path,
            server_id,
            auto_start=True,
            max_restarts_per_hour=10_000,
            restart_backoff_base=0.2,
            restart_backoff_cap=0.5,
        )
        for server_id in SERVERS
    ]
    chaos = random.Random(20261203)
    try:
        with run_live(tmp_path / "data", servers=configs) as live:
            token = live.login()
            python_client = Client()
            await python_client.connect(live.url, token)
            node = await NodeListener.start(live.url, token)
            try:
                kills = {"process": 0, "actor": 0}
                deadline = time.monotonic() + CHAOS_SECONDS
                while time.monotonic() < deadline:
                    await anyio.sleep(chaos.uniform(0.3, 1.5))
                    server_id = chaos.choice(SERVERS)
                    if chaos.random() < 0.5:
                        runtime = live.citadel.fleet.runtimes[server_id]
                        run = runtime.state.current.run
                        if run is not None and not runtime.state.current.exited:
                            try:
                                os.kill(run.pid, signal.SIGKILL)
                                kills["process"] += 1
                            except ProcessLookupError:
                                pass
                    else:
                        name = chaos.choice(ACTORS)
                        if live.portal.call(kill_actor, live, server_id, name):
                            kills["actor"] += 1
                assert kills["process"] > 5
                assert kills["actor"] > 5
                # The last SIGKILL may still be on its way: a process the kernel has not yet
                # turned into a zombie still looks alive. Let in-flight faults land first.
                await anyio.sleep(1.0)
                with anyio.fail_after(60):
                    # Citadel runs in another thread: poll its state, bounded.
                    while not all(recovered(live, server_id) for server_id in SERVERS):
                        await anyio.sleep(0.1)
                    # Every client has caught up with the final transition of every server.
                    for server_id in SERVERS:
                        final = live.citadel.fleet.runtimes[server_id].state.current.seq
                        await python_client.wait_for(
                            "serverStatus", server_id, functools.partial(has_seq, final)
                        )
                        while not any(s["seq"] == final for s in node.statuses(server_id)):
                            await anyio.sleep(0.05)
                for config in configs:
                    assert len(simulator_pids(config.install_dir)) == 1, config.id
                for server_id in SERVERS:
                    python_seqs = [d["seq"] for d in python_client.of("serverStatus", server_id)]
                    node_seqs = [d["seq"] for d in node.statuses(server_id)]
                    assert gaps(python_seqs) == [], (server_id, python_seqs)
                    assert gaps(node_seqs) == [], (server_id, node_seqs)
                    assert python_seqs[-1] == node_seqs[-1]
                    assert python_seqs[-1] > 4  # it really went through crashes and restarts
            finally:
                await python_client.close()
                await node.stop()
    finally:
        assert kill_leftovers(tmp_path) == [], "simulators were left running"
