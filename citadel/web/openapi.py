"""The OpenAPI document at ``/api/openapi.json``: Litestar's, corrected to say what we do.

Litestar generates paths, parameters and body schemas from the handlers. It knows nothing of
our error handling, so the document is finished here, once, from facts about each route:

* every error answer is ``{"error": <sentence>, "code": <machine code>}`` (``ErrorBody``), not
  Litestar's ``{status_code, detail, extra}``;
* the statuses a route can answer are listed: 400 (malformed JSON, an unknown query
  parameter), 401 (routes that need a token), 403 (routes that check a permission), 404 (routes
  with path parameters), 409 (`CONFLICTS`), 413 (routes with a body), 422 (a field or query
  parameter out of its bounds), 429 (login), 503 and 504 (routes that go through RCON:
  reconnecting, or no reply);
* request bodies refuse unknown fields, so their schemas say ``additionalProperties: false``;
* start, stop and restart take no options: their body is optional (none, or ``{}``,
  ``CommandRequest``), refused when it holds anything (422) or is not JSON (400); a start that
  cannot spawn the process answers 409 (``start_failed``);
* ``POST /api/servers`` and ``PATCH /api/servers/{server_id}`` take a server's configuration
  (the fields of a ``[[servers]]`` table, ``citadel.config.ServerConfig``), which their
  handlers decode themselves and Litestar could only describe as "any object";
* token authentication is declared as an HTTP bearer scheme.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Final

import msgspec
from litestar import Litestar

from citadel import config
from citadel.messages import rest
from citadel.messages.rest import ErrorBody

__all__ = ["CONFLICTS", "NO_OPTIONS", "api_document", "describe"]

_REF: Final = "#/components/schemas/{name}"
_GENERIC_OBJECT: Final = {"additionalProperties": {}, "type": "object"}

CONFLICTS: Final = frozenset(
    {
        ("POST", "/api/users"),
        ("PATCH", "/api/users/{username}"),
        ("DELETE", "/api/users/{username}"),
        ("POST", "/api/roles"),
        ("PATCH", "/api/roles/{name}"),
        ("DELETE", "/api/roles/{name}"),
        ("POST", "/api/servers"),
        ("PATCH", "/api/servers/{server_id}"),
        ("DELETE", "/api/servers/{server_id}"),
        ("POST", "/api/servers/{server_id}/start"),
        ("POST", "/api/servers/{server_id}/stop"),
        ("POST", "/api/servers/{server_id}/restart"),
        ("POST", "/api/servers/{server_id}/players/{player_id}/kick"),
        ("POST", "/api/servers/{server_id}/players/{player_id}/ban"),
        ("POST", "/api/servers/{server_id}/rcon"),
        ("POST", "/api/servers/{server_id}/message"),
    }
)
"""Operations that answer 409 when the current state forbids them."""

NEVER_FORBIDDEN: Final = frozenset(
    {("GET", "/api/auth/me"), ("POST", "/api/auth/logout"), ("GET", "/api/servers")}
)
"""Authenticated operations that check no permission (they never answer 403)."""

THROTTLED: Final = frozenset({("POST", "/api/auth/login")})

NO_OPTIONS: Final = frozenset(
    {
        ("POST", "/api/servers/{server_id}/start"),
        ("POST", "/api/servers/{server_id}/stop"),
        ("POST", "/api/servers/{server_id}/restart"),
    }
)
"""Operations whose body is optional and empty (``CommandRequest``): none, or ``{}``."""

THROUGH_RCON: Final = frozenset(
    {
        ("POST", "/api/servers/{server_id}/players/{player_id}/kick"),
        ("POST", "/api/servers/{server_id}/players/{player_id}/ban"),
        ("POST", "/api/servers/{server_id}/rcon"),
        ("POST", "/api/servers/{server_id}/message"),
    }
)
"""Operations answered by the server's RCON link: 503 while it reconnects, 504 without reply."""

_DESCRIPTIONS: Final = {
    "400": "Bad request: the body is not valid JSON, or a query parameter is unknown",
    "401": "No token, or the token was refused (malformed, expired, revoked, ...)",
    "403": "The caller's role lacks the permission (or the action would exceed its grants)",
    "404": "No such resource (also: a server outside the caller's scope)",
    "409": "The current state forbids it",
    "413": "The request body is too large (64 KiB at most)",
    "422": "A field or query parameter is invalid; the message names it",
    "429": "Too many login attempts; see Retry-After",
    "503": "RCON is reconnecting, or dropped while the command was in flight; see Retry-After",
    "504": "RCON sent no reply; the command may or may not have been applied",
}


def _error_response(status: str) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": _REF.format(name="ErrorBody")}}},
    }


def _strict_requests() -> dict[str, type[msgspec.Struct]]:
    """The request Structs that refuse unknown fields, by name (as Litestar names them)."""
    found = {}
    for module in (rest, config):
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, msgspec.Struct)
                and obj.__struct_config__.forbid_unknown_fields
            ):
                found[name] = obj
    return found


def _request_schemas(names: set[str]) -> dict[str, Any]:
    """msgspec's own schemas of the request Structs ``names`` (and what they refer to).

    msgspec decodes the bodies, so its schema is the true one: Litestar's drops the bounds of
    an optional field (``minutes: Annotated[int, Meta(ge=0)] | None`` lost its ``minimum``).
    """
    requests = _strict_requests()
    _, components = msgspec.json.schema_components(
        [requests[name] for name in sorted(names)], ref_template=_REF
    )
    return components


def _server_body_schemas() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [config.ServerConfig, ErrorBody], ref_template=_REF
    )
    update = copy.deepcopy(components["ServerConfig"])
    update.pop("required", None)
    update["title"] = "ServerUpdate"
    update["description"] = (
        "The fields of a server to change (an API-created, stopped server); the others keep "
        "their values. `id` cannot change."
    )
    components["ServerUpdate"] = update
    return components


class _Route(msgspec.Struct, frozen=True):
    authenticated: bool
    query: frozenset[str]


def _routes(app: Litestar) -> dict[tuple[str, str], _Route]:
    found = {}
    for route in app.routes:
        for method, (_, kwargs_model) in getattr(route, "route_handler_map", {}).items():
            dependencies = {d.key for batch in kwargs_model.dependency_batches for d in batch}
            query = frozenset(p.field_alias for p in kwargs_model.expected_query_params)
            found[method, route.path_format] = _Route("principal" in dependencies, query)
    return found


def describe(app: Litestar, document: dict[str, Any]) -> dict[str, Any]:
    """Return ``document`` (Litestar's OpenAPI dict) finished as the module doc says."""
    document = copy.deepcopy(document)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name, schema in _server_body_schemas().items():
        schemas.setdefault(name, schema)
    strict = set(_strict_requests()) & set(schemas)
    for name, schema in _request_schemas(strict).items():
        if name in strict or name not in schemas:
            schemas[name] = schema
    for name in strict:
        schemas[name]["additionalProperties"] = False
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    routes = _routes(app)
    for path, operations in document.get("paths", {}).items():
        for method_name, operation in operations.items():
            method = method_name.upper()
            key = (method, path)
            facts = routes.get(key, _Route(False, frozenset()))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and body.get("schema") == _GENERIC_OBJECT:
                name = "ServerConfig" if method == "POST" else "ServerUpdate"
                body["schema"] = {"$ref": _REF.format(name=name)}
            if body is not None and key in NO_OPTIONS:
                operation["requestBody"]["required"] = False
                operation["requestBody"]["description"] = "None: no body, or `{}`"
            statuses: set[str] = set()
            if path.startswith("/api/"):
                statuses.add("400")  # unknown query parameters; malformed JSON
            if facts.authenticated:
                statuses.add("401")
                operation["security"] = [{"bearer": []}]
                if key not in NEVER_FORBIDDEN:
                    statuses.add("403")
            if "{" in path:
                statuses.add("404")
            if key in CONFLICTS:
                statuses.add("409")
            if body is not None:
                statuses.update({"413", "422"})
            if facts.query:
                statuses.add("422")
            if key in THROTTLED:
                statuses.add("429")
            if key in THROUGH_RCON:
                statuses.update({"503", "504"})
            responses = operation.setdefault("responses", {})
            # Litestar's own 4xx entries describe its error body; ours replace them.
            for status in [s for s in responses if s.startswith("4")]:
                del responses[status]
            for status in sorted(statuses):
                responses[status] = _error_response(status)
            if key in NO_OPTIONS and not path.endswith("/stop"):
                responses["409"]["description"] = (
                    f"{_DESCRIPTIONS['409']}, or the process could not be spawned "
                    "(code `start_failed`, the OS error in `error`)"
                )
            if key == ("GET", "/readyz") and "200" in responses:
                responses["503"] = {
                    **responses["200"],
                    "description": "Not ready: the supervision tree is starting or stopping",
                }
    return document


def api_document(app: Litestar) -> dict[str, Any]:
    """The finished document, built once per application."""
    cached: dict[str, Any] | None = app.state.get("openapi_document")
    if cached is None:
        cached = describe(app, app.openapi_schema.to_schema())
        app.state["openapi_document"] = cached
    return cached
