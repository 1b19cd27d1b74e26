"""Fan-out end to end: a live Citadel, a client that keeps up and one that stops reading.

Events go through the real broadcaster actor (``call``, so that its mailbox, which may also
coalesce under overload, passes each one on) into the engine and out over real sockets: a
python-socketio client that reads everything, and a raw Engine.IO WebSocket whose socket
stops being read (4 KiB receive buffer) until the burst is over.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import msgspec
import pytest

from actors import Address, Report, ReportKind
from citadel.config import ServerConfig
from citadel.messages import (
    Event,
    LogEvent,
    MetricsEvent,
    NotificationEvent,
    Player,
    PlayersEvent,
    ServerRemovedEvent,
    ServerStatus,
    ServerStatusEvent,
    decode_event,
    encode_event,
    event_name,
)
from citadel.realtime import FanoutStatistics, QueueLimits
from citadel.realtime.broadcaster import BroadcasterMessage, wrap
from tests.citadel.realtime.conftest import RawWebSocket
from tests.integration._clients import Client
from tests.integration.conftest import Live, run_live

pytestmark = pytest.mark.anyio

BOUND = 30
TS = "2026-12-03T18:56:31.123Z"
SERVERS = ("s1", "s2")
STATUSES: tuple[ServerStatus, ...] = ("starting", "running", "stopping", "stopped")
#: Events per round trip: the reading client is never more than this far behind, 24-48 kB,
#: under the 64 KiB at which the engine would start queueing for it too.
CHUNK = 48
PAD = "." * 500
#: Chunks published once the slow client's queue coalesces and drops.
TAIL_CHUNKS = 20
END = NotificationEvent(
    id=1, server_id=None, type="test", title="end", message="end", severity="info", timestamp=TS
)


def burst() -> Iterator[Event]:
    """Log lines of two servers, with metrics, players and status transitions among them."""
    seq = 0
    for i in itertools.count():
        server = SERVERS[i % 2]
        yield LogEvent(
            server_id=server, level="info", source="rpt", message=f"{i} {PAD}", timestamp=TS,
            file="server.RPT",
        )  # fmt: skip
        if i % 10 < 2:  # both servers
            yield MetricsEvent(
                server_id=server, cpu=1.0, ram=2.0, players=1, fps=60.0, timestamp=TS,
                ram_bytes=i, uptime=float(i),
            )  # fmt: skip
        if i % 25 == 0:
            player = Player(id=f"0-{i:08x}", name=f"p{i}", ping=30, ip="192.0.2.7")
            yield PlayersEvent(server_id="s1", players=[player])
        if i % 100 == 0:
            seq += 1
            status = STATUSES[seq % len(STATUSES)]
            yield ServerStatusEvent(server_id="s1", status=status, seq=seq, timestamp=TS)


def wire(event: Event) -> tuple[str, Any]:
    return event_name(event), json.loads(encode_event(event))


async def deliver(broadcaster: Address[BroadcasterMessage], events: Sequence[Event]) -> None:
    """In Citadel's loop: hand each event to the broadcaster and wait until it was handled."""
    for event in events:
        await broadcaster.call(wrap(event))


def statistics(live: Live) -> FanoutStatistics:
    return live.portal.call(live.citadel.engine.statistics)


async def test_slow_client_gets_latest_state_all_transitions_and_its_loss_fast_one_all(
    tmp_path: Path,
) -> None:
    limits = QueueLimits()
    source = burst()
    events: list[Event] = []
    with run_live(tmp_path / "data", servers=[]) as live:
        token = live.login()
        fast = Client()
        slow: RawWebSocket | None = None
        try:
            with anyio.fail_after(BOUND):
                await fast.connect(live.url, token)
                slow = await RawWebSocket.connect(live.url, rcvbuf=4096)
                slow.send("40" + json.dumps({"token": token}))
                assert (await slow.recv()).startswith("40")
                slow.pause_reading()
                peak, tail = 0, TAIL_CHUNKS
                # How much the kernel buffers before the engine queues depends on the machine:
                # publish until the slow client's queue has coalesced and dropped, then more.
                while tail:
                    chunk = list(itertools.islice(source, CHUNK))
                    events.extend(chunk)
                    # From a worker thread: this loop stays free to run the fast client.
                    await anyio.to_thread.run_sync(
                        live.portal.call, deliver, live.citadel.broadcaster, chunk
                    )
                    sent = len(events)
                    await fast.wait_until(lambda got, n=sent: len(got) >= n)
                    now = statistics(live)
                    peak = max(peak, now.queued_bytes)
                    if now.coalesced and now.dropped_logs:
                        tail -= 1
                events.append(END)
                await anyio.to_thread.run_sync(
                    live.portal.call, deliver, live.citadel.broadcaster, [END]
                )
                await fast.wait_until(lambda got: len(got) == len(events))
            stalled = statistics(live)
            slow.resume_reading()
            received: list[tuple[str, Any]] = []
            with anyio.fail_after(BOUND):
                while not received or received[-1][0] != "notification":
                    received.append(await slow.next_event())
            after = statistics(live)
        finally:
            await fast.close()
            if slow is not None:
                slow.close()

    print(f"\n{len(events)} events; slow client got {len(received)}; peak queue {peak} B; {after}")
    # The fast client: every event, in order, nothing coalesced or dropped.
    assert fast.events == [wire(e) for e in events]

    # The slow client really lagged: its queue coalesced state and dropped lines, and stayed
    # under its bound all along (it was never cut off).
    assert stalled.coalesced > 0
    assert stalled.dropped_logs > 0
    assert 0 < peak <= limits.max_bytes
    assert after.lag_disconnects == 0
    assert after.queued_bytes == 0

    by_kind: dict[tuple[str, str | None], list[dict[str, Any]]] = defaultdict(list)
    for name, data in received:
        by_kind[(name, data.get("serverId"))].append(data)
    published: dict[tuple[str, str | None], list[dict[str, Any]]] = defaultdict(list)
    for name, data in map(wire, events):
        published[(name, data.get("serverId"))].append(data)

    # Every serverStatus transition, in order; the latest state of each kind and server, and
    # never an older value after a newer one.
    assert by_kind[("serverStatus", "s1")] == published[("serverStatus", "s1")]
    for key in [("metrics", "s1"), ("metrics", "s2"), ("players", "s1")]:
        got = by_kind[key]
        assert got[-1] == published[key][-1], key
        order = [published[key].index(value) for value in got]
        assert order == sorted(set(order)), key

    # Log lines: in order; each gap announced, before the lines after it, by notices that
    # decode with the published schema and count exactly the lines missing.
    total_dropped = 0
    for server in SERVERS:
        lines = [int(d["message"].split()[0]) for d in published[("log", server)]]
        position, announced = 0, 0
        for data in by_kind[("log", server)]:
            event = decode_event(json.dumps(data))
            assert isinstance(event, LogEvent)
            if event.source == "system":
                assert (event.level, event.dropped) == ("warn", int(event.message.split()[0]))
                assert event.dropped > 0
                announced += event.dropped
                continue
            index = lines.index(int(event.message.split()[0]))
            assert index - position == announced, (server, index, position, announced)
            position, announced = index + 1, 0
        assert len(lines) - position == announced  # nothing lost at the end unannounced
        total_dropped += sum(
            d["dropped"] for d in by_kind[("log", server)] if d["source"] == "system"
        )
    assert total_dropped == after.dropped_logs


async def test_a_deleted_server_leaves_the_snapshot_and_dashboards_are_told(
    tmp_path: Path,
) -> None:
    config = ServerConfig(id="zz", name="Zz", install_dir=str(tmp_path), executable="dayz-sim")
    with run_live(tmp_path / "data", servers=[]) as live:
        token = live.login()
        watcher, late = Client(), Client()
        try:
            with anyio.fail_after(BOUND):
                await watcher.connect(live.url, token)
                with live.client(token) as http:
                    created = http.post("/api/servers", json=msgspec.to_builtins(config))
                    assert created.status_code == 201, created.text
                await watcher.wait_for("serverStatus", "zz", lambda d: True)
                with live.client(token) as http:
                    assert http.delete("/api/servers/zz").status_code == 204
                removed = await watcher.wait_for("serverRemoved", "zz", lambda d: True)
                await late.connect(live.url, token)
                # Published after the connect: once it arrives, the snapshot has arrived.
                await anyio.to_thread.run_sync(
                    live.portal.call, deliver, live.citadel.broadcaster, [END]
                )
                await late.wait_for("notification", None, lambda d: True)
        finally:
            await watcher.close()
            await late.close()
    assert decode_event(json.dumps(removed)) == ServerRemovedEvent(
        server_id="zz", timestamp=removed["timestamp"]
    )
    assert [name for name, data in watcher.events if data.get("serverId") == "zz"][-1] == (
        "serverRemoved"
    )
    assert [(name, data.get("serverId")) for name, data in late.events] == [("notification", None)]


async def test_a_deleted_server_leaves_the_snapshot_also_when_the_broadcaster_was_down(
    tmp_path: Path,
) -> None:
    """The broadcaster is killed at the moment the DELETE publishes serverRemoved: the event
    is lost, yet no later snapshot shows the server and connected dashboards are still told."""
    config = ServerConfig(id="zz", name="Zz", install_dir=str(tmp_path), executable="dayz-sim")
    with run_live(tmp_path / "data", servers=[]) as live:
        fleet, broadcaster = live.citadel.fleet, live.citadel.broadcaster
        deliveries: list[bool] = []
        original = fleet.publish

        async def publish_while_the_broadcaster_is_down(event: Event) -> bool:
            if not isinstance(event, ServerRemovedEvent):
                return await original(event)
            crashed = anyio.Event()

            def on_report(report: Report) -> None:
                if report.kind is ReportKind.CRASH and report.offender == "broadcaster":
                    crashed.set()

            unsubscribe = live.citadel.reports.subscribe(on_report)
            broadcaster.kill("chaos test")
            await crashed.wait()
            unsubscribe()
            delivered = await original(event)  # before its restart (backoff 0.1 s and up)
            deliveries.append(delivered)
            return delivered

        token = live.login()
        watcher, late = Client(), Client()
        try:
            with anyio.fail_after(BOUND):
                await watcher.connect(live.url, token)
                with live.client(token) as http:
                    created = http.post("/api/servers", json=msgspec.to_builtins(config))
                    assert created.status_code == 201, created.text
                await watcher.wait_for("serverStatus", "zz", lambda d: True)
                fleet.publish = publish_while_the_broadcaster_is_down
                with live.client(token) as http:
                    assert http.delete("/api/servers/zz").status_code == 204
                assert deliveries == [False]  # the REST handler's serverRemoved was lost
                # The restarted broadcaster tells the dashboards that were connected ...
                await watcher.wait_for("serverRemoved", "zz", lambda d: True)
                # ... and a later client's snapshot has no zz (a sentinel published after the
                # connect ends the snapshot).
                await late.connect(live.url, token)
                await anyio.to_thread.run_sync(live.portal.call, deliver, broadcaster, [END])
                await late.wait_for("notification", None, lambda d: True)
        finally:
            await watcher.close()
            await late.close()
    assert not [data for _, data in late.events if data.get("serverId") == "zz"]
    assert [(name, data.get("serverId")) for name, data in late.events] == [("notification", None)]
