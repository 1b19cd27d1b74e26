"""The broadcaster actor with a real engine and real clients: identity, seq, removal (also
one lost while the broadcaster was down)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import anyio
import msgspec
import pytest

from actors import Backoff, ChildSpec, ReportBus, ReportKind, open_actor, open_supervisor
from citadel.messages import (
    MetricsEvent,
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
    publish,
    to_outgoing,
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


def test_a_server_that_stops_running_leaves_no_metrics_in_the_snapshot() -> None:
    cache = SnapshotCache()

    def kinds() -> list[tuple[str, str | None]]:
        return [(o.name, o.server_id) for o in cache.snapshot(ADMIN)]

    def remember(event: ServerStatusEvent | MetricsEvent) -> None:
        if isinstance(event, ServerStatusEvent):
            assert cache.advance(event)
        cache.remember(to_outgoing(event))

    sample = MetricsEvent(
        server_id="a", cpu=12.0, ram=3.0, players=4, fps=50.0, timestamp=TS, ram_bytes=1,
        uptime=65.5,
    )  # fmt: skip
    remember(status("a", 1, "running"))
    remember(sample)
    remember(status("b", 1, "running"))
    remember(msgspec.structs.replace(sample, server_id="b"))
    assert kinds() == [
        ("serverStatus", "a"),
        ("metrics", "a"),
        ("serverStatus", "b"),
        ("metrics", "b"),
    ]
    ended: tuple[ServerStatus, ...] = ("stopping", "stopped", "starting")
    for seq, value in enumerate(ended, start=2):
        remember(status("a", seq, value))
        assert kinds() == [("serverStatus", "a"), ("serverStatus", "b"), ("metrics", "b")]
    remember(sample)  # the new run's first sample (it may come while starting)
    remember(status("a", 5, "running"))
    assert ("metrics", "a") in kinds()


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


async def test_a_removal_lost_while_the_broadcaster_was_down_still_removes_the_server() -> None:
    tokens = Tokens()
    engine = FanoutEngine(tokens.authenticate)
    cache = SnapshotCache()
    servers = {"zz", "yy"}  # what the fleet holds
    cache.track(lambda: servers)
    crashed = anyio.Event()
    reports = ReportBus()
    reports.subscribe(lambda report: crashed.set() if report.kind is ReportKind.CRASH else None)
    spec = ChildSpec(
        "broadcaster",
        start=lambda: Broadcaster(
            engine, cache, tokens.recheck, recheck_interval=NO_PERIODIC_RECHECK
        ),
    )
    # A restart delay far beyond the test: the broadcaster is down until restart_child.
    down_for_good = Backoff(base=3600.0, cap=3600.0, jitter=0.0)
    async with (
        serving(engine) as url,
        open_supervisor([spec], reports=reports, backoff=down_for_good) as root,
    ):
        (child,) = await root.which_children()
        address = child.address
        watcher, meanwhile, later = Client(), Client(), Client()
        try:
            with anyio.fail_after(BOUND):
                await watcher.connect(url, "t-lea")
                for event in (status("zz", 0, "stopped"), status("yy", 1)):
                    await address.call(wrap(event))
                await watcher.wait_for("serverStatus", "yy", lambda d: True)
                address.kill("chaos")
                await crashed.wait()
                # DELETE /api/servers/zz: the fleet forgets it, then its serverRemoved is lost.
                servers.discard("zz")
                lost = ServerRemovedEvent(server_id="zz", timestamp=TS)
                assert not await publish(address, lost)
                # A client connecting while no broadcaster runs: its snapshot is yy only.
                await meanwhile.connect(url, "t-lea")
                engine.publish(to_outgoing(sentinel(1)))  # straight in: nobody else can
                await meanwhile.wait_for("notification", None, lambda d: d["message"] == "1")
                # The next incarnation tells the dashboards connected meanwhile.
                await root.restart_child("broadcaster")
                await watcher.wait_for("serverRemoved", "zz", lambda d: True)
                # zz created again: its first status (seq 0) is not taken for a repeat.
                servers.add("zz")
                await address.call(wrap(status("zz", 0, "stopped")))
                await later.connect(url, "t-lea")
                await address.call(wrap(sentinel(2)))
                await later.wait_for("notification", None, lambda d: d["message"] == "2")
            assert [(name, data.get("serverId")) for name, data in meanwhile.events][:2] == [
                ("serverStatus", "yy"),
                ("notification", None),
            ]
            of_zz = [(n, d.get("seq")) for n, d in watcher.events if d.get("serverId") == "zz"]
            assert of_zz == [("serverStatus", 0), ("serverRemoved", None), ("serverStatus", 0)]
            snapshot = sorted((n, d.get("serverId")) for n, d in later.events if d.get("serverId"))
            assert snapshot == [("serverStatus", "yy"), ("serverStatus", "zz")]
        finally:
            for client in (watcher, meanwhile, later):
                await client.close()
