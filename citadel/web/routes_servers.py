"""``/api/servers``: the fleet as the caller's role may see it, and what it may do to it.

Servers outside the caller's scope answer 404, exactly like servers that do not exist, so a
scoped role cannot probe for ids. Lifecycle commands answer 202 at once (progress comes as
``serverStatus`` events) or 409 when the current state forbids them.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from citadel.auth import Principal
from citadel.config import ServerConfig, describe_validation_error
from citadel.games.battleye import encode_command_text
from citadel.messages import (
    LogEvent,
    LogLevel,
    LogSource,
    MetricsEvent,
    Player,
    ServerRemovedEvent,
    utc_timestamp,
)
from citadel.messages.rest import (
    BanRequest,
    BanView,
    CommandAccepted,
    KickRequest,
    MessageRequest,
    RconRequest,
    RconResponse,
    ServerStatusView,
    ServerView,
)
from citadel.servers.fleet import Command, Fleet
from citadel.servers.messages import RconCommand, RconResult, RestartServer, StartServer, StopServer
from citadel.servers.runtime import RCON, ServerRuntime
from citadel.store import Store
from citadel.store.actor import run_in_store
from citadel.web.context import context_of
from citadel.web.errors import ApiError
from citadel.web.guards import Caller, require

RCON_CALL_MARGIN = 2.0
#: Refused on ``/rcon``: the stop ladder sends it, so that the exit is not taken for a crash.
SHUTDOWN_COMMAND = "#shutdown"
STOPPED_STATES = ("stopped", "crashed")


def _fleet(request: Request[Any, Any, Any]) -> Fleet:
    return context_of(request).servers


def visible_server(
    request: Request[Any, Any, Any], principal: Principal, server_id: str
) -> ServerView:
    """Return the server, or 404 - also when the caller's scope excludes it (no probing)."""
    server = _fleet(request).get_server(server_id)
    if server is None or not principal.can("server.view", server_id):
        raise ApiError(404, "not_found", f"no server {server_id!r}")
    return server


def _runtime(
    request: Request[Any, Any, Any], principal: Principal, server_id: str, permission: str
) -> ServerRuntime:
    visible_server(request, principal, server_id)
    require(principal, permission, server_id)
    return _fleet(request).runtimes[server_id]


@get("/api/servers")
async def list_servers(request: Request[Any, Any, Any], principal: Caller) -> list[ServerView]:
    """The servers the caller may view (possibly none)."""
    servers = _fleet(request).list_servers()
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
    """Status, pid, uptime, restart count and the next automatic restart."""
    visible_server(request, principal, server_id)
    status = await _fleet(request).server_status(server_id)
    if status is None:
        raise ApiError(404, "not_found", f"no server {server_id!r}")
    return status


# -- create, change, delete ----------------------------------------------------------------


@post("/api/servers", status_code=201)
async def create_server(
    request: Request[Any, Any, Any], principal: Caller, data: JSONBody[dict[str, Any]]
) -> ServerView:
    """Add a server (stored in SQLite); the body has the fields of a ``[[servers]]`` table."""
    require(principal, "*")
    config = _convert(data)
    ctx, fleet = context_of(request), _fleet(request)
    if fleet.get_server(config.id) is not None:
        raise ApiError(409, "conflict", f"server {config.id!r} already exists")
    await run_in_store(ctx.db, lambda s: s.add_server(config))
    await fleet.add(config, "api")
    view = fleet.get_server(config.id)
    assert view is not None
    return view


@patch("/api/servers/{server_id:str}")
async def update_server(
    request: Request[Any, Any, Any],
    principal: Caller,
    server_id: FromPath[str],
    data: JSONBody[dict[str, Any]],
) -> ServerView:
    """Change an API-created server's settings; refused while it runs."""
    runtime = _runtime(request, principal, server_id, "*")
    fleet, ctx = _fleet(request), context_of(request)
    _must_be_api_server(fleet, server_id)
    _must_be_stopped(runtime)
    if "id" in data and data["id"] != server_id:
        raise ApiError(422, "invalid_field", "id: cannot be changed")
    merged = {**msgspec.to_builtins(runtime.config), **data}
    config = _convert(merged)
    await run_in_store(ctx.db, lambda s: s.update_server(config))
    await fleet.remove(server_id)
    await fleet.add(config, "api")
    view = fleet.get_server(server_id)
    assert view is not None
    return view


@delete("/api/servers/{server_id:str}", status_code=204)
async def delete_server(
    request: Request[Any, Any, Any], principal: Caller, server_id: FromPath[str]
) -> None:
    """Remove an API-created server; refused while it runs."""
    runtime = _runtime(request, principal, server_id, "*")
    fleet, ctx = _fleet(request), context_of(request)
    _must_be_api_server(fleet, server_id)
    _must_be_stopped(runtime)
    await fleet.remove(server_id)
    # The broadcaster drops it from the connect snapshot and tells the dashboards.
    await fleet.publish(ServerRemovedEvent(server_id=server_id, timestamp=utc_timestamp()))
    await run_in_store(ctx.db, lambda s: s.delete_server(server_id))


def _convert(data: Any) -> ServerConfig:
    try:
        return msgspec.convert(data, ServerConfig)
    except msgspec.ValidationError as error:
        raise ApiError(422, "invalid_field", describe_validation_error(error)) from None


def _must_be_api_server(fleet: Fleet, server_id: str) -> None:
    source = fleet.sources.get(server_id)
    if source != "api":
        raise ApiError(
            409, "conflict", f"server {server_id!r} comes from the {source} and is changed there"
        )


def _must_be_stopped(runtime: ServerRuntime) -> None:
    status = runtime.state.current.status
    if status not in STOPPED_STATES:
        raise ApiError(409, "conflict", f"server {runtime.id!r} is {status}; stop it first")


# -- lifecycle -------------------------------------------------------------------------------


async def _lifecycle(
    request: Request[Any, Any, Any],
    principal: Principal,
    server_id: str,
    permission: str,
    command: Command,
) -> CommandAccepted:
    runtime = _runtime(request, principal, server_id, permission)
    accepted = await _fleet(request).command(server_id, command)
    if not accepted.ok:
        raise ApiError(409, "conflict", accepted.reason)
    return CommandAccepted(accepted=True, status=runtime.state.current.status)


@post("/api/servers/{server_id:str}/start", status_code=202)
async def start_server(
    request: Request[Any, Any, Any], principal: Caller, server_id: FromPath[str]
) -> CommandAccepted:
    return await _lifecycle(
        request, principal, server_id, "server.start", StartServer(by=principal.user)
    )


@post("/api/servers/{server_id:str}/stop", status_code=202)
async def stop_server(
    request: Request[Any, Any, Any], principal: Caller, server_id: FromPath[str]
) -> CommandAccepted:
    return await _lifecycle(
        request, principal, server_id, "server.stop", StopServer(by=principal.user)
    )


@post("/api/servers/{server_id:str}/restart", status_code=202)
async def restart_server(
    request: Request[Any, Any, Any], principal: Caller, server_id: FromPath[str]
) -> CommandAccepted:
    return await _lifecycle(
        request, principal, server_id, "server.restart", RestartServer(by=principal.user)
    )


# -- players and RCON ------------------------------------------------------------------------


async def _rcon(runtime: ServerRuntime, command: str, field: str = "command") -> str:
    """Run ``command`` through the rcon actor; a command it cannot send is a 422 on ``field``
    (the request field the command was built from)."""
    try:
        encode_command_text(command)
    except ValueError as error:
        raise ApiError(422, "invalid_field", f"{field}: {error}") from None
    address = runtime.sibling(RCON)
    if address is None or not address.alive:
        raise ApiError(409, "conflict", "RCON is not available (the actor is restarting)")
    request = RconCommand(command)
    result: RconResult = await address.call(request, request.timeout + RCON_CALL_MARGIN)
    if not result.ok:
        raise ApiError(409, "conflict", result.error or "the RCON command failed")
    return result.output


def _player(runtime: ServerRuntime, player_id: str) -> Player:
    for player in runtime.rcon.players:
        if player.id == player_id:
            return player  # type: ignore[no-any-return]  # RconFacts holds Player records
    raise ApiError(404, "not_found", f"no player {player_id!r} on {runtime.id!r}")


@get("/api/servers/{server_id:str}/players")
async def list_players(
    request: Request[Any, Any, Any], principal: Caller, server_id: FromPath[str]
) -> list[Player]:
    """The current players (IP addresses only for roles that may kick or ban)."""
    runtime = _runtime(request, principal, server_id, "players.view")
    players: list[Player] = list(runtime.rcon.players)
    if principal.can("players.kick", server_id) or principal.can("players.ban", server_id):
        return players
    return [msgspec.structs.replace(p, ip=None) for p in players]


@post("/api/servers/{server_id:str}/players/{player_id:str}/kick", status_code=202)
async def kick_player(
    request: Request[Any, Any, Any],
    principal: Caller,
    server_id: FromPath[str],
    player_id: FromPath[str],
    data: JSONBody[KickRequest],
) -> CommandAccepted:
    runtime = _runtime(request, principal, server_id, "players.kick")
    player = _player(runtime, player_id)
    if player.slot is None:
        raise ApiError(409, "conflict", "the player has no RCON slot yet")
    await _rcon(runtime, f"kick {player.slot} {data.reason}".rstrip(), "reason")
    return CommandAccepted(accepted=True, status=runtime.state.current.status)


@post("/api/servers/{server_id:str}/players/{player_id:str}/ban", status_code=202)
async def ban_player(
    request: Request[Any, Any, Any],
    principal: Caller,
    server_id: FromPath[str],
    player_id: FromPath[str],
    data: JSONBody[BanRequest],
) -> BanView:
    """Ban a connected player: applied through RCON, then recorded in SQLite.

    A ban RCON refused (link down, command failed) is not recorded: 409, nothing changed.
    """
    runtime = _runtime(request, principal, server_id, "players.ban")
    player = _player(runtime, player_id)
    if player.guid is None and player.ip is None:
        raise ApiError(409, "conflict", "the player has neither a GUID nor an IP yet")
    ctx = context_of(request)
    minutes = 0 if data.minutes is None else data.minutes
    target = player.guid or player.ip
    await _rcon(runtime, f"addBan {target} {minutes} {data.reason}".rstrip(), "reason")

    def record(store: Store) -> Any:
        return store.add_ban(
            server_id,
            guid=player.guid,
            ip=None if player.guid else player.ip,
            reason=data.reason,
            minutes=data.minutes,
            created_by=principal.user,
        )

    ban = await run_in_store(ctx.db, record)
    if player.slot is not None:
        await _rcon(runtime, f"kick {player.slot} {data.reason or 'banned'}", "reason")
    return BanView(
        id=ban.id,
        server_id=ban.server_id,
        guid=ban.guid,
        ip=ban.ip,
        reason=ban.reason,
        minutes=ban.minutes,
        created_by=ban.created_by,
        created_at=utc_timestamp(ban.created_at),
    )


@post("/api/servers/{server_id:str}/rcon", status_code=200)
async def rcon_command(
    request: Request[Any, Any, Any],
    principal: Caller,
    server_id: FromPath[str],
    data: JSONBody[RconRequest],
) -> RconResponse:
    """Run one RCON command (audited) and return its output."""
    runtime = _runtime(request, principal, server_id, "server.rcon")
    request.scope.setdefault("state", {})["audit_detail"] = {"command": data.command}
    if data.command.strip().lower().split(maxsplit=1)[:1] == [SHUTDOWN_COMMAND]:
        # Through raw RCON the exit would look like a crash and be restarted.
        raise ApiError(
            409, "conflict", f"use POST /api/servers/{server_id}/stop to shut the server down"
        )
    return RconResponse(result=await _rcon(runtime, data.command))


@post("/api/servers/{server_id:str}/message", status_code=202)
async def send_message(
    request: Request[Any, Any, Any],
    principal: Caller,
    server_id: FromPath[str],
    data: JSONBody[MessageRequest],
) -> CommandAccepted:
    """Broadcast a chat message to every player (``say -1``)."""
    runtime = _runtime(request, principal, server_id, "server.rcon")
    await _rcon(runtime, f"say -1 {data.message}", "message")
    return CommandAccepted(accepted=True, status=runtime.state.current.status)


# -- logs and metrics ------------------------------------------------------------------------


@get("/api/servers/{server_id:str}/logs")
async def get_logs(
    request: Request[Any, Any, Any],
    principal: Caller,
    server_id: FromPath[str],
    level: FromQuery[LogLevel | None] = None,
    source: FromQuery[LogSource | None] = None,
    q: FromQuery[str | None] = None,
    limit: FromQuery[int] = 200,
) -> list[LogEvent]:
    """Recent log entries, oldest first; filter by level, source and a substring."""
    runtime = _runtime(request, principal, server_id, "logs.view")
    if not 1 <= limit <= 5000:
        raise ApiError(422, "invalid_field", "limit: must be between 1 and 5000")
    needle = q.casefold() if q else None
    found = [
        entry
        for entry in runtime.log_history
        if (level is None or entry.level == level)
        and (source is None or entry.source == source)
        and (needle is None or needle in entry.message.casefold())
    ]
    return found[-limit:]


@get("/api/servers/{server_id:str}/metrics/history")
async def metrics_history(
    request: Request[Any, Any, Any], principal: Caller, server_id: FromPath[str]
) -> list[MetricsEvent]:
    """The recent metrics samples (an hour at the default interval), oldest first."""
    runtime = _runtime(request, principal, server_id, "metrics.view")
    return list(runtime.metrics_history)


@get("/api/servers/{server_id:str}/bans")
async def list_bans(
    request: Request[Any, Any, Any], principal: Caller, server_id: FromPath[str]
) -> list[BanView]:
    _runtime(request, principal, server_id, "players.ban")
    bans = context_of(request).store.list_bans(server_id)
    return [
        BanView(
            id=b.id,
            server_id=b.server_id,
            guid=b.guid,
            ip=b.ip,
            reason=b.reason,
            minutes=b.minutes,
            created_by=b.created_by,
            created_at=utc_timestamp(b.created_at),
        )
        for b in bans
    ]


ROUTES = [
    list_servers,
    get_server,
    get_status,
    create_server,
    update_server,
    delete_server,
    start_server,
    stop_server,
    restart_server,
    list_players,
    kick_player,
    ban_player,
    rcon_command,
    send_message,
    get_logs,
    metrics_history,
    list_bans,
]
