"""Helpers for the realtime tests: uvicorn in-process, a raw WebSocket peer, the Node client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import select
import socket
import struct
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn

from citadel.realtime import ClientScope, ConnectRefused, FanoutEngine, build_asgi_app

NODE_DIR = Path(__file__).resolve().parents[3] / "node"

ADMIN = ClientScope(servers=None, permissions=frozenset({"*"}), is_admin=True)
TOKENS: dict[str, ClientScope] = {
    "admin": ADMIN,
    "a-metrics": ClientScope(
        servers=frozenset({"a"}), permissions=frozenset({"server.view", "metrics.view"})
    ),
    "a-viewer": ClientScope(
        servers=frozenset({"a"}), permissions=frozenset({"server.view", "players.view"})
    ),
    "a-moderator": ClientScope(
        servers=frozenset({"a"}),
        permissions=frozenset({"server.view", "players.view", "players.kick"}),
    ),
}


def authenticate(auth: Mapping[str, Any] | None, environ: Mapping[str, Any]) -> ClientScope:
    """Map a test token to its scope."""
    token = auth.get("token") if auth else None
    if not isinstance(token, str):
        raise ConnectRefused("missing token")
    scope = TOKENS.get(token)
    if scope is None:
        raise ConnectRefused("invalid token")
    return scope


@asynccontextmanager
async def serving(engine: FanoutEngine) -> AsyncIterator[str]:
    """Serve ``engine`` with uvicorn on 127.0.0.1 (a port the OS picks); yield its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        build_asgi_app(engine),
        log_level="warning",
        lifespan="off",
        ws="wsproto",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await engine.shutdown()
        server.should_exit = True
        await task
        sock.close()


class RawWebSocket:
    """A bare Engine.IO WebSocket peer that reads only when told to (or never)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, url: str, *, rcvbuf: int | None = None) -> RawWebSocket:
        """Open the WebSocket and read the handshake response and the Engine.IO OPEN packet."""
        host, port = url.removeprefix("http://").split(":")
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await reader.readuntil(b"\r\n\r\n")
        peer = cls(reader, writer)
        opened = await peer.recv()
        assert opened.startswith("0{")
        return peer

    def send(self, data: bytes | str, opcode: int = 0x1) -> None:
        """Send one masked frame (clients must mask)."""
        body = data.encode() if isinstance(data, str) else data
        mask = os.urandom(4)
        n = len(body)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        else:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
        self.writer.write(header + mask + masked)

    async def recv(self) -> str:
        """Read one unfragmented text frame."""
        _fin_opcode, second = await self.reader.readexactly(2)
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return (await self.reader.readexactly(n)).decode()

    async def next_event(self) -> tuple[str, Any]:
        """Read up to the next Socket.IO event, answering Engine.IO pings on the way."""
        while True:
            text = await self.recv()
            if text == "2":
                self.send("3")
                continue
            assert text.startswith("42"), text
            name, data = json.loads(text[2:])
            return name, data

    def pause_reading(self) -> None:
        """Stop reading the socket at all (not even into asyncio's buffer): a stalled peer."""
        self._transport().pause_reading()

    def resume_reading(self) -> None:
        """Read the socket again."""
        self._transport().resume_reading()

    def _transport(self) -> asyncio.Transport:
        transport = self.writer.transport
        assert isinstance(transport, asyncio.Transport)
        return transport

    async def wait_cut(self, timeout: float) -> bool:  # noqa: ASYNC109 - bounds a thread's poll
        """Wait (reading nothing) until the server resets or closes the connection.

        A ``poll`` in a worker thread asks only for hang-up and error conditions, so the
        bytes waiting in the receive buffer stay unread. Call `pause_reading` first, so that
        asyncio does not notice the reset and close the descriptor meanwhile.
        """
        sock = self.writer.get_extra_info("socket")
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLRDHUP | select.POLLERR | select.POLLHUP)
        ready = await asyncio.to_thread(poller.poll, timeout * 1000)
        return bool(ready)

    def close(self) -> None:
        """Drop the connection."""
        self.writer.close()


class NodeClient:
    """A real Node ``socket.io-client`` process printing what it receives as JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, url: str, token: str, transports: str = "") -> NodeClient:
        """Start node/bench/client.js against ``url``."""
        proc = await asyncio.create_subprocess_exec(
            "node",
            "bench/client.js",
            url,
            token,
            transports,
            cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def next_event(self) -> dict[str, Any]:
        """Read the next printed event."""
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        assert line, "node client exited"
        event: dict[str, Any] = json.loads(line)
        return event

    async def stop(self) -> None:
        """Close stdin (the client exits) and reap it."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await self.proc.wait()
