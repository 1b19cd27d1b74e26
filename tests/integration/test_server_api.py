"""Servers through the REST API: create, change, delete (refused while running), logs and
metrics queries, and what a scoped viewer may see of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

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
