"""Encode an event once into every form a transport needs.

A Socket.IO event ``name`` with one JSON argument travels as the Engine.IO message
``42["name",<payload>]``: ``4`` is Engine.IO's MESSAGE, ``2`` Socket.IO's EVENT, and the default
namespace is implied. One :class:`Frame` holds that text, the ready WebSocket frame around it and
the Engine.IO packet object the long-polling transport hands out, so fan-out to N clients costs
N references, not N encodings.
"""

from __future__ import annotations

import struct
from typing import Final

import msgspec
from engineio import packet as eio_packet

__all__ = ["Frame", "websocket_text_frame"]

_FIN_TEXT: Final = 0x81
_LEN16: Final = 126
_LEN64: Final = 127
_MAX_LEN16: Final = 0xFFFF
_json_encode = msgspec.json.encode


def websocket_text_frame(body: bytes) -> bytes:
    """Wrap UTF-8 ``body`` in one unmasked, final, uncompressed WebSocket text frame.

    A server's frames are never masked (RFC 6455 §5.1), and an uncompressed frame is valid
    even when permessage-deflate was negotiated (RSV1 clear), so this header is all there is.
    """
    n = len(body)
    if n < _LEN16:
        header = bytes((_FIN_TEXT, n))
    elif n <= _MAX_LEN16:
        header = struct.pack("!BBH", _FIN_TEXT, _LEN16, n)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, _LEN64, n)
    return header + body


class Frame:
    """One event, encoded once for every transport.

    Attributes:
        name: The event kind (for the queue policy).
        server_id: The server the event is about (for coalescing and drop notices).
        text: The Engine.IO packet text ``42[...]``.
        raw: ``text`` as a complete WebSocket frame.
        packet: An Engine.IO packet whose encoding is ``text``, for long-polling.
        size: Bytes on the wire (the WebSocket frame).
        needs: The permission a client must hold to receive this body (the full variant of an
            event that has a redacted one), or ``None``; checked again when a client's scope
            narrows while the frame waits in its queue.
    """

    __slots__ = ("name", "needs", "packet", "raw", "server_id", "size", "text")

    def __init__(
        self, name: str, server_id: str | None, payload: bytes, needs: str | None = None
    ) -> None:
        """Encode ``payload`` (JSON, UTF-8) as the single argument of event ``name``.

        Raises:
            UnicodeDecodeError: ``payload`` is not UTF-8.
        """
        body = b"42[" + _json_encode(name) + b"," + payload + b"]"
        self.name = name
        self.server_id = server_id
        self.needs = needs
        self.text = body.decode("utf-8")
        self.raw = websocket_text_frame(body)
        self.size = len(self.raw)
        pkt = eio_packet.Packet(eio_packet.MESSAGE, self.text[1:])
        # Engine.IO returns a packet's cached encoding when it has one: priming it here makes
        # every long-polling client share this text instead of re-encoding it.
        pkt.encode_cache = self.text
        self.packet = pkt
