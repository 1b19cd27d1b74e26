"""Datagram encoding and decoding: exact bytes from formats.md §2.1, and garbage never raises."""

from __future__ import annotations

import zlib

import pytest
from berconpy.protocol import ServerCommandPacket, ServerLoginPacket, ServerMessagePacket
from hypothesis import given
from hypothesis import strategies as st

from citadel.games.battleye import encode_command_text, find_control_character
from citadel.games.battleye._codec import (
    CommandPart,
    Garbage,
    LoginReply,
    MessagePacket,
    decode_server_packet,
    encode_ack,
    encode_command,
    encode_login,
)


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


def test_crc_self_check() -> None:
    assert zlib.crc32(b"123456789") == 0xCBF43926


def test_client_packets_match_the_documented_hex() -> None:
    assert encode_login("changeme") == hx("42 45 27 49 3c 04 ff 00 63 68 61 6e 67 65 6d 65")
    assert encode_command(0, b"players") == hx("42 45 f9 37 94 ae ff 01 00 70 6c 61 79 65 72 73")
    assert encode_command(1, b"") == hx("42 45 28 ec c5 2f ff 01 01")
    assert encode_ack(3) == hx("42 45 c7 de e6 ea ff 02 03")


def test_server_login_answers_match_the_documented_hex() -> None:
    assert decode_server_packet(hx("42 45 69 dd de 36 ff 00 01")) == LoginReply(accepted=True)
    assert decode_server_packet(hx("42 45 ff ed d9 41 ff 00 00")) == LoginReply(accepted=False)


def test_keepalive_echo_decodes_as_an_empty_reply() -> None:
    echo = hx("42 45 28 ec c5 2f ff 01 01")
    assert decode_server_packet(echo) == CommandPart(seq=1, total=1, index=0, body=b"")


def test_multipart_part_is_decoded() -> None:
    packet = ServerCommandPacket(7, 3, 2, b"tail").data
    assert decode_server_packet(packet) == CommandPart(seq=7, total=3, index=2, body=b"tail")


def test_one_part_reply_with_sub_header_is_accepted() -> None:
    # Legal per protocol; berconpy's from_bytes rejects it (it re-encodes without the sub-header).
    body = bytes([0xFF, 0x01, 0x05, 0x00, 0x01, 0x00]) + b"hi"
    datagram = b"BE" + zlib.crc32(body).to_bytes(4, "little") + body
    assert decode_server_packet(datagram) == CommandPart(seq=5, total=1, index=0, body=b"hi")


def test_server_message_is_decoded_with_raw_bytes() -> None:
    packet = ServerMessagePacket(9, b"\xffbad utf8").data
    assert decode_server_packet(packet) == MessagePacket(seq=9, body=b"\xffbad utf8")


def _with_crc(body: bytes) -> bytes:
    return b"BE" + zlib.crc32(body).to_bytes(4, "little") + body


_LOGIN_OK = bytes(ServerLoginPacket(True).data)


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", "truncated header"),
        (b"BE\x00\x00", "truncated header"),
        (b"XE" + ServerLoginPacket(True).data[2:], "bad header"),
        (
            ServerLoginPacket(True).data[:6] + b"\xfe" + ServerLoginPacket(True).data[7:],
            "bad header",
        ),
        (ServerLoginPacket(True).data[:-1] + b"\x00", "bad checksum"),
        (ServerMessagePacket(1, b"hello").data[:-1], "bad checksum"),
        (_with_crc(b"\xff\x07\x00"), "unknown packet type 0x07"),
        (_with_crc(b"\xff\x00\x02"), "bad login reply"),
        (_with_crc(b"\xff\x00\x01\x01"), "bad login reply"),
        (_with_crc(b"\xff\x00"), "bad login reply"),
        (_with_crc(b"\xff\x01"), "command reply without sequence number"),
        (_with_crc(b"\xff\x01\x04\x00\x02"), "truncated multipart header"),
        (_with_crc(b"\xff\x01\x04\x00\x02\x02x"), "bad multipart header 2/2"),
        (_with_crc(b"\xff\x01\x04\x00\x00\x00x"), "bad multipart header 0/0"),
        (_with_crc(b"\xff\x02"), "message without sequence number"),
    ],
)
def test_garbage_is_classified(datagram: bytes, reason: str) -> None:
    assert decode_server_packet(datagram) == Garbage(reason)


@given(st.binary(max_size=64))
def test_random_bytes_never_raise(data: bytes) -> None:
    decode_server_packet(data)
    decode_server_packet(b"BE" + data)
    decode_server_packet(_with_crc(b"\xff" + data))


@given(
    seq=st.integers(0, 255),
    total=st.integers(1, 255),
    data=st.data(),
    body=st.binary(max_size=40),
)
def test_berconpy_encoded_replies_round_trip(
    seq: int, total: int, data: st.DataObject, body: bytes
) -> None:
    index = data.draw(st.integers(0, total - 1))
    if total == 1 and body[:1] == b"\x00":
        body = b"x" + body  # a one-part reply never starts with NUL (it would be a sub-header)
    packet = ServerCommandPacket(seq, total, index, body).data
    assert decode_server_packet(packet) == CommandPart(seq, total, index, body)


@given(seq=st.integers(0, 255), body=st.binary(max_size=40))
def test_berconpy_encoded_messages_round_trip(seq: int, body: bytes) -> None:
    assert decode_server_packet(ServerMessagePacket(seq, body).data) == MessagePacket(seq, body)


def test_command_text_is_utf8_bytes() -> None:
    assert encode_command_text("say -1 Привет") == "say -1 Привет".encode()


@pytest.mark.parametrize(
    "command",
    [
        "",
        " ",
        "\u200b",  # a zero-width space: blank, though str.strip() keeps it
        "\u00a0\u200d\ufeff",
        "\u115f\u3164\u2800",  # Hangul fillers, the blank Braille pattern: draw nothing
        "players\nkick 0",
        "say -1 a\rb",
        "say\x00",
        "say\tx",
        "say\x7f",
        "a\u2028b",
        "\ud800",
    ],
)
def test_unsendable_commands_are_refused(command: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by cause
        encode_command_text(command)


def test_a_zero_width_joiner_inside_text_is_not_blank() -> None:
    assert encode_command_text("say -1 \U0001f468\u200d\U0001f467") == (
        "say -1 \U0001f468\u200d\U0001f467".encode()
    )


def test_the_first_forbidden_character_is_found() -> None:
    assert find_control_character("a perfectly fine reason: (x) é Привет") is None
    assert find_control_character("hi \x1b[31m there\n") == "\x1b"
    assert find_control_character("a\u2029b") == "\u2029"
    assert find_control_character("") is None


def test_sizes_are_counted_in_bytes() -> None:
    room = 65507 - 9  # UDP payload limit minus the command header
    fits = "é" * (room // 2)  # two bytes each: exactly full
    assert len(encode_command_text(fits)) == room
    # One more character is far below the limit in characters, but over it in bytes.
    with pytest.raises(ValueError, match="too long"):
        encode_command_text(fits + "é")


def test_password_with_nul_is_refused_and_sent_as_utf8() -> None:
    with pytest.raises(ValueError, match="NUL"):
        encode_login("a\x00b")
    assert encode_login("pässword").endswith("pässword".encode())


def test_sequence_numbers_are_one_byte() -> None:
    with pytest.raises(ValueError, match="sequence"):
        encode_command(256, b"x")
    with pytest.raises(ValueError, match="sequence"):
        encode_ack(-1)
