"""Test harness: run the simulator as a real process, talk RCON over real UDP.

The RCON client here encodes and checks packets itself (zlib + struct), independently of
``dayzsim._codec``, so a codec bug cannot hide behind a matching bug in the test.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import UDPSocket

PASSWORD = "changeme"
BASE_ENV = {
    "DAYZSIM_TICK": "0.05",
    "DAYZSIM_START_DELAY": "0.2",
    "DAYZSIM_CHURN": "0",
    "DAYZSIM_EVENT_CHANCE": "0",
    "DAYZSIM_SCRIPT_ERROR_TICKS": "0",
    "DAYZSIM_RCON_RESEND": "0.2",
}
PLAYERS_ROW = re.compile(
    r"^(\d+)\s+(\S+):(\d+)\s+(-?\d+)\s+([0-9a-fA-F]{32}|-)\((OK|\?)\)\s(.*?)(\s\(Lobby\))?$"
)


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def packet(kind: int, payload: bytes = b"") -> bytes:
    """Encode an RCON packet (independent of the simulator's codec)."""
    body = bytes((0xFF, kind)) + payload
    return b"BE" + struct.pack("<I", zlib.crc32(body)) + body


def unpack(data: bytes) -> tuple[int, bytes] | None:
    """Decode an RCON packet, or None when header or CRC is wrong."""
    if len(data) < 8 or data[:2] != b"BE" or data[6] != 0xFF:
        return None
    if struct.unpack_from("<I", data, 2)[0] != zlib.crc32(data[6:]):
        return None
    return data[7], data[8:]


@dataclass
class Sim:
    """A running simulator process and where it writes."""

    proc: subprocess.Popen[bytes]
    root: Path
    rcon_port: int
    clients: list[Client] = field(default_factory=list)

    async def client(self) -> Client:
        """A new RCON client socket (closed when the run ends)."""
        sock = await anyio.create_udp_socket(local_host="127.0.0.1")
        client = Client(sock=sock, port=self.rcon_port)
        self.clients.append(client)
        return client

    @property
    def profile(self) -> Path:
        """The ``-profiles`` directory."""
        return self.root / "profiles"

    def one(self, pattern: str) -> Path:
        """The single file in the profile dir matching ``pattern``."""
        found = sorted(self.profile.glob(pattern))
        assert len(found) == 1, found
        return found[0]

    def rpt_text(self) -> str:
        """The whole RPT so far."""
        return self.one("DayZServer_*.RPT").read_text(encoding="utf-8")

    async def wait_for(self, pattern: str, needle: str, limit: float = 10.0) -> str:
        """Poll the file matching ``pattern`` until it contains ``needle``; return its text."""
        with anyio.fail_after(limit):
            while True:
                found = sorted(self.profile.glob(pattern))
                if found:
                    text = found[0].read_text(encoding="utf-8", errors="replace")
                    if needle in text:
                        return text
                await anyio.sleep(0.02)

    async def wait_ready(self) -> None:
        """Wait for ``Player connect enabled`` in the RPT."""
        await self.wait_for("DayZServer_*.RPT", "Player connect enabled")

    async def wait_exit(self, limit: float = 10.0) -> int:
        """Wait for the process to exit; its return code (negative = signal)."""
        with anyio.fail_after(limit):
            while (code := self.proc.poll()) is None:
                await anyio.sleep(0.02)
        return code


def start_sim(
    root: Path,
    env: Mapping[str, str] | None = None,
    *,
    be_name: str = "beserver_x64.cfg",
    extra_args: tuple[str, ...] = (),
) -> Sim:
    """Write a BattlEye config into ``root`` and start the simulator there."""
    port = free_udp_port()
    battleye = root / "profiles" / "battleye"
    battleye.mkdir(parents=True, exist_ok=True)
    (battleye / be_name).write_text(
        f"RConPassword {PASSWORD}\nRConPort {port}\nRConIP 127.0.0.1\n", encoding="utf-8"
    )
    full_env = {**os.environ, **BASE_ENV, **(env or {})}
    args = [
        sys.executable,
        "-m",
        "dayzsim",
        "-config=serverDZ.cfg",
        "-port=2302",
        "-profiles=profiles",
        "-dologs",
        "-adminlog",
        "-freezecheck",
        "-unknownFlag=1",
        *extra_args,
    ]
    with (root / "stdout.txt").open("wb") as out, (root / "stderr.txt").open("wb") as err:
        proc = subprocess.Popen(
            args, cwd=root, env=full_env, stdout=out, stderr=err, start_new_session=True
        )
    return Sim(proc=proc, root=root, rcon_port=port)


def kill_group(sim: Sim) -> None:
    """SIGKILL the simulator's whole process group and reap the leader."""
    with contextlib.suppress(ProcessLookupError):  # already gone, group and all
        os.killpg(sim.proc.pid, signal.SIGKILL)
    sim.proc.wait(timeout=10)


@asynccontextmanager
async def running(
    root: Path, env: Mapping[str, str] | None = None, *, be_name: str = "beserver_x64.cfg"
) -> AsyncIterator[Sim]:
    """Start a simulator; afterwards close its clients and always kill its process group."""
    sim = start_sim(root, env, be_name=be_name)
    try:
        yield sim
    finally:
        for client in sim.clients:
            await client.sock.aclose()
        kill_group(sim)


@dataclass
class Client:
    """A tiny RCON client over a real UDP socket."""

    sock: UDPSocket
    port: int
    seq: int = 0
    messages: list[tuple[int, str]] = field(default_factory=list)
    auto_ack: bool = True
    bad_packets: int = 0

    async def send_raw(self, data: bytes) -> None:
        """Send bytes as they are."""
        await self.sock.sendto(data, "127.0.0.1", self.port)

    async def receive(self) -> tuple[int, bytes]:
        """Next well-formed packet; messages are recorded (and acked when ``auto_ack``)."""
        while True:
            data, _ = await self.sock.receive()
            decoded = unpack(data)
            if decoded is None:
                self.bad_packets += 1
                continue
            kind, payload = decoded
            if kind == 0x02 and payload:
                self.messages.append((payload[0], payload[1:].decode("utf-8", "replace")))
                if self.auto_ack:
                    await self.send_raw(packet(0x02, payload[:1]))
            return kind, payload

    async def login(self, password: str = PASSWORD) -> bytes:
        """Send a login; return the raw reply datagram."""
        await self.send_raw(packet(0x00, password.encode("utf-8")))
        with anyio.fail_after(5):
            while True:
                data, _ = await self.sock.receive()
                decoded = unpack(data)
                if decoded is not None and decoded[0] == 0x00:
                    return data

    async def command(self, text: str, limit: float = 5.0) -> tuple[str, int]:
        """Send a command; return the reassembled reply and the number of datagrams."""
        seq = self.seq
        self.seq = (self.seq + 1) & 0xFF
        await self.send_raw(packet(0x01, bytes((seq,)) + text.encode("utf-8")))
        parts: dict[int, bytes] = {}
        with anyio.fail_after(limit):
            while True:
                kind, payload = await self.receive()
                if kind != 0x01 or not payload or payload[0] != seq:
                    continue
                body = payload[1:]
                if len(body) >= 3 and body[0] == 0x00:
                    total, index = body[1], body[2]
                    parts[index] = body[3:]
                    if len(parts) == total:
                        joined = b"".join(parts[i] for i in range(total))
                        return joined.decode("utf-8"), total
                else:
                    return body.decode("utf-8"), 1

    async def wait_message(self, needle: str, limit: float = 5.0) -> str:
        """Wait for a server message containing ``needle``."""
        with anyio.fail_after(limit):
            while True:
                for _, text in self.messages:
                    if needle in text:
                        return text
                await self.receive()


async def logged_in(sim: Sim) -> Client:
    """Wait for readiness, log in, and return the client."""
    await sim.wait_ready()
    client = await sim.client()
    reply = await client.login()
    assert unpack(reply) == (0x00, b"\x01")
    return client


async def wait_players(
    client: Client, count: int, *, verified: bool = False, limit: float = 10.0
) -> list[re.Match[str]]:
    """Poll ``players`` until ``count`` rows (optionally all GUID-verified) show; parse them."""
    with anyio.fail_after(limit):
        while True:
            text, _ = await client.command("players")
            rows = [m for line in text.splitlines() if (m := PLAYERS_ROW.match(line))]
            if len(rows) >= count and (not verified or all(r.group(6) == "OK" for r in rows)):
                return rows
            await anyio.sleep(0.05)
