"""BattlEye RCON v2 packets: ``'BE' | CRC32 LE | 0xFF | type | payload`` (formats.md §2.1).

Pure functions; the CRC is zlib's IEEE CRC-32 over the bytes from ``0xFF`` to the end.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

import msgspec

LOGIN: Final = 0x00
COMMAND: Final = 0x01
MESSAGE: Final = 0x02
_HEADER: Final = b"BE"
_HEADER_SIZE: Final = 7  # 'B' 'E' + 4 CRC bytes + 0xFF


class Packet(msgspec.Struct, frozen=True):
    """One decoded RCON packet: its type byte and the payload after it."""

    kind: int
    payload: bytes


class BadPacket(ValueError):
    """The bytes are not a well-formed RCON packet (short, bad header, bad CRC)."""


def encode(kind: int, payload: bytes = b"") -> bytes:
    """Frame ``payload`` as an RCON packet of type ``kind``."""
    body = bytes((0xFF, kind)) + payload
    return _HEADER + struct.pack("<I", zlib.crc32(body)) + body


def decode(data: bytes) -> Packet:
    """Check header and CRC of a datagram and split it; raises :class:`BadPacket`."""
    if len(data) < _HEADER_SIZE + 1 or data[:2] != _HEADER or data[6] != 0xFF:
        raise BadPacket("not an RCON packet")
    (crc,) = struct.unpack_from("<I", data, 2)
    if zlib.crc32(data[6:]) != crc:
        raise BadPacket("bad CRC")
    return Packet(kind=data[7], payload=bytes(data[8:]))


def login_reply(ok: bool) -> bytes:
    """The server's answer to a login: ``0x00 | 0x01`` or ``0x00 | 0x00``."""
    return encode(LOGIN, b"\x01" if ok else b"\x00")


def command_replies(seq: int, text: bytes, part_size: int) -> list[bytes]:
    """The datagrams answering command ``seq``; split into parts past ``part_size`` bytes.

    A part is ``0x01 | seq | 0x00 | total | index | bytes``; the text is split by bytes, so a
    multibyte character may straddle two parts, as in the real protocol.
    """
    seq &= 0xFF
    if len(text) <= part_size:
        return [encode(COMMAND, bytes((seq,)) + text)]
    chunks = [text[i : i + part_size] for i in range(0, len(text), part_size)]
    if len(chunks) > 0xFF:
        chunks = chunks[:0xFF]  # the total field is one byte; the tail is cut, never wrapped
    total = len(chunks)
    return [
        encode(COMMAND, bytes((seq, 0x00, total, index)) + chunk)
        for index, chunk in enumerate(chunks)
    ]


def server_message(seq: int, text: bytes) -> bytes:
    """A server message (type 0x02) with the server's own sequence number."""
    return encode(MESSAGE, bytes((seq & 0xFF,)) + text)
