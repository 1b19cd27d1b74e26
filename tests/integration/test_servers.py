"""Supervising real simulator processes through a live Citadel: lifecycle, crashes, restarts,
the stop ladder, logs and RCON - observed the way a dashboard sees them, over Socket.IO.

Ordering comes from events. The few waits on the real clock assert that something does *not*
happen (a cancelled restart) and are bounded and commented.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from citadel.config import ServerConfig
from tests.integration._clients import Client
from tests.integration._sim import alive, kill_leftovers, sim_config
from tests.integration.conftest import Live, run_live

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
BOUND = 30


@contextmanager
def citadel_with(tmp_path: Path, *servers: ServerConfig) -> Iterator[Live]:
    try:
        with run_live(tmp_path / "data", servers=list(servers)) as live:
            yield live
    finally:
        # A failing test must not leave simulators behind (each runs in its own session).
        assert kill_leftovers(tmp_path) == [], "simulators were left running"


async def connect(live: Live) -> Client:
    client = Client()
    await client.connect(live.url, live.login())
    return client


def post(live: Live, path: str, body: dict[str, Any] | None = None) -> Any:
    with live.client(live.token_for("admin")) as http:
        return http.post(path, json=body or {})


def status(live: Live, server_id: str) -> dict[str, Any]:
    with live.client(live.token_for("admin")) as http:
        response = http.get(f"/api/servers/{server_id}/status")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def statuses(client: Client, server_id: str) -> list[tuple[int, str]]:
    return [(d["seq"], d["status"]) for d in client.of("serverStatus", server_id)]


async def test_start_running_on_readiness_then_graceful_stop(tmp_path: Path) -> None:
    with citadel_with(tmp_path, sim_config(tmp_path, "alpha")) as live:
        client = await connect(live)
        try:
            with anyio.fail_after(BOUND):
                await client.wait_for("serverStatus", "alpha", lambda d: d["status"] == "stopped")
                accepted = post(live, "/api/servers/alpha/start")
                assert accepted.status_code == 202, accepted.text
                assert post(live, "/api/servers/alpha/start").status_code == 409
                await client.wait_for("serverStatus", "alpha", lambda d: d["status"] == "running")
                # Players arrive once RCON is connected: the stop can then be graceful.
                await client.wait_for("players", "alpha", lambda d: len(d["players"]) > 0)
                assert post(live, "/api/servers/alpha/stop").status_code == 202
                stopped = await client.wait_for(
                    "serverStatus", "alpha", lambda d: d["status"] == "stopped" and d["seq"] > 0
                )
            assert "RCON #shutdown" in stopped["reason"]
            assert stopped["exitCode"] == 0
            assert statuses(client, "alpha") == [
                (0, "stopped"),
                (1, "starting"),
                (2, "running"),
                (3, "stopping"),
                (4, "stopped"),
            ]
            assert post(live, "/api/servers/alpha/stop").status_code == 409
        finally:
            await client.close()


async def test_sigkill_is_a_crash_then_backoff_restart(tmp_path: Path) -> None:
    with citadel_with(tmp_path, sim_config(tmp_path, "alpha")) as live:
        client = await connect(live)
        try:
            with anyio.fail_after(BOUND):
                post(live, "/api/servers/alpha/start")
                await client.wait_for("serverStatus", "alpha", lambda d: d["status"] == "running")
                pid = status(live, "alpha")["pid"]
                os.kill(pid, signal.SIGKILL)
                crashed = await client.wait_for(
                    "serverStatus", "alpha", lambda d: d["status"] == "crashed"
                )
                assert crashed["signal"] == "SIGKILL"
                assert crashed["restartIn"] > 0
                again = await client.wait_for(
                    "serverStatus",
                    "alpha",
                    lambda d: d["status"] == "running" and d["seq"] > crashed["seq"],
                )

                # The new run is ready by its own RPT, not by the dead run's (whose name lies
                # within the new run's 5 s slack after this short backoff).
                def rpt_ready(d: dict[str, Any]) -> bool:
                    return str(d["file"]).endswith(".RPT") and "Player connect" in d["message"]

                first = next(d for d in client.of("log", "alpha") if rpt_ready(d))
                await client.wait_for(
                    "log", "alpha", lambda d: rpt_ready(d) and d["file"] != first["file"]
                )
            assert status(live, "alpha")["pid"] != pid
            assert again["seq"] == crashed["seq"] + 2  # crashed -> starting -> running
            titles = [n["title"] for n in client.of("notification", "alpha")]
            assert any("crashed" in t for t in titles)
        finally:
            await client.close()


async def test_crash_loop_gives_up_with_a_notification(tmp_path: Path) -> None:
    config = sim_config(
        tmp_path,
        "alpha",
        env={"DAYZSIM_CRASH_AFTER": "0.6", "DAYZSIM_CRASH_MODE": "exit:3"},
        max_restarts_per_hour=2,
    )
    with citadel_with(tmp_path, config) as live:
        client = await connect(live)
        try:
            with anyio.fail_after(BOUND):
                post(live, "/api/servers/alpha/start")
                final = await client.wait_for(
                    "serverStatus",
                    "alpha",
                    lambda d: d["status"] == "crashed" and d["restartIn"] is None,
                )
                gave_up = await client.wait_for(
                    "notification", "alpha", lambda n: "given up" in n["title"]
                )
            crashes = [d for d in client.of("serverStatus", "alpha") if d["status"] == "crashed"]
            assert len(crashes) == 3  # two automatic restarts allowed, the third crash gives up
            assert all(c["exitCode"] == 3 for c in crashes)
            assert [c["restartIn"] is not None for c in crashes] == [True, True, False]
            assert final is crashes[-1]
            # An operator's start is always accepted and resets the budget: the same crash
            # loop gets its two automatic restarts again before the next give-up.
            with anyio.fail_after(BOUND):
                assert post(live, "/api/servers/alpha/start").status_code == 202
                again = await client.wait_for(
                    "serverStatus",
                    "alpha",
                    lambda d: d["seq"] > final["seq"] and d["restartIn"] is None and d["exitCode"],
                )
            after = [
                d
                for d in client.of("serverStatus", "alpha")
                if d["status"] == "crashed" and final["seq"] < d["seq"] <= again["seq"]
            ]
            assert [c["restartIn"] is not None for c in after] == [True, True, False]
            with anyio.fail_after(BOUND):
                await client.wait_for(
                    "notification",
                    "alpha",
                    lambda n: "given up" in n["title"] and n["id"] > gave_up["id"],
                )
            seqs = [d["seq"] for d in client.of("serverStatus", "alpha")]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        finally:
            await client.close()


async def test_stop_during_backoff_stays_stopped(tmp_path: Path) -> None:
    config = sim_config(tmp_path, "alpha", restart_backoff_base=0.5, restart_backoff_cap=0.5)
    with citadel_with(tmp_path, config) as live:
        client = await connect(live)
        try:
            with anyio.fail_after(BOUND):
                post(live, "/api/servers/alpha/start")
                await client.wait_for("serverStatus", "alpha", lambda d: d["status"] == "running")
                os.kill(status(live, "alpha")["pid"], signal.SIGKILL)
                await client.wait_for("serverStatus", "alpha", lambda d: d["status"] == "crashed")
                assert post(live, "/api/servers/alpha/stop").status_code == 202
                stopped = await client.wait_for(
                    "serverStatus", "alpha", lambda d: d["status"] == "stopped" and d["seq"] > 0
                )
            assert "cancelled" in stopped["reason"]
            # Asserting an absence: wait past the (jittered) backoff deadline on the real clock.
            await anyio.sleep(1.0)
            assert client.of("serverStatus", "alpha")[-1]["status"] == "stopped"
            assert status(live, "alpha")["restartIn"] is None
        finally:
            await client.close()


@pytest.mark.parametrize("child", ["stubborn", "setsid", "daemon"])
async def test_ignoring_shutdown_and_sigterm_ends_in_sigkill_and_no_descendant_survives(
    tmp_path: Path, child: str
) -> None:
    # The child ignores SIGTERM too, and stays in the group (stubborn), leaves it (setsid), or
    # also loses its parent at once (daemon: double-forked, re-parented to init).
    config = sim_config(
        tmp_path,
        "alpha",
        env={"DAYZSIM_IGNORE_SHUTDOWN": "1", "DAYZSIM_SPAWN_CHILD": child},
        stop_timeout=1.0,
        kill_timeout=1.0,
    )
    with citadel_with(tmp_path, config) as live:
        client = await connect(live)
        try:
            with anyio.fail_after(BOUND):
                post(live, "/api/servers/alpha/start")
                await client.wait_for("players", "alpha", lambda d: len(d["players"]) > 0)
                child_file = Path(config.install_dir) / "profiles" / "citadel" / "child.pid"
                child_pid = int(child_file.read_text())
                assert alive(child_pid)
                post(live, "/api/servers/alpha/stop")
                stopped = await client.wait_for(
                    "serverStatus", "alpha", lambda d: d["status"] == "stopped" and d["seq"] > 0
                )
            assert "SIGKILL" in stopped["reason"]
            assert stopped["signal"] == "SIGKILL"
            if child != "stubborn":  # the group's SIGKILL reached a stubborn one already
                assert "killed 1 leftover process(es)" in stopped["reason"]
            assert not alive(child_pid)
        finally:
            await client.close()


async def test_a_crashed_servers_escaped_daemon_does_not_survive_it(tmp_path: Path) -> None:
    config = sim_config(
        tmp_path, "alpha", env={"DAYZSIM_SPAWN_CHILD": "daemon"}, max_restarts_per_hour=0
    )
    with citadel_with(tmp_path, config) as live:
        client = await connect(live)
        try:
            with anyio.fail_after(BOUND):
                post(live, "/api/servers/alpha/start")
                await client.wait_for("serverStatus", "alpha", lambda d: d["status"] == "running")
                child_file = Path(config.install_dir) / "profiles" / "citadel" / "child.pid"
                child = int(child_file.read_text())
                assert alive(child)
                # The server dies; nothing but its environment links the daemon to it now.
                os.kill(status(live, "alpha")["pid"], signal.SIGKILL)
                await client.wait_for("serverStatus", "alpha", lambda d: d["status"] == "crashed")
                await client.wait_for(
                    "log", "alpha", lambda d: "killed 1 leftover process(es)" in d["message"]
                )
            assert not alive(child)
        finally:
            await client.close()


async def test_a_start_that_is_never_ready_times_out(tmp_path: Path) -> None:
    config = sim_config(
        tmp_path,
        "alpha",
        env={"DAYZSIM_START_DELAY": "60"},
        start_timeout=1.5,
        max_restarts_per_hour=0,
    )
    with citadel_with(tmp_path, config) as live:
        client = await connect(live)
        try:
            with anyio.fail_after(BOUND):
                post(live, "/api/servers/alpha/start")
                crashed = await client.wait_for(
                    "serverStatus", "alpha", lambda d: d["status"] == "crashed"
                )
            assert crashed["reason"] == "not ready within the start timeout (1.5 s)"
            assert crashed["signal"] == "SIGKILL"
            assert [d["status"] for d in client.of("serverStatus", "alpha")] == [
                "stopped",
                "starting",
                "crashed",
            ]
        finally:
            await client.close()


@pytest.mark.parametrize("mode", ["process", "loop"])
async def test_a_hung_server_is_killed_and_reported_crashed(tmp_path: Path, mode: str) -> None:
    # It logs FPS every tick, then freezes: wholly (process) or only its game loop while
    # RCON keeps answering (loop) - log silence is what counts for a server that logs FPS.
    config = sim_config(
        tmp_path,
        "alpha",
        env={"DAYZSIM_STATS_TICKS": "1", "DAYZSIM_HANG_AFTER": "3", "DAYZSIM_HANG_MODE": mode},
        hang_timeout=2.0,
        max_restarts_per_hour=0,
    )
    with citadel_with(tmp_path, config) as live:
        client = await connect(live)
        try:
            with anyio.fail_after(BOUND):
                post(live, "/api/servers/alpha/start")
                await client.wait_for("players", "alpha", lambda d: len(d["players"]) > 0)
                crashed = await client.wait_for(
                    "serverStatus", "alpha", lambda d: d["status"] == "crashed"
                )
            assert crashed["reason"].startswith("hung: no log output for ")
            assert crashed["signal"] == "SIGKILL"
            fps = [d for d in client.of("log", "alpha") if "Average server FPS" in d["message"]]
            assert fps  # it did log periodically before it froze
        finally:
            await client.close()


async def test_without_rcon_the_graceful_step_is_skipped_and_said_so(tmp_path: Path) -> None:
    config = sim_config(tmp_path, "alpha", env={"DAYZSIM_RCON_REFUSE": "1"})
    with citadel_with(tmp_path, config) as live:
        client = await connect(live)
        try:
            with anyio.fail_after(BOUND):
                post(live, "/api/servers/alpha/start")
                await client.wait_for("serverStatus", "alpha", lambda d: d["status"] == "running")
                assert post(live, "/api/servers/alpha/stop").status_code == 202
                stopped = await client.wait_for(
                    "serverStatus", "alpha", lambda d: d["status"] == "stopped" and d["seq"] > 0
                )
            assert stopped["reason"] == (
                "stopped by admin (SIGTERM); RCON #shutdown skipped (RCON is not connected)"
            )
            assert stopped["exitCode"] == 0  # the simulator saves and exits on SIGTERM
        finally:
            await client.close()


async def test_last_lines_of_a_crashed_incarnation_are_delivered(tmp_path: Path) -> None:
    config = sim_config(
        tmp_path,
        "alpha",
        env={"DAYZSIM_CRASH_AFTER": "1.0", "DAYZSIM_CRASH_MODE": "signal:SEGV"},
        max_restarts_per_hour=0,
    )
    with citadel_with(tmp_path, config) as live:
        client = await connect(live)
        try:
            with anyio.fail_after(BOUND):
                post(live, "/api/servers/alpha/start")
                crashed = await client.wait_for(
                    "serverStatus", "alpha", lambda d: d["status"] == "crashed"
                )
                assert crashed["signal"] == "SIGSEGV"
                # The RPT line written just before the crash still reaches the dashboard.
                line = await client.wait_for(
                    "log", "alpha", lambda d: "Crashed" in d["message"] and d["source"] == "rpt"
                )
            assert line["level"] == "error"
            assert line["file"].endswith(".RPT")
        finally:
            await client.close()


async def test_rcon_multipart_players_kick_and_ban(tmp_path: Path) -> None:
    config = sim_config(tmp_path, "alpha", env={"DAYZSIM_PLAYERS": "30"})
    with citadel_with(tmp_path, config) as live:
        client = await connect(live)
        try:
            with anyio.fail_after(BOUND):
                post(live, "/api/servers/alpha/start")
                listed = await client.wait_for(
                    "players",
                    "alpha",
                    lambda d: len(d["players"]) == 30 and all("guid" in p for p in d["players"]),
                )
                names = {p["name"] for p in listed["players"]}
                assert "Big Name [TAG]" in names  # names with spaces and brackets stay whole
                victim = listed["players"][0]
                kicked = post(
                    live, f"/api/servers/alpha/players/{victim['id']}/kick", {"reason": "test"}
                )
                assert kicked.status_code == 202, kicked.text
                await client.wait_for(
                    "players",
                    "alpha",
                    lambda d: victim["id"] not in {p["id"] for p in d["players"]},
                )
                after = client.of("players", "alpha")[-1]["players"]
                banned = post(
                    live,
                    f"/api/servers/alpha/players/{after[0]['id']}/ban",
                    {"reason": "cheating", "minutes": 60},
                )
                assert banned.status_code == 202, banned.text
                assert banned.json()["guid"] == after[0]["guid"]
                output = post(live, "/api/servers/alpha/rcon", {"command": "bans"})
                assert output.status_code == 200
                assert after[0]["guid"] in output.json()["result"]
                bad = post(live, "/api/servers/alpha/rcon", {"command": "say -1 a\nb"})
                assert bad.status_code == 422
                said = post(live, "/api/servers/alpha/message", {"message": "a\nb"})
                assert said.status_code == 422
                assert said.json()["error"].startswith("message: ")
                blank = post(live, "/api/servers/alpha/rcon", {"command": "   "})
                assert blank.status_code == 422, blank.text
                shutdown = post(live, "/api/servers/alpha/rcon", {"command": "#shutdown"})
                assert shutdown.status_code == 409
                assert "/api/servers/alpha/stop" in shutdown.json()["error"]
                # The rcon actor is still the same, connected one.
                assert post(live, "/api/servers/alpha/rcon", {"command": "bans"}).status_code == 200
                unknown = post(live, "/api/servers/alpha/players/nobody/kick", {"reason": ""})
                assert unknown.status_code == 404
        finally:
            await client.close()


async def test_twenty_servers_stop_concurrently(tmp_path: Path) -> None:
    configs = [
        sim_config(
            tmp_path,
            f"s{n:02}",
            env={"DAYZSIM_IGNORE_SHUTDOWN": "1", "DAYZSIM_PLAYERS": "0"},
            stop_timeout=1.0,
            kill_timeout=1.0,
            auto_start=True,
        )
        for n in range(20)
    ]
    with citadel_with(tmp_path, *configs) as live:
        client = await connect(live)
        try:
            with anyio.fail_after(BOUND * 2):
                for config in configs:
                    await client.wait_for(
                        "serverStatus", config.id, lambda d: d["status"] == "running"
                    )
                for config in configs:
                    assert post(live, f"/api/servers/{config.id}/stop").status_code == 202
                for config in configs:
                    await client.wait_for(
                        "serverStatus",
                        config.id,
                        lambda d: d["status"] == "stopped" and d["seq"] > 0,
                    )
            # Every ladder ran at the same time: all 20 were stopping before the first stopped.
            transitions = [
                (d["serverId"], d["status"])
                for name, d in client.events
                if name == "serverStatus"
                and d["status"] in ("stopping", "stopped")
                and d["seq"] > 0
            ]
            first_stopped = next(i for i, (_, s) in enumerate(transitions) if s == "stopped")
            assert {sid for sid, s in transitions[:first_stopped]} == {c.id for c in configs}
        finally:
            await client.close()
