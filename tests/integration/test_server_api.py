"""Servers through the REST API: create, change, delete (refused while running), logs and
metrics queries, and what a scoped viewer may see of them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from citadel.servers.messages import RconResult
from citadel.store import Ban
from citadel.web.routes_servers import ban_outcome
from tests.integration._clients import Client
from tests.integration._sim import kill_leftovers, sim_config
from tests.integration.conftest import run_live

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def as_body(config: Any) -> dict[str, Any]:
    body: dict[str, Any] = msgspec.to_builtins(config)
    return body


async def test_create_change_delete_and_query(tmp_path: Path) -> None:
    config = sim_config(tmp_path, "api-made")
    try:
        with run_live(tmp_path / "data", servers=[]) as live:
            admin = live.login()
            client = Client()
            await client.connect(live.url, admin)
            try:
                with live.client(admin) as http:
                    created = http.post("/api/servers", json=as_body(config))
                    assert created.status_code == 201, created.text
                    assert created.json()["source"] == "api"
                    again = http.post("/api/servers", json=as_body(config))
                    assert again.status_code == 409
                    bad = http.post("/api/servers", json={**as_body(config), "id": "Bad Id!"})
                    assert bad.status_code == 422
                    assert "id" in bad.json()["error"]
                    unknown = http.post("/api/servers", json={**as_body(config), "colour": 1})
                    assert unknown.status_code == 422
                    assert http.post("/api/servers/api-made/start").status_code == 202
                with anyio.fail_after(30):
                    await client.wait_for(
                        "serverStatus", "api-made", lambda d: d["status"] == "running"
                    )
                    await client.wait_for("metrics", "api-made", lambda d: d["ramBytes"] > 0)
                    await client.wait_for("log", "api-made", lambda d: d["source"] == "rpt")
                with live.client(admin) as http:
                    running = http.patch("/api/servers/api-made", json={"name": "Renamed"})
                    assert running.status_code == 409  # refused while it runs
                    assert http.delete("/api/servers/api-made").status_code == 409
                    logs = http.get("/api/servers/api-made/logs", params={"limit": 5})
                    assert logs.status_code == 200
                    assert 0 < len(logs.json()) <= 5
                    ready = http.get(
                        "/api/servers/api-made/logs", params={"q": "PLAYER CONNECT ENABLED"}
                    ).json()
                    messages = [e["message"] for e in ready]
                    assert "Player connect enabled" in messages  # the RPT line (and console)
                    assert all("player connect enabled" in m.casefold() for m in messages)
                    system = http.get(
                        "/api/servers/api-made/logs", params={"source": "system"}
                    ).json()
                    assert any("pid" in e["message"] for e in system)
                    bad_level = http.get("/api/servers/api-made/logs", params={"level": "loud"})
                    assert bad_level.status_code in (400, 422)
                    history = http.get("/api/servers/api-made/metrics/history").json()
                    assert history
                    assert history[-1]["serverId"] == "api-made"
                    assert http.post("/api/servers/api-made/stop").status_code == 202
                with anyio.fail_after(30):
                    await client.wait_for(
                        "serverStatus",
                        "api-made",
                        lambda d: d["status"] == "stopped" and d["seq"] > 0,
                    )
                with live.client(admin) as http:
                    renamed = http.patch("/api/servers/api-made", json={"name": "Renamed"})
                    assert renamed.status_code == 200, renamed.text
                    assert renamed.json()["name"] == "Renamed"
                    assert live.citadel.store.get_server("api-made") is not None
                    assert http.delete("/api/servers/api-made").status_code == 204
                    assert http.get("/api/servers/api-made").status_code == 404
                    assert live.citadel.store.get_server("api-made") is None
            finally:
                await client.close()
    finally:
        assert kill_leftovers(tmp_path) == []


async def test_config_servers_are_not_changed_through_the_api(tmp_path: Path) -> None:
    with run_live(tmp_path / "data") as live, live.client(live.login()) as http:
        refused = http.patch("/api/servers/alpha", json={"name": "x"})
        assert refused.status_code == 409
        assert "demo" in refused.json()["error"] or "config" in refused.json()["error"]
        viewer_password = live.add_user("vic", "viewer")
        with live.client(live.login("vic", viewer_password)) as viewer:
            assert viewer.post("/api/servers/alpha/start").status_code == 403
            assert viewer.delete("/api/servers/alpha").status_code == 403
            players = viewer.get("/api/servers/alpha/players")
            assert players.status_code == 200
            assert (
                viewer.post("/api/servers/alpha/rcon", json={"command": "players"}).status_code
                == 403
            )


# --- RCON through REST: field errors, failures, kick and ban -----------------------------------


def test_a_ban_outcome_says_whether_the_kick_after_it_worked() -> None:
    ban = Ban(
        id=7,
        server_id="alpha",
        guid="0123456789abcdef0123456789abcdef",
        ip=None,
        reason="cheating",
        minutes=None,
        expires_at=None,
        created_by="admin",
        created_at=0.0,
    )
    kicked = ban_outcome(ban, RconResult(ok=True))
    assert (kicked.banned, kicked.kicked, kicked.kick_error) == (True, True, None)
    failed = ban_outcome(ban, RconResult(ok=False, error="no reply", failure="no_reply"))
    assert (failed.banned, failed.kicked, failed.kick_error) == (True, False, "no reply")
    body = msgspec.json.decode(msgspec.json.encode(failed))
    assert body["kickError"] == "no reply"
    assert body["guid"] == ban.guid


async def test_rcon_fields_errors_kick_and_ban(tmp_path: Path) -> None:
    config = sim_config(tmp_path, "alpha", env={"DAYZSIM_PLAYERS": "4", "DAYZSIM_CHURN": "0"})
    try:
        with run_live(tmp_path / "data", servers=[config]) as live:
            client = Client()
            await client.connect(live.url, live.token_for("admin"))
            try:
                with live.client(live.token_for("admin")) as http:
                    assert http.post("/api/servers/alpha/start").status_code == 202
                    with anyio.fail_after(30):
                        listed = await client.wait_for(
                            "players",
                            "alpha",
                            lambda d: (
                                len(d["players"]) == 4 and all("guid" in p for p in d["players"])
                            ),
                        )
                    players = listed["players"]
                    victim, banned = players[0], players[1]

                    # A control character is refused by the field that carries it.
                    for path, field, body in (
                        ("/message", "message", {"message": "hi \x1b[31m there"}),
                        (f"/players/{victim['id']}/kick", "reason", {"reason": "bye\x1b"}),
                        (f"/players/{victim['id']}/ban", "reason", {"reason": "bye\x1b"}),
                        ("/rcon", "command", {"command": "say -1 \x1b"}),
                    ):
                        refused = http.post(f"/api/servers/alpha{path}", json=body)
                        assert refused.status_code == 422, refused.text
                        assert refused.json() == {
                            "error": f"{field}: must not contain control characters or line "
                            "breaks (found U+001B)",
                            "code": "invalid_field",
                        }
                    newline = http.post("/api/servers/alpha/message", json={"message": "a\nb"})
                    assert newline.json()["error"].endswith("(found U+000A)")
                    assert live.citadel.store.list_bans("alpha") == []  # nothing was banned

                    # Kick and ban by id, resolved afresh by the rcon actor.
                    kicked = http.post(
                        f"/api/servers/alpha/players/{victim['id']}/kick", json={"reason": "bye"}
                    )
                    assert kicked.status_code == 202, kicked.text
                    gone = http.post(
                        f"/api/servers/alpha/players/{victim['id']}/kick", json={"reason": "x"}
                    )
                    assert gone.status_code == 404
                    ban = http.post(
                        f"/api/servers/alpha/players/{banned['id']}/ban",
                        json={"reason": "cheating", "minutes": 60},
                    )
                    assert ban.status_code == 202, ban.text
                    outcome = ban.json()
                    assert (outcome["banned"], outcome["kicked"]) == (True, True)
                    assert outcome["guid"] == banned["guid"]
                    assert "kickError" not in outcome or outcome["kickError"] is None
                    (stored,) = live.citadel.store.list_bans("alpha")
                    assert stored.guid == banned["guid"]
                    with anyio.fail_after(30):
                        await client.wait_for(
                            "players",
                            "alpha",
                            lambda d: (
                                not {victim["id"], banned["id"]} & {p["id"] for p in d["players"]}
                            ),
                        )

                    assert http.post("/api/servers/alpha/stop").status_code == 202
                    with anyio.fail_after(30):
                        await client.wait_for(
                            "serverStatus",
                            "alpha",
                            lambda d: d["status"] == "stopped" and d["seq"] > 0,
                        )
                    stopped = http.post("/api/servers/alpha/message", json={"message": "hi"})
                    assert stopped.status_code == 409, stopped.text
                    assert "not running" in stopped.json()["error"]
            finally:
                await client.close()
    finally:
        assert kill_leftovers(tmp_path) == []


async def test_rcon_that_cannot_connect_answers_503_at_once(tmp_path: Path) -> None:
    config = sim_config(tmp_path, "alpha", env={"DAYZSIM_RCON_REFUSE": "1"})
    try:
        with run_live(tmp_path / "data", servers=[config]) as live:
            client = Client()
            await client.connect(live.url, live.token_for("admin"))
            try:
                with live.client(live.token_for("admin")) as http:
                    assert http.post("/api/servers/alpha/start").status_code == 202
                    with anyio.fail_after(30):
                        await client.wait_for(
                            "serverStatus", "alpha", lambda d: d["status"] == "running"
                        )
                    began = time.monotonic()
                    said = http.post("/api/servers/alpha/message", json={"message": "hello"})
                    assert time.monotonic() - began < 5  # not the 10 s command timeout
                    assert said.status_code == 503, said.text
                    assert said.headers["Retry-After"] == "5"
                    assert said.json()["code"] == "unavailable"
                    assert "reconnecting" in said.json()["error"]
                    assert http.post("/api/servers/alpha/stop").status_code == 202
                    with anyio.fail_after(30):
                        await client.wait_for(
                            "serverStatus",
                            "alpha",
                            lambda d: d["status"] == "stopped" and d["seq"] > 0,
                        )
            finally:
                await client.close()
    finally:
        assert kill_leftovers(tmp_path) == []


async def test_log_query_parameters_are_validated(tmp_path: Path) -> None:
    with run_live(tmp_path / "data") as live, live.client(live.login()) as http:

        def logs(**params: str) -> Any:
            return http.get("/api/servers/alpha/logs", params=params)

        assert logs().status_code == 200
        assert logs(level="warn", source="system", q="x", limit="5000").status_code == 200
        for params, error in (
            ({"level": "loud"}, "level: must be one of debug, info, warn, error (got 'loud')"),
            ({"level": ""}, "level: must be one of debug, info, warn, error (got '')"),
            ({"source": "x"}, "source: must be one of rpt, rcon, system (got 'x')"),
            ({"limit": "abc"}, "limit: must be a whole number from 1 to 5000 (got 'abc')"),
            ({"limit": "0"}, "limit: must be a whole number from 1 to 5000 (got '0')"),
            ({"limit": "5001"}, "limit: must be a whole number from 1 to 5000 (got '5001')"),
            ({"limit": "-1"}, "limit: must be a whole number from 1 to 5000 (got '-1')"),
            ({"q": "x" * 201}, "q: at most 200 characters (got 201)"),
        ):
            response = logs(**params)
            assert response.status_code == 422, (params, response.text)
            assert response.json() == {"error": error, "code": "invalid_field"}


# --- a change of configuration keeps the server's lifecycle -----------------------------------


def statuses(client: Client, server_id: str) -> list[tuple[int, str]]:
    return [(d["seq"], d["status"]) for d in client.of("serverStatus", server_id)]


def test_a_start_in_a_missing_install_dir_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    """A mistyped ``install_dir`` is a failed start, not a new empty tree and a crash loop."""
    nowhere = tmp_path / "nowhere" / "dayz"
    body = {**as_body(sim_config(tmp_path, "typo")), "install_dir": str(nowhere)}
    with run_live(tmp_path / "data", servers=[]) as live, live.client(live.login()) as http:
        assert http.post("/api/servers", json=body).status_code == 201
        refused = http.post("/api/servers/typo/start")
        assert refused.status_code == 409, refused.text
        assert refused.json() == {
            "error": f"could not start: [Errno 2] install_dir is not a directory: '{nowhere}'",
            "code": "start_failed",
        }
    assert not (tmp_path / "nowhere").exists()


async def test_a_start_that_cannot_spawn_is_refused_and_a_change_keeps_seq(tmp_path: Path) -> None:
    """The spawn failure answers 409 with the OS error; a PATCH of the crashed server sends no
    ``serverStatus`` (no seq back to 0, the crash reason kept); the next start is seq + 1."""
    config = sim_config(tmp_path, "api-made")
    missing = str(tmp_path / "no-such-binary")
    try:
        with run_live(tmp_path / "data", servers=[]) as live:
            admin = live.token_for("admin")
            client = Client()
            await client.connect(live.url, admin)
            try:
                with live.client(admin) as http:
                    body = {**as_body(config), "executable": missing}
                    assert http.post("/api/servers", json=body).status_code == 201
                    refused = http.post("/api/servers/api-made/start")
                    assert refused.status_code == 409, refused.text
                    assert refused.json()["code"] == "start_failed"
                    assert refused.json()["error"].startswith("could not start: ")
                    assert missing in refused.json()["error"]
                    console_dir = Path(config.install_dir) / config.profile_dir / "citadel"
                    assert list(console_dir.glob("console_*")) == []  # no run, no run's log
                    crashed = http.get("/api/servers/api-made/status").json()
                    assert (crashed["status"], crashed["reason"]) == (
                        "crashed",
                        refused.json()["error"],
                    )
                with anyio.fail_after(10):
                    await client.wait_for(
                        "serverStatus", "api-made", lambda d: d["seq"] == crashed["seq"]
                    )
                with live.client(admin) as http:
                    assert http.patch("/api/servers/api-made", json={}).status_code == 200
                    fixed = http.patch(
                        "/api/servers/api-made", json={"executable": config.executable}
                    )
                    assert fixed.status_code == 200, fixed.text
                    assert fixed.json()["status"] == "crashed"
                    after = http.get("/api/servers/api-made/status").json()
                    assert after == crashed  # same status, seq and reason
                # A dashboard connecting now sees the crash as it was.
                late = Client()
                await late.connect(live.url, admin)
                try:
                    with anyio.fail_after(10):
                        snapshot = await late.wait_for("serverStatus", "api-made", bool)
                    assert (snapshot["seq"], snapshot["status"], snapshot["reason"]) == (
                        crashed["seq"],
                        "crashed",
                        crashed["reason"],
                    )
                finally:
                    await late.close()
                with live.client(admin) as http:
                    assert http.post("/api/servers/api-made/start", json={}).status_code == 202
                with anyio.fail_after(30):
                    await client.wait_for(
                        "serverStatus", "api-made", lambda d: d["status"] == "running"
                    )
                # Events of one server arrive in order: had the PATCH published anything, it
                # would come before the start's transitions.
                seqs = [seq for seq, _ in statuses(client, "api-made")]
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), statuses(
                    client, "api-made"
                )
                seen = statuses(client, "api-made")
                at = seen.index((crashed["seq"], "crashed"))
                assert seen[at : at + 3] == [
                    (crashed["seq"], "crashed"),
                    (crashed["seq"] + 1, "starting"),
                    (crashed["seq"] + 2, "running"),
                ]
                with live.client(admin) as http:
                    assert http.post("/api/servers/api-made/stop").status_code == 202
                with anyio.fail_after(30):
                    await client.wait_for(
                        "serverStatus", "api-made", lambda d: d["status"] == "stopped"
                    )
            finally:
                await client.close()
    finally:
        assert kill_leftovers(tmp_path) == []


async def test_a_change_cancels_a_pending_restart_as_a_stop(tmp_path: Path) -> None:
    config = sim_config(
        tmp_path,
        "api-made",
        env={"DAYZSIM_CRASH_AFTER": "0.5"},
        restart_backoff_base=600.0,
        restart_backoff_cap=600.0,
    )
    try:
        with run_live(tmp_path / "data", servers=[]) as live:
            admin = live.token_for("admin")
            client = Client()
            await client.connect(live.url, admin)
            try:
                with live.client(admin) as http:
                    assert http.post("/api/servers", json=as_body(config)).status_code == 201
                    assert http.post("/api/servers/api-made/start").status_code == 202
                with anyio.fail_after(30):
                    crash = await client.wait_for(
                        "serverStatus", "api-made", lambda d: d["status"] == "crashed"
                    )
                assert crash["restartIn"] is not None
                with live.client(admin) as http:
                    changed = http.patch("/api/servers/api-made", json={"name": "Renamed"})
                    assert changed.status_code == 200, changed.text
                    assert changed.json()["status"] == "stopped"
                    status = http.get("/api/servers/api-made/status").json()
                    assert (status["seq"], status["restartIn"]) == (crash["seq"] + 1, None)
                with anyio.fail_after(10):
                    stopped = await client.wait_for(
                        "serverStatus", "api-made", lambda d: d["seq"] == crash["seq"] + 1
                    )
                assert stopped["status"] == "stopped"
                assert "admin (configuration change)" in stopped["reason"]
                assert "pending restart was cancelled" in stopped["reason"]
            finally:
                await client.close()
    finally:
        assert kill_leftovers(tmp_path) == []


# --- a server's configuration is checked as the config file is -------------------------------


def test_server_bodies_that_could_never_start_are_refused(tmp_path: Path) -> None:
    base = {"id": "made", "name": "Made", "install_dir": "/srv/made", "executable": "DayZServer"}
    with run_live(tmp_path / "data", servers=[]) as live, live.client(live.login()) as http:
        for change, error in (
            ({"env": {"A=B": "c"}}, "env[\"A=B\"]: a variable name must not contain '='"),
            ({"env": {"": "c"}}, 'env[""]: a variable name must not be empty'),
            ({"args": ["a\x00b"]}, "args[0]: must not contain NUL (U+0000)"),
            ({"install_dir": "/tmp\x00x"}, "install_dir: must not contain NUL (U+0000)"),
            (
                {"name": "x\x00y"},
                "name: must not contain control characters or line breaks (found U+0000)",
            ),
            (
                {"profile_dir": "../../etc"},
                "profile_dir: must not contain '..' (got \"../../etc\")",
            ),
            ({"colour": 1}, "colour: unknown field"),
            ({"rcon": {"port": 2306, "password": "p", "x": 1}}, "rcon.x: unknown field"),
            ({"rcon": {"port": "2306", "password": "p"}}, "rcon.port: expected int, got str"),
        ):
            refused = http.post("/api/servers", json={**base, **change})
            assert refused.status_code == 422, (change, refused.text)
            assert refused.json() == {"error": error, "code": "invalid_field"}
        relative = http.post("/api/servers", json={**base, "install_dir": "relative/dir"})
        assert relative.status_code == 422, relative.text
        assert relative.json()["error"].startswith("install_dir: must be an absolute path")
        huge = http.post(
            "/api/servers",
            content=msgspec.json.encode(base)[:-1] + b',"stop_timeout":1e400}',
            headers={"content-type": "application/json"},
        )
        assert huge.status_code == 422, huge.text
        assert huge.json()["error"] == "stop_timeout: expected float <= 2592000.0"
        assert http.get("/api/servers").json() == []  # nothing was added

        # UDP ports or the profile directory of another server: a conflict (409) naming the key.
        first = {**base, "args": ["-port=2302"], "rcon": {"port": 2306, "password": "p"}}
        assert http.post("/api/servers", json=first).status_code == 201
        second = {
            **base,
            "id": "other",
            "args": ["-config=x", "-port=2302"],
            "profile_dir": "profiles_2",  # one install, two servers: each its own profile
        }
        conflicts: list[tuple[dict[str, Any], str]] = [
            ({}, "args[1]: UDP port 2302 is already the game port of server 'made'"),
            (
                {"args": ["-port=2402"], "rcon": {"port": 2306, "password": "q"}},
                "rcon.port: UDP port 2306 is already the RCON port of server 'made'",
            ),
            (
                {"args": ["-port=2402"], "profile_dir": "/srv/made/profiles/"},
                'profile_dir: the profile directory "/srv/made/profiles" is already that of '
                "server 'made'",
            ),
        ]
        for change, error in conflicts:
            taken = http.post("/api/servers", json={**second, **change})
            assert taken.status_code == 409, taken.text
            assert taken.json() == {"error": error, "code": "conflict"}
        other = {**second, "args": ["-port=2402"], "rcon": {"port": 2406, "password": "q"}}
        assert http.post("/api/servers", json=other).status_code == 201

        # PATCH: the same checks, on the merged configuration.
        for change, status, error in (
            ({"env": {"A=B": "c"}}, 422, "env[\"A=B\"]: a variable name must not contain '='"),
            ({"install_dir": "relative"}, 422, "install_dir: must be an absolute path"),
            ({"extra": 1}, 422, "extra: unknown field"),
            ({"rcon": {"port": 2306, "password": "q"}}, 409, "rcon.port: UDP port 2306 is"),
        ):
            patched = http.patch("/api/servers/other", json=change)
            assert patched.status_code == status, (change, patched.text)
            assert patched.json()["error"].startswith(error), patched.text
        assert live.citadel.store.get_server("other").config.rcon.port == 2406  # type: ignore[union-attr]
