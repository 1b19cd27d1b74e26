"""BattlEye RCon datagrams: encode what the client sends, decode what the server sends.

Outgoing datagrams are built with berconpy's packet classes (``berconpy.protocol``). Incoming
ones are decoded here rather than with ``berconpy.protocol.Packet.from_bytes``, because that
verifies the CRC by re-encoding the parsed packet: a legal one-part reply carrying the multipart
sub-header (``0x00 | 1 | 0``) re-encodes without it and would be rejected. Here the CRC is checked
over the received bytes themselves, as the protocol defines it.

Every function is pure; ``decode_server_packet`` never raises, whatever the bytes.
"""

from __future__ import annotations

import unicodedata
import zlib
from typing import Final

import msgspec
from berconpy.protocol import ClientCommandPacket, ClientLoginPacket, ClientMessagePacket

from ._settings import COMMAND_HEADER, MAX_DATAGRAM

_MAGIC = b"BE"
_HEADER_END = 0xFF
_LOGIN = 0x00
_COMMAND = 0x01
_MESSAGE = 0x02
# 'B' 'E' CRC32(4) 0xFF type: the fixed prefix of every packet.
_PREFIX = 8
# Control characters, line separator, paragraph separator.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


class LoginReply(msgspec.Struct, frozen=True, tag=True):
    """The server's answer to a login: accepted or not."""

    accepted: bool


class CommandPart(msgspec.Struct, frozen=True, tag=True):
    """One datagram of a command reply; single-datagram replies are part 0 of 1."""

    seq: int
    total: int
    index: int
    body: bytes


class MessagePacket(msgspec.Struct, frozen=True, tag=True):
    """A server message (type 0x02) that the client must acknowledge."""

    seq: int
    body: bytes


class Garbage(msgspec.Struct, frozen=True, tag=True):
    """A datagram that is not a valid server packet, with the reason."""

    reason: str


ServerPacket = LoginReply | CommandPart | MessagePacket | Garbage


def encode_login(password: str) -> bytes:
    """Return the login datagram (type 0x00) for ``password``, sent as UTF-8.

    Raises:
        ValueError: the password contains a NUL byte (the server would truncate it).
    """
    raw = password.encode()
    if b"\x00" in raw:
        raise ValueError("an RCon password cannot contain NUL")
    return bytes(ClientLoginPacket(raw).data)


def find_control_character(text: str) -> str | None:
    """The first character of ``text`` that no RCon command may carry (a control character, a
    line or paragraph separator), or ``None``. Use it to check a piece of a command (a chat
    message, a kick reason) and name that piece in the error."""
    for char in text:
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            return char
    return None


#: Letters and symbols that draw nothing (Hangul fillers, the blank Braille pattern, the
#: Mongolian vowel separator): a chat line of them is as empty as one of spaces.
_DRAW_NOTHING: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")


def is_blank(text: str) -> bool:
    """Whether ``text`` shows nothing: only whitespace, invisible format characters
    (zero-width space, joiners, BOM) and `_DRAW_NOTHING`. Such a command or chat line is
    refused, not sent."""
    return all(
        char.isspace() or char in _DRAW_NOTHING or unicodedata.category(char) == "Cf"
        for char in text
    )


def encode_command_text(command: str) -> bytes:
    """Return ``command`` as the UTF-8 bytes to send, after checking it is a sendable command.

    Raises:
        ValueError: the command is blank (empty commands are keepalives), contains a control or
            line/paragraph-separator character (it could smuggle a second line or a NUL into the
            server's parser), is not encodable, or does not fit one datagram.
    """
    if is_blank(command):
        raise ValueError("an RCon command cannot be empty or blank")
    char = find_control_character(command)
    if char is not None:
        raise ValueError(f"an RCon command cannot contain control character {char!r}")
    raw = command.encode()  # lone surrogates raise UnicodeEncodeError, a ValueError
    if len(raw) + COMMAND_HEADER > MAX_DATAGRAM:
        raise ValueError(f"command too long: {len(raw)} bytes")
    return raw


def encode_command(seq: int, command: bytes) -> bytes:
    """Return the command datagram (type 0x01) for ``command`` with sequence number ``seq``.

    Raises:
        ValueError: ``seq`` is not one byte or the datagram would exceed the UDP payload limit.
    """
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"sequence number must be 0..255, not {seq}")
    if len(command) + COMMAND_HEADER > MAX_DATAGRAM:
        raise ValueError(f"command too long: {len(command)} bytes")
    return bytes(ClientCommandPacket(seq, command).data)


def encode_ack(seq: int) -> bytes:
    """Return the acknowledgement datagram (type 0x02) of server message ``seq``."""
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"sequence number must be 0..255, not {seq}")
    return bytes(ClientMessagePacket(seq).data)


def decode_server_packet(data: bytes) -> ServerPacket:
    """Decode one datagram from the server; invalid input yields ``Garbage``, never an error."""
    if len(data) < _PREFIX:
        return Garbage("truncated header")
    if data[:2] != _MAGIC or data[6] != _HEADER_END:
        return Garbage("bad header")
    if int.from_bytes(data[2:6], "little") != zlib.crc32(data[6:]):
        return Garbage("bad checksum")
    kind = data[7]
    payload = data[_PREFIX:]
    if kind == _LOGIN:
        if len(payload) != 1 or payload[0] > 1:
            return Garbage("bad login reply")
        return LoginReply(accepted=payload[0] == 1)
    if kind == _COMMAND:
        return _decode_command(payload)
    if kind == _MESSAGE:
        if not payload:
            return Garbage("message without sequence number")
        return MessagePacket(seq=payload[0], body=bytes(payload[1:]))
    return Garbage(f"unknown packet type 0x{kind:02x}")


def _decode_command(payload: bytes) -> ServerPacket:
    if not payload:
        return Garbage("command reply without sequence number")
    seq, rest = payload[0], payload[1:]
    # A byte 0x00 right after seq opens the multipart sub-header `0x00 | total | index`; a
    # plain reply never starts with NUL, so a shorter tail is a truncated sub-header.
    if rest[:1] == b"\x00":
        if len(rest) < 3:
            return Garbage("truncated multipart header")
        total, index = rest[1], rest[2]
        if total == 0 or index >= total:
            return Garbage(f"bad multipart header {index}/{total}")
        return CommandPart(seq=seq, total=total, index=index, body=bytes(rest[3:]))
    return CommandPart(seq=seq, total=1, index=0, body=bytes(rest))
