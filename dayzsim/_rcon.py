"""A BattlEye RCON server over UDP: logins, commands, multipart replies, server messages.

Sessions are keyed by the client's (ip, port). Server messages carry a per-session sequence and
are resent every ``rcon_resend`` seconds until acknowledged; after ``rcon_resend_limit`` resends
the session is dropped, as is a session silent for more than ``rcon_timeout`` seconds.
"""

from __future__ import annotations

import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import anyio
from anyio.abc import SocketAttribute, UDPSocket

from dayzsim import _codec
from dayzsim._config import Controls
from dayzsim._text import msg_admin_login

DUPLICATE_WINDOW: Final = 5.0  # seconds a repeated (seq, command) is answered from the cache
OUTBOX_SIZE: Final = 4096  # queued datagrams before sends are dropped
IDLE_CHECK: Final = 1.0  # seconds between session sweeps when nothing is pending


@dataclass
class Pending:
    """A server message waiting for its ACK."""

    packet: bytes
    sends: int
    due: float


@dataclass
class Session:
    """One logged-in RCON client."""

    host: str
    port: int
    number: int
    last_seen: float
    next_seq: int = 0
    pending: dict[int, Pending] = field(default_factory=dict)
    last_command: tuple[int, bytes, float, list[bytes]] | None = None


CommandHandler = Callable[[Session, str], str]


class RconServer:
    """Serves the BattlEye RCON protocol on one UDP socket."""

    def __init__(
        self,
        sock: UDPSocket,
        password: str,
        controls: Controls,
        handler: CommandHandler,
        rng: random.Random,
    ) -> None:
        """Serve ``sock``; ``handler`` runs each command and returns the reply text."""
        self._sock = sock
        # Sends are queued and written by one task, so the sync protocol code never awaits.
        self._outbox_in, self._outbox = anyio.create_memory_object_stream[
            tuple[bytes, tuple[str, int]]
        ](OUTBOX_SIZE)
        self._unsent = 0  # queued or being sent; drain() waits for zero
        self._idle = anyio.Event()
        self._idle.set()
        self._password = password.encode("utf-8")
        self._controls = controls
        self._handler = handler
        self._rng = rng
        self.sessions: dict[tuple[str, int], Session] = {}
        self._deferred: list[str] | None = None
        self._wake = anyio.Event()
        self.dropped_sends = 0

    @property
    def port(self) -> int:
        """The bound UDP port."""
        return int(self._sock.extra(SocketAttribute.local_port))

    # --- sending ----------------------------------------------------------------------------------

    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._controls.rcon_garbage:
            self._send_raw(self._rng.randbytes(self._rng.randrange(1, 64)), addr)
            self._send_raw(data[:2] + bytes(b ^ 0x5A for b in data[2:6]) + data[6:], addr)
        self._send_raw(data, addr)

    def _send_raw(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self._outbox_in.send_nowait((data, addr))
        except anyio.WouldBlock:
            self.dropped_sends += 1  # UDP is lossy anyway; a full queue just loses this one
            return
        if self._unsent == 0:
            self._idle = anyio.Event()
        self._unsent += 1

    async def drain(self) -> None:
        """Wait until every queued datagram has been handed to the socket."""
        await self._idle.wait()

    async def _sender(self) -> None:
        async with self._outbox:
            async for data, (host, port) in self._outbox:
                try:
                    await self._sock.sendto(data, host, port)
                except OSError:
                    self.dropped_sends += 1
                finally:
                    self._unsent -= 1
                    if self._unsent == 0:
                        self._idle.set()

    def broadcast(self, text: str) -> None:
        """Send a server message to every session (after the current reply, if in a command)."""
        if self._deferred is not None:
            self._deferred.append(text)
            return
        payload = text.encode("utf-8")
        now = time.monotonic()
        for session in list(self.sessions.values()):
            seq = session.next_seq
            session.next_seq = (seq + 1) & 0xFF
            packet = _codec.server_message(seq, payload)
            session.pending[seq] = Pending(packet, 1, now + self._controls.rcon_resend)
            self._send(packet, (session.host, session.port))
        self._wake.set()

    def admins(self) -> list[tuple[int, str, int]]:
        """``(number, ip, port)`` of every logged-in client."""
        return [(s.number, s.host, s.port) for s in self.sessions.values()]

    # --- receiving --------------------------------------------------------------------------------

    async def serve(self) -> None:
        """Receive and answer datagrams until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._sender)
            while True:
                try:
                    data, (host, port) = await self._sock.receive()
                except OSError:
                    continue  # e.g. an ICMP error surfaced on the socket; keep serving
                if self._controls.rcon_refuse:
                    continue
                try:
                    self.handle_datagram(data, host, port)
                except Exception:
                    # One datagram must never take the server down; report it and go on.
                    print(f"dayz-sim: RCon datagram from {host}:{port} failed:", file=sys.stderr)
                    traceback.print_exc()

    def handle_datagram(self, data: bytes, host: str, port: int) -> None:
        """Answer one datagram; malformed ones are dropped silently, as BattlEye does."""
        try:
            packet = _codec.decode(data)
        except _codec.BadPacket:
            return
        addr = (host, port)
        now = time.monotonic()
        if packet.kind == _codec.LOGIN:
            self._login(packet.payload, addr, now)
            return
        session = self.sessions.get(addr)
        if session is None:
            return  # not logged in: BattlEye ignores everything but a login
        session.last_seen = now
        if packet.kind == _codec.MESSAGE and packet.payload:
            session.pending.pop(packet.payload[0], None)
        elif packet.kind == _codec.COMMAND and packet.payload:
            self._command(session, packet.payload[0], packet.payload[1:], now)

    def _login(self, password: bytes, addr: tuple[str, int], now: float) -> None:
        ok = password == self._password
        self._send(_codec.login_reply(ok), addr)
        if not ok:
            return
        old = self.sessions.pop(addr, None)
        taken = {s.number for s in self.sessions.values()}
        number = (
            old.number
            if old is not None
            else next(i for i in range(len(taken) + 1) if i not in taken)
        )
        session = Session(host=addr[0], port=addr[1], number=number, last_seen=now)
        self.sessions[addr] = session
        self.broadcast(msg_admin_login(number, addr[0], addr[1]))

    def _command(self, session: Session, seq: int, raw: bytes, now: float) -> None:
        addr = (session.host, session.port)
        last = session.last_command
        if (
            last is not None
            and last[0] == seq
            and last[1] == raw
            and now - last[2] < DUPLICATE_WINDOW
        ):
            for packet in last[3]:  # a retransmitted request: answer again, do not run twice
                self._send(packet, addr)
            return
        self._deferred = []
        try:
            reply = self._handler(session, raw.decode("utf-8", errors="replace"))
            packets = _codec.command_replies(
                seq, reply.encode("utf-8"), self._controls.rcon_part_size
            )
            session.last_command = (seq, raw, now, packets)
            for packet in packets:
                self._send(packet, addr)
        finally:
            deferred, self._deferred = self._deferred, None
        for text in deferred:
            self.broadcast(text)

    # --- upkeep -----------------------------------------------------------------------------------

    async def maintain(self) -> None:
        """Resend unacknowledged messages and drop silent or unresponsive sessions."""
        while True:
            if not self.sessions:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            self.sweep(time.monotonic())
            await anyio.sleep(self._next_wait(time.monotonic()))

    def _next_wait(self, now: float) -> float:
        dues = [p.due for s in self.sessions.values() for p in s.pending.values()]
        limit = min(IDLE_CHECK, self._controls.rcon_timeout / 4)
        if not dues:
            return limit
        return max(0.005, min(limit, min(dues) - now))

    def sweep(self, now: float) -> None:
        """One upkeep pass at monotonic time ``now``."""
        limit = 1 + self._controls.rcon_resend_limit
        for addr, session in list(self.sessions.items()):
            if now - session.last_seen > self._controls.rcon_timeout:
                del self.sessions[addr]
                continue
            for seq, pending in list(session.pending.items()):
                if pending.due > now:
                    continue
                if pending.sends >= limit:
                    del self.sessions[addr]  # never acknowledged: BattlEye forgets the client
                    break
                pending.sends += 1
                pending.due = now + self._controls.rcon_resend
                self._send(pending.packet, addr)
                session.pending[seq] = pending
