"""Benchmark Citadel's Socket.IO fan-out against Node's socket.io 4, with the same load generator.

For each client count (1, 100, 1000) it starts the reference server (node/bench/server.js) and
then Citadel's engine under uvicorn (this script with ``--serve``), connects the clients, sharded
over ``--load-procs`` Node load generators (node/bench/load.js, WebSocket transport), and has the
server push bursts of the same ``metrics`` event. Per server it prints deliveries/s, p50/p99
delivery latency, RSS with the clients connected, the server's CPU over the measured window and
deliveries per server CPU-second (its efficiency, whatever the load generators manage), the load
generators' CPU (near 100 % each means they, not the server, set deliveries/s), and the
Citadel/Node ratio of both deliveries/s and deliveries per CPU-second. Every step is bounded; the
whole takes ~1 minute.

Usage: scripts/bench_broadcast [--seconds S] [--clients 1,100,1000] [--load-procs N]
                              [--flush-turns K] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import sys
import time
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any, Final

SELF: Final = Path(__file__).resolve()
ROOT: Final = SELF.parent.parent
sys.path.insert(0, str(ROOT))

from citadel.realtime import DEFAULT_FLUSH_TURNS  # noqa: E402 - needs the path above

NODE_DIR: Final = ROOT / "node"
TOKEN: Final = "bench"
DEFAULT_SECONDS: Final = 4.0
DEFAULT_CLIENTS: Final = (1, 100, 1000)
DELIVERIES_PER_BURST: Final = 10_000
MAX_BURST: Final = 2_000
DEFAULT_LOAD_PROCS: Final = 2
START_TIMEOUT: Final = 20.0  # server start, up to its port line
CONNECT_TIMEOUT: Final = 40.0  # all clients connected (load.js gives up after 30 s itself)
STEP_TIMEOUT: Final = 20.0  # one burst, one stats request, one report
STOP_TIMEOUT: Final = 5.0  # SIGTERM to exit, before SIGKILL
STDERR_TAIL: Final = 2000
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


def burst_size(clients: int) -> int:
    """Events per burst so that one burst is about DELIVERIES_PER_BURST deliveries."""
    return max(1, min(MAX_BURST, DELIVERIES_PER_BURST // clients))


# -- the Citadel side (run in a child process with --serve) -----------------------------------


def serve(flush_turns: int) -> None:
    """Run Citadel's engine with the bench endpoints on 127.0.0.1, port printed as JSON."""
    import msgspec
    import uvicorn

    from citadel.realtime import (
        ClientScope,
        ConnectRefused,
        FanoutEngine,
        Outgoing,
        build_asgi_app,
    )

    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:  # uvloop is optional; asyncio's loop is the fallback
        run = asyncio.run

    class Metrics(msgspec.Struct, frozen=True):
        serverId: str
        cpu: float
        ram: float
        players: int
        fps: float | None
        timestamp: str
        ramBytes: int
        uptime: int
        sent: float

    class Status(msgspec.Struct, frozen=True):
        serverId: str
        status: str
        seq: int

    admin = ClientScope(servers=None, permissions=frozenset({"*"}), is_admin=True)

    def authenticate(auth: Any, environ: Any) -> ClientScope:
        if not auth or auth.get("token") != TOKEN:
            raise ConnectRefused("invalid token")
        return admin

    engine = FanoutEngine(authenticate, flush_turns=flush_turns)
    encode = msgspec.json.encode

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    async def reply(send: Any, body: bytes, status: int = 200) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def bench_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        query = dict(
            part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part
        )
        if scope["path"] == "/bench/burst":
            for _ in range(int(query["count"])):
                stamp = time.time()
                iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp))
                payload = encode(
                    Metrics("bench", 12.5, 33.1, 42, 59.9, iso, 2147483648, 3600, stamp * 1000)
                )
                engine.publish(Outgoing("metrics", "bench", payload))
                await asyncio.sleep(0)
            engine.publish(
                Outgoing(
                    "serverStatus", "bench", encode(Status("bench", "running", int(query["seq"])))
                )
            )
            await reply(send, b'"ok"')
        elif scope["path"] == "/bench/stats":
            stats = engine.statistics()
            await reply(send, encode({"rss": rss(), "clients": stats.clients, "engine": stats}))
        else:
            await reply(send, b"{}", 404)

    app = build_asgi_app(engine, bench_app)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", backlog=2048, ws_per_message_deflate=False
    )
    server = uvicorn.Server(config)
    run(server.serve(sockets=[sock]))


# -- the orchestrator ---------------------------------------------------------------------------


class Proc:
    """One child process whose stdout carries JSON lines, read into a queue."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        """Wrap a started child; start draining its stdout and stderr."""
        self.proc = proc
        self.name = name
        self.lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.stderr = b""
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            if raw.startswith(b"{"):
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(msg, dict):
                    self.lines.put_nowait(msg)
        self.lines.put_nowait({"error": f"{self.name} exited: {self.stderr[-500:]!r}"})

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            # Keep the tail only: it is for the error message, and must never block the child.
            self.stderr = (self.stderr + raw)[-STDERR_TAIL:]

    async def expect(self, key: str) -> dict[str, Any]:
        """Next message that has `key`; an {"error": ...} message (or the child's exit) raises."""
        while True:
            msg = await self.lines.get()
            if "error" in msg:
                raise RuntimeError(f"{self.name}: {msg['error']}")
            if key in msg:
                return msg

    def cpu_seconds(self) -> float:
        """User + system CPU time of the child so far."""
        return cpu_seconds(self.proc.pid)

    async def stop(self) -> None:
        """Close stdin and terminate (SIGKILL if that is not enough), bounded."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        if self.proc.returncode is None:
            self.proc.terminate()
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        # The command name may hold spaces and parentheses: count fields after the last ')'.
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def shard(clients: int, procs: int) -> list[int]:
    """Split clients over at most `procs` load generators, as evenly as possible, none empty."""
    procs = max(1, min(procs, clients))
    return [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]


def percentile(buckets: dict[int, float], growth: float, p: float) -> float | None:
    """The p-quantile (0..1) of a merged log-bucket latency histogram, in ms (bucket midpoint)."""
    total = sum(buckets.values())
    if total == 0:
        return None
    rank = min(total - 1, math.floor(p * total))
    seen = 0.0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen > rank:
            return float(growth ** (bucket + 0.5))
    return None  # unreachable: seen ends at total > rank


async def http_get(port: int, target: str) -> bytes:
    """GET http://127.0.0.1:port/target with a fresh connection; the body (status 200 only)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        data = await reader.read(-1)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise RuntimeError(f"GET {target}: {status!r}")
    return body


async def start_server(argv: list[str], cwd: Path, name: str) -> tuple[Proc, int]:
    """Start a bench server, read its port from its first JSON line."""
    proc = Proc(
        await asyncio.create_subprocess_exec(*argv, cwd=cwd, stdin=PIPE, stdout=PIPE, stderr=PIPE),
        name,
    )
    try:
        async with asyncio.timeout(START_TIMEOUT):
            return proc, int((await proc.expect("port"))["port"])
    except BaseException:
        await proc.stop()
        raise


async def burst(port: int, gens: list[Proc], count: int, seq: int) -> None:
    """Have the server push one burst; return when every shard saw the end marker `seq`."""
    async with asyncio.timeout(STEP_TIMEOUT):
        _, *got = await asyncio.gather(
            http_get(port, f"/bench/burst?count={count}&seq={seq}"),
            *(gen.expect("marker") for gen in gens),
        )
    if any(m["marker"] != seq for m in got):
        raise RuntimeError(f"burst {seq}: markers out of order: {got}")


async def run_load(
    port: int, server_pid: int, clients: int, seconds: float, procs: int
) -> dict[str, Any]:
    """Drive sharded Node load generators against 127.0.0.1:port for one measured window."""
    url = f"http://127.0.0.1:{port}"
    gens: list[Proc] = []
    try:
        for i, share in enumerate(shard(clients, procs)):
            child = await asyncio.create_subprocess_exec(
                "node", "bench/load.js", url, str(share), TOKEN,
                cwd=NODE_DIR, stdin=PIPE, stdout=PIPE, stderr=PIPE,
            )  # fmt: skip
            gens.append(Proc(child, f"load.js[{i}]"))
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await asyncio.gather(*(gen.expect("ready") for gen in gens))
        async with asyncio.timeout(STEP_TIMEOUT):
            stats = json.loads(await http_get(port, "/bench/stats"))
        count = burst_size(clients)
        await burst(port, gens, count, 0)  # warm-up; the shards reset their counters after it
        result = await measured_window(port, server_pid, gens, count, seconds)
        async with asyncio.timeout(STEP_TIMEOUT):
            after = json.loads(await http_get(port, "/bench/stats"))
        return result | {
            "clients": clients,
            "load_procs": len(gens),
            "burst": count,
            "rss_connected": stats["rss"],
            "server_after": after,
        }
    finally:
        await asyncio.gather(*(gen.stop() for gen in gens))


async def measured_window(
    port: int, server_pid: int, gens: list[Proc], count: int, seconds: float
) -> dict[str, Any]:
    """Bursts for `seconds`; deliveries, latency and every process's CPU over that window."""
    server_cpu0 = cpu_seconds(server_pid)
    gen_cpu0 = [gen.cpu_seconds() for gen in gens]
    own_cpu0 = time.process_time()
    t0 = time.monotonic()
    seq = 1
    while time.monotonic() - t0 < seconds:
        await burst(port, gens, count, seq)
        seq += 1
    elapsed = time.monotonic() - t0
    server_cpu = cpu_seconds(server_pid) - server_cpu0
    gen_cpu = [gen.cpu_seconds() - c0 for gen, c0 in zip(gens, gen_cpu0, strict=True)]
    own_cpu = time.process_time() - own_cpu0
    for gen in gens:
        assert gen.proc.stdin is not None
        gen.proc.stdin.write(b"report\n")
    async with asyncio.timeout(STEP_TIMEOUT):
        reports = [(await gen.expect("report"))["report"] for gen in gens]
    delivered = sum(int(r["delivered"]) for r in reports)
    growth = float(reports[0]["growth"])
    buckets: dict[int, float] = {}
    for r in reports:
        for bucket, n in r["buckets"]:
            buckets[int(bucket)] = buckets.get(int(bucket), 0.0) + float(n)
    return {
        "bursts": seq - 1,
        "delivered": delivered,
        "seconds": elapsed,
        "rate": delivered / elapsed,
        "p50_ms": percentile(buckets, growth, 0.5),
        "p99_ms": percentile(buckets, growth, 0.99),
        "server_cpu_s": server_cpu,
        "per_cpu_s": delivered / server_cpu if server_cpu > 0 else None,
        "load_cpu_s": gen_cpu,
        "orchestrator_cpu_s": own_cpu,
    }


async def measure(
    kind: str, clients: int, seconds: float, procs: int, flush_turns: int
) -> dict[str, Any]:
    """Start one server kind, run one measured window against it, stop the server."""
    if kind == "node":
        argv = ["node", "bench/server.js"]
        cwd = NODE_DIR
    else:
        argv = [sys.executable, str(SELF), "--serve", "--flush-turns", str(flush_turns)]
        cwd = ROOT
    server, port = await start_server(argv, cwd, kind)
    try:
        return await run_load(port, server.proc.pid, clients, seconds, procs)
    finally:
        await server.stop()


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is zero."""
    return a / b if a is not None and b else None


def fmt_ms(value: float | None) -> str:
    """Format a latency in milliseconds."""
    return "-" if value is None else f"{value:.1f}"


def fmt_ratio(value: float | None) -> str:
    """Format a Citadel/Node ratio."""
    return "-" if value is None else f"{value:.2f}x"


HEADER: Final = (
    f"{'clients':>7} {'server':>8} {'deliv/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'RSS MiB':>7} "
    f"{'srv CPU':>7} {'deliv/CPU-s':>11}  {'load CPU (per proc)':<19} {'x deliv/s':>9} "
    f"{'x per CPU':>9}"
)


def row(name: str, r: dict[str, Any], ratios: tuple[float | None, float | None] | None) -> str:
    """One table row; CPU columns are percent of one core over the measured window."""
    window = r["seconds"]
    load = "+".join(f"{100 * c / window:.0f}" for c in r["load_cpu_s"]) + " %"
    per_cpu = "-" if r["per_cpu_s"] is None else f"{r['per_cpu_s']:.0f}"
    line = (
        f"{r['clients']:>7} {name:>8} {r['rate']:>9.0f} {fmt_ms(r['p50_ms']):>7} "
        f"{fmt_ms(r['p99_ms']):>7} {r['rss_connected'] / 2**20:>7.1f} "
        f"{100 * r['server_cpu_s'] / window:>6.0f}% {per_cpu:>11}  {load:<19}"
    )
    if ratios is not None:
        line += f" {fmt_ratio(ratios[0]):>9} {fmt_ratio(ratios[1]):>9}"
    return line.rstrip()


async def bench(
    counts: list[int], seconds: float, procs: int, flush_turns: int, as_json: bool
) -> None:
    """Measure both servers at each client count, one after the other, and print the table."""
    print(HEADER, flush=True)
    for clients in counts:
        node = await measure("node", clients, seconds, procs, flush_turns)
        citadel = await measure("citadel", clients, seconds, procs, flush_turns)
        ratios = (
            ratio(citadel["rate"], node["rate"]),
            ratio(citadel["per_cpu_s"], node["per_cpu_s"]),
        )
        print(row("node", node, None))
        print(row("citadel", citadel, ratios), flush=True)
        if as_json:
            print(
                json.dumps(
                    {
                        "clients": clients,
                        "node": node,
                        "citadel": citadel,
                        "ratio": ratios[0],
                        "ratio_per_cpu": ratios[1],
                    }
                ),
                flush=True,
            )


def main() -> int:
    """Parse arguments and run the benchmark (or serve, with --serve)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="run Citadel's bench server")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--clients", default=",".join(map(str, DEFAULT_CLIENTS)))
    parser.add_argument(
        "--load-procs",
        type=int,
        default=DEFAULT_LOAD_PROCS,
        help="load-generator processes the clients are sharded over",
    )
    parser.add_argument(
        "--flush-turns",
        type=int,
        default=DEFAULT_FLUSH_TURNS,
        help="Citadel's write-coalescing window in event-loop turns (1: the next turn)",
    )
    parser.add_argument("--json", action="store_true", help="also print results as JSON lines")
    args = parser.parse_args()
    if args.flush_turns < 1:
        parser.error("--flush-turns must be at least 1")
    if args.serve:
        serve(args.flush_turns)
        return 0
    counts = [int(c) for c in args.clients.split(",")]
    if args.load_procs < 1 or any(c < 1 for c in counts):
        parser.error("--load-procs and every --clients count must be at least 1")
    asyncio.run(bench(counts, args.seconds, args.load_procs, args.flush_turns, args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
