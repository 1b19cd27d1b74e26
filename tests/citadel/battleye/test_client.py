"""The RCon client against a fake BattlEye server on real loopback UDP, in virtual time."""

from __future__ import annotations

import itertools
import socket

import anyio
import pytest
from berconpy.protocol import ServerLoginPacket, ServerMessagePacket

from citadel.games.battleye import (
    CommandTimeout,
    LoginFailed,
    RConClient,
    RConDisconnected,
    RConError,
    RConSettings,
    RConUnreachable,
    open_rcon,
    run_forever,
)

from ._fake_server import PASSWORD, FakeBattlEye, Login

pytestmark = pytest.mark.anyio

HOST = "127.0.0.1"
# Virtual seconds; a hang fails at once instead of costing real time.
BOUND = 200.0

PLAYERS = (
    "Players on server:\n"
    "[#] [IP Address]:[Port] [Ping] [GUID] [Name]\n"
    "--------------------------------------------------\n"
    "0   203.0.113.10:2304     31   0123456789abcdef0123456789abcdef(OK) PlayerOne\n"
    "3   192.0.2.7:2304        48   00112233445566778899aabbccddeeff(OK) Игрок_3\n"
    "(2 players in total)"
)


class Call:
    """A command running in the background, so the fake server can answer it step by step."""

    def __init__(self) -> None:
        self.result: str | None = None
        self.error: RConError | None = None
        self.done = anyio.Event()

    async def run(self, rcon: RConClient, command: str) -> None:
        try:
            self.result = await rcon.command(command)
        except RConError as exc:
            self.error = exc
        finally:
            self.done.set()


async def test_login_and_command_round_trip(server: FakeBattlEye) -> None:
    with anyio.fail_after(BOUND):
        async with open_rcon(HOST, server.port, PASSWORD) as rcon, anyio.create_task_group() as tg:
            assert rcon.connected
            call = Call()
            tg.start_soon(call.run, rcon, "players")
            command = await server.next_command()
            assert (command.sequence, command.message) == (0, b"players")
            await server.reply(command.sequence, PLAYERS.encode())
            await call.done.wait()
            assert call.result == PLAYERS
    assert [r.raw for r in server.logins()] == [
        bytes.fromhex("42 45 27 49 3c 04 ff 00 63 68 61 6e 67 65 6d 65")
    ]
    assert not rcon.connected


async def test_wrong_password_fails_once_without_retry(server: FakeBattlEye) -> None:
    server.login = Login.FAIL
    with anyio.fail_after(BOUND), pytest.raises(LoginFailed):
        async with open_rcon(HOST, server.port, PASSWORD):
            pytest.fail("logged in with a rejected password")
    assert len(server.logins()) == 1


async def test_silent_server_is_unreachable_after_a_bounded_wait(server: FakeBattlEye) -> None:
    server.login = Login.SILENT
    settings = RConSettings()
    start = anyio.current_time()
    with anyio.fail_after(BOUND), pytest.raises(RConUnreachable):
        async with open_rcon(HOST, server.port, PASSWORD, settings=settings):
            pytest.fail("logged in to a silent server")
    assert anyio.current_time() - start == pytest.approx(settings.login_timeout)
    assert len(server.logins()) == settings.max_resends + 1


async def test_closed_port_is_unreachable() -> None:
    # Nothing listens: ICMP "port unreachable" comes back and must not crash the client.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    with anyio.fail_after(BOUND), pytest.raises(RConUnreachable):
        async with open_rcon(HOST, port, PASSWORD):
            pytest.fail("logged in to nobody")


async def test_multipart_reply_out_of_order_with_duplicates_and_a_message(
    server: FakeBattlEye,
) -> None:
    messages: list[str] = []
    body = PLAYERS.encode()
    cut = body.index("Игрок".encode()) + 1  # splits the two-byte 'И' across two parts
    parts = [body[:40], body[40:cut], body[cut:]]
    with anyio.fail_after(BOUND):
        async with (
            open_rcon(HOST, server.port, PASSWORD, on_message=messages.append) as rcon,
            anyio.create_task_group() as tg,
        ):
            call = Call()
            tg.start_soon(call.run, rcon, "players")
            seq = (await server.next_command()).sequence
            await server.reply(seq, parts[2], total=3, index=2)
            await server.reply(seq, parts[0], total=3, index=0)
            await server.reply(seq, parts[2], total=3, index=2)  # duplicate
            await server.message(0, "Player #4 Player Two (198.51.100.22:2304) connected")
            await server.reply((seq + 7) % 256, b"not ours")  # another seq's reply
            await server.reply(seq, parts[0], total=3, index=0)  # duplicate
            assert not call.done.is_set()
            await server.reply(seq, parts[1], total=3, index=1)
            await call.done.wait()
            assert call.result == PLAYERS
            await server.wait_until(lambda: server.acks() == [0])
            assert messages == ["Player #4 Player Two (198.51.100.22:2304) connected"]
            assert rcon.statistics().late_replies == 1


async def test_duplicated_message_is_acked_twice_delivered_once(server: FakeBattlEye) -> None:
    # formats.md §5.3 (conqp/rcon#41).
    messages: list[str] = []
    text = "RCon admin #0: (Global) First message"
    with anyio.fail_after(BOUND):
        async with (
            open_rcon(HOST, server.port, PASSWORD, on_message=messages.append) as rcon,
            anyio.create_task_group() as tg,
        ):
            call = Call()
            tg.start_soon(call.run, rcon, "say -1 Second message")
            seq = (await server.next_command()).sequence
            await server.message(0, text)
            await server.message(0, text)  # the resend after a "lost" ACK
            await server.reply(seq, b"")
            await call.done.wait()
            assert call.result == ""
            await server.wait_until(lambda: len(server.acks()) == 2)
            assert server.acks() == [0, 0]
            assert messages == [text]
            stats = rcon.statistics()
            assert (stats.messages, stats.duplicate_messages) == (1, 1)


async def test_sequence_wraps_after_255(server: FakeBattlEye) -> None:
    # formats.md §5.4: ... 254, 255, 0, 1, and every reply reaches its own command.
    server.echo = True
    with anyio.fail_after(BOUND):
        async with open_rcon(HOST, server.port, PASSWORD) as rcon:
            for n in range(258):
                assert await rcon.command(f"say -1 n{n}") == f"say -1 n{n}"
    assert [c.sequence for c in server.commands()] == [n % 256 for n in range(258)]
    assert [c.sequence for c in server.commands()][253:] == [253, 254, 255, 0, 1]


async def test_keepalive_goes_out_well_before_45_s_of_idle(server: FakeBattlEye) -> None:
    # formats.md §5.5: login at t=0, next command at t=40 with nothing in between from us.
    server.echo = True
    with anyio.fail_after(BOUND):
        async with open_rcon(HOST, server.port, PASSWORD) as rcon:
            logged_in = anyio.current_time()
            await anyio.sleep(40)
            assert await rcon.command("players") == "players"
            assert rcon.statistics().keepalives == 1
    keepalives = server.keepalives()
    assert len(keepalives) == 1
    assert keepalives[0].at - logged_in == pytest.approx(RConSettings().keepalive_interval)
    assert keepalives[0].raw == bytes.fromhex("42 45 be dc c2 58 ff 01 00")
    # The keepalive used seq 0, so the command carries seq 1.
    assert [c.sequence for c in server.commands()] == [0, 1]


async def test_keepalives_keep_an_idle_link_alive(server: FakeBattlEye) -> None:
    with anyio.fail_after(1000):
        async with open_rcon(HOST, server.port, PASSWORD) as rcon:
            await anyio.sleep(600)
            assert rcon.connected
    times = [server.logins()[0].at] + [k.at for k in server.keepalives()]
    assert len(times) > 20
    assert max(b - a for a, b in itertools.pairwise(times)) < 45


async def test_lost_command_is_resent_and_late_duplicate_ignored(server: FakeBattlEye) -> None:
    server.echo = True
    server.drop_next = 1
    settings = RConSettings()
    with anyio.fail_after(BOUND):
        async with open_rcon(HOST, server.port, PASSWORD, settings=settings) as rcon:
            start = anyio.current_time()
            assert await rcon.command("players") == "players"
            assert anyio.current_time() - start == pytest.approx(settings.resend_interval)
            first, second = server.commands()
            assert first.data == second.data  # same seq, same bytes
            await server.reply(first.sequence, b"players")  # a late duplicate
            assert await rcon.command("admins") == "admins"  # loopback keeps order: a barrier
            stats = rcon.statistics()
            assert (stats.resends, stats.late_replies) == (1, 1)


async def test_unanswered_command_times_out_and_link_stays_when_server_talks(
    server: FakeBattlEye,
) -> None:
    server.drop_next = 10
    with anyio.fail_after(BOUND):
        async with open_rcon(HOST, server.port, PASSWORD) as rcon, anyio.create_task_group() as tg:
            call = Call()
            tg.start_soon(call.run, rcon, "players")
            await server.next_command()
            await server.message(0, "Connected to BE Master")  # proof the server is alive
            await call.done.wait()
            assert isinstance(call.error, CommandTimeout)
            assert len(server.commands()) == 4
            assert rcon.connected


async def test_caller_timeout_is_honoured(server: FakeBattlEye) -> None:
    server.drop_next = 10
    with anyio.fail_after(BOUND):
        async with open_rcon(HOST, server.port, PASSWORD) as rcon:
            start = anyio.current_time()
            with pytest.raises(CommandTimeout):
                await rcon.command("players", timeout=3.0)
            assert anyio.current_time() - start == pytest.approx(3.0)
            assert len(server.commands()) == 2
            assert rcon.connected


async def test_garbage_datagrams_are_ignored(server: FakeBattlEye) -> None:
    good = bytes(ServerMessagePacket(1, b"hello").data)
    # (No empty datagram: asyncio's transport silently refuses to send one.)
    garbage = [
        b"\x00",
        b"BE",
        b"random bytes that are not a packet at all",
        good[:-1],  # truncated: bad CRC
        good[:2] + b"\x00\x00\x00\x00" + good[6:],  # bad CRC
        b"XX" + good[2:],  # bad header
        bytes(ServerLoginPacket(True).data)[:-1] + b"\x07",  # bad CRC in a login answer
        bytes(range(256)) * 4,
    ]
    messages: list[str] = []
    with anyio.fail_after(BOUND):
        async with (
            open_rcon(HOST, server.port, PASSWORD, on_message=messages.append) as rcon,
            anyio.create_task_group() as tg,
        ):
            call = Call()
            tg.start_soon(call.run, rcon, "players")
            seq = (await server.next_command()).sequence
            for datagram in garbage:
                await server.send(datagram)
            await server.reply(seq, b"ok")
            await call.done.wait()
            assert call.result == "ok"
            assert messages == []
            stats = rcon.statistics()
            assert stats.garbage == len(garbage)
            assert stats.received == len(garbage) + 2  # plus the login answer and the reply
            assert rcon.connected


async def test_unsendable_command_is_refused_before_sending(server: FakeBattlEye) -> None:
    with anyio.fail_after(BOUND):
        async with open_rcon(HOST, server.port, PASSWORD) as rcon:
            with pytest.raises(ValueError, match="control character"):
                await rcon.command("say -1 hi\nkick 0")
            sent = rcon.statistics().sent
    assert server.commands() == []
    assert sent == 1  # the login


async def test_silent_server_is_detected_by_the_unanswered_keepalive(server: FakeBattlEye) -> None:
    settings = RConSettings()
    with anyio.fail_after(BOUND):
        async with open_rcon(HOST, server.port, PASSWORD, settings=settings) as rcon:
            start = anyio.current_time()
            server.silent = True
            reason = await rcon.wait_disconnected()
            elapsed = anyio.current_time() - start
            assert "unanswered" in reason
            assert elapsed == pytest.approx(settings.keepalive_interval + settings.command_timeout)
            assert not rcon.connected
            with pytest.raises(RConDisconnected):
                await rcon.command("players")


async def test_watchdog_declares_the_link_dead(server: FakeBattlEye) -> None:
    # Resends every 2 s for 40 s: the command keeps "sending" so neither the keepalive nor the
    # command's own give-up can end the session first; only the watchdog can.
    settings = RConSettings(keepalive_interval=25.0, dead_after=30.0, max_resends=20)
    with anyio.fail_after(BOUND):
        async with (
            open_rcon(HOST, server.port, PASSWORD, settings=settings) as rcon,
            anyio.create_task_group() as tg,
        ):
            start = anyio.current_time()
            server.silent = True
            call = Call()
            tg.start_soon(call.run, rcon, "players")
            reason = await rcon.wait_disconnected()
            assert anyio.current_time() - start == pytest.approx(30.0)
            assert reason == "nothing received from the server for 30 s"
            await call.done.wait()
            assert isinstance(call.error, RConDisconnected)


async def test_run_forever_reconnects_after_the_server_comes_back(server: FakeBattlEye) -> None:
    server.echo = True
    clients: list[RConClient] = []
    reasons: list[str] = []
    changed = anyio.Event()

    def connected(client: RConClient) -> None:
        nonlocal changed
        clients.append(client)
        changed.set()
        changed = anyio.Event()

    def disconnected(reason: str) -> None:
        nonlocal changed
        reasons.append(reason)
        changed.set()
        changed = anyio.Event()

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: run_forever(
                    HOST,
                    server.port,
                    PASSWORD,
                    on_connected=connected,
                    on_disconnected=disconnected,
                    random=lambda: 0.0,
                )
            )
            while not clients:
                await changed.wait()
            assert await clients[0].command("players") == "players"
            server.silent = True  # the server goes away...
            while not reasons:
                await changed.wait()
            lost_at = anyio.current_time()
            await anyio.sleep(20)  # ...for a while, so several logins go unanswered
            server.silent = False
            while len(clients) < 2:
                await changed.wait()
            assert not clients[0].connected
            assert clients[1].connected
            # A new session: a new socket, sequence numbers from 0 again.
            assert await clients[1].command("admins") == "admins"
            assert server.commands()[-1].sequence == 0
            assert anyio.current_time() - lost_at >= 20
            tg.cancel_scope.cancel()
    assert len(reasons) == 1
    assert len(server.logins()) == 2  # logins sent while silent were never recorded


async def test_run_forever_stops_on_a_rejected_password(server: FakeBattlEye) -> None:
    server.login = Login.FAIL
    with anyio.fail_after(BOUND), pytest.raises(LoginFailed):
        await run_forever(HOST, server.port, PASSWORD, random=lambda: 0.0)
    assert len(server.logins()) == 1


async def test_run_forever_retries_an_unreachable_server(server: FakeBattlEye) -> None:
    server.login = Login.SILENT
    ready = anyio.Event()
    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: run_forever(HOST, server.port, PASSWORD, on_connected=lambda _: ready.set())
            )
            await server.wait_until(lambda: len(server.logins()) >= 8)  # two whole attempts
            server.login = Login.OK
            await ready.wait()
            tg.cancel_scope.cancel()


async def test_closed_client_refuses_commands(server: FakeBattlEye) -> None:
    with anyio.fail_after(BOUND):
        async with open_rcon(HOST, server.port, PASSWORD) as rcon:
            pass
        assert await rcon.wait_disconnected() == "closed by its owner"
        with pytest.raises(RConDisconnected, match="closed by its owner"):
            await rcon.command("players")


async def test_body_errors_propagate_unwrapped(server: FakeBattlEye) -> None:
    with anyio.fail_after(BOUND), pytest.raises(KeyError):
        async with open_rcon(HOST, server.port, PASSWORD):
            raise KeyError("from the body")


async def test_concurrent_commands_each_get_their_own_reply(server: FakeBattlEye) -> None:
    server.echo = True
    results: dict[int, str] = {}

    async def ask(rcon: RConClient, n: int) -> None:
        results[n] = await rcon.command(f"say -1 {n}")

    with anyio.fail_after(BOUND):
        async with open_rcon(HOST, server.port, PASSWORD) as rcon:
            async with anyio.create_task_group() as tg:
                for n in range(20):  # more than max_in_flight: the rest wait their turn
                    tg.start_soon(ask, rcon, n)
            assert results == {n: f"say -1 {n}" for n in range(20)}
            assert rcon.statistics().in_flight == 0


async def test_a_failing_message_callback_ends_the_session_loudly(server: FakeBattlEye) -> None:
    def explode(text: str) -> None:
        raise RuntimeError(text)

    with anyio.fail_after(BOUND), pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="boom")):
        async with open_rcon(HOST, server.port, PASSWORD, on_message=explode):
            await server.message(0, "boom")
            await anyio.sleep_forever()
    assert server.acks() == [0]  # the ACK still went out before the callback ran
