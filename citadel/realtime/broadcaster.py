"""The broadcaster: the one actor that talks Socket.IO.

Every other actor publishes typed events (`citadel.messages`) into this actor's mailbox with
`publish`. The broadcaster encodes each event once with msgspec and hands the bytes to the
`FanoutEngine`, which writes them to every client allowed to see them.

Its mailbox keeps the delivery promises of DESIGN §3 under overload, by message kind:

* ``serverStatus`` and one-off events (notifications, progress, backups...) wait for room:
  a status transition is never dropped;
* state events (``players``, ``metrics``, ``mapData``, ``mods``) coalesce per (event, server):
  the latest value wins;
* ``log`` lines drop oldest-first, each drop reported.

It also keeps the latest state per server (`SnapshotCache`) for the snapshot a client receives
on connect, and re-checks the token of every open socket once a second and whenever a login,
logout, password or role changes (`AuthChanged`): a revoked, expired or disabled user's socket is
disconnected, a changed role re-scopes it. Who a socket belongs to is what the token verifier
derived from its token (`Verified`), never anything else the client sent.

A deleted server reaches it as a ``serverRemoved`` event (`Removal`, published by the REST
handler that deleted it): the server leaves the snapshot, and dashboards that saw it are told.
That event can be lost: published while this actor was down (restarting after a crash), or
queued in the mailbox of an incarnation that crashed. So the cache does not rely on it alone:
it knows which servers exist (`SnapshotCache.track`, the fleet), a connect snapshot never
includes one that does not, and every new incarnation of the broadcaster first forgets the
servers that are gone and sends ``serverRemoved`` for each to the dashboards connected meanwhile.

``serverStatus`` ``seq`` is passed through in the order the server's process actor published
it (its envelope is never dropped or coalesced). A status whose seq and status repeat the last
one published for that server is not sent again: every client already has it, live or in its
connect snapshot. A seq lower than the last one starts a new sequence (the server was created
again) and is passed through with a warning in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterator
from typing import Any, Final

import anyio
import msgspec

from actors import Actor, ActorExited, Address, MailboxPolicy, Overflow
from citadel.messages import (
    Event,
    LogEvent,
    MapDataEvent,
    MetricsEvent,
    ModsEvent,
    PlayersEvent,
    ServerRemovedEvent,
    ServerStatusEvent,
    encode_event,
    event_name,
    utc_timestamp,
)
from citadel.realtime._engine import FanoutEngine
from citadel.realtime._rules import ClientScope, Outgoing

log = logging.getLogger("citadel.broadcaster")

RECHECK_INTERVAL: Final = 1.0
MAILBOX_CAPACITY: Final = 20_000
#: Clients that may kick or ban see players' IP addresses; others get the redacted variant.
IP_PERMISSION: Final = "players.kick"


class StatusUpdate(msgspec.Struct, frozen=True):
    """A ``serverStatus`` transition (never dropped, never coalesced)."""

    event: ServerStatusEvent


class StateUpdate(msgspec.Struct, frozen=True):
    """A state event: only the latest per (event, server) matters."""

    event: PlayersEvent | MetricsEvent | MapDataEvent | ModsEvent


class LogLine(msgspec.Struct, frozen=True):
    """A ``log`` event (dropped oldest-first under overload)."""

    event: LogEvent


class Announcement(msgspec.Struct, frozen=True):
    """Any other event: notifications, progress, backups, hooks (waits for room)."""

    event: Event


class Removal(msgspec.Struct, frozen=True):
    """A server was deleted: forget its state and tell the dashboards (waits for room)."""

    event: ServerRemovedEvent


class AuthChanged(msgspec.Struct, frozen=True):
    """Re-check open sockets of ``username`` (``None``: every socket) now."""

    username: str | None = None


class Verified(msgspec.Struct, frozen=True):
    """What the token verifier derived from a socket's token: whose it is, what it may see."""

    user: str
    scope: ClientScope


BroadcasterMessage = StatusUpdate | StateUpdate | LogLine | Announcement | Removal | AuthChanged


def _coalesce_key(message: Any) -> tuple[str, str] | None:
    if isinstance(message, StateUpdate):
        return (event_name(message.event), message.event.server_id)
    return None


def wrap(event: Event) -> StatusUpdate | StateUpdate | LogLine | Announcement | Removal:
    """Put an event in the envelope whose mailbox policy fits its kind."""
    if isinstance(event, ServerStatusEvent):
        return StatusUpdate(event)
    if isinstance(event, ServerRemovedEvent):
        return Removal(event)
    if isinstance(event, PlayersEvent | MetricsEvent | MapDataEvent | ModsEvent):
        return StateUpdate(event)
    if isinstance(event, LogEvent):
        return LogLine(event)
    return Announcement(event)


async def publish(broadcaster: Address[BroadcasterMessage], event: Event) -> bool:
    """Publish ``event``; False if the broadcaster is down (the event is lost and counted)."""
    try:
        await broadcaster.cast(wrap(event))
    except ActorExited:
        return False
    return True


class SnapshotCache:
    """The latest ``serverStatus``, ``players``, ``metrics`` and ``mods`` per server.

    Owned by the application, not by the broadcaster, so a restarted broadcaster still greets
    new clients with the current state. Once it `track`s the servers that exist, a server that
    does not is never in a snapshot, whether or not its ``serverRemoved`` arrived.
    """

    KINDS: Final = ("serverStatus", "players", "metrics", "mods")

    def __init__(self) -> None:
        self._latest: dict[str, dict[str, Outgoing]] = {}
        self._status: dict[str, tuple[int, str]] = {}
        self._servers: Callable[[], Container[str]] | None = None

    def track(self, servers: Callable[[], Container[str]]) -> None:
        """Take ``servers()`` as the ids of the servers that exist now (the fleet's)."""
        self._servers = servers

    def prune(self) -> list[str]:
        """Forget every server that no longer exists; return their ids (sorted)."""
        if self._servers is None:
            return []
        existing = self._servers()
        gone = sorted(s for s in self._latest.keys() | self._status.keys() if s not in existing)
        for server_id in gone:
            self.forget(server_id)
        return gone

    def remember(self, outgoing: Outgoing) -> None:
        """Keep ``outgoing`` as the latest of its kind for its server (other kinds: ignored)."""
        if outgoing.server_id is not None and outgoing.name in self.KINDS:
            self._latest.setdefault(outgoing.server_id, {})[outgoing.name] = outgoing

    def forget(self, server_id: str) -> None:
        """Drop everything known about a deleted server."""
        self._latest.pop(server_id, None)
        self._status.pop(server_id, None)

    def advance(self, event: ServerStatusEvent) -> bool:
        """Record a status; False when it repeats the last one (same seq and status).

        A server that is not ``running`` has no current ``metrics``: the last sample of a run
        that ended (cpu, players, uptime) is dropped, so a dashboard connecting to a stopped,
        crashed or restarting server is not greeted with the old run's figures.
        """
        if event.status != "running":
            self._latest.get(event.server_id, {}).pop("metrics", None)
        last = self._status.get(event.server_id)
        if last is not None:
            seq, status = last
            if event.seq == seq and event.status == status:
                return False
            if event.seq <= seq:
                log.warning(
                    "%s: serverStatus seq %d after %d (%s after %s): a new sequence",
                    event.server_id,
                    event.seq,
                    seq,
                    event.status,
                    status,
                )
        self._status[event.server_id] = (event.seq, event.status)
        return True

    def snapshot(self, scope: ClientScope) -> Iterator[Outgoing]:
        """Every cached event for the servers in ``scope`` that exist, status first, per server."""
        existing = None if self._servers is None else self._servers()
        for server_id, kinds in self._latest.items():
            if scope.servers is not None and server_id not in scope.servers:
                continue
            if existing is not None and server_id not in existing:
                continue  # deleted, and its serverRemoved was lost: see `prune`
            for kind in self.KINDS:
                outgoing = kinds.get(kind)
                if outgoing is not None:
                    yield outgoing


def to_outgoing(event: Event) -> Outgoing:
    """Encode ``event`` once (and once more without IPs when it lists players)."""
    payload = encode_event(event)
    if isinstance(event, PlayersEvent) and any(p.ip is not None for p in event.players):
        redacted = PlayersEvent(
            server_id=event.server_id,
            players=[msgspec.structs.replace(p, ip=None) for p in event.players],
        )
        return Outgoing(
            event_name(event),
            event.server_id,
            payload,
            redacted=encode_event(redacted),
            redact_unless=IP_PERMISSION,
        )
    server_id = getattr(event, "server_id", None)
    return Outgoing(event_name(event), server_id, payload)


class Broadcaster(Actor[BroadcasterMessage]):
    """Encodes events once and fans them out through the `FanoutEngine`.

    Args:
        engine: The long-lived engine serving the Socket.IO endpoint.
        cache: The snapshot cache (survives restarts of this actor).
        recheck: Verifies the token in a client's ``auth`` object again: who it names and the
            scope it grants now, or ``None`` when it is no longer acceptable (the socket is
            then disconnected).
    """

    mailbox_policy = MailboxPolicy(
        capacity=MAILBOX_CAPACITY,
        overflow=Overflow.WAIT,
        per_kind={StateUpdate: Overflow.COALESCE, LogLine: Overflow.DROP_OLDEST},
        coalesce_key=_coalesce_key,
    )

    def __init__(
        self,
        engine: FanoutEngine,
        cache: SnapshotCache,
        recheck: Callable[[Any], Verified | None],
        *,
        recheck_interval: float = RECHECK_INTERVAL,
    ) -> None:
        self.engine = engine
        self.cache = cache
        self._recheck = recheck
        self._interval = recheck_interval
        # sid -> the user its token names, as verified. A socket's token never changes, so
        # neither does its user; sockets not verified yet by this incarnation are absent.
        self._users: dict[str, str] = {}

    async def on_start(self) -> None:
        self.engine.snapshot_provider = self.cache.snapshot
        # A server deleted while no broadcaster ran (its serverRemoved was lost with the
        # crashed incarnation or refused while it was down): forget it, tell the dashboards.
        for server_id in self.cache.prune():
            log.info("%s: removed while the broadcaster was down; dashboards told now", server_id)
            removed = ServerRemovedEvent(server_id=server_id, timestamp=utc_timestamp())
            self.engine.publish(to_outgoing(removed))
        self.start_soon(self._recheck_periodically)

    async def handle(self, message: BroadcasterMessage) -> None:
        if isinstance(message, AuthChanged):
            await self._recheck_sockets(message.username)
            return
        event = message.event
        if isinstance(event, ServerStatusEvent) and not self.cache.advance(event):
            return
        if isinstance(event, ServerRemovedEvent):
            self.cache.forget(event.server_id)
        outgoing = to_outgoing(event)
        self.cache.remember(outgoing)
        self.engine.publish(outgoing)

    async def _recheck_periodically(self) -> None:
        while True:
            await anyio.sleep(self._interval)
            # Through the control lane: a busy mailbox must not delay a revocation.
            self.post_control(AuthChanged(None))

    async def _recheck_sockets(self, username: str | None) -> None:
        connected = self.engine.connected()
        if username is None:
            # A full pass: forget sockets that are gone.
            live = {sid for sid, _, _ in connected}
            self._users = {sid: u for sid, u in self._users.items() if sid in live}
        for sid, auth, scope in connected:
            known = self._users.get(sid)
            if username is not None and known is not None and known != username:
                continue
            verified = self._recheck(auth)
            if verified is None:
                self._users.pop(sid, None)
                await self.engine.disconnect(sid, "token no longer valid")
                continue
            self._users[sid] = verified.user
            if verified.scope != scope:
                self.engine.rescope(sid, verified.scope)
