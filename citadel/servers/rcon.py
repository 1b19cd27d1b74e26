"""The ``rcon`` actor of one game server: the BattlEye RCON link, the player list, commands.

It watches `ServerState` and holds one RCON session while the current run is ready and
``running`` or ``stopping`` (formats.md §2.6: logging in before ``Player connect enabled``
breaks later attempts). A session that dies is re-opened with capped, jittered backoff; a new
run (the game restarted) starts a fresh session at once. A rejected password stops the
attempts until the run changes, because BattlEye blocks an IP after several failed logins.

While connected it asks for ``players`` every `PLAYERS_INTERVAL` seconds, and at once after a
server message about a player connecting, getting a GUID, being kicked or disconnecting. A
``players`` event goes out only when the list changed; an empty list goes out once when the
link goes away or the run ends. Every server message becomes a ``log`` event with source
``rcon``. `RconCommand` and `KickPlayer` calls are answered with `RconResult`, `FindPlayer`
with `PlayerLookup`, never with an exception.

Failures are never retried here (`RconResult.failure` says which kind): a command asked for
while the link is down or re-logging in fails at once (``unavailable``, nothing was sent), and
one whose session dropped while it was in flight fails too (``unavailable``: it may or may not
have reached the server). A retry after the re-login could apply it twice - harmless for a
kick, visible for a ``say`` - so the caller, who knows which it is, decides. A command that
got no reply after the client's resends (``no_reply``) may have been applied; when nothing
else arrived either, the client ends the session and it is re-opened.

Kicks go by slot (``kick <n>``), and slots are reused (formats.md §1.8): `KickPlayer` and
`FindPlayer` therefore re-read ``players`` first and resolve the id in that fresh answer, so a
kick never hits whoever took the slot since the last poll (the window left is one round trip).

Bans recorded in Citadel's store are re-applied after every (re)connect: the ``bans`` list is
compared with the store's active bans of this server and each missing one is sent again with
``addBan <GUID|IP> <minutes left> <reason>`` (a lost or reset ``bans.txt`` does not unban
anyone). Bans Citadel did not make are left alone, and nothing is ever removed from
BattlEye's list: an expired Citadel ban is simply not re-applied (BattlEye expires its own).

Player ids (``Player.id``, what ``/players/{playerId}/kick`` takes) are built from the slot
``#N`` and a digest of the player's address, port and name, never from ``#N`` alone (slots are
reused, formats.md §1.8): ``"<slot>-<8 hex>"``. An id is kept while the same player stays in
the slot (the GUID becoming known changes nothing), and a Citadel restarted meanwhile derives
the same id again. Resolve an id to a slot through ``runtime.rcon.players``.

Single writer of ``runtime.rcon`` (`RconFacts`). Its ``log`` events (source ``rcon``) are
appended to ``runtime.log_history`` as they are published, so ``GET …/logs?source=rcon`` finds
them; its ``system`` lines go through the logs actor like everyone's.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import anyio
import msgspec

from actors import (
    Actor,
    ActorError,
    ActorExited,
    Backoff,
    ChildSpec,
    MailboxFull,
    Restart,
    backoff_delay,
    next_attempt,
)
from citadel.games.battleye import (
    CommandTimeout,
    LoginFailed,
    RConClient,
    RConDisconnected,
    RConSettings,
    RConStatistics,
    RConUnreachable,
    encode_command_text,
    open_rcon,
)
from citadel.games.dayz.rcon_text import Ban as ListedBan
from citadel.games.dayz.rcon_text import (
    GuidVerified,
    PlayerConnected,
    PlayerDisconnected,
    PlayerGuid,
    PlayerKicked,
    PlayerTable,
    RconPlayer,
    ServerMessage,
    parse_bans,
    parse_players,
    parse_server_message,
)
from citadel.messages import (
    LogEvent,
    LogLevel,
    LogSource,
    Player,
    PlayersEvent,
    utc_timestamp,
)
from citadel.servers.messages import (
    FindPlayer,
    KickPlayer,
    PlayerLookup,
    RconCommand,
    RconFailure,
    RconResult,
    SystemLog,
)
from citadel.servers.runtime import LOGS, RCON, ServerRuntime, ServerSnapshot
from citadel.store import Ban as StoredBan
from citadel.store.actor import run_in_store

__all__ = [
    "PLAYERS_INTERVAL",
    "RconActor",
    "RconActorStatistics",
    "RconMemory",
    "bans_to_reapply",
    "identify_players",
    "is_bans_reply",
    "is_players_reply",
    "new_player_id",
    "refreshes_players",
    "same_player",
    "should_connect",
    "spec",
]

# --- defaults -------------------------------------------------------------------------------
#: Seconds between ``players`` polls while connected.
PLAYERS_INTERVAL: Final = 5.0
#: Bound on one ``players`` poll (two resends at the client's 2 s interval).
PLAYERS_TIMEOUT: Final = 4.0
#: Server messages waiting to be published; beyond this the oldest are dropped (and counted).
MESSAGE_BACKLOG: Final = 1000
#: Reconnect backoff while the run stays the same (1 s doubling to 30 s, half jitter).
RECONNECT_BACKOFF: Final = Backoff(base=1.0, cap=30.0, jitter=0.5, reset_after=60.0)
#: Statuses during which the link is wanted (``stopping``: the stop ladder sends ``#shutdown``).
CONNECT_STATUSES: Final = frozenset({"running", "stopping"})
#: Commands after which the player list is re-read at once.
PLAYER_COMMANDS: Final = frozenset({"kick", "ban"})
#: Bound on the ``bans`` read and on each ``addBan`` when bans are re-applied after a connect.
BANS_TIMEOUT: Final = 8.0
#: The store actor's name in the registry (``citadel.app``); without it bans are not re-applied.
STORE_NAME: Final = "store"
NOT_CONNECTED: Final = "RCON is not connected: the server is not running (or not ready yet)"
LOGIN_REJECTED: Final = (
    "RCON is not connected: the server rejected the RCON password; Citadel retries after the "
    "server restarts"
)
RECONNECTING: Final = "RCON is reconnecting to the server; nothing was sent, try again shortly"
NOT_CONFIGURED: Final = "RCON is not configured for this server"
# ---------------------------------------------------------------------------------------------


# --- decisions (pure) ------------------------------------------------------------------------


def should_connect(snapshot: ServerSnapshot) -> bool:
    """Whether the run in ``snapshot`` wants an RCON session (ready, running or stopping)."""
    return (
        snapshot.run is not None
        and snapshot.ready
        and not snapshot.exited
        and snapshot.status in CONNECT_STATUSES
    )


def refreshes_players(message: ServerMessage) -> bool:
    """Whether a server message means the player list changed (connect, GUID, kick, leave)."""
    return isinstance(
        message, PlayerConnected | PlayerGuid | GuidVerified | PlayerKicked | PlayerDisconnected
    )


def is_players_reply(text: str, table: PlayerTable) -> bool:
    """Whether ``text`` is a ``players`` output (and not, say, ``Unknown command``).

    An empty table is only believed with the ``(0 players in total)`` footer or the header, so
    a reply that is something else never empties the list.
    """
    return bool(table.players) or table.total is not None or "Players on server:" in text


def new_player_id(row: RconPlayer) -> str:
    """The id of a player first seen in ``row``: ``<slot>-<8 hex>``, a digest of the connection.

    The digest covers the address, port and name (not the GUID, which may become known later,
    and not the address itself: ids go to viewers who may not see IPs), so the id is the same
    before and after BattlEye verifies the GUID and after Citadel restarts while the player
    stays connected.
    """
    digest = hashlib.blake2s(
        f"{row.ip}:{row.port}/{row.name}".encode(errors="replace"), digest_size=4
    ).hexdigest()
    return f"{row.slot}-{digest}"


def same_player(prior: Player, row: RconPlayer) -> bool:
    """Whether ``row`` is the player ``prior`` in the same slot (not a newcomer in a reused slot).

    Equal GUIDs decide. A GUID that has just become known keeps the player when address and
    name are unchanged; a GUID never goes back to unknown, so that means a newcomer.
    """
    if prior.slot != row.slot:
        return False
    if row.guid is not None and prior.guid is not None:
        return row.guid == prior.guid
    if row.guid is None and prior.guid is not None:
        return False
    return prior.ip == row.ip and prior.name == row.name


def identify_players(rows: Iterable[RconPlayer], previous: Iterable[Player]) -> tuple[Player, ...]:
    """Turn ``players`` rows into `Player` records, keeping the ids of players still present."""
    by_slot = {p.slot: p for p in previous if p.slot is not None}
    players: list[Player] = []
    for row in rows:
        prior = by_slot.get(row.slot)
        player_id = prior.id if prior is not None and same_player(prior, row) else None
        players.append(
            Player(
                id=player_id or new_player_id(row),
                name=row.name,
                ping=row.ping,
                guid=row.guid,
                slot=row.slot,
                ip=row.ip,
            )
        )
    return tuple(players)


def is_bans_reply(text: str) -> bool:
    """Whether ``text`` is a ``bans`` output (it has a section header even when empty)."""
    return "GUID Bans:" in text or "IP Bans:" in text


def bans_to_reapply(
    stored: Iterable[StoredBan], listed: Iterable[ListedBan], now: float
) -> list[str]:
    """The ``addBan`` commands that bring Citadel's active bans back into BattlEye's list.

    A stored ban is present when the list has an entry for its GUID (case-insensitive) or IP,
    whatever its time left. Missing ones are re-added with the minutes they still have (at
    least one; 0 = permanent, as BattlEye writes it); expired ones are not.
    """
    present = {(ban.kind, ban.id.lower()) for ban in listed}
    commands: list[str] = []
    for ban in stored:
        if ban.guid:
            key = ("guid", ban.guid.lower())
        elif ban.ip:
            key = ("ip", ban.ip.lower())
        else:
            continue
        if key in present:
            continue
        if ban.expires_at is None:
            minutes = 0
        else:
            left = ban.expires_at - now
            if left <= 0:
                continue
            minutes = max(1, math.ceil(left / 60))
        commands.append(f"addBan {key[1]} {minutes} {ban.reason}".rstrip())
    return commands


# --- the actor -------------------------------------------------------------------------------


@dataclass
class RconMemory:
    """What outlives one incarnation of the actor (held by `spec`'s factory).

    Attributes:
        login_failed_run: The incarnation of the run whose login was rejected; no attempt is
            made again until the run changes (BattlEye blocks IPs after failed logins).
    """

    login_failed_run: int | None = None


class RconActorStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one actor incarnation (``client``: the current session's, if any)."""

    connected: bool
    connects: int
    login_failures: int
    polls: int
    poll_errors: int
    bad_replies: int
    poll_seconds: float
    players_events: int
    messages: int
    dropped_messages: int
    ban_checks: int
    bans_reapplied: int
    client: RConStatistics | None


RconRequest = RconCommand | KickPlayer | FindPlayer


class RconActor(Actor[RconRequest]):
    """Keeps the server's RCON session, player list and rcon log lines (see module docstring).

    Args:
        runtime: The server's shared runtime.
        players_interval: Seconds between ``players`` polls.
        settings: RCON client timing; the client's defaults when omitted.
        backoff: Reconnect backoff while the run stays the same.
        memory: State kept across incarnations (see `RconMemory`).
    """

    def __init__(
        self,
        runtime: ServerRuntime,
        *,
        players_interval: float = PLAYERS_INTERVAL,
        settings: RConSettings | None = None,
        backoff: Backoff = RECONNECT_BACKOFF,
        memory: RconMemory | None = None,
    ) -> None:
        self.runtime = runtime
        self._interval = players_interval
        self._settings = settings
        self._backoff = backoff
        self._memory = memory if memory is not None else RconMemory()
        self._client: RConClient | None = None
        self._wake = anyio.Event()
        self._backlog: deque[str] = deque()
        self._backlog_ready = anyio.Event()
        self._connects = 0
        self._login_failures = 0
        self._polls = 0
        self._poll_errors = 0
        self._bad_replies = 0
        self._poll_seconds = 0.0
        self._players_events = 0
        self._messages = 0
        self._dropped = 0
        self._ban_checks = 0
        self._bans_reapplied = 0

    def statistics(self) -> RconActorStatistics:
        """Return the counters of this incarnation."""
        client = self._client
        return RconActorStatistics(
            connected=self.runtime.rcon.connected,
            connects=self._connects,
            login_failures=self._login_failures,
            polls=self._polls,
            poll_errors=self._poll_errors,
            bad_replies=self._bad_replies,
            poll_seconds=self._poll_seconds,
            players_events=self._players_events,
            messages=self._messages,
            dropped_messages=self._dropped,
            ban_checks=self._ban_checks,
            bans_reapplied=self._bans_reapplied,
            client=client.statistics() if client is not None else None,
        )

    async def on_start(self) -> None:
        # A previous incarnation's session died with it.
        self.runtime.rcon.connected = False
        self.start_soon(self._publish_messages)
        if self.runtime.config.rcon is not None:
            self.start_soon(self._follow_state)

    async def handle(self, message: RconRequest) -> RconResult | PlayerLookup:
        if isinstance(message, RconCommand):
            return await self._command(message.command, message.timeout)
        if isinstance(message, KickPlayer):
            return await self._kick(message)
        if isinstance(message, FindPlayer):
            return await self._find(message.player_id, message.timeout)
        return _failed("invalid", f"unsupported message {type(message).__name__}")

    # --- commands ------------------------------------------------------------------------------

    def _not_connected(self) -> RconResult:
        """Why there is no session: the server is not up (409), or it is coming back (503)."""
        snapshot = self.runtime.state.current
        run = snapshot.run
        if run is not None and self._memory.login_failed_run == run.incarnation:
            return _failed("not_connected", LOGIN_REJECTED)
        if should_connect(snapshot):
            return _failed("unavailable", RECONNECTING)
        return _failed("not_connected", NOT_CONNECTED)

    async def _command(self, command: str, timeout: float) -> RconResult:  # noqa: ASYNC109
        if self.runtime.config.rcon is None:
            return _failed("not_configured", NOT_CONFIGURED)
        try:
            encode_command_text(command)
        except ValueError as exc:
            return _failed("invalid", str(exc))
        if not timeout > 0:  # also refuses NaN
            return _failed("invalid", "timeout must be a positive number of seconds")
        client = self._client
        if client is None or not client.connected:
            return self._not_connected()
        no_reply = _failed(
            "no_reply",
            f"no reply from the server within {timeout:g} s; the command may or may not have "
            "been applied",
        )
        # The client honours its deadline; the scope also covers waiting for a free slot.
        with anyio.move_on_after(timeout):
            try:
                text = await client.command(command, timeout=timeout)
            except CommandTimeout:
                return no_reply
            except RConDisconnected as exc:
                lost = (
                    f"RCON disconnected while the command was in flight ({exc.reason}); it may "
                    "or may not have reached the server"
                )
                snapshot = self.runtime.state.current
                if should_connect(snapshot):
                    return _failed(
                        "unavailable",
                        f"{lost}. It is not retried: RCON is reconnecting, try again shortly",
                    )
                return _failed("not_connected", f"{lost}; the server is {snapshot.status}")
            self.runtime.rcon.last_answer = anyio.current_time()
            if command.split(maxsplit=1)[0].lower() in PLAYER_COMMANDS:  # not blank
                self._wake.set()
            return RconResult(ok=True, output=text)
        return no_reply

    async def _find(self, player_id: str, timeout: float) -> PlayerLookup:  # noqa: ASYNC109
        """Read ``players`` now and find ``player_id`` in it (the list is published too)."""
        result = await self._command("players", timeout)
        if not result.ok:
            return PlayerLookup(result)
        table = parse_players(result.output)
        if not is_players_reply(result.output, table):
            self._bad_replies += 1
            return PlayerLookup(
                _failed("bad_reply", f"unexpected answer to players: {result.output[:200]!r}")
            )
        players = identify_players(table.players, self.runtime.rcon.players)
        await self._set_players(players)
        found = next((p for p in players if p.id == player_id), None)
        return PlayerLookup(result, found)

    async def _kick(self, message: KickPlayer) -> RconResult:
        lookup = await self._find(message.player_id, message.timeout)
        if not lookup.result.ok:
            return lookup.result
        player = lookup.player
        if player is None or player.slot is None:
            return _failed("gone", f"player {message.player_id!r} is no longer connected")
        # Resolved a moment ago in a fresh list: the slot is this player's.
        return await self._command(f"kick {player.slot} {message.reason}".rstrip(), message.timeout)

    async def _reapply_bans(self, client: RConClient) -> None:
        """Bring the store's active bans of this server back into BattlEye's list."""
        store = self.runtime.registry.whereis(STORE_NAME)
        if store is None:
            return  # no store (a test without one): nothing recorded to re-apply
        server_id = self.runtime.id
        try:
            stored: list[StoredBan] = await run_in_store(store, lambda s: s.list_bans(server_id))
        except ActorError:
            await self._system_log("warn", "RCON: could not read the stored bans to re-apply")
            return
        if not stored:
            return
        try:
            text = await client.command("bans", timeout=BANS_TIMEOUT)
            if not is_bans_reply(text):
                await self._system_log(
                    "warn",
                    f"RCON: unexpected answer to bans, stored bans not re-applied: {text[:200]!r}",
                )
                return
            applied = 0
            for command in bans_to_reapply(stored, parse_bans(text), time.time()):
                try:
                    await client.command(command, timeout=BANS_TIMEOUT)
                except ValueError as exc:  # not sendable (e.g. a reason from an older version)
                    await self._system_log(
                        "warn", f"RCON: a stored ban cannot be re-applied: {exc}"
                    )
                    continue
                applied += 1
                self._bans_reapplied += 1
        except (CommandTimeout, RConDisconnected):
            return  # no answer (or the link went down): the next connect tries again
        self._ban_checks += 1
        if applied:
            await self._system_log(
                "info",
                f"RCON: re-applied {applied} ban(s) recorded by Citadel that were missing from "
                "BattlEye's list",
            )

    # --- session lifecycle -----------------------------------------------------------------

    async def _follow_state(self) -> None:
        state = self.runtime.state
        snapshot = state.current
        while True:
            run = snapshot.run
            if (
                run is not None
                and should_connect(snapshot)
                and self._memory.login_failed_run != run.incarnation
            ):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self._keep_connected, run.incarnation)
                    while True:
                        snapshot = await state.wait_changed(snapshot.version)
                        current = snapshot.run
                        if not (
                            should_connect(snapshot)
                            and current is not None
                            and current.incarnation == run.incarnation
                        ):
                            break
                    tasks.cancel_scope.cancel()
                # Published here, outside the cancelled scope, so the empty list does go out.
                await self._set_players(())
                continue
            await self._set_players(())
            snapshot = await state.wait_changed(snapshot.version)

    async def _keep_connected(self, incarnation: int) -> None:
        config = self.runtime.config.rcon
        assert config is not None  # _follow_state only runs with an rcon table
        attempt = -1
        while True:
            started: float | None = None
            self._connects += 1
            try:
                async with open_rcon(
                    config.host,
                    config.port,
                    config.password,
                    on_message=self._on_message,
                    settings=self._settings,
                ) as client:
                    started = anyio.current_time()
                    self._client = client
                    self.runtime.rcon.connected = True
                    self.runtime.rcon.last_answer = started
                    async with anyio.create_task_group() as tasks:
                        tasks.start_soon(self._poll_loop, client)
                        tasks.start_soon(self._reapply_bans, client)
                        await client.wait_disconnected()
                        tasks.cancel_scope.cancel()
            except LoginFailed:
                self._login_failures += 1
                self._memory.login_failed_run = incarnation
                await self._system_log(
                    "warn",
                    f"RCON login to {config.host}:{config.port} was rejected (wrong password); "
                    "not retrying until the server restarts, as BattlEye blocks the address "
                    "after repeated failures",
                )
                return
            except (RConUnreachable, OSError):
                pass  # not up (yet), or the socket could not be made: retry with backoff
            except ValueError as exc:  # a password the protocol cannot carry: retry is useless
                self._memory.login_failed_run = incarnation
                await self._system_log("error", f"RCON cannot log in: {exc}")
                return
            finally:
                self._client = None
                self.runtime.rcon.connected = False
            await self._set_players(())
            uptime = 0.0 if started is None else anyio.current_time() - started
            attempt = next_attempt(self._backoff, attempt, uptime)
            await anyio.sleep(backoff_delay(self._backoff, attempt, random.random))

    # --- players ---------------------------------------------------------------------------

    async def _poll_loop(self, client: RConClient) -> None:
        while True:
            # Replaced before the poll: a message arriving during it triggers another one.
            self._wake = anyio.Event()
            await self._poll(client)
            with anyio.move_on_after(self._interval):
                await self._wake.wait()

    async def _poll(self, client: RConClient) -> None:
        began = anyio.current_time()
        try:
            text = await client.command("players", timeout=PLAYERS_TIMEOUT)
        except CommandTimeout:
            self._poll_errors += 1
            return
        except RConDisconnected:
            return  # the session loop sees it through wait_disconnected
        now = anyio.current_time()
        self._polls += 1
        self._poll_seconds += now - began
        self.runtime.rcon.last_answer = now
        table = parse_players(text)
        if not is_players_reply(text, table):
            self._bad_replies += 1
            return
        await self._set_players(identify_players(table.players, self.runtime.rcon.players))

    async def _set_players(self, players: tuple[Player, ...]) -> None:
        facts = self.runtime.rcon
        if players == facts.players:
            return
        facts.players = players
        self._players_events += 1
        await self.runtime.publish(PlayersEvent(server_id=self.runtime.id, players=list(players)))

    # --- server messages -------------------------------------------------------------------

    def _on_message(self, text: str) -> None:
        # Runs in the client's receiver task: must not block and must not raise.
        self._messages += 1
        self.runtime.rcon.last_answer = anyio.current_time()
        if len(self._backlog) >= MESSAGE_BACKLOG:
            self._backlog.popleft()
            self._dropped += 1
        self._backlog.append(text)
        self._backlog_ready.set()

    async def _publish_messages(self) -> None:
        while True:
            await self._backlog_ready.wait()
            self._backlog_ready = anyio.Event()
            while self._backlog:
                text = self._backlog.popleft()
                names = (p.name for p in self.runtime.rcon.players)
                if refreshes_players(parse_server_message(text, names)):
                    self._wake.set()
                await self._log("info", "rcon", text)

    async def _system_log(self, level: LogLevel, message: str) -> None:
        """Hand a line to the logs actor (which keeps the history); publish it if it is down."""
        logs = self.runtime.sibling(LOGS)
        if logs is not None:
            try:
                logs.cast_nowait(SystemLog(level=level, message=message))
                return
            except (ActorExited, MailboxFull):
                pass
        await self._log(level, "system", message)

    async def _log(self, level: LogLevel, source: LogSource, message: str) -> None:
        """Publish a ``log`` event and keep it in the server's queryable history."""
        event = LogEvent(
            server_id=self.runtime.id,
            level=level,
            source=source,
            message=message,
            timestamp=utc_timestamp(),
            file=None,
        )
        self.runtime.log_history.append(event)
        await self.runtime.publish(event)


def _failed(failure: RconFailure, error: str) -> RconResult:
    return RconResult(ok=False, error=error, failure=failure)


def spec(runtime: ServerRuntime) -> ChildSpec:
    """The child spec of a server's rcon actor (permanent; memory shared by incarnations)."""
    memory = RconMemory()
    return ChildSpec(
        id=RCON,
        start=lambda: RconActor(runtime, memory=memory),
        restart=Restart.PERMANENT,
        name=runtime.child_name(RCON),
    )
