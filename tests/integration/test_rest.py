"""The REST API over real HTTP: auth, errors (each status with its JSON body), users, audit."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import anyio
import httpx
import jwt
import pytest

from citadel.store.actor import run_in_store
from citadel.web.audit import flush_tally
from tests.integration.conftest import ADMIN_PASSWORD, Live, poll


def expired_token(live: Live, username: str = "admin") -> str:
    """A correctly signed token of ``username`` that expired a minute ago."""
    now = time.time()
    claims = {"sub": username, "role": "x", "iat": now - 120, "exp": now - 60, "jti": "gone"}
    return jwt.encode(claims, live.secret, algorithm="HS256")


def assert_error(response, status: int, code: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "code"}
    assert body["code"] == code
    assert body["error"]
    return body  # type: ignore[no-any-return]


def test_login_me_logout(live: Live) -> None:
    token = live.login()
    with live.client(token) as client:
        me = client.get("/api/auth/me")
        assert me.status_code == 200
        assert me.json()["user"]["username"] == "admin"
        assert "*" in me.json()["permissions"]
        assert client.post("/api/auth/logout").status_code == 204
        assert_error(client.get("/api/auth/me"), 401, "unauthorized")
    # Only that token was revoked: a new login works.
    with live.client(live.login()) as client:
        assert client.get("/api/auth/me").status_code == 200


def test_wrong_password_is_401_and_throttled(live: Live) -> None:
    with live.client() as client:
        for _ in range(5):
            response = client.post(
                "/api/auth/login", json={"username": "admin", "password": "wrong"}
            )
            assert_error(response, 401, "invalid_credentials")
        throttled = client.post(
            "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert_error(throttled, 429, "throttled")
        assert int(throttled.headers["retry-after"]) > 0


@pytest.mark.anyio
async def test_concurrent_wrong_logins_cannot_outrun_the_throttle(live: Live) -> None:
    """60 guesses sent at once: at most 5 are judged (401), the rest refused at once (429)."""
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=60, max_keepalive_connections=60)
    async with httpx.AsyncClient(base_url=live.url, timeout=30, limits=limits) as client:

        async def guess() -> None:
            response = await client.post(
                "/api/auth/login", json={"username": "admin", "password": "wrong"}
            )
            statuses.append(response.status_code)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for _ in range(60):
                    group.start_soon(guess)
        assert sorted(set(statuses)) == [401, 429]
        assert statuses.count(401) <= 5
        # The lock-out holds against the right password too.
        right = await client.post(
            "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
    body = assert_error(right, 429, "throttled")
    assert body["error"].startswith("too many login attempts")


def test_unknown_user_gets_the_same_answer(live: Live) -> None:
    with live.client() as client:
        body = assert_error(
            client.post("/api/auth/login", json={"username": "nobody", "password": "x"}),
            401,
            "invalid_credentials",
        )
    assert body["error"] == "wrong username or password"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Bearer garbage",
        "Basic YWRtaW46eA==",
        "Bearer " + jwt.encode({"sub": "admin"}, key="", algorithm="none"),
        "Bearer "
        + jwt.encode(
            {
                "sub": "admin",
                "role": "admin",
                "iat": time.time(),
                "exp": time.time() + 60,
                "jti": "x",
            },
            "a-different-key-that-is-long-enough-0123456789",
            algorithm="HS256",
        ),
    ],
)
def test_bad_tokens_are_401(live: Live, header: str | None) -> None:
    with live.client() as client:
        headers = {"Authorization": header} if header else {}
        assert_error(client.get("/api/servers", headers=headers), 401, "unauthorized")


def test_expired_token_is_401(live: Live) -> None:
    token = expired_token(live)
    with live.client(token) as client:
        body = assert_error(client.get("/api/servers"), 401, "unauthorized")
    assert "expired" in body["error"]


def test_body_errors(live: Live) -> None:
    with live.client() as client:
        malformed = client.post(
            "/api/auth/login", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert_error(malformed, 400, "bad_request")
        unknown = client.post(
            "/api/auth/login", json={"username": "a", "password": "b", "extra": 1}
        )
        assert assert_error(unknown, 422, "invalid_field")["error"] == "extra: unknown field"
        wrong_type = client.post("/api/auth/login", json={"username": "a", "password": 5})
        assert assert_error(wrong_type, 422, "invalid_field")["error"] == (
            "password: expected str, got int"
        )
        huge = client.post(
            "/api/auth/login",
            content=b'{"username":"a","password":"' + b"x" * 200_000 + b'"}',
            headers={"content-type": "application/json"},
        )
        assert_error(huge, 413, "too_large")
        invalid_utf8 = client.post(
            "/api/auth/login", content=b"\xff\xfe{", headers={"content-type": "application/json"}
        )
        assert_error(invalid_utf8, 400, "bad_request")
        json_type = {"content-type": "application/json"}
        deep = client.post(
            "/api/auth/login", content=b"[" * 10_000 + b"]" * 10_000, headers=json_type
        )
        assert "nested too deeply" in assert_error(deep, 400, "bad_request")["error"]
        cut = client.post("/api/auth/login", content=b'{"username": "a"', headers=json_type)
        assert "not valid JSON" in assert_error(cut, 400, "bad_request")["error"]
        lone = client.post(
            "/api/auth/login",
            content=b'{"password": "x", "username": "\\ud800"}',
            headers=json_type,
        )
        assert "unpaired \\uD800-\\uDFFF escape" in assert_error(lone, 400, "bad_request")["error"]
        empty = client.post("/api/auth/login", content=b"", headers=json_type)
        assert "needs a JSON body" in assert_error(empty, 400, "bad_request")["error"]
        null = client.post("/api/auth/login", content=b"null", headers=json_type)
        assert assert_error(null, 422, "invalid_field")["error"] == "expected object, got null"


def test_every_body_names_an_unknown_field_the_same_way(live: Live) -> None:
    """One wording for every body: ``<key path>: unknown field`` (login, RCON, servers...)."""
    with live.client(live.login()) as client:
        for path, body in (
            ("/api/auth/login", {"username": "a", "password": "b"}),
            ("/api/servers/alpha/message", {"message": "hi"}),
            ("/api/servers/alpha/players/1/kick", {"reason": "bye"}),
            ("/api/servers/alpha/rcon", {"command": "players"}),
            ("/api/users", {"username": "u", "password": "long-enough-1", "role": "viewer"}),
            ("/api/servers", {"id": "x", "name": "X", "install_dir": "/x", "executable": "e"}),
        ):
            refused = client.post(path, json={**body, "extra": 1})
            assert assert_error(refused, 422, "invalid_field")["error"] == "extra: unknown field"
            made_up = client.post(path, json={**body, "k" * 60_000: 1})
            error = assert_error(made_up, 422, "invalid_field")["error"]
            assert error == '"' + "k" * 40 + '...": unknown field'
        nested = client.post(
            "/api/servers",
            json={
                "id": "x",
                "name": "X",
                "install_dir": "/x",
                "executable": "e",
                "rcon": {"port": 2306, "password": "p", "extra": 1},
            },
        )
        assert assert_error(nested, 422, "invalid_field")["error"] == "rcon.extra: unknown field"


def test_lifecycle_commands_take_no_body(live: Live) -> None:
    """None or ``{}`` reaches the command; anything else is refused before it is carried out."""
    json_type = {"content-type": "application/json"}
    with live.client(live.login()) as client:
        for action in ("start", "stop", "restart"):
            url = f"/api/servers/alpha/{action}"
            force = client.post(url, json={"force": True})
            assert assert_error(force, 422, "invalid_field")["error"] == "force: unknown field"
            garbage = client.post(url, content=b"garbage", headers=json_type)
            assert "not valid JSON" in assert_error(garbage, 400, "bad_request")["error"]
            array = client.post(url, content=b"[]", headers=json_type)
            assert assert_error(array, 422, "invalid_field")["error"].startswith("expected object")
        assert client.get("/api/servers/alpha/status").json()["status"] == "stopped"
        # Without a body, or with {}, the command is judged: alpha is stopped.
        for body in (b"", b"{}"):
            stop = client.post("/api/servers/alpha/stop", content=body, headers=json_type)
            assert assert_error(stop, 409, "conflict")["error"] == "the server is stopped"


def test_blank_text_for_rcon_is_refused_before_rcon(live: Live) -> None:
    """A blank chat message or command is a 422 naming the field (alpha is not even running)."""
    with live.client(live.login()) as client:
        for path, field in (("message", "message"), ("rcon", "command")):
            # Spaces, a no-break space, a zero-width space and joiner: nothing to show.
            for blank in ("   ", "\u00a0\u3000", "\u200b", " \u200d\ufeff "):
                refused = client.post(f"/api/servers/alpha/{path}", json={field: blank})
                error = assert_error(refused, 422, "invalid_field")["error"]
                assert error.startswith(f"{field}: "), error
                assert "blank" in error, error


def test_long_ids_are_not_echoed_in_full(live: Live) -> None:
    with live.client(live.token_for("admin")) as client:
        missing = client.post(f"/api/servers/{'x' * 60_000}/start")
        assert_error(missing, 404, "not_found")
        # The row is written as the response goes out: wait for it, not for a time.
        poll(
            lambda: [e.status for e in live.citadel.store.list_audit(limit=1)] == [404],
            "the 404 was not audited",
        )
        (row,) = live.citadel.store.list_audit(limit=1)
        assert row.user == "admin"
        assert row.path == "/api/servers/" + "x" * (200 - len("/api/servers/"))
        for method, path in (
            ("GET", "/api/servers/{}"),
            ("GET", "/api/users/{}"),
            ("DELETE", "/api/roles/{}"),
        ):
            missing = client.request(method, path.format("x" * 5000))
            error = assert_error(missing, 404, "not_found")["error"]
            assert len(error) < 200
            assert error.endswith("... (5000 characters)")


def test_query_parameters_are_validated_and_unknown_ones_refused(live: Live) -> None:
    with live.client(live.login()) as client:
        huge = client.get("/api/audit", params={"before": "99999999999999999999999"})
        assert "before" in assert_error(huge, 422, "invalid_field")["error"]
        typo = assert_error(client.get("/api/audit?limt=5"), 400, "bad_request")
        assert (
            typo["error"] == "unknown query parameter 'limt' (this endpoint takes: before, limit)"
        )
        two = client.get("/api/servers/alpha/logs?lvl=info&limit=5&srce=rpt")
        assert "'lvl', 'srce'" in assert_error(two, 400, "bad_request")["error"]
        repeated = client.get("/api/servers/alpha/logs?limit=3&level=info&limit=4")
        assert assert_error(repeated, 400, "bad_request")["error"] == (
            "query parameter 'limit' given more than once (each takes one value)"
        )
        twice = client.get("/api/audit?before=1&limit=2&before=1&limit=2")
        assert (
            "'before', 'limit' given more than once"
            in assert_error(twice, 400, "bad_request")["error"]
        )
        assert client.get("/api/audit", params={"limit": 5}).status_code == 200
    with live.client() as anonymous:
        assert anonymous.get("/healthz?cache-buster=1").status_code == 200  # probes are lenient


def test_permissions_and_scope(live: Live) -> None:
    admin = live.login()
    with live.client(admin) as client:
        role = client.post(
            "/api/roles",
            json={"name": "alpha-viewer", "permissions": ["server.view"], "servers": ["alpha"]},
        )
        assert role.status_code == 201, role.text
    password = live.add_user("scoped", "alpha-viewer")
    token = live.login("scoped", password)
    with live.client(token) as client:
        servers = client.get("/api/servers").json()
        assert [s["id"] for s in servers] == ["alpha"]
        assert client.get("/api/servers/alpha/status").json()["status"] == "stopped"
        # Outside the scope looks exactly like a server that does not exist.
        assert_error(client.get("/api/servers/bravo"), 404, "not_found")
        assert_error(client.get("/api/servers/nope"), 404, "not_found")
        assert_error(client.get("/api/users"), 403, "forbidden")
        assert_error(client.get("/api/audit"), 403, "forbidden")


def test_an_encoded_slash_reaches_no_other_route(live: Live) -> None:
    with live.client(live.login()) as client:
        assert client.get("/api/servers/alpha/status").status_code == 200
        # Decoded before routing, these would be alpha's status and the server list.
        for method, path in [
            ("GET", "/api/servers/alpha%2Fstatus"),
            ("GET", "/api/servers/alpha%2fstatus"),
            ("DELETE", "/api/servers/%2F"),
            ("GET", "/api/servers/..%2F..%2Fhealthz"),
        ]:
            assert_error(client.request(method, path), 404, "not_found")


def test_password_change_revokes_older_tokens_only(live: Live) -> None:
    password = live.add_user("olga", "viewer")
    old = live.login("olga", password)
    with live.client(old) as client:
        changed = client.post(
            "/api/auth/password",
            json={"currentPassword": password, "newPassword": "another-password-9"},
        )
        assert changed.status_code == 204, changed.text
        assert_error(client.get("/api/auth/me"), 401, "unauthorized")
    # A token issued right after the change works at once (no lock-out window).
    fresh = live.login("olga", "another-password-9")
    with live.client(fresh) as client:
        assert client.get("/api/auth/me").status_code == 200


def test_users_and_roles_crud(live: Live) -> None:
    with live.client(live.login()) as client:
        assert_error(
            client.post(
                "/api/users", json={"username": "x", "password": "short", "role": "viewer"}
            ),
            422,
            "invalid_field",
        )
        assert_error(
            client.post(
                "/api/users", json={"username": "x", "password": "long-enough-1", "role": "ghost"}
            ),
            422,
            "invalid_field",
        )
        created = client.post(
            "/api/users", json={"username": "vera", "password": "long-enough-1", "role": "viewer"}
        )
        assert created.status_code == 201
        assert "passwordHash" not in created.text
        assert "password" not in created.json()
        assert_error(
            client.post(
                "/api/users",
                json={"username": "vera", "password": "long-enough-1", "role": "viewer"},
            ),
            409,
            "conflict",
        )
        promoted = client.patch("/api/users/vera", json={"role": "operator"})
        assert promoted.json()["role"] == "operator"
        assert_error(client.patch("/api/users/admin", json={"disabled": True}), 409, "conflict")
        assert_error(client.delete("/api/users/admin"), 409, "conflict")
        assert_error(client.delete("/api/roles/viewer"), 409, "conflict")
        assert client.delete("/api/users/vera").status_code == 204
        assert_error(client.get("/api/users/vera"), 404, "not_found")
        names = [r["name"] for r in client.get("/api/roles").json()]
        assert {"admin", "operator", "viewer"} <= set(names)


def test_user_managers_cannot_escalate(live: Live) -> None:
    """``users.manage`` manages users up to its own powers; admins are out of its reach."""
    with live.client(live.login()) as admin:
        created = admin.post(
            "/api/roles",
            json={"name": "usermgr", "permissions": ["users.manage", "server.view", "logs.view"]},
        )
        assert created.status_code == 201, created.text
    password = live.add_user("ume", "usermgr")
    with live.client(live.login("ume", password)) as ume:
        body = assert_error(ume.patch("/api/users/ume", json={"role": "admin"}), 403, "forbidden")
        assert "'*'" in body["error"]
        assert_error(
            ume.post("/api/roles", json={"name": "x", "permissions": ["*"]}), 403, "forbidden"
        )
        rcon = ume.post("/api/roles", json={"name": "x", "permissions": ["server.rcon"]})
        assert "'server.rcon'" in assert_error(rcon, 403, "forbidden")["error"]
        widen = ume.patch(
            "/api/roles/usermgr",
            json={"permissions": ["users.manage", "server.view", "logs.view", "server.stop"]},
        )
        assert_error(widen, 403, "forbidden")
        take_over = ume.patch("/api/users/admin", json={"password": "i-own-you-now"})
        assert_error(take_over, 403, "forbidden")
        assert_error(ume.delete("/api/users/admin"), 403, "forbidden")
        operator = {"username": "op2", "password": "long-enough-1", "role": "operator"}
        assert_error(ume.post("/api/users", json=operator), 403, "forbidden")
        assert_error(ume.delete("/api/roles/viewer"), 403, "forbidden")
        typo = ume.post("/api/roles", json={"name": "x", "permissions": ["server.veiw"]})
        assert_error(typo, 422, "invalid_field")
        # What it holds, it may give out, change and take away.
        reader = ume.post(
            "/api/roles", json={"name": "reader", "permissions": ["server.view", "logs.view"]}
        )
        assert reader.status_code == 201, reader.text
        made = ume.post(
            "/api/users", json={"username": "rita", "password": "long-enough-1", "role": "reader"}
        )
        assert made.status_code == 201, made.text
        assert ume.patch("/api/users/rita", json={"disabled": True}).json()["disabled"] is True
        assert ume.patch("/api/roles/reader", json={"servers": ["alpha"]}).status_code == 200
        assert ume.delete("/api/users/rita").status_code == 204
        assert ume.delete("/api/roles/reader").status_code == 204
        assert ume.get("/api/users").status_code == 200
    with live.client(live.login()) as admin:
        assert admin.get("/api/users/ume").json()["role"] == "usermgr"
        assert admin.get("/api/auth/me").json()["user"]["role"] == "admin"


def test_state_changes_are_audited_without_secrets(live: Live) -> None:
    with live.client() as client:
        client.post("/api/auth/login", json={"username": "admin", "password": "wrong"})
    token = live.login()
    with live.client(token) as client:
        entries = client.get("/api/audit").json()
    logins = [e for e in entries if e["path"] == "/api/auth/login"]
    assert [e["status"] for e in logins] == [200, 401]
    assert all(e["user"] == "admin" and e["ip"] == "127.0.0.1" for e in logins)
    assert "wrong" not in str(entries)


def test_anonymous_refusals_are_tallied_not_written_one_by_one(live: Live) -> None:
    store = live.citadel.store
    before = store.count_audit()
    with live.client() as client:
        for _ in range(40):
            junk = {"Authorization": "Bearer junk"}
            assert client.post("/api/servers/alpha/start", headers=junk).status_code == 401
        for _ in range(10):
            huge = {"username": "admin", "password": "x" * 100_000}
            assert client.post("/api/auth/login", json=huge).status_code == 413
        # Unknown paths and methods change nothing and are not audited at all.
        assert client.post("/api/no/such/path").status_code == 404
        assert client.post("/healthz").status_code == 405
        for _ in range(10):  # 5 are judged (and recorded by name), then 5 are throttled
            client.post("/api/auth/login", json={"username": "admin", "password": "wrong"})
    assert store.count_audit() == before + 5
    # The audit actor writes the tally every minute; flush it now instead of waiting.
    db = live.citadel.registry.whereis("store")
    assert db is not None
    assert live.portal.call(flush_tally, db, live.citadel.audit_tally) == 3
    rows = store.list_audit(limit=8)
    tallied = {(e.path, e.status): e for e in rows if e.user is None}
    assert {key: e.detail and e.detail["count"] for key, e in tallied.items()} == {
        ("/api/servers/alpha/start", 401): 40,
        ("/api/auth/login", 413): 10,
        ("/api/auth/login", 429): 5,
    }
    judged = [e for e in rows if e.user == "admin" and e.path == "/api/auth/login"]
    assert [e.status for e in judged] == [401] * 5
    # A row a user made never reads as a tally, whatever its detail holds.
    live.portal.call(
        run_in_store,
        db,
        lambda s: s.add_audit(
            user="admin", ip=None, method="POST", path="/api/servers/alpha/rcon", status=200,
            detail={"command": "players", "count": 1, "paths": [], "first": 0.0, "last": 0.0},
        ),
    )  # fmt: skip
    # GET /api/audit shows what each tallied row stands for (never a body).
    with live.client(live.token_for("admin")) as client:  # logins are throttled by now
        listed = client.get("/api/audit", params={"limit": 10}).json()
    views = {(e["path"], e["status"]): e for e in listed if e["user"] is None}
    tally = views["/api/servers/alpha/start", 401]["tally"]
    assert set(tally) == {"count", "first", "last", "paths"}
    assert tally["count"] == 40
    assert tally["paths"] == ["/api/servers/alpha/start"]
    assert tally["first"] <= tally["last"] == views["/api/servers/alpha/start", 401]["timestamp"]
    assert {key: v["tally"]["count"] for key, v in views.items()} == {
        ("/api/servers/alpha/start", 401): 40,
        ("/api/auth/login", 413): 10,
        ("/api/auth/login", 429): 5,
    }
    named = [e for e in listed if e["user"] == "admin"]
    assert named
    assert all(e["tally"] is None for e in named)
    assert "command" not in str(listed)
    assert "x" * 100 not in str(listed)


def test_a_request_abandoned_by_its_client_is_audited_as_499_not_500(live: Live) -> None:
    """A body cut short by a client that goes away: nothing failed in Citadel."""
    db = live.citadel.registry.whereis("store")
    assert db is not None
    live.portal.call(flush_tally, db, live.citadel.audit_tally)  # earlier tests' tallies
    address = urlsplit(live.url)
    with socket.create_connection((address.hostname, address.port)) as raw:
        raw.sendall(
            b"POST /api/servers/alpha/rcon HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"command": "pl'
        )

    def statuses() -> list[int]:
        live.portal.call(flush_tally, db, live.citadel.audit_tally)
        rows = live.citadel.store.list_audit(limit=5)
        return [e.status for e in rows if e.path == "/api/servers/alpha/rcon"]

    poll(lambda: 499 in statuses(), "the abandoned request was not audited as 499")
    assert 500 not in statuses()


def test_health_readiness_and_openapi(live: Live) -> None:
    with live.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["ready"] is True
        spec = client.get("/api/openapi.json").json()
        assert "/api/auth/login" in spec["paths"]
        assert "/api/servers/{server_id}/status" in spec["paths"]
        # Request bodies are described by msgspec, which decodes them: an optional field
        # keeps its bounds (Litestar's own schema dropped them).
        ban = spec["components"]["schemas"]["BanRequest"]
        assert ban["additionalProperties"] is False
        assert {"type": "integer", "minimum": 0, "maximum": 525_600} in ban["properties"][
            "minutes"
        ]["anyOf"]
        assert_error(client.get("/api/nothing-here"), 404, "not_found")
        assert_error(client.delete("/healthz"), 405, "method_not_allowed")
