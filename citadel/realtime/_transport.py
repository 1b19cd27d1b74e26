"""Per-client outbound path: the outbox, its writer, and Citadel's WebSocket handler.

python-engineio gives every connection an ``asyncio.Queue`` of packets and, on WebSocket, a
writer task that awaits one ASGI ``websocket.send`` per packet. Broadcasting through it costs one
task per recipient per emit (python-socketio's manager) plus a queue hand-off and an ASGI call
per frame. Here the Engine.IO server builds an :class:`Outbox` instead of that queue (through its
``create_queue`` hook) and runs :func:`serve_websocket` instead of its WebSocket handler
(through its ``websocket`` driver slot), so that:

* a client that keeps up gets each broadcast frame written straight to its TCP transport, the
  same bytes object for every recipient, with no task switch (the *direct* path);
* once a transport's buffer passes ``high_water``, frames wait in the client's
  :class:`~citadel.realtime._queue.ClientQueue` (coalescing, log dropping, lag verdicts) and the
  client's one writer task sends them with ASGI back-pressure, in order, before direct writes
  resume;
* long-polling keeps working: engine.io's poller reads the outbox through the queue methods.

The direct path needs the transport under the ASGI ``send`` callable. It is taken only from
uvicorn's WebSocket protocols (``send.__self__.transport``, an asyncio transport); under any
other server, or with ``direct_writes=False``, every frame goes through ASGI sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import engineio
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet

from ._frames import Frame, websocket_text_frame
from ._queue import ClientQueue, QueueLimits, Verdict

__all__ = ["DEFAULT_HIGH_WATER", "Counters", "EngineIOServer", "Outbox", "serve_websocket"]

DEFAULT_HIGH_WATER: Final = 64 * 1024
_UVICORN_WS_MODULE: Final = "uvicorn.protocols.websockets."
_PROBE: Final = "2probe"
_PROBE_REPLY: Final = "3probe"
_UPGRADE: Final = "5"
#: SO_LINGER on, zero seconds: close() resets the connection and drops unsent bytes.
_LINGER_RESET: Final = struct.pack("ii", 1, 0)

logger = logging.getLogger(__name__)


class Counters:
    """Engine-wide delivery counters, shared by every outbox (plain ints: one thread)."""

    __slots__ = ("batch_writes", "delivered", "lag_disconnects")

    def __init__(self) -> None:
        self.delivered = 0
        self.batch_writes = 0
        self.lag_disconnects = 0


def direct_transport(send: Any) -> asyncio.WriteTransport | None:
    """Find the TCP transport under uvicorn's ASGI WebSocket ``send``, or ``None``."""
    proto = getattr(send, "__self__", None)
    if proto is None or not type(proto).__module__.startswith(_UVICORN_WS_MODULE):
        return None
    transport = getattr(proto, "transport", None)
    needed = ("write", "get_write_buffer_size", "is_closing", "abort")
    if transport is None or not all(hasattr(transport, n) for n in needed):
        return None
    return transport  # type: ignore[no-any-return]  # duck-typed above


class Outbox:
    """One client's outbound packets: Engine.IO control packets and broadcast frames.

    It stands in for the ``asyncio.Queue`` python-engineio gives each socket (``put``,
    ``put_nowait``, ``get``, ``get_nowait``, ``task_done``, ``join``, ``empty``, ``qsize``),
    and adds the broadcast paths: the engine appends frames to :attr:`batch` and calls
    :meth:`flush_batch` (direct path), or :meth:`enqueue` (lagging client). Control packets
    (open, ping, Socket.IO connect/disconnect, ``None`` = stop) are never dropped and go before
    pending frames.

    Attributes:
        direct: The transport to write to right now, or ``None`` when frames must be queued
            (polling, a writer with pending work, a closed or non-uvicorn connection).
        sid: The Socket.IO session id once the client has joined the namespace.
    """

    def __init__(
        self,
        limits: QueueLimits,
        drop_notice: Callable[[str | None, int], Frame],
        counters: Counters,
        on_hopeless: Callable[[Outbox], None],
        high_water: int = DEFAULT_HIGH_WATER,
        on_lagging: Callable[[], None] | None = None,
    ) -> None:
        self.direct: asyncio.WriteTransport | None = None
        self.sid: str | None = None
        self.closed = False
        self.events: ClientQueue[Frame] = ClientQueue(limits, drop_notice)
        self._control: deque[eio_packet.Packet | None] = deque()
        self._counters = counters
        self._on_hopeless = on_hopeless
        self._on_lagging = on_lagging if on_lagging is not None else _nothing
        self._high_water = high_water
        self._max_lag = limits.max_lag
        #: When the writer began waiting for a paused transport (None: not waiting).
        self._blocked_since: float | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._transport: asyncio.WriteTransport | None = None
        self._send: Any = None
        #: Frames taken on the direct path, not yet written: `flush_batch` writes them in one go.
        self.batch: list[bytes] = []
        self.batch_bytes = 0

    # -- the direct path (filled by the engine's publish) -------------------------------------

    def flush_batch(self) -> None:
        """Write the batched frames with one ``write`` (one syscall)."""
        if not self.batch:
            return
        data = self.batch[0] if len(self.batch) == 1 else b"".join(self.batch)
        self.batch.clear()
        self.batch_bytes = 0
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            self._counters.batch_writes += 1

    def enqueue(self, frame: Frame) -> None:
        """Queue ``frame`` under the lag policy (the slow path: the client lags or polls)."""
        if self.closed:
            return
        self.flush_batch()  # what was batched is older than this frame
        self.direct = None
        verdict = self.events.push(frame, time.monotonic())
        if verdict is Verdict.DISCONNECT:
            self.kill()
            return
        self._on_lagging()
        self._wake()

    def check_lag(self, now: float) -> bool:
        """Cut this client off if it lags hopelessly, even with nothing new to queue.

        Hopeless is what the queue policy says (its oldest frame waited longer than
        ``max_lag``), or a writer that has waited ``max_lag`` for a paused transport: a client
        that stopped reading after its last frame has nothing queued, yet its buffered bytes
        sit in memory until it is cut.

        Returns:
            True while the client still lags (its queue or its writer is waiting).
        """
        if self.closed:
            return False
        blocked = self._blocked_since
        if self.events.check(now) is Verdict.DISCONNECT or (
            blocked is not None and now - blocked > self._max_lag
        ):
            self.kill()
            return False
        return blocked is not None or len(self.events) > 0

    def kill(self) -> None:
        """Give up on a hopeless client: forget its queue and cut its connection."""
        if self.closed:
            return
        self._counters.lag_disconnects += 1
        self.batch.clear()
        self.batch_bytes = 0
        self.close()
        transport = self._transport
        if transport is not None:
            # A client that does not read would keep a graceful close waiting forever; an
            # abort frees the buffer at once, and the reader loop sees the disconnect. Without
            # a zero linger the kernel would still hold the unsent bytes, and the FIN behind
            # them, for as long as the peer keeps its window shut: a reset frees them now and
            # tells the client at once (it reconnects and gets a fresh snapshot).
            _reset_on_close(transport)
            transport.abort()
        self._on_hopeless(self)

    def close(self) -> None:
        """Stop accepting frames and let the writer (or a waiting poll) finish."""
        if self.closed:
            return
        self.closed = True
        self.flush_batch()
        self.direct = None
        self.events.clear()
        # An Engine.IO CLOSE tells a client still polling that this session is over (an empty
        # poll response makes python-engineio's client abandon, and leak, its connection).
        self._control.append(eio_packet.Packet(eio_packet.CLOSE))
        self._control.append(None)
        self._wake()

    # -- asyncio.Queue stand-in used by engine.io ---------------------------------------------

    def put_nowait(self, pkt: eio_packet.Packet | None) -> None:
        """Queue an Engine.IO control packet (``None`` stops the reader of this outbox)."""
        self.flush_batch()
        self.direct = None
        self._control.append(pkt)
        self._wake()

    async def put(self, pkt: eio_packet.Packet | None) -> None:
        """Queue an Engine.IO control packet; never waits (control packets are few)."""
        self.put_nowait(pkt)

    def get_nowait(self) -> eio_packet.Packet | None:
        """Take the next packet for a long-polling response.

        Raises:
            asyncio.QueueEmpty: Nothing is pending.
        """
        if self._control:
            return self._control.popleft()
        frame = self.events.pop()
        if frame is None:
            raise asyncio.QueueEmpty
        self._counters.delivered += 1
        return frame.packet

    async def get(self) -> eio_packet.Packet | None:
        """Wait for the next packet for a long-polling response."""
        while True:
            with contextlib.suppress(asyncio.QueueEmpty):
                return self.get_nowait()
            await self._wait()

    def task_done(self) -> None:
        """Accept engine.io's bookkeeping call; packets are done once handed out."""

    async def join(self) -> None:
        """Return at once: a closing socket's last packets are flushed by its own writer."""

    def empty(self) -> bool:
        """Tell whether nothing is pending."""
        return not self._control and not len(self.events)

    def qsize(self) -> int:
        """Count pending packets and frames."""
        return len(self._control) + len(self.events)

    # -- the WebSocket writer -----------------------------------------------------------------

    def attach(self, send: Any, transport: asyncio.WriteTransport | None) -> None:
        """Bind this outbox to an accepted WebSocket (``transport`` enables direct writes)."""
        self._send = send
        self._transport = transport

    async def run_writer(self) -> None:
        """Send pending packets over the attached WebSocket until told to stop."""
        send = self._send
        while True:
            item: eio_packet.Packet | Frame | None
            if self._control:
                item = self._control.popleft()
                if item is None:
                    return
            else:
                item = self.events.pop()
                if item is None:
                    if self.closed:
                        return
                    # Caught up: broadcasts may write directly again until something queues.
                    self.direct = self._transport
                    await self._wait()
                    continue
            if isinstance(item, Frame):
                raw, text = item.raw, item.text
                self._counters.delivered += 1
            else:
                text = item.encode()
                raw = None
            transport = self._transport
            if (
                transport is not None
                and not transport.is_closing()
                and transport.get_write_buffer_size() < self._high_water
            ):
                transport.write(raw if raw is not None else _frame_text(text))
            elif isinstance(text, str):
                # ASGI sends wait while the server has paused writing: this is where a lagging
                # client's writer waits, and frames meanwhile collect under the queue policy.
                self._blocked_since = time.monotonic()
                self._on_lagging()
                try:
                    await send({"type": "websocket.send", "text": text})
                finally:
                    self._blocked_since = None
            else:  # pragma: no cover - Citadel sends no binary packets
                await send({"type": "websocket.send", "bytes": text})

    async def _wait(self) -> None:
        loop = asyncio.get_running_loop()
        fut = self._wakeup = loop.create_future()
        try:
            await fut
        finally:
            self._wakeup = None

    def _wake(self) -> None:
        fut = self._wakeup
        if fut is not None and not fut.done():
            fut.set_result(None)


def _nothing() -> None:
    return None


def _reset_on_close(transport: asyncio.WriteTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed: nothing left to free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)


def _frame_text(text: str) -> bytes:
    return websocket_text_frame(text.encode("utf-8"))


async def serve_websocket(socket: Any, receive: Any, send: Any, *, direct_writes: bool) -> None:
    """Run one Engine.IO WebSocket connection: the upgrade handshake, reader and writer.

    Args:
        socket: The engine.io ``AsyncSocket`` whose queue is an :class:`Outbox`.
        receive: The ASGI receive callable of the accepted WebSocket.
        send: The ASGI send callable of the accepted WebSocket.
        direct_writes: Whether to write frames to uvicorn's transport directly.
    """
    server = socket.server
    outbox: Outbox = socket.queue
    read_timeout = server.ping_interval + server.ping_timeout
    if socket.connected:
        # Upgrade from long-polling: probe, end the pending poll with a NOOP, then switch.
        socket.upgrading = True
        if await _read_text(receive, read_timeout) != _PROBE:
            socket.upgrading = False
            return
        await send({"type": "websocket.send", "text": _PROBE_REPLY})
        outbox.put_nowait(eio_packet.Packet(eio_packet.NOOP))
        if await _read_text(receive, read_timeout) != _UPGRADE:
            socket.upgrading = False
            return
        socket.upgrading = False
    else:
        socket.connected = True
    socket.upgraded = True
    outbox.attach(send, direct_transport(send) if direct_writes else None)
    writer = asyncio.ensure_future(outbox.run_writer())
    try:
        await _read_loop(socket, receive, read_timeout)
    finally:
        outbox.close()
        if not writer.done():
            writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await writer
        await socket.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)


async def _read_text(receive: Any, read_timeout: float) -> str | None:
    try:
        async with asyncio.timeout(read_timeout):
            message = await receive()
    except TimeoutError:
        return None
    if message.get("type") != "websocket.receive":
        return None
    text = message.get("text")
    return text if isinstance(text, str) else None


async def _read_loop(socket: Any, receive: Any, read_timeout: float) -> None:
    max_size = socket.server.max_http_buffer_size
    while True:
        try:
            async with asyncio.timeout(read_timeout):
                message = await receive()
        except TimeoutError:
            return
        if message.get("type") != "websocket.receive":
            return
        data = message.get("text")
        if data is None:
            data = message.get("bytes")
        if not data or len(data) > max_size:
            return
        try:
            pkt = eio_packet.Packet(encoded_packet=data)
        except (ValueError, IndexError, TypeError):
            continue  # garbage from the client: ignore it, the connection stays up
        if not eio_packet.OPEN <= pkt.packet_type <= eio_packet.NOOP:
            continue
        try:
            await socket.receive(pkt)
        except eio_exceptions.UnknownPacketError:
            continue
        except eio_exceptions.SocketIsClosedError:
            return


class _WebSocketDriver:
    """Engine.IO's ``websocket`` driver slot, filled with :func:`serve_websocket`."""

    direct_writes = True

    def __init__(self, handler: Any, server: Any) -> None:
        # engine.io passes the socket's own bound handler; Citadel serves that socket instead.
        self._socket = handler.__self__

    async def __call__(self, environ: dict[str, Any]) -> str:
        send = environ["asgi.send"]
        await send({"type": "websocket.accept"})
        await serve_websocket(
            self._socket, environ["asgi.receive"], send, direct_writes=self.direct_writes
        )
        return ""


class EngineIOServer(engineio.AsyncServer):  # type: ignore[misc]  # untyped base
    """engine.io's asyncio server with Citadel's outbox and WebSocket handler plugged in."""

    def __init__(
        self,
        *,
        outbox_factory: Callable[[], Outbox],
        direct_writes: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._outbox_factory = outbox_factory
        driver = type("_Driver", (_WebSocketDriver,), {"direct_writes": direct_writes})
        drivers: dict[str, Any] = getattr(self, "_async")  # noqa: B009 - untyped base attribute
        setattr(self, "_async", {**drivers, "websocket": driver})  # noqa: B010 - as above

    def create_queue(self, *args: Any, **kwargs: Any) -> Any:
        """Give each new engine.io socket an :class:`Outbox` as its queue."""
        return self._outbox_factory()
