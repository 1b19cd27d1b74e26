"""The Litestar application: routes, error mapping, body limit, audit, OpenAPI.

Decisions:
* Bodies above `MAX_BODY_BYTES` are refused with 413 before they are read in full.
* Every state-changing request (POST, PUT, PATCH, DELETE) is audited with its final status,
  also refused and failed ones: one row per request whose maker is known, a bounded tally
  for anonymous refusals (``citadel.web.audit``). Bodies are never stored (they hold
  passwords).
* Unknown query parameters on ``/api`` routes are refused with 400, naming them, as unknown
  JSON fields are (a typo such as ``?limt=5`` must not silently mean "the default"), and so is
  a parameter given more than once (``?limit=3&limit=4``: which one would count?). The probes
  ``/healthz`` and ``/readyz`` ignore both (load balancers add cache busters).
* JSON bodies are decoded with numbers beyond a float's range (``1e400``) read as infinity
  instead of failing the whole body with a 400 that names no key: every float field of a body
  is bounded, so such a value is refused as a 422 naming its key, like any value out of range.
* The OpenAPI document is served at ``/api/openapi.json`` (``citadel.web.openapi``).
* A path with an encoded slash (``%2F``) in it is 404 (`refuse_encoded_slashes`): no id may
  hold a slash, and the ASGI server decodes it before routing, so
  ``/api/servers/demo-1%2Fplayers`` would otherwise reach another route than the one written.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

import msgspec
from litestar import Litestar, Request, get
from litestar.di import Provide
from litestar.exceptions import SerializationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from citadel.messages.rest import ErrorBody
from citadel.store.actor import run_in_store
from citadel.web import routes_auth, routes_servers, routes_system, routes_users
from citadel.web.audit import MAX_PATH_LENGTH
from citadel.web.context import ApiContext
from citadel.web.errors import EXCEPTION_HANDLERS, ApiError
from citadel.web.guards import provide_principal
from citadel.web.openapi import api_document

MAX_BODY_BYTES: Final = 64 * 1024
MAX_NAMES_SHOWN: Final = 5
MAX_NAME_SHOWN: Final = 40
_AUDITED: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Untyped JSON, as Litestar decodes a body before converting it to the handler's type, except
#: that a number beyond a float's range is infinity (see the module docstring).
_JSON: Final = msgspec.json.Decoder(float_hook=float)


class _JsonRequest(Request[Any, Any, Any]):
    """Litestar's request, decoding JSON bodies with `_JSON`."""

    async def json(self) -> Any:
        body = await self.body()
        try:
            return _JSON.decode(body or b"null")
        except msgspec.DecodeError as error:  # Litestar's own json() raises the same: a 400
            raise SerializationException(str(error)) from error


def _audit_middleware(app: Any) -> Any:
    # Plain ASGI (dicts), below Litestar's typed scopes: it must see every response status.
    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in _AUDITED:
            await app(scope, receive, send)
            return
        status = 500

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            ctx: ApiContext = scope["app"].state["citadel"]
            state = scope.get("state", {})
            client = scope.get("client")
            user = state.get("audit_user")
            detail = state.get("audit_detail")
            ip = client[0] if client else None
            method, path = scope["method"], scope["path"][:MAX_PATH_LENGTH]  # a client's text
            if user is None and status >= 400:
                # Nobody to name: counted, not written one by one (a flood stays bounded).
                ctx.audit_tally.add(ip, method, path, status, now=ctx.clock())
            else:
                # The audit write must not be lost if the request is cancelled mid-way; it is
                # a cast-like call to the single writer and cheap.
                try:
                    await run_in_store(
                        ctx.db,
                        lambda s: s.add_audit(
                            user=user,
                            ip=ip,
                            method=method,
                            path=path,
                            status=status,
                            detail=detail,
                        ),
                    )
                except Exception:  # the audit must never turn a response into a failure
                    ctx.audit_failures += 1

    return middleware


def refuse_encoded_slashes(app: Any) -> Any:
    """Wrap an ASGI app: an HTTP request whose raw path holds ``%2F`` is answered 404."""
    body = msgspec.json.encode(
        ErrorBody(error="no such resource: a path segment cannot hold '/'", code="not_found")
    )
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]

    async def guard(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and b"%2f" in scope.get("raw_path", b"").lower():
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return guard


@get("/api/openapi.json", media_type="application/json", include_in_schema=False)
async def openapi_document(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this API."""
    return api_document(request.app)


def _query_parameters(app: Litestar) -> dict[int, frozenset[str]]:
    """The query parameters each route handler takes, by handler identity."""
    allowed: dict[int, frozenset[str]] = {}
    for route in app.routes:
        for handler, kwargs_model in getattr(route, "route_handler_map", {}).values():
            names = frozenset(p.field_alias for p in kwargs_model.expected_query_params)
            allowed[id(handler)] = names
    return allowed


async def _refuse_unknown_query(request: Request[Any, Any, Any]) -> None:
    # Runs before the handler's parameters are parsed and before authentication.
    if not request.url.path.startswith("/api/"):
        return
    allowed = request.app.state["query_parameters"].get(id(request.route_handler))
    if allowed is None:
        return
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) if allowed else "none"
        raise ApiError(
            400,
            "bad_request",
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} {_names(unknown)} "
            f"(this endpoint takes: {takes})",
        )
    counts = Counter(name for name, _ in request.query_params.multi_items())
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if repeated:
        raise ApiError(
            400,
            "bad_request",
            f"query parameter{'s' if len(repeated) > 1 else ''} {_names(repeated)} given more "
            "than once (each takes one value)",
        )


def _names(names: list[str]) -> str:
    """``'a', 'b' and 3 more``: the first few names, each cut short."""
    shown = ", ".join(repr(name[:MAX_NAME_SHOWN]) for name in names[:MAX_NAMES_SHOWN])
    more = len(names) - MAX_NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def build_app(context: ApiContext, *, debug: bool = False) -> Litestar:
    """Build the REST application around ``context``."""
    app = Litestar(
        route_handlers=[
            *routes_auth.ROUTES,
            *routes_users.ROUTES,
            *routes_servers.ROUTES,
            *routes_system.ROUTES,
            openapi_document,
        ],
        dependencies={"principal": Provide(provide_principal)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]  # handler map is covariant in practice
        middleware=[_audit_middleware],
        before_request=_refuse_unknown_query,
        request_class=_JsonRequest,
        request_max_body_size=MAX_BODY_BYTES,
        # Litestar serves its schema controller under ``path`` and answers every unknown path
        # below it with an HTML page; keep it out of /api and serve the JSON ourselves.
        openapi_config=OpenAPIConfig(
            title="Citadel",
            version="0.1.0",
            path="/_schema",
            render_plugins=[JsonRenderPlugin(path="/openapi.json")],
        ),
        debug=debug,
        logging_config=None,
    )
    app.state["citadel"] = context
    app.state["query_parameters"] = _query_parameters(app)
    return app


__all__ = ["MAX_BODY_BYTES", "build_app", "refuse_encoded_slashes"]
