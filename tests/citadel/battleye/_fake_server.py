"""A scriptable BattlEye RCon server on a real 127.0.0.1 UDP socket, built on berconpy's codec."""

from __future__ import annotations

import enum
from collections.abc import Callable

import anyio
from anyio.abc import SocketAttribute, UDPSocket
from berconpy.protocol import (
    ClientCommandPacket,
    ClientLoginPacket,
    ClientMessagePacket,
    Packet,
    ServerCommandPacket,
    ServerLoginPacket,
    ServerMessagePacket,
)

PASSWORD = "changeme"


class Login(enum.Enum):
    """How the fake answers a login."""

    OK = "ok"
    FAIL = "fail"
    SILENT = "silent"


class Received:
    """One client datagram as the server saw it, with the (virtual) time it arrived."""

    def __init__(self, at: float, packet: Packet, raw: bytes) -> None:
        self.at = at
        self.packet = packet
        self.raw = raw


class FakeBattlEye:
    """Answers logins and keepalives by itself; everything else is scripted by the test.

    ``silent`` drops every datagram unanswered (a server that went away). ``echo`` answers every
    non-empty command with its own text. ``drop_next`` swallows that many commands unanswered.
    """

    def __init__(self, socket: UDPSocket, password: str) -> None:
        self.socket = socket
        self.password = password
        self.login = Login.OK
        self.silent = False
        self.echo = False
        self.answer_keepalives = True
        self.drop_next = 0
        self.peer: tuple[str, int] | None = None
        self.received: list[Received] = []
        self.garbage = 0
        self._activity = anyio.Event()

    @property
    def port(self) -> int:
        return int(self.socket.extra(SocketAttribute.local_port))

    # --- what the client sent --------------------------------------------------------------

    def logins(self) -> list[Received]:
        return [r for r in self.received if isinstance(r.packet, ClientLoginPacket)]

    def commands(self) -> list[ClientCommandPacket]:
        return [r.packet for r in self.received if isinstance(r.packet, ClientCommandPacket)]

    def keepalives(self) -> list[Received]:
        return [
            r
            for r in self.received
            if isinstance(r.packet, ClientCommandPacket) and r.packet.message == b""
        ]

    def acks(self) -> list[int]:
        return [
            r.packet.sequence for r in self.received if isinstance(r.packet, ClientMessagePacket)
        ]

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds, re-checking after every datagram received."""
        while not condition():
            await self._activity.wait()

    async def next_command(self, after: int = 0) -> ClientCommandPacket:
        """Wait for the first non-empty command beyond the ``after`` ones seen so far."""

        def real() -> list[ClientCommandPacket]:
            return [c for c in self.commands() if c.message]

        await self.wait_until(lambda: len(real()) > after)
        return real()[after]

    # --- what the server sends -------------------------------------------------------------

    async def send(self, datagram: bytes) -> None:
        assert self.peer is not None, "no client has logged in yet"
        await self.socket.sendto(datagram, *self.peer)

    async def reply(self, seq: int, text: bytes, *, total: int = 1, index: int = 0) -> None:
        await self.send(ServerCommandPacket(seq, total, index, text).data)

    async def message(self, seq: int, text: str) -> None:
        await self.send(ServerMessagePacket(seq, text.encode()).data)

    # --- loop ------------------------------------------------------------------------------

    async def serve(self) -> None:
        while True:
            try:
                raw, address = await self.socket.receive()
            except anyio.BrokenResourceError:
                continue  # ICMP "port unreachable" from a client socket that already closed
            await self._on_datagram(raw, address)
            self._activity.set()
            self._activity = anyio.Event()

    async def _on_datagram(self, raw: bytes, address: tuple[str, int]) -> None:
        if self.silent:
            return
        try:
            packet = Packet.from_bytes(raw, from_client=True)
        except ValueError:
            self.garbage += 1
            return
        self.received.append(Received(anyio.current_time(), packet, raw))
        if isinstance(packet, ClientLoginPacket):
            self.peer = address  # a new login may come from a new socket
            if self.login is not Login.SILENT:
                ok = self.login is Login.OK and packet.message == self.password.encode()
                await self.socket.sendto(ServerLoginPacket(ok).data, *address)
        elif isinstance(packet, ClientCommandPacket):
            if self.drop_next and packet.message:
                self.drop_next -= 1
            elif packet.message == b"" and self.answer_keepalives:
                await self.socket.sendto(raw, *address)  # BattlEye echoes the keepalive
            elif self.echo and packet.message:
                reply = ServerCommandPacket(packet.sequence, 1, 0, packet.message)
                await self.socket.sendto(reply.data, *address)
