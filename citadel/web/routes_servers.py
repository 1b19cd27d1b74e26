"""``/api/servers``: the fleet as the caller's role may see it."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromPath

from citadel.auth import Principal
from citadel.messages.rest import ServerStatusView, ServerView
from citadel.web.context import context_of
from citadel.web.errors import ApiError
from citadel.web.guards import Caller


def visible_server(
    request: Request[Any, Any, Any], principal: Principal, server_id: str
) -> ServerView:
    """Return the server, or 404 - also when the caller's scope excludes it (no probing)."""
    server = context_of(request).servers.get_server(server_id)
    if server is None or not principal.can("server.view", server_id):
        raise ApiError(404, "not_found", f"no server {server_id!r}")
    return server


@get("/api/servers")
async def list_servers(request: Request[Any, Any, Any], principal: Caller) -> list[ServerView]:
    """The servers the caller may view (possibly none)."""
    servers = context_of(request).servers.list_servers()
    return [s for s in servers if principal.can("server.view", s.id)]


@get("/api/servers/{server_id:str}")
async def get_server(
    request: Request[Any, Any, Any], principal: Caller, server_id: FromPath[str]
) -> ServerView:
    return visible_server(request, principal, server_id)


@get("/api/servers/{server_id:str}/status")
async def get_status(
    request: Request[Any, Any, Any], principal: Caller, server_id: FromPath[str]
) -> ServerStatusView:
    visible_server(request, principal, server_id)
    status = await context_of(request).servers.server_status(server_id)
    if status is None:
        raise ApiError(404, "not_found", f"no server {server_id!r}")
    return status


ROUTES = [list_servers, get_server, get_status]
