"""The sans-I/O state of one RCon session: sequence numbers, reply reassembly, message de-dup.

Why not ``berconpy.protocol.RCONClientProtocol``: it decodes replies and messages as strict UTF-8
(a legacy-code-page ban reason raises, and for a server message the exception comes before the ACK
is queued, which is exactly the hang of conqp/rcon#41), it raises on duplicate parts and late
replies that UDP makes normal, and it de-duplicates messages by sequence number alone. This class
keeps those rules in one deterministic place; time is passed in, so it is tested without a loop.
"""

from __future__ import annotations

from collections import deque

import msgspec

from ._codec import (
    CommandPart,
    Garbage,
    LoginReply,
    MessagePacket,
    decode_server_packet,
    encode_ack,
    encode_command,
)
from ._settings import MESSAGE_DEDUP_CAPACITY, MESSAGE_DEDUP_WINDOW


class Reply(msgspec.Struct, frozen=True, tag=True):
    """A complete command reply: every part joined as bytes, then decoded once."""

    seq: int
    text: str


class Partial(msgspec.Struct, frozen=True, tag=True):
    """A reply part was stored (or was a duplicate); the reply is not complete yet."""

    seq: int


class Late(msgspec.Struct, frozen=True, tag=True):
    """A reply for a sequence number nobody waits for (late duplicate or forgotten command)."""

    seq: int


class Message(msgspec.Struct, frozen=True, tag=True):
    """A server message; ``ack`` must be sent whether or not it is ``fresh``."""

    seq: int
    text: str
    ack: bytes
    fresh: bool


Outcome = LoginReply | Reply | Partial | Late | Message | Garbage


class _Reassembly:
    __slots__ = ("parts", "total")

    def __init__(self) -> None:
        self.total: int | None = None
        self.parts: dict[int, bytes] = {}


class RConSession:
    """Bookkeeping of one logged-in session (a new login starts a new one, seq back at 0)."""

    def __init__(
        self,
        *,
        dedup_window: float = MESSAGE_DEDUP_WINDOW,
        dedup_capacity: int = MESSAGE_DEDUP_CAPACITY,
    ) -> None:
        self._next_seq = 0
        self._dedup_window = dedup_window
        self._replies: dict[int, _Reassembly] = {}
        self._seen: deque[tuple[float, int, bytes]] = deque(maxlen=dedup_capacity)
        self.garbage = 0
        self.late_replies = 0
        self.messages = 0
        self.duplicate_messages = 0

    @property
    def next_seq(self) -> int:
        """The sequence number the next command will carry."""
        return self._next_seq

    @property
    def in_flight(self) -> int:
        """Commands (keepalives included) still waiting for a complete reply."""
        return len(self._replies)

    def start_command(self, command: bytes) -> tuple[int, bytes]:
        """Allocate the next sequence number for ``command``; return it and the datagram.

        The sequence is one byte and wraps 255 → 0 (keepalives use it too).
        """
        seq = self._next_seq
        datagram = encode_command(seq, command)  # may raise: then no number is consumed
        self._next_seq = (seq + 1) & 0xFF
        self._replies[seq] = _Reassembly()
        return seq, datagram

    def forget(self, seq: int) -> None:
        """Stop waiting for ``seq``; later parts of its reply count as late."""
        self._replies.pop(seq, None)

    def receive(self, data: bytes, now: float) -> Outcome:
        """Interpret one datagram from the server received at time ``now``."""
        packet = decode_server_packet(data)
        if isinstance(packet, CommandPart):
            return self._on_part(packet)
        if isinstance(packet, MessagePacket):
            return self._on_message(packet, now)
        if isinstance(packet, Garbage):
            self.garbage += 1
        return packet

    def _on_part(self, part: CommandPart) -> Outcome:
        pending = self._replies.get(part.seq)
        if pending is None:
            self.late_replies += 1
            return Late(part.seq)
        if pending.total is None:
            pending.total = part.total
        elif pending.total != part.total:
            self.garbage += 1
            return Garbage(f"multipart total changed from {pending.total} to {part.total}")
        # A duplicated part (resend, network duplicate) simply overwrites an identical copy.
        pending.parts[part.index] = part.body
        if len(pending.parts) < pending.total:
            return Partial(part.seq)
        del self._replies[part.seq]
        # Join bytes before decoding: a multibyte UTF-8 character may straddle two parts.
        body = b"".join(pending.parts[i] for i in range(pending.total))
        return Reply(part.seq, body.decode("utf-8", errors="replace"))

    def _on_message(self, packet: MessagePacket, now: float) -> Message:
        horizon = now - self._dedup_window
        while self._seen and self._seen[0][0] < horizon:
            self._seen.popleft()
        fresh = not any(s == packet.seq and b == packet.body for _, s, b in self._seen)
        if fresh:
            self._seen.append((now, packet.seq, packet.body))
            self.messages += 1
        else:
            self.duplicate_messages += 1
        text = packet.body.decode("utf-8", errors="replace")
        return Message(packet.seq, text, encode_ack(packet.seq), fresh)
