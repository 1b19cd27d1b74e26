"""Garbage on the Socket.IO endpoint, sent by anyone who reaches the port, before any token.

Each kind of protocol error a client causes is logged once at WARNING without a traceback;
repeats are INFO, below the loggers' level. A bug in Citadel's own code reached the same way
stays an ERROR with its traceback. No ordering waits: a polling POST is answered after its
payload was handled, and a WebSocket's frames are handled in order, so the answer to a CONNECT
sent after the garbage comes after the garbage was logged.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from citadel.realtime._engine import FanoutEngine
from citadel.web.server import forget_client_errors
from tests.citadel.realtime.conftest import RawWebSocket
from tests.integration._clients import Client
from tests.integration.conftest import Live

pytestmark = pytest.mark.anyio
BOUND = 10
REPEAT = 10
POLLING = "/socket.io/?EIO=4&transport=polling"
LIBRARIES = ("engineio", "socketio")

#: Polling payloads that python-engineio/socketio cannot decode or dispatch.
GARBAGE = [
    b"zzz",  # not a packet type
    b"9garbage",  # a packet type beyond the protocol's
    b'42["x"',  # a Socket.IO event whose JSON is cut short
    b"\xff\xfe",  # not UTF-8
    b"\x1e".join([b'42["hello",{}]'] * 50),  # a client that emitted 50 events at once
    b"bAAA",  # bad base64 in a binary packet
    b"6\x1e",  # an empty packet
    b"4",  # an empty Socket.IO packet
    b"44",  # CONNECT_ERROR from a client
    b"47",  # a Socket.IO packet type beyond the protocol's
    b"42{}",  # an event that is not a list
    b"42[]",  # an event without a name
    b"43",  # an ack nobody waits for
    b'42"x"',  # an event on a namespace the client did not join
    b"d=",  # JSONP without data
    b"42" + b"[" * 3000 + b"]" * 3000,  # nested past the json module's recursion limit
]
#: What a client that did connect (it has a token) can add: events Citadel does not handle.
CONNECTED_GARBAGE = [b"42[[1]]", b'42[{"a":1}]', b'42["hello"]', b"42{}", b"43[1]"]
#: Raw WebSocket frames (the Engine.IO level is Citadel's own reader, which ignores garbage).
WEBSOCKET_GARBAGE = ["zzz", "9garbage", '42["x"', "42{}", "4", "47", "42" + "[" * 3000 + "]" * 3000]


@pytest.fixture(autouse=True)
def fresh_kinds() -> Iterator[None]:
    """Every kind is logged again at WARNING in this test (earlier tests saw some)."""
    forget_client_errors()
    yield
    forget_client_errors()


def library_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(LIBRARIES)]


def open_session(http: httpx.Client) -> str:
    response = http.get(POLLING)
    assert response.status_code == 200, response.text
    sid: str = json.loads(response.text[1:])["sid"]
    return sid


def post(http: httpx.Client, sid: str, body: bytes) -> httpx.Response:
    return http.post(f"{POLLING}&sid={sid}", content=body)


def connect_on(http: httpx.Client, sid: str, token: str) -> list[str]:
    """Join the namespace on polling session ``sid``; return the packets the poll brings."""
    assert post(http, sid, b"40" + json.dumps({"token": token}).encode()).status_code == 200
    response = http.get(f"{POLLING}&sid={sid}")
    assert response.status_code == 200
    return response.text.split("\x1e")


def assert_quiet(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """No ERROR from anyone, no traceback; return the WARNINGs of the Socket.IO libraries."""
    gc.collect()  # an exception left in a finished task would be logged now
    loud = [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= 40]
    assert loud == []
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert "Traceback" not in caplog.text
    return [r for r in library_records(caplog) if r.levelno == logging.WARNING]


async def test_polling_garbage_is_one_warning_per_kind_and_the_session_survives(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = live.login()
    with live.client() as http:
        sid = open_session(http)
        for body in GARBAGE:
            # python-engineio drops what it cannot decode and keeps the session (docs).
            assert post(http, sid, body).status_code == 200, body
        assert http.put(f"{POLLING}&sid={sid}", content=b"4").status_code == 405
        first = assert_quiet(caplog)
        messages = [r.getMessage() for r in first]
        assert len(messages) == len(set(messages)), messages
        for kind in (
            "post request handler error caused by a client: ValueError: Too many packets",
            "post request handler error caused by a client: UnicodeDecodeError",
            "message async handler error caused by a client: json.decoder.JSONDecodeError",
            "Unknown callback received, ignoring.",
            "Method PUT not supported",
            "message async handler error caused by a client: RecursionError",
        ):
            assert sum(m.startswith(kind) for m in messages) == 1, (kind, messages)

        for _ in range(REPEAT):
            for body in GARBAGE:
                assert post(http, sid, body).status_code == 200, body
            assert http.put(f"{POLLING}&sid={sid}", content=b"4").status_code == 405
        # More of the same kinds, from another session too: nothing more above INFO.
        other = open_session(http)
        for body in GARBAGE:
            assert post(http, other, body).status_code == 200, body
        assert assert_quiet(caplog) == first

        # The garbled session still joins the namespace and gets its snapshot.
        packets = connect_on(http, sid, token)
        assert packets[0].startswith("40{")
        assert any(p.startswith('42["serverStatus"') for p in packets[1:]), packets

        # Events (Citadel handles none) and garbage from a connected client: dropped, quiet.
        for _ in range(REPEAT):
            for body in CONNECTED_GARBAGE:
                assert post(http, sid, body).status_code == 200, body
    assert assert_quiet(caplog) == first


async def test_websocket_garbage_is_quiet_and_a_normal_client_is_served(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = live.login()
    peer = await RawWebSocket.connect(live.url)
    try:
        for _ in range(REPEAT):
            for frame in WEBSOCKET_GARBAGE:
                peer.send(frame)
        peer.send("40" + json.dumps({"token": token}))
        with anyio.fail_after(BOUND):
            assert (await peer.recv()).startswith("40{")
            name, _data = await peer.next_event()
        assert name == "serverStatus"
        for _ in range(REPEAT):
            for body in CONNECTED_GARBAGE:
                peer.send(body.decode())
        # Joining a namespace that does not exist is refused: that answer comes after all of
        # the above was handled.
        peer.send("40/marker,")
        with anyio.fail_after(BOUND):
            while not (await peer.recv()).startswith("44/marker,"):
                pass
    finally:
        peer.close()

    client = Client()
    try:
        with anyio.fail_after(BOUND):
            await client.connect(live.url, token)
            await client.wait_until(
                lambda events: (
                    {d["serverId"] for e, d in events if e == "serverStatus"} == {"alpha", "bravo"}
                )
            )
    finally:
        await client.close()
    warnings = [r.getMessage() for r in assert_quiet(caplog)]
    assert len(warnings) == len(set(warnings)), warnings
    assert sum("JSONDecodeError" in w for w in warnings) == 1, warnings


async def test_client_text_in_a_warning_cannot_forge_log_lines(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with live.client() as http:
        forged = "bogus\n2099-01-01 00:00:00,000 ERROR citadel: forged" + "x" * 1000
        response = http.get(POLLING, params={"sid": forged})
        assert response.status_code == 400
    (warning,) = assert_quiet(caplog)
    message = warning.getMessage()
    assert message.startswith("Invalid session bogus\\n2099")
    assert "\n" not in message
    assert len(message) < 300


async def test_a_bug_in_citadel_under_a_socketio_message_stays_an_error_with_traceback(
    live: Live, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TypeError is also what a client's garbage raises; here it comes from our code."""

    def broken(self: FanoutEngine, sid: str, eio_sid: Any) -> None:
        raise TypeError("a bug in Citadel")

    # Called by Citadel's client manager when a client joins the namespace.
    monkeypatch.setattr(FanoutEngine, "_activate", broken)
    caplog.set_level(logging.DEBUG)
    token = live.login()
    with live.client() as http:
        for _ in range(2):
            sid = open_session(http)
            body = b"40" + json.dumps({"token": token}).encode()
            assert post(http, sid, body).status_code == 200
    errors = [r for r in library_records(caplog) if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["message async handler error"] * 2
    for record in errors:
        assert record.exc_info is not None
        assert str(record.exc_info[1]) == "a bug in Citadel"
