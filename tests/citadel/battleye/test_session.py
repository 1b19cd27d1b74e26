"""The sans-I/O session: sequence wrap, reassembly, message de-dup; no event loop involved."""

from __future__ import annotations

from berconpy.protocol import ServerCommandPacket, ServerMessagePacket
from hypothesis import given
from hypothesis import strategies as st

from citadel.games.battleye._codec import Garbage, encode_ack, encode_command
from citadel.games.battleye._session import Late, Message, Partial, RConSession, Reply


def part(seq: int, total: int, index: int, body: bytes) -> bytes:
    return bytes(ServerCommandPacket(seq, total, index, body).data)


def message(seq: int, text: bytes) -> bytes:
    return bytes(ServerMessagePacket(seq, text).data)


def test_sequence_wraps_255_to_0_and_replies_match() -> None:
    # formats.md §5.4: keepalives 254, 255, then 00; replies ff 01 ff and ff 01 00 both match.
    session = RConSession()
    for _ in range(254):
        seq, _datagram = session.start_command(b"")
        session.forget(seq)
    sent = [session.start_command(b"") for _ in range(3)]
    assert [seq for seq, _ in sent] == [254, 255, 0]
    assert [datagram[-1] for _, datagram in sent] == [254, 255, 0]
    assert sent[1][1] == encode_command(255, b"")
    assert session.receive(part(255, 1, 0, b""), 0.0) == Reply(255, "")
    assert session.receive(part(0, 1, 0, b""), 0.0) == Reply(0, "")
    assert session.receive(part(254, 1, 0, b""), 0.0) == Reply(254, "")
    assert session.in_flight == 0


def test_multipart_out_of_order_duplicated_and_interleaved() -> None:
    session = RConSession()
    seq_a, _ = session.start_command(b"players")
    seq_b, _ = session.start_command(b"bans")
    name = "Игрок_3".encode()
    cut = 3  # inside the two-byte 'г': neither half decodes alone
    assert session.receive(part(seq_a, 3, 2, b" end"), 0.0) == Partial(seq_a)
    assert session.receive(part(seq_a, 3, 1, name[cut:]), 0.0) == Partial(seq_a)
    assert session.receive(part(seq_a, 3, 2, b" end"), 0.0) == Partial(seq_a)  # duplicate
    got = session.receive(message(0, b"Player #1 x connected"), 0.0)
    assert isinstance(got, Message)
    assert got.fresh
    assert session.receive(part(seq_b, 2, 1, b"B1"), 0.0) == Partial(seq_b)
    assert session.receive(part(seq_a, 3, 0, b"A:" + name[:cut]), 0.0) == Reply(
        seq_a, "A:Игрок_3 end"
    )
    assert session.receive(part(seq_b, 2, 0, b"B0"), 0.0) == Reply(seq_b, "B0B1")


def test_late_duplicates_after_completion_are_ignored() -> None:
    session = RConSession()
    seq, _ = session.start_command(b"players")
    assert session.receive(part(seq, 1, 0, b"x"), 0.0) == Reply(seq, "x")
    assert session.receive(part(seq, 1, 0, b"x"), 0.0) == Late(seq)
    assert session.late_replies == 1


def test_forgotten_command_gets_no_reply() -> None:
    session = RConSession()
    seq, _ = session.start_command(b"players")
    session.forget(seq)
    assert session.receive(part(seq, 1, 0, b"x"), 0.0) == Late(seq)


def test_a_changed_total_is_garbage() -> None:
    session = RConSession()
    seq, _ = session.start_command(b"players")
    session.receive(part(seq, 3, 0, b"a"), 0.0)
    assert isinstance(session.receive(part(seq, 2, 1, b"b"), 0.0), Garbage)
    assert session.garbage == 1


def test_invalid_utf8_is_replaced_once_after_joining() -> None:
    session = RConSession()
    seq, _ = session.start_command(b"bans")
    session.receive(part(seq, 2, 0, b"reason \xe9"), 0.0)  # latin-1 byte from another tool
    assert session.receive(part(seq, 2, 1, b"t\xc3"), 0.0) == Reply(seq, "reason \ufffdt\ufffd")


def test_duplicate_message_is_acked_but_fresh_once() -> None:
    # formats.md §5.3: the same message twice → ACK both, deliver once.
    session = RConSession()
    text = b"RCon admin #0: (Global) First message"
    first = session.receive(message(0, text), 10.0)
    second = session.receive(message(0, text), 11.0)
    assert first == Message(0, text.decode(), encode_ack(0), fresh=True)
    assert second == Message(0, text.decode(), encode_ack(0), fresh=False)
    assert (session.messages, session.duplicate_messages) == (1, 1)


def test_same_seq_with_other_text_is_a_new_message() -> None:
    session = RConSession()
    session.receive(message(4, b"one"), 0.0)
    got = session.receive(message(4, b"two"), 0.0)
    assert isinstance(got, Message)
    assert got.fresh


def test_dedup_window_expires() -> None:
    session = RConSession(dedup_window=15.0)
    session.receive(message(4, b"one"), 0.0)
    again = session.receive(message(4, b"one"), 14.0)
    later = session.receive(message(4, b"one"), 30.0)
    assert isinstance(again, Message)
    assert not again.fresh
    assert isinstance(later, Message)
    assert later.fresh


def test_message_with_invalid_utf8_is_still_acked() -> None:
    got = RConSession().receive(message(2, b"(Global) \xff\xfe: hi"), 0.0)
    assert got == Message(2, "(Global) \ufffd\ufffd: hi", encode_ack(2), fresh=True)


def test_garbage_is_counted() -> None:
    session = RConSession()
    assert isinstance(session.receive(b"\x00garbage", 0.0), Garbage)
    assert session.garbage == 1


@given(st.binary(max_size=80))
def test_session_survives_any_datagram(data: bytes) -> None:
    session = RConSession()
    session.start_command(b"players")
    session.receive(data, 0.0)
