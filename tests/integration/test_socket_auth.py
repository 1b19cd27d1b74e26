"""Socket.IO auth and scoping against a live Citadel, with real clients (Python and Node).

Refusals carry the verifier's reason in ``connect_error``; a scoped viewer never sees another
server, nor host-wide notifications; revocation, password and role changes reach open sockets.
Ordering uses a sentinel event published last: once it arrives, every event published before it
has been delivered or withheld.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import anyio
import jwt
import pytest
import socketio

from citadel.auth import TokenIssuer
from citadel.messages import (
    Event,
    LogEvent,
    MetricsEvent,
    NotificationEvent,
    ServerStatusEvent,
    utc_timestamp,
)
from citadel.realtime.broadcaster import RECHECK_INTERVAL, publish
from tests.citadel.realtime.conftest import NodeClient
from tests.integration._clients import Client
from tests.integration.conftest import Live
from tests.integration.test_rest import assert_error, expired_token

pytestmark = pytest.mark.anyio
BOUND = 10


def send(live: Live, event: Event) -> None:
    assert live.portal.call(publish, live.citadel.broadcaster, event)


def metrics(server_id: str, cpu: float) -> MetricsEvent:
    return MetricsEvent(
        server_id=server_id,
        cpu=cpu,
        ram=1.0,
        players=0,
        fps=None,
        timestamp=utc_timestamp(),
        ram_bytes=0,
        uptime=0.0,
    )


def forged(live: Live, kind: str) -> str | None:
    now = time.time()
    claims = {"sub": "admin", "role": "admin", "iat": now, "exp": now + 60, "jti": "forged"}
    if kind == "none":
        return None
    if kind == "garbage":
        return "not-a-jwt"
    if kind == "alg-none":
        return jwt.encode(claims, key="", algorithm="none")
    if kind == "wrong-key":
        return jwt.encode(claims, "another-key-of-sufficient-length-0123456789", algorithm="HS256")
    if kind == "expired":
        return expired_token(live)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("none", "missing"),
        ("garbage", "malformed"),
        ("alg-none", "alg_not_allowed"),
        ("wrong-key", "bad_signature"),
        ("expired", "expired"),
    ],
)
async def test_refused_at_connect_with_the_reason(live: Live, kind: str, reason: str) -> None:
    client = Client()
    with anyio.fail_after(BOUND), pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(live.url, forged(live, kind))
    assert client.connect_error == {"message": reason}


async def test_revoked_token_refused_and_node_client_sees_the_reason(live: Live) -> None:
    token = live.login()
    with live.client(token) as http:
        assert http.post("/api/auth/logout").status_code == 204
    python_client = Client()
    with anyio.fail_after(BOUND), pytest.raises(socketio.exceptions.ConnectionError):
        await python_client.connect(live.url, token)
    assert python_client.connect_error == {"message": "revoked"}
    node = await NodeClient.start(live.url, token)
    try:
        with anyio.fail_after(BOUND):
            assert await node.next_event() == {"event": "connect_error", "message": "revoked"}
    finally:
        await node.stop()


async def test_snapshot_then_only_in_scope_events(live: Live) -> None:
    admin = live.login()
    with live.client(admin) as http:
        created = http.post(
            "/api/roles",
            json={
                "name": "alpha-only",
                "permissions": ["server.view", "metrics.view", "logs.view", "players.view"],
                "servers": ["alpha"],
            },
        )
        assert created.status_code == 201
    password = live.add_user("ana", "alpha-only")
    viewer, boss = Client(), Client()
    try:
        with anyio.fail_after(BOUND):
            await viewer.connect(live.url, live.login("ana", password))
            await boss.connect(live.url, admin)
            # The connect snapshot: the status of every server in scope, nothing else.
            await viewer.wait_until(lambda e: len(e) >= 1)
            assert [(n, d["serverId"]) for n, d in viewer.events] == [("serverStatus", "alpha")]
            await boss.wait_until(lambda e: len(e) >= 2)
            bravo_events: list[Event] = [
                ServerStatusEvent(
                    server_id="bravo", status="starting", seq=1, timestamp=utc_timestamp()
                ),
                metrics("bravo", 5.0),
                LogEvent(
                    server_id="bravo",
                    level="info",
                    source="rpt",
                    message="secret",
                    timestamp=utc_timestamp(),
                    file=None,
                ),
                NotificationEvent(
                    server_id="bravo",
                    type="crash",
                    title="t",
                    message="m",
                    severity="error",
                    id=1,
                    timestamp=utc_timestamp(),
                ),
                NotificationEvent(
                    server_id=None,
                    type="host",
                    title="host-wide",
                    message="m",
                    severity="info",
                    id=2,
                    timestamp=utc_timestamp(),
                ),
            ]
            for event in bravo_events:
                send(live, event)
            send(live, metrics("alpha", 42.0))  # the sentinel
            await viewer.wait_until(
                lambda e: ("metrics", "alpha") in [(n, d["serverId"]) for n, d in e]
            )
            await boss.wait_until(
                lambda e: any(n == "metrics" and d["serverId"] == "alpha" for n, d in e)
            )
        seen = [(name, data.get("serverId")) for name, data in viewer.events]
        assert seen == [("serverStatus", "alpha"), ("metrics", "alpha")]
        boss_names = [name for name, _ in boss.events]
        assert boss_names.count("notification") == 2  # admins get host-wide ones too
    finally:
        await viewer.close()
        await boss.close()


async def test_logout_disconnects_open_socket(live: Live) -> None:
    password = live.add_user("lea", "viewer")
    token = live.login("lea", password)
    client = Client()
    try:
        with anyio.fail_after(BOUND):
            await client.connect(live.url, token)
            with live.client(token) as http:
                assert http.post("/api/auth/logout").status_code == 204
            await client.disconnected.wait()
    finally:
        await client.close()


async def test_disabled_user_is_disconnected_and_role_change_rescopes(live: Live) -> None:
    admin = live.login()
    with live.client(admin) as http:
        assert (
            http.post(
                "/api/roles",
                json={"name": "narrow", "permissions": ["server.view"], "servers": ["alpha"]},
            ).status_code
            == 201
        )
    password = live.add_user("nik", "narrow")
    mover = live.add_user("max", "narrow")
    nik, maxi = Client(), Client()
    try:
        with anyio.fail_after(BOUND):
            await nik.connect(live.url, live.login("nik", password))
            await maxi.connect(live.url, live.login("max", mover))
            await maxi.wait_until(lambda e: len(e) >= 1)
            with live.client(admin) as http:
                widened = http.patch("/api/roles/narrow", json={"servers": ["alpha", "bravo"]})
                assert widened.status_code == 200, widened.text
            # The widened scope's snapshot includes bravo now.
            await maxi.wait_until(lambda e: any(d.get("serverId") == "bravo" for _, d in e))
            with live.client(admin) as http:
                assert http.patch("/api/users/nik", json={"disabled": True}).status_code == 200
            await nik.disconnected.wait()
        assert maxi.sio.connected
    finally:
        await nik.close()
        await maxi.close()


async def test_cli_password_change_refuses_rest_at_once_and_cuts_the_socket_within_a_recheck(
    live: Live,
) -> None:
    """``citadel user passwd`` is another process writing the same SQLite file."""
    password = live.add_user("cleo", "viewer")
    token = live.login("cleo", password)
    client = Client()
    try:
        with anyio.fail_after(BOUND):
            await client.connect(live.url, token)
            with live.client(token) as http:
                assert http.get("/api/auth/me").status_code == 200  # the verifier knows cleo
            command = [str(Path(sys.executable).parent / "citadel"), "user", "passwd", "cleo"]
            command += ["--password-stdin", "--data-dir", str(live.citadel.data_dir)]
            done = await anyio.run_process(command, input=b"cleo-new-password\n", check=False)
        assert done.returncode == 0, done.stderr
        # REST refuses the old token at once: no cache lifetime to wait out.
        with live.client(token) as http:
            assert_error(http.get("/api/auth/me"), 401, "unauthorized")
        # The open socket goes at the broadcaster's next periodic re-check (one period, plus
        # one more of slack for a loaded machine).
        with anyio.fail_after(2 * RECHECK_INTERVAL):
            await client.disconnected.wait()
    finally:
        await client.close()


async def test_expired_token_socket_is_cut_within_a_recheck(live: Live) -> None:
    user = live.citadel.store.get_user("admin")
    assert user is not None
    ttl = 1.5
    issued = TokenIssuer(live.secret, ttl=ttl).issue(user)
    client = Client()
    try:
        with anyio.fail_after(BOUND):
            await client.connect(live.url, issued.token)
        with anyio.fail_after(ttl + 2 * RECHECK_INTERVAL):
            await client.disconnected.wait()
        assert time.time() >= issued.expires_at  # not cut before its time
    finally:
        await client.close()


def test_engineio_client_errors_are_one_warning_each(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    """Any client can send these: log each kind once, as a warning, through one handler."""
    caplog.set_level(logging.DEBUG)
    with live.client() as http:
        for _ in range(3):
            assert http.get("/socket.io/?EIO=3&transport=polling").status_code == 400
            assert http.get("/socket.io/?EIO=4&transport=polling&sid=bogus").status_code == 400
    logged = [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name.startswith(("engineio", "socketio"))
    ]
    assert logged == [
        (
            "WARNING",
            "The client is using an unsupported version of the Socket.IO or Engine.IO protocols",
        ),
        ("WARNING", "Invalid session bogus"),
    ]
    for name in ("engineio.server", "socketio.server"):
        assert logging.getLogger(name).handlers == []  # no second, private stderr handler
