"""The Litestar application: routes, error mapping, body limit, audit, OpenAPI.

Decisions:
* Bodies above `MAX_BODY_BYTES` are refused with 413 before they are read in full.
* Every state-changing request (POST, PUT, PATCH, DELETE) is audited with its final status,
  also refused and failed ones: one row per request whose maker is known, a bounded tally
  for anonymous refusals (``citadel.web.audit``). Bodies are never stored (they hold
  passwords).
* The OpenAPI document is served at ``/api/openapi.json``.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Litestar, Request, get
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from citadel.store.actor import run_in_store
from citadel.web import routes_auth, routes_servers, routes_system, routes_users
from citadel.web.context import ApiContext
from citadel.web.errors import EXCEPTION_HANDLERS
from citadel.web.guards import provide_principal

MAX_BODY_BYTES: Final = 64 * 1024
_AUDITED: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
            method, path = scope["method"], scope["path"]
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


@get("/api/openapi.json", media_type="application/json", include_in_schema=False)
async def openapi_document(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this API."""
    return request.app.openapi_schema.to_schema()


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
    return app


__all__ = ["MAX_BODY_BYTES", "build_app"]
