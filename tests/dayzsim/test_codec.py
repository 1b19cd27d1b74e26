"""RCON packet codec: the exact bytes of formats.md §2.1, splitting, rejection of bad input."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dayzsim import _codec


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_crc_self_check() -> None:
    assert zlib.crc32(b"123456789") == 0xCBF43926


@pytest.mark.parametrize(
    ("kind", "payload", "expected"),
    [
        (0x00, b"changeme", "42 45 27 49 3c 04 ff 00 63 68 61 6e 67 65 6d 65"),
        (0x00, b"\x01", "42 45 69 dd de 36 ff 00 01"),
        (0x00, b"\x00", "42 45 ff ed d9 41 ff 00 00"),
        (0x01, b"\x00players", "42 45 f9 37 94 ae ff 01 00 70 6c 61 79 65 72 73"),
        (0x01, b"\x01", "42 45 28 ec c5 2f ff 01 01"),
        (0x02, b"\x03", "42 45 c7 de e6 ea ff 02 03"),
    ],
)
def test_spec_examples_encode_and_decode(kind: int, payload: bytes, expected: str) -> None:
    assert _codec.encode(kind, payload) == h(expected)
    assert _codec.decode(h(expected)) == _codec.Packet(kind, payload)


def test_login_replies_match_spec() -> None:
    assert _codec.login_reply(True) == h("42 45 69 dd de 36 ff 00 01")
    assert _codec.login_reply(False) == h("42 45 ff ed d9 41 ff 00 00")


def test_server_message_and_short_reply() -> None:
    assert _codec.command_replies(1, b"", 1000) == [h("42 45 28 ec c5 2f ff 01 01")]
    assert _codec.server_message(3, b"") == h("42 45 c7 de e6 ea ff 02 03")
    assert _codec.server_message(256 + 3, b"") == h("42 45 c7 de e6 ea ff 02 03")


def test_multipart_split_reassembles_bytes_in_order() -> None:
    text = ("Игрок_3 " * 300).encode("utf-8")
    parts = _codec.command_replies(7, text, 100)
    assert len(parts) == -(-len(text) // 100)
    joined = b""
    for index, raw in enumerate(parts):
        packet = _codec.decode(raw)
        assert packet.kind == _codec.COMMAND
        seq, zero, total, idx = packet.payload[:4]
        assert (seq, zero, total, idx) == (7, 0, len(parts), index)
        joined += packet.payload[4:]
    assert joined == text


def test_reply_at_threshold_is_single_packet() -> None:
    assert len(_codec.command_replies(0, b"x" * 100, 100)) == 1
    assert len(_codec.command_replies(0, b"x" * 101, 100)) == 2


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"BE",
        b"XE\x00\x00\x00\x00\xff\x00",
        h("42 45 00 00 00 00 ff 00 00"),  # bad CRC
        h("42 45 ff ed d9 41 fe 00 00"),  # no 0xFF marker
        h("42 45 ff ed d9 41 ff"),  # truncated before the type
    ],
)
def test_bad_packets_are_rejected(data: bytes) -> None:
    with pytest.raises(_codec.BadPacket):
        _codec.decode(data)


@given(st.binary(max_size=64))
def test_decode_never_fails_unexpectedly(data: bytes) -> None:
    try:
        packet = _codec.decode(data)
    except _codec.BadPacket:
        return
    assert _codec.encode(packet.kind, packet.payload) == data
