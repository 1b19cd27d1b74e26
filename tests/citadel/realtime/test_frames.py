"""Encoding an event once into the Engine.IO text, WebSocket frame and polling packet."""

from __future__ import annotations

import json
import struct

import pytest

from citadel.messages import LogEvent, decode_event
from citadel.realtime import Frame, drop_notice, websocket_text_frame


def test_text_is_an_engineio_message_carrying_a_socketio_event() -> None:
    frame = Frame("serverStatus", "a", b'{"serverId":"a"}')
    assert frame.text == '42["serverStatus",{"serverId":"a"}]'
    assert frame.packet.encode() == frame.text
    assert frame.raw == b"\x81" + bytes([len(frame.text)]) + frame.text.encode()
    assert frame.size == len(frame.raw)


def test_event_name_is_json_escaped() -> None:
    assert Frame('a"b', None, b"1").text == '42["a\\"b",1]'


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e" + struct.pack("!H", 126)),
        (65535, b"\x81\x7e" + struct.pack("!H", 65535)),
        (65536, b"\x81\x7f" + struct.pack("!Q", 65536)),
    ],
)
def test_websocket_header_lengths(length: int, header: bytes) -> None:
    body = b"x" * length
    assert websocket_text_frame(body) == header + body


def test_payload_that_is_not_utf8_is_rejected() -> None:
    with pytest.raises(UnicodeDecodeError):
        Frame("log", "a", b'"\xff\xfe"')


@pytest.mark.parametrize("count", [1, 500])
def test_the_drop_notice_is_a_log_event_of_the_published_schema(count: int) -> None:
    frame = drop_notice("alpha", count)
    name, payload = json.loads(frame.text[2:])
    assert (name, frame.name, frame.server_id) == ("log", "log", "alpha")
    event = decode_event(json.dumps(payload))
    assert isinstance(event, LogEvent)
    assert (event.server_id, event.source, event.level) == ("alpha", "system", "warn")
    assert event.dropped == count
    assert event.file is None
    assert event.message == ("1 log line dropped" if count == 1 else "500 log lines dropped")
