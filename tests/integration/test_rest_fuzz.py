"""Fuzz every REST body against a live Citadel: no input yields a 500, every error is JSON.

Bodies are generated two ways: arbitrary JSON documents (and raw bytes), and objects built from
the field names in the served OpenAPI document with values of random types, so the generator
reaches past "unknown field" into each field's validation.
"""

from __future__ import annotations

from typing import Any

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
def fuzz_setup(shared_live: Live) -> tuple[Live, str, dict[str, list[str]]]:
    token = shared_live.login()
    with shared_live.client(token) as client:
        spec = client.get("/api/openapi.json").json()
        client.post(
            "/api/users",
            json={"username": "fuzzed", "password": "fuzzed-password", "role": "viewer"},
        )
        client.post("/api/roles", json={"name": "fuzz-role", "permissions": ["server.view"]})
    schemas = spec["components"]["schemas"]
    fields = {name: sorted(schema.get("properties", {})) for name, schema in schemas.items()}
    return shared_live, token, fields


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "code"}, body


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
