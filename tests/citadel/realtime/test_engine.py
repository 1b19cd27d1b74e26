"""The engine end to end: uvicorn, python-socketio's client and Node's socket.io-client."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
import socketio

from citadel.realtime import ClientScope, FanoutEngine, Outgoing, QueueLimits

from .conftest import TOKENS, NodeClient, RawWebSocket, authenticate, serving

pytestmark = pytest.mark.anyio

BOUND = 10.0


def ev(name: str, server: str | None, body: str) -> Outgoing:
    return Outgoing(name, server, body.encode())


class Recorder:
    """A python-socketio client recording every event until an end marker arrives."""

    def __init__(self, transports: list[str] | None = None) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.transports = transports
        self.events: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()
        self.connect_error: Any = None

        async def on_any(name: str, data: Any) -> None:
            self.events.append((name, data))
            self.changed.set()

        async def on_connect_error(data: Any) -> None:
            self.connect_error = data

        self.sio.on("*", on_any)
        self.sio.on("connect_error", on_connect_error)

    async def connect(self, url: str, token: str) -> None:
        await self.sio.connect(url, auth={"token": token}, transports=self.transports)

    async def wait_for(self, name: str, data: Any) -> None:
        while (name, data) not in self.events:
            self.changed.clear()
            await self.changed.wait()


async def test_refused_at_connect_with_the_reason() -> None:
    async with serving(FanoutEngine(authenticate)) as url:
        client = Recorder(["websocket"])
        with anyio.fail_after(BOUND), pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(url, "forged")
        assert client.connect_error == {"message": "invalid token"}


async def test_node_client_refused_with_the_reason_and_served_when_valid() -> None:
    engine = FanoutEngine(authenticate)
    async with serving(engine) as url:
        bad = await NodeClient.start(url, "forged")
        good = await NodeClient.start(url, "a-metrics")
        try:
            with anyio.fail_after(BOUND):
                assert await bad.next_event() == {
                    "event": "connect_error",
                    "message": "invalid token",
                }
                connected = await good.next_event()
                assert connected["event"] == "connect"
                # Node's client starts on polling and upgrades; publish until the upgrade.
                engine.publish(ev("metrics", "b", '{"serverId":"b"}'))
                engine.publish(ev("metrics", "a", '{"serverId":"a","cpu":1}'))
                assert await good.next_event() == {
                    "event": "metrics",
                    "data": {"serverId": "a", "cpu": 1},
                }
        finally:
            await bad.stop()
            await good.stop()


# Long-polling alone is exercised with Node's client below: python-engineio's client leaks an
# aiohttp connection when it disconnects while a poll is pending (a ResourceWarning, an error here).
@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"]])
async def test_scoping_by_server_kind_and_host_wide(transports: list[str]) -> None:
    engine = FanoutEngine(authenticate)
    async with serving(engine) as url:
        scoped, admin = Recorder(transports), Recorder(transports)
        with anyio.fail_after(BOUND):
            await scoped.connect(url, "a-metrics")
            await admin.connect(url, "admin")
        engine_events = [
            ev("metrics", "b", '{"s":"b"}'),
            ev("notification", None, '{"host":true}'),
            ev("log", "a", '{"log":"a"}'),
            ev("metrics", "a", '{"s":"a"}'),
            ev("serverStatus", "a", '{"end":true}'),
        ]
        for e in engine_events:
            engine.publish(e)
        with anyio.fail_after(BOUND):
            await scoped.wait_for("serverStatus", {"end": True})
            await admin.wait_for("serverStatus", {"end": True})
        assert scoped.events == [("metrics", {"s": "a"}), ("serverStatus", {"end": True})]
        assert [name for name, _ in admin.events] == [e.name for e in engine_events]
        await scoped.sio.disconnect()
        await admin.sio.disconnect()


@pytest.mark.parametrize("transports", ["polling", "websocket", ""])
async def test_node_client_scoped_over_each_transport(transports: str) -> None:
    engine = FanoutEngine(authenticate)
    async with serving(engine) as url:
        client = await NodeClient.start(url, "a-metrics", transports)
        try:
            with anyio.fail_after(BOUND):
                connected = await client.next_event()
                assert connected["event"] == "connect"
                if transports:
                    assert connected["transport"] == transports
                for e in (
                    ev("metrics", "b", '{"s":"b"}'),
                    ev("notification", None, '{"host":true}'),
                    ev("metrics", "a", '{"s":"a"}'),
                    ev("serverStatus", "a", '{"end":true}'),
                ):
                    engine.publish(e)
                assert await client.next_event() == {"event": "metrics", "data": {"s": "a"}}
                assert await client.next_event() == {
                    "event": "serverStatus",
                    "data": {"end": True},
                }
        finally:
            await client.stop()


async def test_redacted_payload_for_roles_that_may_not_kick() -> None:
    engine = FanoutEngine(authenticate)
    async with serving(engine) as url:
        viewer, moderator = Recorder(["websocket"]), Recorder(["websocket"])
        with anyio.fail_after(BOUND):
            await viewer.connect(url, "a-viewer")
            await moderator.connect(url, "a-moderator")
        full = b'{"players":[{"id":1,"ip":"192.0.2.7"}]}'
        redacted = b'{"players":[{"id":1}]}'
        engine.publish(Outgoing("players", "a", full, redacted, "players.kick"))
        with anyio.fail_after(BOUND):
            await viewer.wait_for("players", {"players": [{"id": 1}]})
            await moderator.wait_for("players", {"players": [{"id": 1, "ip": "192.0.2.7"}]})
        assert len(viewer.events) == len(moderator.events) == 1


SNAPSHOT = [
    ev("serverStatus", "a", '{"snap":"status"}'),
    ev("players", "a", '{"snap":"players"}'),
    ev("metrics", "a", '{"snap":"metrics"}'),
    ev("mods", "a", '{"snap":"mods"}'),
    ev("serverStatus", "b", '{"snap":"other server"}'),
]


@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"]])
async def test_snapshot_arrives_first_even_while_events_stream(transports: list[str]) -> None:
    engine = FanoutEngine(authenticate, snapshot_provider=lambda scope: SNAPSHOT)
    async with serving(engine) as url:
        stop = asyncio.Event()

        async def stream() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                engine.publish(ev("serverStatus", "a", f'{{"live":{n}}}'))
                await asyncio.sleep(0)

        streamer = asyncio.ensure_future(stream())
        client = Recorder(transports)
        try:
            with anyio.fail_after(BOUND):
                await client.connect(url, "a-viewer")
                while len(client.events) < 5:
                    client.changed.clear()
                    await client.changed.wait()
        finally:
            stop.set()
            await streamer
        assert client.events[:3] == [
            ("serverStatus", {"snap": "status"}),
            ("players", {"snap": "players"}),
            # metrics and mods are outside a-viewer's permissions; server b outside its scope
            ("serverStatus", {"live": client.events[2][1]["live"]}),
        ]
        await client.sio.disconnect()


async def test_rescope_and_disconnect() -> None:
    engine = FanoutEngine(authenticate)
    async with serving(engine) as url:
        client = Recorder(["websocket"])
        with anyio.fail_after(BOUND):
            await client.connect(url, "a-metrics")
        sid = client.sio.get_sid()
        assert sid is not None
        assert engine.connected() == [(sid, {"token": "a-metrics"}, TOKENS["a-metrics"])]
        engine.rescope(sid, ClientScope(servers=frozenset({"b"}), permissions=frozenset({"*"})))
        engine.publish(ev("metrics", "a", '{"s":"a"}'))
        engine.publish(ev("metrics", "b", '{"s":"b"}'))
        with anyio.fail_after(BOUND):
            await client.wait_for("metrics", {"s": "b"})
        assert client.events == [("metrics", {"s": "b"})]
        disconnected = asyncio.Event()
        client.sio.on("disconnect", lambda *args: disconnected.set())
        with anyio.fail_after(BOUND):
            await engine.disconnect(sid, "token revoked")
            await disconnected.wait()
        assert engine.statistics().clients == 0


async def test_garbage_from_a_client_and_a_malformed_event_break_nothing() -> None:
    engine = FanoutEngine(authenticate)
    async with serving(engine) as url:
        client = Recorder(["websocket"])
        with anyio.fail_after(BOUND):
            await client.connect(url, "admin")
            raw = await RawWebSocket.connect(url)
        for junk in (b"\xff\xfe\x00", "x", "4", "40{not json", "9999", "2" * 300):
            raw.send(junk, opcode=0x2 if isinstance(junk, bytes) else 0x1)
        engine.publish(Outgoing("log", "a", b'"\xff"'))
        engine.publish(ev("serverStatus", "a", '{"after":"garbage"}'))
        with anyio.fail_after(BOUND):
            await client.wait_for("serverStatus", {"after": "garbage"})
        assert engine.statistics().malformed == 1
        raw.close()
        await client.sio.disconnect()


async def test_a_stalled_client_is_cut_off_while_another_keeps_receiving() -> None:
    limits = QueueLimits(max_bytes=256 * 1024, max_lag=5.0)
    engine = FanoutEngine(authenticate, limits=limits)
    async with serving(engine) as url:
        reader = Recorder(["websocket"])
        with anyio.fail_after(BOUND):
            await reader.connect(url, "admin")
            stalled = await RawWebSocket.connect(url, rcvbuf=4096)
            stalled.send('40{"token":"admin"}')
            assert (await stalled.recv()).startswith("40")
        # From here on the stalled peer never reads again.
        big = "x" * 16_000
        count = 400
        loop = asyncio.get_running_loop()
        started = loop.time()
        for n in range(count):
            engine.publish(ev("serverStatus", "a", f'{{"n":{n},"pad":"{big}"}}'))
            await asyncio.sleep(0)
        with anyio.fail_after(BOUND):
            await reader.wait_for("serverStatus", {"n": count - 1, "pad": big})
        elapsed = loop.time() - started
        received = [data["n"] for name, data in reader.events]
        assert received == list(range(count))
        stats = engine.statistics()
        assert stats.lag_disconnects == 1
        assert stats.clients == 1
        print(f"\n{count} x 16 kB to the reader in {elapsed * 1000:.0f} ms; {stats}")
        stalled.close()
        await reader.sio.disconnect()


@pytest.mark.parametrize(("flush_turns", "writes"), [(1, 3), (4, 1)])
async def test_frames_of_consecutive_turns_leave_in_one_write(
    flush_turns: int, writes: int
) -> None:
    engine = FanoutEngine(authenticate, flush_turns=flush_turns)
    async with serving(engine) as url:
        with anyio.fail_after(BOUND):
            raw = await RawWebSocket.connect(url)
            raw.send('40{"token":"admin"}')
            assert (await raw.recv()).startswith("40")
        before = engine.statistics().batch_writes
        # Three events in three consecutive loop turns (each sleep(0) is one turn).
        for n in range(3):
            if n:
                await asyncio.sleep(0)
            engine.publish(ev("metrics", "a", f'{{"n":{n}}}'))
        with anyio.fail_after(BOUND):
            got = [await raw.recv() for _ in range(3)]
        assert got == [f'42["metrics",{{"n":{n}}}]' for n in range(3)]
        assert engine.statistics().batch_writes - before == writes
        raw.close()


async def test_a_large_batch_is_written_at_once() -> None:
    engine = FanoutEngine(authenticate, flush_turns=1000)
    async with serving(engine) as url:
        with anyio.fail_after(BOUND):
            raw = await RawWebSocket.connect(url)
            raw.send('40{"token":"admin"}')
            assert (await raw.recv()).startswith("40")
        before = engine.statistics().batch_writes
        small = '{"n":0}'
        engine.publish(ev("metrics", "a", small))
        assert engine.statistics().batch_writes == before  # waits for more frames
        big = '{"pad":"' + "x" * 20_000 + '"}'
        engine.publish(ev("metrics", "a", big))
        # Past a quarter of the high-water mark the batch goes out inside publish itself.
        assert engine.statistics().batch_writes == before + 1
        with anyio.fail_after(BOUND):
            assert await raw.recv() == f'42["metrics",{small}]'
            assert await raw.recv() == f'42["metrics",{big}]'
        raw.close()


def test_flush_turns_must_be_positive() -> None:
    with pytest.raises(ValueError, match="flush_turns"):
        FanoutEngine(authenticate, flush_turns=0)


@pytest.mark.parametrize("interval", [0.0, -1.0, float("nan")])
def test_lag_check_interval_must_be_positive(interval: float) -> None:
    with pytest.raises(ValueError, match="lag_check_interval"):
        FanoutEngine(authenticate, lag_check_interval=interval)


async def _stall(engine: FanoutEngine, raw: RawWebSocket) -> int:
    """Stop reading on ``raw`` and publish 16 kB frames until they queue for it; return count.

    Done once a frame is still queued after the writer had its turn: the transport is past its
    high-water mark, the writer waits on it, and every later frame for ``raw`` queues.
    """
    raw.pause_reading()
    big = "x" * 16_000
    n = 0
    while engine.statistics().queued_bytes == 0:
        engine.publish(ev("serverStatus", "a", f'{{"n":{n},"pad":"{big}"}}'))
        n += 1
        await asyncio.sleep(0)
    return n


async def test_a_stalled_client_is_cut_within_max_lag_with_nothing_more_published() -> None:
    # Nothing is published once the client lags, so no push judges it: only the sweep can.
    # Without it the client would hang on until the Engine.IO ping timeout (45 s).
    engine = FanoutEngine(authenticate, limits=QueueLimits(max_lag=0.5), lag_check_interval=0.1)
    async with serving(engine) as url:
        with anyio.fail_after(BOUND):
            raw = await RawWebSocket.connect(url, rcvbuf=4096)
            raw.send('40{"token":"admin"}')
            assert (await raw.recv()).startswith("40")
            await _stall(engine, raw)
            assert engine.statistics().lag_disconnects == 0
            assert await raw.wait_cut(BOUND), "not cut off"
        stats = engine.statistics()
        assert stats.lag_disconnects == 1
        assert stats.queued_bytes == 0
        raw.close()


@pytest.mark.parametrize("players_cached", [True, False])
async def test_rescope_drops_what_the_new_scope_forbids_and_repeats_no_status(
    players_cached: bool,
) -> None:
    cached = [
        ev("serverStatus", "a", '{"snap":"a"}'),
        Outgoing(
            "players", "a", b'{"snap":"full","ip":"192.0.2.7"}', b'{"snap":"redacted"}',
            "players.kick",
        ),
        ev("serverStatus", "b", '{"snap":"b"}'),
    ]  # fmt: skip
    snapshot = list(cached)
    engine = FanoutEngine(authenticate, snapshot_provider=lambda scope: snapshot)
    async with serving(engine) as url:
        with anyio.fail_after(BOUND):
            raw = await RawWebSocket.connect(url, rcvbuf=4096)
            raw.send('40{"token":"admin"}')
            assert (await raw.recv()).startswith("40")
            assert [await raw.next_event() for _ in cached] == [
                ("serverStatus", {"snap": "a"}),
                ("players", {"snap": "full", "ip": "192.0.2.7"}),
                ("serverStatus", {"snap": "b"}),
            ]
            padding = await _stall(engine, raw)
        # Queued while the client is an admin; after the rescope it may see none of these.
        engine.publish(
            Outgoing(
                "players", "a", b'{"live":"full","ip":"192.0.2.8"}', b'{"live":"redacted"}',
                "players.kick",
            )
        )  # fmt: skip
        engine.publish(ev("serverStatus", "b", '{"live":"b"}'))
        engine.publish(ev("log", "a", '{"live":"log"}'))
        if not players_cached:  # nothing will replace the queued list: it must go by itself
            del snapshot[1]
        ((sid, _, _),) = engine.connected()
        engine.rescope(sid, TOKENS["a-viewer"])
        engine.publish(ev("serverStatus", "a", '{"end":true}'))
        raw.resume_reading()
        received = []
        with anyio.fail_after(BOUND):
            while (event := await raw.next_event()) != ("serverStatus", {"end": True}):
                received.append(event)
        # Every transition of server a, in order; then the one thing the viewer lacks: the
        # players list, redacted (not the status of a again: it has it already). The full list
        # queued before the rescope never arrives.
        assert [data["n"] for _, data in received[:padding]] == list(range(padding))
        expected = [("players", {"snap": "redacted"})] if players_cached else []
        assert received[padding:] == expected
        raw.close()
