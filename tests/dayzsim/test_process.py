"""The simulator as a real process: logs, RCON over real UDP, shutdown and failure modes."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tests.dayzsim._harness import (
    PLAYERS_ROW,
    Sim,
    logged_in,
    packet,
    running,
    unpack,
    wait_players,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Sim]:
    async with running(tmp_path) as sim:
        yield sim


@pytest.fixture
async def crowded(tmp_path: Path) -> AsyncIterator[Sim]:
    async with running(tmp_path, {"DAYZSIM_PLAYERS": "40", "DAYZSIM_LOBBY_TICKS": "0"}) as sim:
        yield sim


async def test_log_files_names_and_ready(sim: Sim) -> None:
    await sim.wait_ready()
    names = sorted(p.name for p in sim.profile.iterdir() if p.is_file())
    assert len(names) == 3
    assert re.fullmatch(r"DayZServer_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.RPT", names[0])
    assert re.fullmatch(r"DayZServer_\d{4}_\d\d_\d\d_\d{9}\.ADM", names[1])
    assert re.fullmatch(r"script_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.log", names[2])
    rpt = sim.rpt_text().splitlines()
    assert rpt[0].startswith("=====")
    assert rpt[1].endswith("/DayZServer")
    assert "-unknownFlag=1" in rpt[2]
    assert any(line.startswith("Current time:  ") for line in rpt)
    timed = re.compile(r"^\s?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?\s(.*)$")
    messages = [m.group(5) for line in rpt if (m := timed.match(line))]
    assert messages.index("Mission read.") < messages.index("Player connect enabled")
    adm = sim.one("*.ADM").read_text(encoding="utf-8")
    assert "AdminLog started on " in adm
    active = list((sim.profile / "battleye").glob("beserver_x64_active_*.cfg"))
    assert len(active) == 1
    # Players enter the game and show up, moving, in the snapshot file.
    text = await sim.wait_for("*.ADM", '" is connected (id=')
    assert 'Player "PlayerOne" is connected (id=' in text
    with anyio.fail_after(5):
        while True:
            snapshot = json.loads((sim.profile / "citadel" / "positions.json").read_bytes())
            if snapshot["players"]:
                break
            await anyio.sleep(0.02)
    player = snapshot["players"][0]
    assert set(player) >= {"id", "name", "steamId", "position", "heading"}
    assert set(player["position"]) == {"x", "y", "z"}
    assert snapshot["vehicles"][0]["className"]
    heartbeat = json.loads((sim.profile / "citadel" / "heartbeat.json").read_bytes())
    assert heartbeat["state"] == "running"
    assert heartbeat["pid"] == sim.proc.pid
    assert "DayZ Server" in (sim.root / "stdout.txt").read_text(encoding="utf-8")


async def test_login_bytes_and_admin_message(sim: Sim) -> None:
    await sim.wait_ready()
    client = await sim.client()
    assert await client.login("wrong") == bytes.fromhex("42 45 ff ed d9 41 ff 00 00")
    # Before a successful login, commands are ignored.
    await client.send_raw(packet(0x01, b"\x00players"))
    assert await client.login() == bytes.fromhex("42 45 69 dd de 36 ff 00 01")
    local_port = client.sock.extra(anyio.abc.SocketAttribute.local_port)
    text = await client.wait_message("logged in")
    assert text == f"RCon admin #0 (127.0.0.1:{local_port}) logged in"
    reply, _ = await client.command("admins")
    assert reply.splitlines()[-1] == f"0 127.0.0.1:{local_port}"
    assert await client.command("") == ("", 1)
    assert await client.command("frobnicate") == ("Unknown command", 1)


async def test_exact_keepalive_echo(sim: Sim) -> None:
    client = await logged_in(sim)
    await client.command("")  # seq 0
    await client.send_raw(bytes.fromhex("42 45 28 ec c5 2f ff 01 01"))
    with anyio.fail_after(5):
        while True:
            data, _ = await client.sock.receive()
            if data == bytes.fromhex("42 45 28 ec c5 2f ff 01 01"):
                break


async def test_players_output_shape(tmp_path: Path) -> None:
    async with running(tmp_path, {"DAYZSIM_PLAYERS": "5", "DAYZSIM_LOBBY_TICKS": "100000"}) as sim:
        client = await logged_in(sim)
        await wait_players(client, 5, verified=True)
        text, _ = await client.command("players")
        lines = text.splitlines()
        assert lines[:3] == [
            "Players on server:",
            "[#] [IP Address]:[Port] [Ping] [GUID] [Name]",
            "-" * 50,
        ]
        assert lines[-1] == "(5 players in total)"
        parsed = [PLAYERS_ROW.match(line) for line in lines[3:-1]]
        assert all(parsed)
        names = {m.group(7) for m in parsed if m}
        assert {
            "PlayerOne",
            "Player Two",
            "Игрок_3",
            "Big Name [TAG]",
            "Survivor (Lobby) Joe",
        } == names
        # Still loading: ping -1 and the lobby suffix.
        assert all(m.group(4) == "-1" and m.group(8) == " (Lobby)" for m in parsed if m)


async def test_multipart_players_reassemble(crowded: Sim) -> None:
    client = await logged_in(crowded)
    await wait_players(client, 40)
    text, parts = await client.command("players")
    assert parts > 1
    assert len(text.encode("utf-8")) > 1000
    lines = text.splitlines()
    rows = [PLAYERS_ROW.match(line) for line in lines[3:-1]]
    assert len(rows) == 40
    assert all(rows)
    assert lines[-1] == "(40 players in total)"


async def test_unacked_message_is_resent_then_client_dropped(tmp_path: Path) -> None:
    async with running(
        tmp_path,
        {"DAYZSIM_RCON_RESEND": "0.1", "DAYZSIM_RCON_RESEND_LIMIT": "2", "DAYZSIM_PLAYERS": "0"},
    ) as sim:
        await sim.wait_ready()
        client = await sim.client()
        client.auto_ack = False
        await client.login()
        with anyio.fail_after(5):
            while len(client.messages) < 3:
                await client.receive()
        assert set(client.messages) == {client.messages[0]}
        assert client.messages[0][0] == 0
        # One send plus two resends, then the session is forgotten: commands go unanswered.
        with anyio.fail_after(5):
            while True:
                try:
                    await client.command("", limit=0.3)
                except TimeoutError:
                    break
        assert len(client.messages) == 3
        assert unpack(await client.login()) == (0x00, b"\x01")


async def test_acked_message_is_not_resent(tmp_path: Path) -> None:
    async with running(
        tmp_path,
        {"DAYZSIM_RCON_RESEND": "0.1", "DAYZSIM_RCON_RESEND_LIMIT": "2", "DAYZSIM_PLAYERS": "0"},
    ) as sim:
        client = await logged_in(sim)
        await client.wait_message("logged in")  # acked on receipt
        # The ACK was processed before this command (same socket, one server loop), so any
        # later copy of message 0 would be a resend after an ACK.
        await client.command("")
        seen = len(client.messages)
        for _ in range(8):  # 0.8 s: well past the resend limit; the session must survive
            assert await client.command("") == ("", 1)
            await anyio.sleep(0.1)
        assert len(client.messages) == seen


async def test_say_broadcasts(sim: Sim) -> None:
    client = await logged_in(sim)
    other = await sim.client()
    await other.login()
    assert await client.command("say -1 Server restart in 5 minutes") == ("", 1)
    assert (
        await client.wait_message("(Global)")
        == "RCon admin #0: (Global) Server restart in 5 minutes"
    )
    assert (
        await other.wait_message("(Global)")
        == "RCon admin #0: (Global) Server restart in 5 minutes"
    )


async def test_kick_removes_player(sim: Sim) -> None:
    client = await logged_in(sim)
    rows = await wait_players(client, 3, verified=True)
    slot, name, guid = rows[1].group(1), rows[1].group(7), rows[1].group(5)
    assert await client.command(f"kick {slot} Restarting") == ("", 1)
    kicked = await client.wait_message("has been kicked")
    assert (
        kicked
        == f"Player #{slot} {name} ({guid}) has been kicked by BattlEye: Admin Kick (Restarting)"
    )
    await client.wait_message(f"Player #{slot} {name} disconnected")
    text, _ = await client.command("players")
    assert name not in text
    rpt = await sim.wait_for("*.RPT", "kicked from server: 6 ()")
    assert f"Player {name} ({slot}) (" in rpt


async def test_bans_lifecycle(sim: Sim) -> None:
    client = await logged_in(sim)
    rows = await wait_players(client, 3, verified=True)
    guid = rows[0].group(5)
    await client.command(f"ban {rows[0].group(1)} 60 toxic")
    await client.wait_message("Admin Ban (toxic)")
    await client.command("addBan 198.51.100.22 0 Ban evasion")
    text, _ = await client.command("bans")
    lines = text.splitlines()
    assert re.fullmatch(rf"0  {guid} (59|60) toxic", lines[3])
    assert lines[-1] == "1  198.51.100.22   perm Ban evasion"
    assert "198.51.100.22 -1 Ban evasion" in (sim.profile / "battleye" / "bans.txt").read_text()
    await client.command("removeBan 0")
    text, _ = await client.command("bans")
    assert text.splitlines()[-1].startswith("0  198.51.100.22")


async def test_shutdown_command_exits_zero(sim: Sim) -> None:
    client = await logged_in(sim)
    assert await client.command("#shutdown") == ("", 1)
    assert await sim.wait_exit() == 0
    assert "Server shutting down (#shutdown)" in sim.rpt_text().splitlines()[-1]
    assert not list((sim.profile / "battleye").glob("*_active_*"))
    heartbeat = json.loads((sim.profile / "citadel" / "heartbeat.json").read_bytes())
    assert heartbeat["state"] == "stopped"


async def test_sigterm_exits_zero(sim: Sim) -> None:
    await sim.wait_ready()
    sim.proc.send_signal(signal.SIGTERM)
    assert await sim.wait_exit() == 0
    assert "(SIGTERM)" in sim.rpt_text()


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("exit:7", 7),
        ("signal:SEGV", -signal.SIGSEGV),
        ("abort", -signal.SIGABRT),
        ("signal:KILL", -9),
    ],
)
async def test_crash_modes(tmp_path: Path, mode: str, expected: int) -> None:
    async with running(tmp_path, {"DAYZSIM_CRASH_AFTER": "0.4", "DAYZSIM_CRASH_MODE": mode}) as sim:
        assert await sim.wait_exit() == expected
        assert len(list(sim.profile.glob("crash_*.log"))) == 1
        assert "ENGINE    (F): Crashed" in sim.rpt_text()
        # The active BattlEye copy is left behind, as after a real crash.
        assert list((sim.profile / "battleye").glob("beserver_x64_active_*.cfg"))


async def test_ignore_shutdown_survives_sigterm(tmp_path: Path) -> None:
    async with running(tmp_path, {"DAYZSIM_IGNORE_SHUTDOWN": "1"}) as sim:
        client = await logged_in(sim)
        sim.proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(5):
            while "ignoring SIGTERM" not in (sim.root / "stderr.txt").read_text():
                await anyio.sleep(0.02)
        assert await client.command("#shutdown") == ("", 1)
        assert await client.command("") == ("", 1)  # still serving after both requests
        assert sim.proc.poll() is None
    assert sim.proc.returncode == -signal.SIGKILL


async def test_hang_stops_everything(tmp_path: Path) -> None:
    async with running(tmp_path, {"DAYZSIM_HANG_AFTER": "0.8"}) as sim:
        client = await logged_in(sim)
        with anyio.fail_after(5):
            while True:
                try:
                    await client.command("", limit=0.3)
                except TimeoutError:
                    break
                await anyio.sleep(0.05)
        sim.proc.send_signal(signal.SIGTERM)
        size = len(sim.rpt_text())
        with pytest.raises(TimeoutError):
            await sim.wait_exit(limit=0.5)
        assert len(sim.rpt_text()) == size


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for a reaper counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def test_spawned_child_shares_the_group(tmp_path: Path) -> None:
    async with running(tmp_path, {"DAYZSIM_SPAWN_CHILD": "1"}) as sim:
        await sim.wait_ready()
        child = int((sim.profile / "citadel" / "child.pid").read_text())
        assert os.getpgid(child) == sim.proc.pid
        sim.proc.send_signal(signal.SIGTERM)
        assert await sim.wait_exit() == 0
        assert alive(child)  # the child outlives its parent: only a group kill reaps it
    with anyio.fail_after(5):
        while alive(child):
            await anyio.sleep(0.02)


async def test_stubborn_child_stays_in_the_group_and_ignores_sigterm(tmp_path: Path) -> None:
    async with running(tmp_path, {"DAYZSIM_SPAWN_CHILD": "stubborn"}) as sim:
        await sim.wait_ready()
        child = int((sim.profile / "citadel" / "child.pid").read_text())
        assert os.getpgid(child) == sim.proc.pid
        os.killpg(sim.proc.pid, signal.SIGTERM)
        assert await sim.wait_exit() == 0
        assert alive(child)  # SIGTERM to the whole group did not end it
    with anyio.fail_after(5):  # the harness's group SIGKILL does
        while alive(child):
            await anyio.sleep(0.02)


async def test_setsid_child_leaves_the_group_but_keeps_its_parent(tmp_path: Path) -> None:
    async with running(tmp_path, {"DAYZSIM_SPAWN_CHILD": "setsid"}) as sim:
        await sim.wait_ready()
        child = int((sim.profile / "citadel" / "child.pid").read_text())
        try:
            assert os.getsid(child) == child != sim.proc.pid
            assert parent_of(child) == sim.proc.pid
        finally:
            os.kill(child, signal.SIGKILL)


async def test_daemon_child_has_neither_the_group_nor_the_parent(tmp_path: Path) -> None:
    async with running(tmp_path, {"DAYZSIM_SPAWN_CHILD": "daemon"}) as sim:
        await sim.wait_ready()
        child = int((sim.profile / "citadel" / "child.pid").read_text())
        try:
            assert os.getpgid(child) != sim.proc.pid
            assert os.getsid(child) != sim.proc.pid
            assert parent_of(child) != sim.proc.pid  # re-parented: the launcher is gone
            os.kill(child, signal.SIGTERM)
            await anyio.sleep(0.2)  # asserting an absence: SIGTERM must not end it
            assert alive(child)
        finally:
            os.kill(child, signal.SIGKILL)


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


async def test_loop_hang_silences_the_logs_while_rcon_answers(tmp_path: Path) -> None:
    env = {"DAYZSIM_HANG_AFTER": "0.6", "DAYZSIM_HANG_MODE": "loop", "DAYZSIM_STATS_TICKS": "1"}
    async with running(tmp_path, env) as sim:
        client = await logged_in(sim)
        with anyio.fail_after(5):
            while "Average server FPS" not in sim.rpt_text():
                await anyio.sleep(0.05)
        heartbeat = sim.profile / "citadel" / "heartbeat.json"
        with anyio.fail_after(5):
            # Frozen: the heartbeat's tick stops moving (it is rewritten every tick otherwise).
            while True:
                before = json.loads(heartbeat.read_text())["tick"]
                await anyio.sleep(0.3)
                if json.loads(heartbeat.read_text())["tick"] == before:
                    break
        size = len(sim.rpt_text())
        reply, _ = await client.command("players")
        assert "players in total" in reply  # RCON still answers
        await anyio.sleep(0.3)  # asserting an absence: no more log lines while frozen
        assert len(sim.rpt_text()) == size


async def test_compile_error_is_fatal(tmp_path: Path) -> None:
    async with running(tmp_path, {"DAYZSIM_SCRIPT_COMPILE_ERROR": "1"}) as sim:
        assert await sim.wait_exit() == 1
        script = sim.one("script_*.log").read_text(encoding="utf-8")
        assert 'SCRIPT    (E): Can\'t compile "World" script module!\nExampleMod/' in script
        assert "Player connect enabled" not in sim.rpt_text()


async def test_rcon_refuse_never_answers(tmp_path: Path) -> None:
    async with running(tmp_path, {"DAYZSIM_RCON_REFUSE": "1"}) as sim:
        await sim.wait_ready()
        client = await sim.client()
        with pytest.raises(TimeoutError), anyio.fail_after(0.5):
            await client.login()
        assert sim.proc.poll() is None


async def test_garbage_in_does_not_crash(sim: Sim) -> None:
    await sim.wait_ready()
    client = await sim.client()
    junk = [
        b"",
        b"B",
        b"BE\x00",
        os.urandom(512),
        bytes.fromhex("42 45 00 00 00 00 ff 00 63 68"),
        packet(0x01, b""),
        packet(0x02, b""),
        packet(0x07, b"\x00"),
        packet(0x00, b"\xff\xfe\x00"),
    ]
    for data in junk:
        await client.send_raw(data)
    await client.login()
    await client.send_raw(packet(0x01, b"\x00\xff\xfe\xc3"))  # invalid UTF-8 command
    await client.send_raw(packet(0x01, b""))  # command without a sequence byte
    client.seq = 1
    assert await client.command("players") != ("", 1)
    assert sim.proc.poll() is None


async def test_garbage_out_still_usable(tmp_path: Path) -> None:
    async with running(tmp_path, {"DAYZSIM_RCON_GARBAGE": "1"}) as sim:
        client = await logged_in(sim)
        text, _ = await client.command("players")
        assert text.startswith("Players on server:")
        assert client.bad_packets >= 2


async def test_log_flood(tmp_path: Path) -> None:
    async with running(tmp_path, {"DAYZSIM_LOG_FLOOD": "5000"}) as sim:
        await sim.wait_for("*.RPT", "[Flood] line 2000 ")


async def test_capitalised_be_config_name(tmp_path: Path) -> None:
    async with running(tmp_path, be_name="BEServer_x64.cfg") as sim:
        await logged_in(sim)


async def test_silent_client_is_dropped(tmp_path: Path) -> None:
    env = {"DAYZSIM_RCON_TIMEOUT": "0.3", "DAYZSIM_PLAYERS": "0"}
    async with running(tmp_path, env) as sim:
        client = await logged_in(sim)
        await client.wait_message("logged in")
        beat = sim.profile / "citadel" / "heartbeat.json"
        with anyio.fail_after(5):
            while json.loads(beat.read_bytes())["rconClients"] != 1:
                await anyio.sleep(0.02)
            while json.loads(beat.read_bytes())["rconClients"] != 0:
                await anyio.sleep(0.02)
        with pytest.raises(TimeoutError):
            await client.command("players", limit=0.3)
