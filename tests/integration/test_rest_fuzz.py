"""Fuzz the REST API against a live Citadel: no input yields a 5xx, every error is JSON
``{error, code}``, and every status answered is one the OpenAPI document lists for the route.

Bodies are generated two ways: arbitrary JSON documents (and raw bytes), and objects built from
the field names in the served OpenAPI document with values of random types, so the generator
reaches past "unknown field" into each field's validation. Path and query parameters of every
operation in the document are generated from its parameter list: values of every shape
(huge and negative integers, floats, text with any character, the declared enum values),
sometimes with an unknown parameter added, with and without a valid token.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import Live

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

ENDPOINTS = [
    ("POST", "/api/auth/login", "LoginRequest"),
    ("POST", "/api/auth/password", "PasswordChange"),
    ("POST", "/api/users", "UserCreate"),
    ("PATCH", "/api/users/fuzzed", "UserUpdate"),
    ("POST", "/api/roles", "RoleCreate"),
    ("PATCH", "/api/roles/fuzz-role", "RoleUpdate"),
]


@pytest.fixture(scope="module")
def spec(shared_live: Live) -> dict[str, Any]:
    with shared_live.client() as client:
        document: dict[str, Any] = client.get("/api/openapi.json").json()
    return document


@pytest.fixture(scope="module")
def fuzz_setup(shared_live: Live, spec: dict[str, Any]) -> tuple[Live, str, dict[str, list[str]]]:
    token = shared_live.login()
    with shared_live.client(token) as client:
        client.post(
            "/api/users",
            json={"username": "fuzzed", "password": "fuzzed-password", "role": "viewer"},
        )
        client.post("/api/roles", json={"name": "fuzz-role", "permissions": ["server.view"]})
    schemas = spec["components"]["schemas"]
    fields = {name: sorted(schema.get("properties", {})) for name, schema in schemas.items()}
    return shared_live, token, fields


def check(response: httpx.Response, documented: dict[str, Any] | None = None) -> None:
    """No 5xx; an error has the one error shape; the status is one the document lists."""
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "code"}, body
        assert all(isinstance(body[key], str) for key in body), body
        assert all(body.values()), body
    if documented is not None:
        assert str(response.status_code) in documented, (
            response.request.method,
            response.request.url,
            response.status_code,
            response.text,
            sorted(documented),
        )


def shaped_bodies(fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(fields), json_values, max_size=len(fields))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_bodies_never_500(
    fuzz_setup: tuple[Live, str, dict[str, list[str]]], data: st.DataObject
) -> None:
    live, token, fields = fuzz_setup
    method, path, schema = data.draw(st.sampled_from(ENDPOINTS))
    body = data.draw(shaped_bodies(fields[schema]) | json_values)
    with live.client(token) as client:
        check(client.request(method, path, json=body))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=200), endpoint=st.sampled_from(ENDPOINTS))
def test_fuzzed_bytes_never_500(
    fuzz_setup: tuple[Live, str, dict[str, list[str]]], raw: bytes, endpoint: tuple[str, str, str]
) -> None:
    live, token, _ = fuzz_setup
    method, path, _schema = endpoint
    with live.client(token) as client:
        check(
            client.request(method, path, content=raw, headers={"content-type": "application/json"})
        )


def test_server_still_answers_after_fuzzing(fuzz_setup: tuple[Live, str, Any]) -> None:
    live, token, _ = fuzz_setup
    with live.client(token) as client:
        assert client.get("/api/auth/me").status_code == 200


# -- path and query parameters of every operation in the document ------------------------------

#: Logging out would revoke the fuzzer's own token; it takes no parameters anyway.
SKIPPED_OPERATIONS = {("POST", "/api/auth/logout")}
#: Real names, so GETs also reach past "not found"; never used for state-changing methods.
KNOWN_NAMES = ["alpha", "bravo", "admin", "fuzzed", "fuzz-role", "viewer"]

EXAMPLES_PER_OPERATION = 30
#: Every query parameter of every operation gets each of these, with a valid token.
BOUNDARY_VALUES = [
    *(str(n) for n in (0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1)),
    *("9" * 25, "-" + "9" * 25, "1e3", "1e400", "1.5", "-0", "0x10", "NaN", "inf"),
    *("", " ", "null", "true", "[]", "\x00", "é", "\ud7ff", "a" * 5000),
]
param_values = st.one_of(
    st.integers().map(str),
    st.integers(min_value=2**62).map(str),
    st.sampled_from(BOUNDARY_VALUES),
    st.floats().map(repr),
    st.text(max_size=30),
)
path_values = st.text(min_size=1, max_size=30).filter(lambda v: v not in (".", ".."))


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if (method.upper(), path) not in SKIPPED_OPERATIONS
    ]


def test_every_operation_is_fuzzed(spec: dict[str, Any]) -> None:
    found = {(m, p) for m, p, _ in operations(spec)}
    assert ("GET", "/api/audit") in found
    assert ("GET", "/api/servers/{server_id}/logs") in found
    assert ("DELETE", "/api/users/{username}") in found
    assert len(found) >= 30


def fuzz_operation(
    live: Live, token: str, method: str, path: str, operation: dict[str, Any]
) -> None:
    """Send ``EXAMPLES_PER_OPERATION`` generated requests to one operation."""

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        url = path
        query: dict[str, str] = {}
        for parameter in operation.get("parameters", []):
            name = parameter["name"]
            if parameter["in"] == "path":
                names = st.sampled_from(KNOWN_NAMES) if method == "GET" else st.nothing()
                value = data.draw(path_values | names, label=name)
                url = url.replace("{" + name + "}", quote(value, safe=""))
            elif parameter["in"] == "query" and data.draw(st.booleans(), label=f"send {name}"):
                enum = parameter.get("schema", {}).get("enum") or []
                choices = param_values | st.sampled_from(enum) if enum else param_values
                query[name] = data.draw(choices, label=name)
        unknown = data.draw(st.integers(0, 3), label="add an unknown parameter") == 0
        if unknown:
            query[data.draw(st.text(min_size=1, max_size=10), label="unknown") + "_x"] = "1"
        auth = data.draw(st.sampled_from([token, token, token, None, "garbage"]), label="token")
        body: dict[str, Any] | None = {} if "requestBody" in operation else None
        with live.client(auth) as client:
            response = client.request(method, url, params=query, json=body)
        check(response, operation["responses"])
        if unknown and url.startswith("/api/") and response.status_code != 404:
            assert response.status_code == 400, response.text
            assert "unknown query parameter" in response.json()["error"]

    fuzz()


def test_fuzzed_parameters_never_500_and_answer_documented_statuses(
    fuzz_setup: tuple[Live, str, Any], spec: dict[str, Any]
) -> None:
    live, token, _ = fuzz_setup
    for method, path, operation in operations(spec):
        fuzz_operation(live, token, method, path, operation)


def test_boundary_values_of_every_query_parameter(
    fuzz_setup: tuple[Live, str, Any], spec: dict[str, Any]
) -> None:
    live, token, _ = fuzz_setup
    swept = 0
    with live.client(token) as client:
        for method, path, operation in operations(spec):
            url = path.replace("{server_id}", "alpha").replace("{username}", "fuzzed")
            url = url.replace("{name}", "fuzz-role").replace("{player_id}", "nobody")
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "query" or method != "GET":
                    continue
                for value in BOUNDARY_VALUES:
                    response = client.request(method, url, params={parameter["name"]: value})
                    check(response, operation["responses"])
                    swept += 1
    assert swept >= 6 * len(BOUNDARY_VALUES)  # audit: limit, before; logs: level, source, ...


def test_documented_error_bodies_and_request_schemas(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["error", "code"]
    for _, _, operation in operations(spec):
        for status, response in operation["responses"].items():
            if status.startswith("4"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, status
    for name in ("LoginRequest", "UserCreate", "RoleUpdate", "ServerConfig", "RconConfig"):
        assert schemas[name]["additionalProperties"] is False, name
    create = spec["paths"]["/api/servers"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ServerConfig"}
    assert {"id", "install_dir", "rcon", "stop_timeout"} <= set(
        schemas["ServerConfig"]["properties"]
    )
    login = spec["paths"]["/api/auth/login"]["post"]["responses"]
    assert {"400", "413", "422", "429"} <= set(login)
    assert "401" not in spec["paths"]["/healthz"]["get"]["responses"]
    assert {"401", "403", "404"} <= set(
        spec["paths"]["/api/users/{username}"]["patch"]["responses"]
    )
    said = spec["paths"]["/api/servers/{server_id}/message"]["post"]["responses"]
    assert {"409", "503", "504"} <= set(said)
    start = spec["paths"]["/api/servers/{server_id}/start"]["post"]
    assert "503" not in start["responses"]
    # No options: the body is optional and may hold nothing (else 422, or 400 if not JSON).
    assert start["requestBody"]["required"] is False
    assert {"400", "409", "422"} <= set(start["responses"])
    assert "start_failed" in start["responses"]["409"]["description"]
    assert schemas["CommandRequest"]["properties"] == {}
    assert schemas["CommandRequest"]["additionalProperties"] is False
    assert schemas["ServerConfig"]["properties"]["stop_timeout"]["maximum"] == 30 * 24 * 3600
