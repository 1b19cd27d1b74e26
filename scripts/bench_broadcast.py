"""Benchmark Citadel's Socket.IO fan-out against Node's socket.io 4, with the same load generator.

For each client count (1, 100, 1000) it starts the reference server (node/bench/server.js) and
then Citadel's engine under uvicorn (this script with ``--serve``), connects the Node load
generator (node/bench/load.js, WebSocket transport) and has the server push bursts of the same
``metrics`` event; it prints deliveries/s, p50/p99 delivery latency, the Citadel/Node ratio, and
both servers' RSS with the clients connected. Every run is bounded; the whole takes ~1 minute.

Usage: scripts/bench_broadcast [--seconds S] [--clients 1,100,1000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NODE_DIR: Final = ROOT / "node"
TOKEN: Final = "bench"
DEFAULT_SECONDS: Final = 4.0
DEFAULT_CLIENTS: Final = (1, 100, 1000)
DELIVERIES_PER_BURST: Final = 10_000
MAX_BURST: Final = 2_000
START_TIMEOUT: Final = 20.0
RUN_TIMEOUT_SLACK: Final = 60.0


def burst_size(clients: int) -> int:
    """Events per burst so that one burst is about DELIVERIES_PER_BURST deliveries."""
    return max(1, min(MAX_BURST, DELIVERIES_PER_BURST // clients))


# -- the Citadel side (run in a child process with --serve) -----------------------------------


def serve() -> None:
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

    engine = FanoutEngine(authenticate)
    encode = msgspec.json.encode

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    async def reply(send: Any, body: bytes, status: int = 200) -> None:
        headers = [(b"content-type", b"application/json")]
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


def start_server(argv: list[str], cwd: Path) -> tuple[subprocess.Popen[str], int]:
    """Start a bench server, read its port from its first stdout line."""
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    line = proc.stdout.readline()
    if not line or time.monotonic() > deadline:
        proc.kill()
        raise RuntimeError(f"{argv[0]} did not start")
    return proc, int(json.loads(line)["port"])


def stop_server(proc: subprocess.Popen[str]) -> None:
    """Stop a bench server: close its stdin, then terminate, bounded."""
    if proc.stdin is not None:
        proc.stdin.close()
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_load(port: int, clients: int, seconds: float) -> dict[str, Any]:
    """Run the Node load generator against 127.0.0.1:port; return its JSON result."""
    argv = [
        "node", "bench/load.js", f"http://127.0.0.1:{port}", str(clients), str(seconds),
        str(burst_size(clients)), TOKEN,
    ]  # fmt: skip
    out = subprocess.run(
        argv, cwd=NODE_DIR, capture_output=True, text=True, timeout=seconds + RUN_TIMEOUT_SLACK
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"load.js printed nothing: {out.stderr[-500:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    if "error" in result:
        raise RuntimeError(f"load.js: {result['error']}")
    return result


def measure(kind: str, clients: int, seconds: float) -> dict[str, Any]:
    """Start one server kind, run the load generator once, stop the server."""
    if kind == "node":
        argv = ["node", "bench/server.js"]
        cwd = NODE_DIR
    else:
        argv = [sys.executable, str(Path(__file__).resolve()), "--serve"]
        cwd = ROOT
    proc, port = start_server(argv, cwd)
    try:
        return run_load(port, clients, seconds)
    finally:
        stop_server(proc)


def fmt_ms(value: float | None) -> str:
    """Format a latency in milliseconds."""
    return "-" if value is None else f"{value:.1f}"


def main() -> int:
    """Parse arguments and run the benchmark (or serve, with --serve)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="run Citadel's bench server")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--clients", default=",".join(map(str, DEFAULT_CLIENTS)))
    parser.add_argument("--json", action="store_true", help="print results as JSON lines")
    args = parser.parse_args()
    if args.serve:
        serve()
        return 0
    counts = [int(c) for c in args.clients.split(",")]
    print(f"{'clients':>7} {'server':>8} {'deliv/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'RSS MiB':>8}  ratio")  # fmt: skip
    for clients in counts:
        node = measure("node", clients, args.seconds)
        citadel = measure("citadel", clients, args.seconds)
        ratio = citadel["rate"] / node["rate"] if node["rate"] else float("nan")
        for name, r in (("node", node), ("citadel", citadel)):
            print(
                f"{clients:>7} {name:>8} {r['rate']:>10.0f} {fmt_ms(r['p50_ms']):>8} "
                f"{fmt_ms(r['p99_ms']):>8} {r['rss_connected'] / 2**20:>8.1f}"
                + (f"  {ratio:.2f}x" if name == "citadel" else "")
            )
        if args.json:
            print(
                json.dumps({"clients": clients, "node": node, "citadel": citadel, "ratio": ratio})
            )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
