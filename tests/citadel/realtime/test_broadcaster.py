"""The broadcaster actor with a real engine and real clients: identity, seq, removal."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from actors import open_actor
from citadel.messages import (
    NotificationEvent,
    ServerRemovedEvent,
    ServerStatus,
    ServerStatusEvent,
    decode_event,
)
from citadel.realtime import ClientScope, ConnectRefused, FanoutEngine
from citadel.realtime.broadcaster import (
    AuthChanged,
    Broadcaster,
    SnapshotCache,
    Verified,
    wrap,
)
from tests.integration._clients import Client

from .conftest import ADMIN, serving

pytestmark = pytest.mark.anyio

BOUND = 10
TS = "2026-12-03T18:56:31.123Z"
NO_PERIODIC_RECHECK = 3600.0


def status(server_id: str, seq: int, value: ServerStatus = "running") -> ServerStatusEvent:
    return ServerStatusEvent(server_id=server_id, status=value, seq=seq, timestamp=TS)


def sentinel(n: int) -> NotificationEvent:
    return NotificationEvent(
        id=n, server_id=None, type="t", title="sentinel", message=str(n), severity="info",
        timestamp=TS,
    )  # fmt: skip


class Tokens:
    """Who each test token belongs to, as a verifier would say; tokens can be revoked."""

    def __init__(self) -> None:
        self.valid = {"t-lea": Verified(user="lea", scope=ADMIN)}

    def authenticate(self, auth: Mapping[str, Any] | None, environ: Any) -> ClientScope:
        verified = self.recheck(auth)
        if verified is None:
            raise ConnectRefused("revoked")
        return verified.scope

    def recheck(self, auth: Any) -> Verified | None:
        return self.valid.get(auth.get("token")) if auth else None


def test_the_cache_passes_each_transition_once() -> None:
    cache = SnapshotCache()
    assert cache.advance(status("a", 3))
    assert not cache.advance(status("a", 3))  # the same transition again
    assert cache.advance(status("a", 4, "stopping"))
    assert cache.advance(status("a", 4, "stopped"))  # a broken upstream: passed, logged
    assert cache.advance(status("a", 0, "stopped"))  # a new sequence: passed, logged
    assert cache.advance(status("b", 0, "stopped"))
    cache.forget("a")
    assert cache.advance(status("a", 0, "stopped"))


async def test_who_a_socket_is_comes_from_its_verified_token_not_from_what_it_sent() -> None:
    tokens = Tokens()
    engine = FanoutEngine(tokens.authenticate)
    broadcaster = Broadcaster(
        engine, SnapshotCache(), tokens.recheck, recheck_interval=NO_PERIODIC_RECHECK
    )
    async with serving(engine) as url, open_actor(broadcaster) as address:
        client = Client()
        with anyio.fail_after(BOUND):
            # lea claims to be bob: a re-check aimed at lea must reach her socket anyway.
            await client.sio.connect(
                url, auth={"token": "t-lea", "_user": "bob"}, transports=["websocket"]
            )
            await address.call(AuthChanged(None))  # a full pass: the socket is verified
            del tokens.valid["t-lea"]  # lea logged out
            await address.call(AuthChanged("lea"))
            await client.disconnected.wait()
        await client.close()


async def test_a_repeated_status_is_sent_once_and_a_removed_server_leaves_the_snapshot() -> None:
    tokens = Tokens()
    engine = FanoutEngine(tokens.authenticate)
    broadcaster = Broadcaster(
        engine, SnapshotCache(), tokens.recheck, recheck_interval=NO_PERIODIC_RECHECK
    )
    async with serving(engine) as url, open_actor(broadcaster) as address:
        watcher, late = Client(), Client()
        try:
            with anyio.fail_after(BOUND):
                await watcher.connect(url, "t-lea")
                for event in (status("zz", 1), status("zz", 1), status("yy", 1), status("zz", 2)):
                    await address.call(wrap(event))
                await address.call(wrap(ServerRemovedEvent(server_id="zz", timestamp=TS)))
                await address.call(wrap(sentinel(1)))
                await watcher.wait_for("notification", None, lambda d: d["message"] == "1")
                await late.connect(url, "t-lea")
                await address.call(wrap(sentinel(2)))
                await late.wait_for("notification", None, lambda d: d["message"] == "2")
            seen = [(name, data["serverId"], data.get("seq")) for name, data in watcher.events]
            assert seen[:5] == [
                ("serverStatus", "zz", 1),
                ("serverStatus", "yy", 1),
                ("serverStatus", "zz", 2),
                ("serverRemoved", "zz", None),
                ("notification", None, None),
            ]
            removed = decode_event(json.dumps(watcher.of("serverRemoved")[0]))
            assert removed == ServerRemovedEvent(server_id="zz", timestamp=TS)
            # The connect snapshot of a later client: yy only.
            assert [(name, data["serverId"]) for name, data in late.events] == [
                ("serverStatus", "yy"),
                ("notification", None),
            ]
        finally:
            await watcher.close()
            await late.close()
