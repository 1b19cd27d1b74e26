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
