"""The fan-out engine: Socket.IO connect/auth, scoping, snapshots and publish."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, cast

import msgspec
import socketio

from citadel.messages import LogEvent, encode_event, utc_timestamp

from ._frames import Frame
from ._queue import QueueLimits
from ._rules import FULL, ClientScope, Outgoing, may_receive, select_variant
from ._transport import DEFAULT_HIGH_WATER, Counters, EngineIOServer, Outbox

__all__ = [
    "DEFAULT_FLUSH_TURNS",
    "DEFAULT_LAG_CHECK_INTERVAL",
    "Authenticate",
    "ConnectRefused",
    "FanoutEngine",
    "FanoutStatistics",
    "RealtimeError",
    "SnapshotProvider",
    "build_asgi_app",
]

DEFAULT_TRANSPORTS: Final = ("polling", "websocket")
DEFAULT_PING_INTERVAL: Final = 25.0
DEFAULT_PING_TIMEOUT: Final = 20.0
DEFAULT_FLUSH_TURNS: Final = 4
#: Seconds between sweeps of lagging clients (a hopeless one is cut within max_lag + this).
DEFAULT_LAG_CHECK_INTERVAL: Final = 1.0
SOCKETIO_PATH: Final = "socket.io"
INTERNAL_ERROR_REASON: Final = "internal error"
DROP_NOTICE_LEVEL: Final = "warn"
DROP_NOTICE_SOURCE: Final = "system"

logger = logging.getLogger(__name__)


class RealtimeError(Exception):
    """Root of the realtime package's errors.

    ::

        RealtimeError
         └── ConnectRefused   (raised by an authenticate hook: refuse this connection)
    """


class ConnectRefused(RealtimeError):
    """Refuse a connecting client; it receives ``connect_error`` with ``{"message": reason}``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Authenticate = Callable[
    [Mapping[str, Any] | None, Mapping[str, Any]], "ClientScope | Awaitable[ClientScope]"
]
"""``authenticate(auth, environ)``: the client's scope, or raise :class:`ConnectRefused`."""

SnapshotProvider = Callable[[ClientScope], Iterable[Outgoing]]
"""``snapshot(scope)``: events a newly connected client receives first, in order."""


class FanoutStatistics(msgspec.Struct, frozen=True):
    """A snapshot of the engine's counters.

    Attributes:
        clients: Clients connected to the namespace and receiving events.
        delivered: Frames handed to a transport (written, or returned to a poll).
        batch_writes: Writes on the direct path, each carrying one or more frames to one
            client (fewer writes per delivered frame: better write coalescing).
        coalesced: State frames replaced by a newer value for a lagging client.
        dropped_logs: Log lines dropped for lagging clients.
        lag_disconnects: Clients disconnected for lagging hopelessly.
        queued_bytes: Bytes waiting in lagging clients' queues now.
        malformed: Published events rejected (payload not UTF-8).
    """

    clients: int
    delivered: int
    batch_writes: int
    coalesced: int
    dropped_logs: int
    lag_disconnects: int
    queued_bytes: int
    malformed: int


def drop_notice(server_id: str | None, count: int) -> Frame:
    """Build the ``log`` event telling a client it lost ``count`` lines of ``server_id``.

    It is a `citadel.messages.LogEvent` (source ``system``, level ``warn``, ``dropped`` =
    ``count``), so it decodes with the published schema like any other ``log``.
    """
    notice = LogEvent(
        # Citadel's log events always name a server; a host-wide log line (outside the event
        # contract, engine tests only) gets a notice with a null serverId, as it had itself.
        server_id=cast(str, server_id),
        level=DROP_NOTICE_LEVEL,
        source=DROP_NOTICE_SOURCE,
        message=f"{count} log line{'' if count == 1 else 's'} dropped",
        timestamp=utc_timestamp(),
        dropped=count,
    )
    return Frame("log", server_id, encode_event(notice))


def _visible(scope: ClientScope, frame: Frame) -> bool:
    """May a client with ``scope`` receive this already encoded frame?"""
    return may_receive(scope, frame.name, frame.server_id) and (
        frame.needs is None or scope.has(frame.needs)
    )


class _Manager(socketio.AsyncManager):  # type: ignore[misc]  # untyped base
    """python-socketio's client manager, told when a client joins or leaves the namespace."""

    def __init__(self, engine: FanoutEngine) -> None:
        super().__init__()
        self._engine = engine

    async def connect(self, sid: str, namespace: str) -> Any:
        sid = await super().connect(sid, namespace)
        # The Socket.IO CONNECT packet is already queued: whatever is offered now follows it.
        self._engine._activate(sid, self.eio_sid_from_sid(sid, namespace))
        return sid

    async def disconnect(self, sid: str, namespace: str, **kwargs: Any) -> Any:
        self._engine._deactivate(sid)
        return await super().disconnect(sid, namespace, **kwargs)


class _SocketIOServer(socketio.AsyncServer):  # type: ignore[misc]  # untyped base
    def _engineio_server_class(self) -> type[EngineIOServer]:
        return EngineIOServer


class FanoutEngine:
    """Pushes encoded events to every Socket.IO client whose scope allows them.

    ``publish`` encodes an event once per variant (full, redacted) and offers the same frame to
    every recipient: written straight to the TCP transport of a client that keeps up, queued
    under the per-client policy (:class:`~citadel.realtime.QueueLimits`) for one that lags. No
    task is created per recipient or per event.

    Example:
        >>> engine = FanoutEngine(authenticate, snapshot_provider=state.snapshot)  # doctest: +SKIP
        >>> app = build_asgi_app(engine, rest_app)                              # doctest: +SKIP
        >>> engine.publish(Outgoing("metrics", "alpha", b'{"serverId":"alpha"}'))  # doctest: +SKIP

    Args:
        authenticate: Maps the client's ``auth`` object and the request environ to a scope, or
            raises :class:`ConnectRefused`; may be a coroutine function.
        snapshot_provider: Events a new client receives first (filtered by its scope).
        limits: Bounds of each lagging client's queue.
        transports: Engine.IO transports accepted.
        direct_writes: Write frames to uvicorn's transport directly (else ASGI sends only).
        high_water: Transport buffer size above which a client counts as lagging.
        flush_turns: Event-loop turns a direct-path frame may wait for later frames to the
            same client, so that they leave in one write (1: written at the next turn).
        lag_check_interval: Seconds between sweeps that cut off hopelessly lagging clients
            that have nothing new queued (the sweep runs only while some client lags).
        cors_allowed_origins: Passed to python-socketio (``[]`` disables its CORS checks).
        ping_interval: Engine.IO ping interval, seconds.
        ping_timeout: Engine.IO ping timeout, seconds.
    """

    def __init__(
        self,
        authenticate: Authenticate,
        snapshot_provider: SnapshotProvider | None = None,
        *,
        limits: QueueLimits | None = None,
        transports: Iterable[str] = DEFAULT_TRANSPORTS,
        direct_writes: bool = True,
        high_water: int = DEFAULT_HIGH_WATER,
        flush_turns: int = DEFAULT_FLUSH_TURNS,
        lag_check_interval: float = DEFAULT_LAG_CHECK_INTERVAL,
        cors_allowed_origins: str | list[str] | None = None,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        ping_timeout: float = DEFAULT_PING_TIMEOUT,
    ) -> None:
        self._authenticate = authenticate
        self.snapshot_provider = snapshot_provider
        self._limits = limits if limits is not None else QueueLimits()
        if flush_turns < 1:
            raise ValueError(f"flush_turns must be at least 1, got {flush_turns}")
        if not lag_check_interval > 0:
            raise ValueError(f"lag_check_interval must be positive, got {lag_check_interval}")
        self._lag_interval = lag_check_interval
        self._lag_timer: asyncio.TimerHandle | None = None
        self._high_water = high_water
        self._flush_bytes = high_water // 4
        self._flush_turns = flush_turns
        self._turns_left = 0
        self._counters = Counters()
        self._malformed = 0
        self._gone_coalesced = 0
        self._gone_dropped = 0
        self._pending: dict[str, ClientScope] = {}
        self._auth: dict[str, Mapping[str, Any] | None] = {}
        self._clients: dict[str, tuple[ClientScope, Outbox]] = {}
        # Clients grouped by scope: publish decides once per distinct scope, then loops.
        self._groups: dict[ClientScope, dict[str, Outbox]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dirty: list[Outbox] = []
        self.sio = _SocketIOServer(
            async_mode="asgi",
            client_manager=_Manager(self),
            transports=list(transports),
            # Citadel handles no event from clients (dashboards only listen): an event is
            # dropped where it is decoded, not in a task of its own. Each task cost a client's
            # event some work, and an unhashable event name (`42[[1]]`) failed in it and was
            # logged by asyncio, traceback and all, once per event.
            async_handlers=False,
            cors_allowed_origins=cors_allowed_origins,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            outbox_factory=self._new_outbox,
            direct_writes=direct_writes,
        )
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)

    # -- public API ---------------------------------------------------------------------------

    def publish(self, event: Outgoing) -> None:
        """Fan ``event`` out to every client allowed to see it; never blocks."""
        frames: list[Frame | None] = [None, None]
        for scope, members in self._groups.items():
            variant = select_variant(scope, event)
            if variant is None or not members:
                continue
            frame = frames[variant]
            if frame is None:
                frame = self._frame(event, variant)
                if frame is None:
                    return
                frames[variant] = frame
            raw = frame.raw
            size = len(raw)
            high_water = self._high_water
            flush_bytes = self._flush_bytes
            dirty = self._dirty
            written = 0
            # The hot loop: one buffer-size check and one append per recipient that keeps up.
            # Frames are batched per client and written `flush_turns` loop turns later in one
            # go (`_flush_tick`): a stream of events costs one syscall per client per few
            # events, not one per client per event. A batch that grows large leaves at once.
            for outbox in members.values():
                transport = outbox.direct
                if (
                    transport is not None
                    and transport.get_write_buffer_size() + outbox.batch_bytes < high_water
                ):
                    if not outbox.batch:
                        dirty.append(outbox)
                    outbox.batch.append(raw)
                    outbox.batch_bytes += size
                    written += 1
                    if outbox.batch_bytes >= flush_bytes:
                        outbox.flush_batch()
                else:
                    outbox.enqueue(frame)
            self._counters.delivered += written
        if self._dirty and not self._turns_left:
            self._turns_left = self._flush_turns
            asyncio.get_running_loop().call_soon(self._flush_tick)

    def _flush_tick(self) -> None:
        # Each hop is one event-loop turn: an idle loop turns in microseconds, a busy one
        # gathers more frames per write. Hops never outlive the batches they flush.
        self._turns_left -= 1
        if self._turns_left > 0:
            asyncio.get_running_loop().call_soon(self._flush_tick)
            return
        dirty, self._dirty = self._dirty, []
        for outbox in dirty:
            outbox.flush_batch()

    def rescope(self, sid: str, scope: ClientScope) -> None:
        """Change a connected client's scope.

        Frames still queued for it that the new scope forbids (servers out of scope, kinds no
        longer permitted, full bodies that are now redacted) are dropped. Then it is sent the
        part of the snapshot it did not already have: what the new scope shows and the old
        did not, or showed in another variant. A server still in scope is not re-sent, so its
        ``serverStatus`` seq is never repeated.
        """
        entry = self._clients.get(sid)
        if entry is None or entry[0] == scope:
            return
        old, outbox = entry
        self._leave_group(old, sid)
        self._clients[sid] = (scope, outbox)
        outbox.events.retain(lambda frame: _visible(scope, frame))
        self._send_snapshot(scope, outbox, already=old)
        self._groups.setdefault(scope, {})[sid] = outbox

    def check_lag(self, now: float | None = None) -> int:
        """Cut off every client lagging hopelessly now; return how many were cut.

        Runs by itself every ``lag_check_interval`` seconds while some client lags; a frame
        arriving for a lagging client also judges it at once.
        """
        when = time.monotonic() if now is None else now
        before = self._counters.lag_disconnects
        lagging = False
        for _, outbox in self._clients.values():
            if outbox.direct is None and outbox.check_lag(when):
                lagging = True
        if lagging:
            self._arm_lag_check()
        return self._counters.lag_disconnects - before

    async def disconnect(self, sid: str, reason: str) -> None:
        """Disconnect a client (token revoked, role removed); ``reason`` is logged."""
        logger.info("disconnecting %s: %s", sid, reason)
        await self.sio.disconnect(sid)

    def statistics(self) -> FanoutStatistics:
        """Return the engine's counters."""
        coalesced, dropped, queued = self._gone_coalesced, self._gone_dropped, 0
        for _, outbox in self._clients.values():
            coalesced += outbox.events.coalesced
            dropped += outbox.events.dropped_logs
            queued += outbox.events.queued_bytes
        return FanoutStatistics(
            clients=len(self._clients),
            delivered=self._counters.delivered,
            batch_writes=self._counters.batch_writes,
            coalesced=coalesced,
            dropped_logs=dropped,
            lag_disconnects=self._counters.lag_disconnects,
            queued_bytes=queued,
            malformed=self._malformed,
        )

    def connected(self) -> list[tuple[str, Mapping[str, Any] | None, ClientScope]]:
        """List connected clients as ``(sid, auth, scope)``; ``auth`` is what the client sent."""
        return [(sid, self._auth.get(sid), scope) for sid, (scope, _) in self._clients.items()]

    def scope_of(self, sid: str) -> ClientScope | None:
        """Return a connected client's scope, or ``None``."""
        entry = self._clients.get(sid)
        return entry[0] if entry is not None else None

    async def shutdown(self) -> None:
        """Stop python-socketio's background tasks (call before the web server stops)."""
        if self._lag_timer is not None:
            self._lag_timer.cancel()
            self._lag_timer = None
        await self.sio.shutdown()

    # -- internals ----------------------------------------------------------------------------

    def _frame(self, event: Outgoing, variant: int) -> Frame | None:
        body = event.payload if variant == FULL else event.redacted
        if body is None:  # pragma: no cover - select_variant never picks a missing body
            return None
        needs = event.redact_unless if variant == FULL else None
        try:
            return Frame(event.name, event.server_id, body, needs)
        except UnicodeDecodeError:
            self._malformed += 1
            logger.warning("dropped %s event with a payload that is not UTF-8", event.name)
            return None

    def _new_outbox(self) -> Outbox:
        return Outbox(
            self._limits,
            drop_notice,
            self._counters,
            self._hopeless,
            self._high_water,
            self._arm_lag_check,
        )

    def _arm_lag_check(self) -> None:
        # Called by an outbox when it queues a frame or its writer waits on a paused transport.
        if self._lag_timer is None:
            loop = asyncio.get_running_loop()
            self._lag_timer = loop.call_later(self._lag_interval, self._lag_tick)

    def _lag_tick(self) -> None:
        self._lag_timer = None
        self.check_lag()

    def _hopeless(self, outbox: Outbox) -> None:
        # Called from inside publish's loops over the groups: change them only after it ends.
        asyncio.get_running_loop().call_soon(self._drop_hopeless, outbox)

    def _drop_hopeless(self, outbox: Outbox) -> None:
        sid = outbox.sid
        if sid is None:
            return
        self._deactivate(sid)
        # Cut the Socket.IO session too (long-polling has no transport to abort).
        task = asyncio.ensure_future(self.sio.disconnect(sid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_connect(
        self, sid: str, environ: dict[str, Any], auth: dict[str, Any] | None = None
    ) -> None:
        try:
            scope = self._authenticate(auth if isinstance(auth, dict) else None, environ)
            if inspect.isawaitable(scope):
                scope = await scope
        except ConnectRefused as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.reason) from exc
        except Exception as exc:
            logger.exception("authenticate hook failed")
            raise socketio.exceptions.ConnectionRefusedError(INTERNAL_ERROR_REASON) from exc
        if not isinstance(scope, ClientScope):
            logger.error("authenticate hook returned %r, not a ClientScope", scope)
            raise socketio.exceptions.ConnectionRefusedError(INTERNAL_ERROR_REASON)
        self._pending[sid] = scope
        self._auth[sid] = auth if isinstance(auth, dict) else None

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._pending.pop(sid, None)
        self._auth.pop(sid, None)

    def _activate(self, sid: str, eio_sid: str | None) -> None:
        scope = self._pending.pop(sid, None)
        socket = self.sio.eio.sockets.get(eio_sid) if eio_sid is not None else None
        if scope is None or socket is None or not isinstance(socket.queue, Outbox):
            self._auth.pop(sid, None)
            return
        outbox: Outbox = socket.queue
        outbox.sid = sid
        self._clients[sid] = (scope, outbox)
        self._send_snapshot(scope, outbox)
        self._groups.setdefault(scope, {})[sid] = outbox

    def _send_snapshot(
        self, scope: ClientScope, outbox: Outbox, already: ClientScope | None = None
    ) -> None:
        """Queue the snapshot for ``scope``, less what a client with scope ``already`` has."""
        if self.snapshot_provider is None:
            return
        try:
            events = list(self.snapshot_provider(scope))
        except Exception:
            logger.exception("snapshot provider failed")
            return
        for event in events:
            variant = select_variant(scope, event)
            if variant is None:
                continue
            if already is not None and select_variant(already, event) == variant:
                continue  # delivered (or still queued) under the old scope, in this form
            frame = self._frame(event, variant)
            if frame is not None:
                # Queued, not written: the writer sends them after the CONNECT packet.
                outbox.enqueue(frame)

    def _deactivate(self, sid: str) -> None:
        self._pending.pop(sid, None)
        self._auth.pop(sid, None)
        entry = self._clients.pop(sid, None)
        if entry is None:
            return
        scope, outbox = entry
        self._leave_group(scope, sid)
        # Ends a long-poll that is still waiting, after packets already queued (a DISCONNECT).
        outbox.close()
        self._gone_coalesced += outbox.events.coalesced
        self._gone_dropped += outbox.events.dropped_logs

    def _leave_group(self, scope: ClientScope, sid: str) -> None:
        members = self._groups.get(scope)
        if members is not None:
            members.pop(sid, None)
            if not members:
                del self._groups[scope]


def build_asgi_app(engine: FanoutEngine, other_asgi_app: Any = None) -> Any:
    """Serve Socket.IO at ``/socket.io/`` and hand every other request to ``other_asgi_app``."""
    return socketio.ASGIApp(engine.sio, other_asgi_app, socketio_path=SOCKETIO_PATH)
