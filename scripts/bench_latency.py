"""End-to-end latency and cost of supervising servers, measured at a real Socket.IO client.

Runs ``citadel serve`` as a separate process with simulated DayZ servers and prints:

1. process killed (SIGKILL) -> ``serverStatus crashed`` at the client: p50 / p99;
2. a line appended to the RPT -> its ``log`` event at the client, at 1,000 lines/s: p50 / p99;
3. with N simulated servers running (5 s metrics, players moving): Citadel's CPU (% of one
   core) and RSS.

The reference is the Node original's design, which polls process liveness every 15 s and the
console file every 1 s: its expected detection latency is half the interval on average and the
whole interval at worst. Targets: crash p99 <= 50 ms; log p99 <= 50 ms; 100 servers under 20 %
of one core and 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import socketio

from citadel.demo import free_udp_port, simulator_executable

PASSWORD = "bench-password-123"
NODE_CRASH_POLL = 15.0
NODE_LOG_POLL = 1.0


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(root: Path, count: int, tick: float) -> Path:
    sections = [f'[citadel]\ndata_dir = "{root / "data"}"\n']
    rcon_ports: set[int] = set()
    for n in range(count):
        rcon_port = free_udp_port(rcon_ports)
        rcon_ports.add(rcon_port)
        install = root / f"s{n:03}"
        (install / "profiles").mkdir(parents=True)
        (install / "serverDZ.cfg").write_text('hostname = "bench";\nmaxPlayers = 60;\n')
        sections.append(
            f"""
[[servers]]
id = "s{n:03}"
name = "Bench {n}"
install_dir = "{install}"
executable = "{simulator_executable()}"
args = ["-config=serverDZ.cfg", "-port={2302 + n}", "-profiles=profiles"]
auto_start = true
start_timeout = 120
stop_timeout = 5
kill_timeout = 2
hang_timeout = 300
metrics_interval = 5
restart_backoff_base = 0.1
restart_backoff_cap = 0.5
max_restarts_per_hour = 1000

[servers.env]
DAYZSIM_TICK = "{tick}"
DAYZSIM_START_DELAY = "0.5"
DAYZSIM_PLAYERS = "4"
DAYZSIM_SEED = "{n}"

[servers.rcon]
host = "127.0.0.1"
port = {rcon_port}
password = "bench-{n}"
"""
        )
    path = root / "citadel.toml"
    path.write_text("".join(sections))
    return path


class Citadel:
    def __init__(self, config: Path) -> None:
        self.port = free_tcp_port()
        env = {**os.environ, "CITADEL_ADMIN_PASSWORD": PASSWORD}
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "citadel"),
                "serve",
                "--config",
                str(config),
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = ""

    async def ready(self) -> None:
        async with httpx.AsyncClient(base_url=self.url) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("citadel did not become ready")
                await asyncio.sleep(0.1)
            login = await http.post(
                "/api/auth/login", json={"username": "admin", "password": PASSWORD}
            )
            self.token = login.json()["token"]

    async def status(self, server_id: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.get(
                f"/api/servers/{server_id}/status",
                headers={"Authorization": f"Bearer {self.token}"},
            )
            result: dict[str, Any] = response.json()
            return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Listener:
    """A python-socketio client that keeps what the benchmark waits for."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.status: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Event()
        self.log_arrivals: dict[int, float] = {}

        async def on_status(data: dict[str, Any]) -> None:
            self.status[data["serverId"]] = {**data, "_at": time.perf_counter()}
            self.changed.set()

        async def on_log(data: dict[str, Any]) -> None:
            message = data["message"]
            if "BENCH-LINE" in message:
                seq = int(message.rsplit(" ", 2)[1])
                sent = float(message.rsplit(" ", 1)[1])
                self.log_arrivals[seq] = time.time() - sent

        self.sio.on("serverStatus", on_status)
        self.sio.on("log", on_log)

    async def wait_status(self, server_id: str, status: str) -> dict[str, Any]:
        while self.status.get(server_id, {}).get("status") != status:
            self.changed.clear()
            await self.changed.wait()
        return self.status[server_id]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def crash_latency(citadel: Citadel, listener: Listener, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        await asyncio.wait_for(listener.wait_status("s000", "running"), 60)
        pid = (await citadel.status("s000"))["pid"]
        before = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        crashed = await asyncio.wait_for(listener.wait_status("s000", "crashed"), 10)
        samples.append(crashed["_at"] - before)
    return samples


async def log_latency(root: Path, listener: Listener, seconds: float, rate: int) -> list[float]:
    profiles = root / "s001" / "profiles"
    await asyncio.wait_for(listener.wait_status("s001", "running"), 60)
    rpt = max(profiles.glob("*.RPT"), key=lambda p: p.stat().st_mtime)
    total = int(seconds * rate)
    start = time.perf_counter()
    with rpt.open("a", encoding="utf-8") as out:
        for seq in range(total):
            due = start + seq / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            stamp = time.strftime("%H:%M:%S")
            out.write(f"{stamp}.000 BENCH-LINE {seq} {time.time():.6f}\n")
            out.flush()
    deadline = time.monotonic() + 10
    # The last lines are still in flight; there is no event for "all arrived", so poll (bounded).
    while len(listener.log_arrivals) < total and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    missing = total - len(listener.log_arrivals)
    if missing:
        print(f"  warning: {missing} of {total} lines did not arrive")
    return list(listener.log_arrivals.values())


async def fleet_cost(count: int, tick: float, measure: float) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory(prefix="citadel-bench-") as tmp:
        root = Path(tmp)
        citadel = Citadel(write_config(root, count, tick))
        listener = Listener()
        try:
            await citadel.ready()
            await listener.sio.connect(
                citadel.url, auth={"token": citadel.token}, transports=["websocket"]
            )
            deadline = time.monotonic() + 180
            while sum(s.get("status") == "running" for s in listener.status.values()) < count:
                if time.monotonic() > deadline:
                    raise RuntimeError("not every server became running")
                listener.changed.clear()
                await asyncio.wait_for(listener.changed.wait(), 180)
            await asyncio.sleep(10)  # settle: RCON connected, first metrics primed
            proc = psutil.Process(citadel.process.pid)
            cpu0, wall0 = proc.cpu_times(), time.perf_counter()
            await asyncio.sleep(measure)
            cpu1, wall1 = proc.cpu_times(), time.perf_counter()
            busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
            rss = proc.memory_info().rss
            sims = [
                p for p in psutil.process_iter(["cwd"]) if (p.info["cwd"] or "").startswith(tmp)
            ]
            sim_cpu = 0.0
            for p in sims:
                try:
                    times = p.cpu_times()
                    sim_cpu += times.user + times.system
                except psutil.Error:
                    pass
            return 100 * busy / (wall1 - wall0), rss / 2**20, sim_cpu
        finally:
            await listener.sio.disconnect()
            citadel.stop()


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="citadel-bench-") as tmp:
        root = Path(tmp)
        citadel = Citadel(write_config(root, 2, 1.0))
        listener = Listener()
        try:
            await citadel.ready()
            await listener.sio.connect(
                citadel.url, auth={"token": citadel.token}, transports=["websocket"]
            )
            crashes = await crash_latency(citadel, listener, args.crashes)
            logs = await log_latency(root, listener, args.log_seconds, args.rate)
        finally:
            await listener.sio.disconnect()
            citadel.stop()
    print(f"{'measure':44} {'p50':>9} {'p99':>9} {'Node original (poll)':>22}")
    print(
        f"{'SIGKILL -> serverStatus crashed (n=' + str(len(crashes)) + ')':44} "
        f"{1000 * statistics.median(crashes):7.1f}ms {1000 * pct(crashes, 0.99):7.1f}ms "
        f"{'7500 / 15000 ms':>22}"
    )
    print(
        f"{'RPT line -> log event, ' + str(args.rate) + '/s (n=' + str(len(logs)) + ')':44} "
        f"{1000 * statistics.median(logs):7.1f}ms {1000 * pct(logs, 0.99):7.1f}ms "
        f"{'500 / 1000 ms':>22}"
    )
    ratio_crash = (NODE_CRASH_POLL / 2) / statistics.median(crashes)
    ratio_log = (NODE_LOG_POLL / 2) / statistics.median(logs)
    print(f"  median speed-up over polling: crash x{ratio_crash:,.0f}, log x{ratio_log:,.0f}")
    if args.servers:
        cpu, rss, _ = await fleet_cost(args.servers, args.tick, args.measure)
        print(
            f"{args.servers} servers (tick {args.tick} s, metrics 5 s): Citadel CPU {cpu:.1f}% "
            f"of one core, RSS {rss:.0f} MiB   (targets: < 20%, < 300 MiB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crashes", type=int, default=30)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--log-seconds", type=float, default=5.0)
    parser.add_argument("--servers", type=int, default=100, help="0 skips the fleet cost")
    parser.add_argument("--tick", type=float, default=2.0, help="simulator tick (seconds)")
    parser.add_argument("--measure", type=float, default=30.0, help="seconds of CPU sampling")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
