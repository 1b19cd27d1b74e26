"""``/api/servers``: the fleet as the caller's role may see it, and what it may do to it.

Servers outside the caller's scope answer 404, exactly like servers that do not exist, so a
scoped role cannot probe for ids. Lifecycle commands (start, stop, restart) take no body (none,
or ``{}``: anything else is a 422, or a 400 if it is not JSON) and answer 202 at once (progress
comes as ``serverStatus`` events) or 409 when the current state forbids them. A start (or the
restart of a stopped server) whose process cannot even be spawned is known at once: it answers
409 ``start_failed`` with the OS error (the server is then ``crashed`` with that reason, as its
``serverStatus`` says), not a 202 that would read as success.

A server's configuration (``POST``, ``PATCH``) is checked as the config file is
(`citadel.config.check_server`: 422 naming the key path), with an absolute ``install_dir``
(only the file defines relative ones), and against the other servers: an id taken, a UDP port
another server binds or its profile directory (`citadel.config.server_conflict`) is a 409
naming the key. A ``PATCH``
keeps the server's lifecycle (``Fleet.reconfigure``: same status and ``seq``, no event).

RCON requests (``/rcon``, ``/message``, kick, ban) are never retried by Citadel. Their errors:
422 a field that cannot be sent (named: ``message: ...``, ``reason: ...``); 409 RCON is not
connected because the server is not running or rejected the password; 503 (``Retry-After``)
RCON is reconnecting, or dropped while the command was in flight - try again; 504 no reply in
time, the command may or may not have been applied; 404 the player is no longer connected.
Kick and ban resolve the player id against a fresh ``players`` answer first (slots are reused).
A ban is ``addBan <GUID|IP>``, then stored, then a kick: when that kick fails the answer is
still 202 with ``banned: true, kicked: false, kickError``, because the ban was applied.

Query parameters that are read (``level``, ``source``, ``q``, ``limit`` on ``/logs``) are
validated with 422 bodies naming the parameter; a parameter a route does not take is refused
with 400 by the REST layer as a whole (``citadel.web.app``).
"""

from __future__ import annotations

from typing import Any, Final, get_args

import msgspec
from litestar import Request, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from citadel.auth import Principal
from citadel.config import ConfigError, ServerConfig, convert_server_config, server_conflict
from citadel.games.battleye import encode_command_text, find_control_character, is_blank
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
    BanOutcome,
    BanRequest,
    BanView,
    CommandAccepted,
    CommandRequest,
    KickRequest,
    MessageRequest,
    RconRequest,
    RconResponse,
    ServerStatusView,
    ServerView,
)
from citadel.servers.fleet import Command, Fleet
from citadel.servers.messages import (
    FindPlayer,
    KickPlayer,
    PlayerLookup,
    RconCommand,
    RconResult,
    RestartServer,
    StartServer,
    StopServer,
)
from citadel.servers.runtime import RCON, ServerRuntime
from citadel.store import Ban, Store
from citadel.store.actor import run_in_store
from citadel.web.context import context_of
from citadel.web.errors import ApiError, shown
from citadel.web.guards import Caller, require

RCON_CALL_MARGIN = 2.0
#: Refused on ``/rcon``: the stop ladder sends it, so that the exit is not taken for a crash.
SHUTDOWN_COMMAND = "#shutdown"
STOPPED_STATES = ("stopped", "crashed")
#: ``Retry-After`` of a 503 while RCON reconnects (its backoff starts at 1 s).
RCON_RETRY_AFTER: Final = 5
#: How each ``RconResult.failure`` reaches a client: status and machine code.
RCON_FAILURES: Final[dict[str, tuple[int, str]]] = {
    "invalid": (422, "invalid_field"),
    "not_configured": (409, "conflict"),
    "not_connected": (409, "conflict"),
    "unavailable": (503, "unavailable"),
    "no_reply": (504, "no_reply"),
    "bad_reply": (502, "bad_reply"),
    "gone": (404, "not_found"),
}
LOG_LIMIT_DEFAULT: Final = 200
LOG_LIMIT_MAX: Final = 5000
#: Longest ``q`` of a log query.
LOG_QUERY_MAX: Final = 200
LOG_LEVELS: Final[tuple[str, ...]] = get_args(LogLevel)
LOG_SOURCES: Final[tuple[str, ...]] = get_args(LogSource)


def _fleet(request: Request[Any, Any, Any]) -> Fleet:
    return context_of(request).servers


def visible_server(
    request: Request[Any, Any, Any], principal: Principal, server_id: str
) -> ServerView:
    """Return the server, or 404 - also when the caller's scope excludes it (no probing)."""
    server = _fleet(request).get_server(server_id)
    if server is None or not principal.can("server.view", server_id):
        raise ApiError(404, "not_found", f"no server {shown(server_id)}")
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
        raise ApiError(404, "not_found", f"no server {shown(server_id)}")
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
    async with fleet.changes:
        if fleet.get_server(config.id) is not None:
            raise ApiError(409, "conflict", f"server {config.id!r} already exists")
        _must_not_conflict(fleet, config)
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
    """Change an API-created server's settings; refused while it runs.

    The server keeps its lifecycle: status, ``seq`` and reason stay as they were and no
    ``serverStatus`` is published (a pending automatic restart is cancelled, a ``stopped``).
    """
    fleet, ctx = _fleet(request), context_of(request)
    async with fleet.changes:
        runtime = _runtime(request, principal, server_id, "*")
        _must_be_api_server(fleet, server_id)
        _must_be_stopped(runtime)
        if "id" in data and data["id"] != server_id:
            raise ApiError(422, "invalid_field", "id: cannot be changed")
        merged = {**msgspec.to_builtins(runtime.config), **data}
        config = _convert(merged)
        _must_not_conflict(fleet, config)
        await run_in_store(ctx.db, lambda s: s.update_server(config))
        await fleet.reconfigure(config, f"{principal.user} (configuration change)")
    view = fleet.get_server(server_id)
    assert view is not None
    return view


@delete("/api/servers/{server_id:str}", status_code=204)
async def delete_server(
    request: Request[Any, Any, Any], principal: Caller, server_id: FromPath[str]
) -> None:
    """Remove an API-created server; refused while it runs."""
    fleet, ctx = _fleet(request), context_of(request)
    async with fleet.changes:
        runtime = _runtime(request, principal, server_id, "*")
        _must_be_api_server(fleet, server_id)
        _must_be_stopped(runtime)
        await fleet.remove(server_id)
        # The broadcaster drops it from the connect snapshot and tells the dashboards.
        await fleet.publish(ServerRemovedEvent(server_id=server_id, timestamp=utc_timestamp()))
        await run_in_store(ctx.db, lambda s: s.delete_server(server_id))


def _convert(data: Any) -> ServerConfig:
    try:
        return convert_server_config(data, absolute_install_dir=True)
    except ConfigError as error:
        raise ApiError(422, "invalid_field", str(error)) from None


def _must_not_conflict(fleet: Fleet, config: ServerConfig) -> None:
    """409 when ``config`` would share a UDP port or its profile directory with another
    server (naming the key)."""
    others = (
        (f"server {server_id!r}", runtime.config)
        for server_id, runtime in fleet.runtimes.items()
        if server_id != config.id
    )
    conflict = server_conflict(config, others)
    if conflict is not None:
        raise ApiError(409, "conflict", conflict)


def _must_be_api_server(fleet: Fleet, server_id: str) -> None:
    source = fleet.sources.get(server_id)
    if source != "api":
        raise ApiError(
            409, "conflict", f"server {server_id!r} comes from the {source} and is changed there"
        )


def _must_be_stopped(runtime: ServerRuntime) -> None:
    status = runtime.state.current.status
    if status == "stopping":
        raise ApiError(
            409, "conflict", f"server {runtime.id!r} is stopping; try again once it is stopped"
        )
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
    fleet = _fleet(request)
    accepted = await fleet.command(server_id, command)
    if not accepted.ok:
        raise ApiError(409, "conflict", accepted.reason)
    if accepted.failure is not None:
        raise ApiError(409, "start_failed", accepted.failure)
    return CommandAccepted(accepted=True, status=runtime.state.current.status)


@post("/api/servers/{server_id:str}/start", status_code=202)
async def start_server(
    request: Request[Any, Any, Any],
    principal: Caller,
    server_id: FromPath[str],
    data: JSONBody[CommandRequest | None] = None,
) -> CommandAccepted:
    return await _lifecycle(
        request, principal, server_id, "server.start", StartServer(by=principal.user)
    )


@post("/api/servers/{server_id:str}/stop", status_code=202)
async def stop_server(
    request: Request[Any, Any, Any],
    principal: Caller,
    server_id: FromPath[str],
    data: JSONBody[CommandRequest | None] = None,
) -> CommandAccepted:
    return await _lifecycle(
        request, principal, server_id, "server.stop", StopServer(by=principal.user)
    )


@post("/api/servers/{server_id:str}/restart", status_code=202)
async def restart_server(
    request: Request[Any, Any, Any],
    principal: Caller,
    server_id: FromPath[str],
    data: JSONBody[CommandRequest | None] = None,
) -> CommandAccepted:
    return await _lifecycle(
        request, principal, server_id, "server.restart", RestartServer(by=principal.user)
    )


# -- players and RCON ------------------------------------------------------------------------


def _sendable(field: str, text: str) -> None:
    """Refuse a request field that cannot travel in an RCON command line (422 naming it)."""
    char = find_control_character(text)
    if char is not None:
        raise ApiError(
            422,
            "invalid_field",
            f"{field}: must not contain control characters or line breaks "
            f"(found U+{ord(char):04X})",
        )


def _rcon_error(result: RconResult, field: str = "command") -> ApiError:
    """The API error for a failed RCON request (see the module docstring)."""
    status, code = RCON_FAILURES.get(result.failure or "", (409, "conflict"))
    message = result.error or "the RCON command failed"
    if status == 422:
        message = f"{field}: {message}"
    headers = {"Retry-After": str(RCON_RETRY_AFTER)} if status == 503 else None
    return ApiError(status, code, message, headers)


async def _ask(
    runtime: ServerRuntime, request: RconCommand | KickPlayer | FindPlayer, commands: int = 1
) -> Any:
    """Call the rcon actor (``commands``: how many RCON round trips the request takes)."""
    address = runtime.sibling(RCON)
    if address is None or not address.alive:
        raise ApiError(
            503,
            "unavailable",
            "RCON is not available (its actor is restarting); try again shortly",
            {"Retry-After": str(RCON_RETRY_AFTER)},
        )
    return await address.call(request, commands * request.timeout + RCON_CALL_MARGIN)


async def _rcon(runtime: ServerRuntime, command: str, field: str = "command") -> str:
    """Run ``command`` through the rcon actor; errors as in the module docstring (a command it
    cannot send is a 422 on ``field``, the request field the command was built from)."""
    try:
        encode_command_text(command)
    except ValueError as error:
        raise ApiError(422, "invalid_field", f"{field}: {error}") from None
    result: RconResult = await _ask(runtime, RconCommand(command))
    if not result.ok:
        raise _rcon_error(result, field)
    return result.output


def _player(runtime: ServerRuntime, player_id: str) -> Player:
    """A player of the last list (404 otherwise: ids never listed cost no RCON traffic)."""
    for player in runtime.rcon.players:
        if player.id == player_id:
            return player  # type: ignore[no-any-return]  # RconFacts holds Player records
    raise ApiError(404, "not_found", f"no player {shown(player_id)} on {runtime.id!r}")


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
    _player(runtime, player_id)
    _sendable("reason", data.reason)
    # The rcon actor re-reads the list and kicks the slot this id has now (or answers 404).
    result: RconResult = await _ask(runtime, KickPlayer(player_id, data.reason), commands=2)
    if not result.ok:
        raise _rcon_error(result, "reason")
    return CommandAccepted(accepted=True, status=runtime.state.current.status)


@post("/api/servers/{server_id:str}/players/{player_id:str}/ban", status_code=202)
async def ban_player(
    request: Request[Any, Any, Any],
    principal: Caller,
    server_id: FromPath[str],
    player_id: FromPath[str],
    data: JSONBody[BanRequest],
) -> BanOutcome:
    """Ban a listed player: ``addBan`` by GUID (by IP before the GUID is known), recorded in
    SQLite, then a kick.

    The player is looked up in a fresh ``players`` answer first, for the newest GUID; one who
    left meanwhile is banned by what the list showed (a GUID or IP is the person's, whatever
    slot they had) and not kicked. A ban RCON refused is not recorded (nothing changed). A kick
    that fails after the ban leaves the ban in place: 202 with ``kicked: false, kickError``.
    """
    runtime = _runtime(request, principal, server_id, "players.ban")
    listed = _player(runtime, player_id)
    _sendable("reason", data.reason)
    lookup: PlayerLookup = await _ask(runtime, FindPlayer(player_id))
    if not lookup.result.ok:
        raise _rcon_error(lookup.result, "reason")
    player = lookup.player or listed
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
    if lookup.player is None:
        kick = RconResult(
            ok=False, error=f"player {player_id!r} is no longer connected", failure="gone"
        )
    else:
        kick = await _ask(runtime, KickPlayer(player_id, data.reason or "banned"), commands=2)
    return ban_outcome(ban, kick)


def ban_outcome(ban: Ban, kick: RconResult) -> BanOutcome:
    """The answer to an applied and recorded ``ban``, with how the kick after it went."""
    return BanOutcome(
        id=ban.id,
        server_id=ban.server_id,
        guid=ban.guid,
        ip=ban.ip,
        reason=ban.reason,
        minutes=ban.minutes,
        created_by=ban.created_by,
        created_at=utc_timestamp(ban.created_at),
        banned=True,
        kicked=kick.ok,
        kick_error=None if kick.ok else kick.error or "the kick failed",
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
    _sendable("command", data.command)
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
    _sendable("message", data.message)
    if is_blank(data.message):
        raise ApiError(422, "invalid_field", "message: must not be blank")
    await _rcon(runtime, f"say -1 {data.message}", "message")
    return CommandAccepted(accepted=True, status=runtime.state.current.status)


# -- logs and metrics ------------------------------------------------------------------------


def _one_of(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None or value in allowed:
        return value
    raise ApiError(
        422, "invalid_field", f"{name}: must be one of {', '.join(allowed)} (got {value!r})"
    )


def _log_limit(value: str | None) -> int:
    if value is None:
        return LOG_LIMIT_DEFAULT
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= LOG_LIMIT_MAX:
        raise ApiError(
            422,
            "invalid_field",
            f"limit: must be a whole number from 1 to {LOG_LIMIT_MAX} (got {value[:40]!r})",
        )
    return int(text)


@get("/api/servers/{server_id:str}/logs")
async def get_logs(
    request: Request[Any, Any, Any],
    principal: Caller,
    server_id: FromPath[str],
    level: FromQuery[str | None] = None,
    source: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
    limit: FromQuery[str | None] = None,
) -> list[LogEvent]:
    """Recent log entries, oldest first; filter by level, source and a substring.

    ``level`` and ``source`` take one value each, ``q`` up to 200 characters (matched
    case-insensitively), ``limit`` 1-5000 (default 200, the newest kept).
    """
    runtime = _runtime(request, principal, server_id, "logs.view")
    wanted_level = _one_of("level", level, LOG_LEVELS)
    wanted_source = _one_of("source", source, LOG_SOURCES)
    if q is not None and len(q) > LOG_QUERY_MAX:
        raise ApiError(
            422, "invalid_field", f"q: at most {LOG_QUERY_MAX} characters (got {len(q)})"
        )
    count = _log_limit(limit)
    needle = q.casefold() if q else None
    found = [
        entry
        for entry in runtime.log_history
        if (wanted_level is None or entry.level == wanted_level)
        and (wanted_source is None or entry.source == wanted_source)
        and (needle is None or needle in entry.message.casefold())
    ]
    return found[-count:]


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
