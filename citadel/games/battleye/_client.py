"""The BattlEye RCon client: one session over anyio UDP, from login until the link dies.

``open_rcon`` logs in and yields an ``RConClient``; three background loops run while the block is
open: the receiver (replies, server messages and their ACKs), the keepalive (an empty command
after ``keepalive_interval`` of command silence) and the watchdog (the link is dead after
``dead_timeout`` with nothing valid received). A dead link does not cancel the caller's block: the
client closes, pending and later commands raise ``RConDisconnected`` and ``wait_disconnected()``
returns the reason. Reconnecting is the owner's business; ``run_forever`` is the standard way.

Example::

    async with open_rcon("127.0.0.1", 2306, "secret", on_message=print) as rcon:
        text = await rcon.command("players")
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import msgspec
from anyio.abc import ConnectedUDPSocket

from ._codec import Garbage, LoginReply, encode_command_text, encode_login
from ._errors import CommandTimeout, LoginFailed, RConDisconnected, RConUnreachable
from ._session import Message, RConSession, Reply
from ._settings import RConSettings

#: Called with the text of every new server message, in the receiver task. It must not block;
#: an exception it raises ends the session and propagates out of ``open_rcon``.
MessageCallback = Callable[[str], object]

#: Socket errors in a row (ICMP "port unreachable" surfaces as one on some backends) after which
#: the socket itself is considered broken.
_SOCKET_ERROR_LIMIT = 8


class RConStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one session; ``received`` counts every datagram, garbage included."""

    connected: bool
    sent: int
    received: int
    garbage: int
    resends: int
    messages: int
    duplicate_messages: int
    late_replies: int
    keepalives: int
    socket_errors: int
    in_flight: int


class _Waiter:
    __slots__ = ("done", "text")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.text: str | None = None  # None once done: the session closed under it


class RConClient:
    """One logged-in BattlEye RCon session; obtain it from ``open_rcon``."""

    def __init__(
        self,
        socket: ConnectedUDPSocket,
        *,
        settings: RConSettings,
        on_message: MessageCallback | None,
    ) -> None:
        self._socket = socket
        self._settings = settings
        self._on_message = on_message
        self._session = RConSession(dedup_window=settings.message_dedup_window)
        self._waiters: dict[int, _Waiter] = {}
        self._send_lock = anyio.Lock()
        self._slots = anyio.Semaphore(settings.max_in_flight)
        self._scopes: list[anyio.CancelScope] = []
        self._closed = anyio.Event()
        self._close_reason = ""
        self._login_answer: bool | None = None
        self._login_event = anyio.Event()
        now = anyio.current_time()
        self._last_command_sent = now
        self._last_received = now
        self._sent = 0
        self._received = 0
        self._valid = 0
        self._resends = 0
        self._keepalives = 0
        self._socket_errors = 0

    # --- public -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the session is logged in and not closed."""
        return self._login_answer is True and not self._closed.is_set()

    # The timeout is part of the protocol, not just a cancel bound: it shapes the resend schedule,
    # and an outer fail_after could not tell "slow reply" from "link dead".
    async def command(self, command: str, *, timeout: float | None = None) -> str:  # noqa: ASYNC109
        """Send ``command`` and return its complete reply text ("" for commands without output).

        The datagram is resent every ``resend_interval`` up to ``max_resends`` times. When every
        attempt went unanswered and nothing else arrived meanwhile, the link is declared dead.

        Args:
            command: The command line, sent as UTF-8; no control characters.
            timeout: Overall bound in seconds; defaults to the full resend schedule.

        Raises:
            ValueError: the command is empty, has control characters or is too long.
            CommandTimeout: no complete reply in time.
            RConDisconnected: the session is (or became) closed.
        """
        payload = encode_command_text(command)
        limit = self._settings.command_timeout if timeout is None else timeout
        deadline = anyio.current_time() + limit
        async with self._slots:
            return await self._exchange(payload, deadline)

    async def wait_disconnected(self) -> str:
        """Wait until the session is closed and return why."""
        await self._closed.wait()
        return self._close_reason

    def statistics(self) -> RConStatistics:
        """Return a snapshot of this session's counters."""
        return RConStatistics(
            connected=self.connected,
            sent=self._sent,
            received=self._received,
            garbage=self._session.garbage,
            resends=self._resends,
            messages=self._session.messages,
            duplicate_messages=self._session.duplicate_messages,
            late_replies=self._session.late_replies,
            keepalives=self._keepalives,
            socket_errors=self._socket_errors,
            in_flight=self._session.in_flight,
        )

    # --- session lifecycle ------------------------------------------------------------------

    def _close(self, reason: str) -> None:
        if self._closed.is_set():
            return
        self._close_reason = reason
        self._closed.set()
        for waiter in self._waiters.values():
            waiter.done.set()
        for scope in self._scopes:
            scope.cancel()

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise RConDisconnected(self._close_reason)

    async def _guarded(self, loop: Callable[[], Awaitable[None]]) -> None:
        with anyio.CancelScope() as scope:
            self._scopes.append(scope)
            if self._closed.is_set():
                scope.cancel()
            await loop()

    async def _login(self, password: str) -> None:
        datagram = encode_login(password)
        settings = self._settings
        with anyio.move_on_after(settings.login_timeout):
            for attempt in range(settings.max_resends + 1):
                if attempt:
                    self._resends += 1
                await self._send(datagram, command=True)
                with anyio.move_on_after(settings.resend_interval):
                    await self._login_event.wait()
                if self._login_event.is_set():
                    break
            await self._login_event.wait()
        if self._login_answer is None:
            raise RConUnreachable(
                f"no answer to the RCon login within {settings.login_timeout:g} s"
            )
        if not self._login_answer:
            raise LoginFailed("the server rejected the RCon password")
        now = anyio.current_time()
        self._last_command_sent = now
        self._last_received = now

    # --- I/O --------------------------------------------------------------------------------

    async def _send(self, datagram: bytes, *, command: bool = False) -> None:
        async with self._send_lock:
            try:
                await self._socket.send(datagram)
            except anyio.BrokenResourceError:
                # An ICMP error from an earlier datagram; this one counts as lost, and the
                # resend schedule or the watchdog deals with it.
                self._socket_errors += 1
        self._sent += 1
        if command:
            self._last_command_sent = anyio.current_time()

    async def _exchange(self, payload: bytes, deadline: float) -> str:
        self._check_open()
        settings = self._settings
        seq, datagram = self._session.start_command(payload)
        waiter = self._waiters[seq] = _Waiter()
        valid_before = self._valid
        attempts = 0
        try:
            while attempts <= settings.max_resends:
                remaining = deadline - anyio.current_time()
                if remaining <= 0:
                    break
                if attempts:
                    self._resends += 1
                attempts += 1
                await self._send(datagram, command=True)
                with anyio.move_on_after(min(settings.resend_interval, remaining)):
                    await waiter.done.wait()
                if waiter.done.is_set():
                    break
        finally:
            self._session.forget(seq)
            self._waiters.pop(seq, None)
        if waiter.text is not None:
            return waiter.text
        self._check_open()
        if attempts > settings.max_resends and self._valid == valid_before:
            # Four unanswered datagrams and silence otherwise: the server has dropped us (or is
            # gone). Re-login is the cure (formats.md §5.5), so end the session.
            self._close(f"command seq {seq} unanswered after {attempts} attempts")
        raise CommandTimeout(f"no complete reply to command seq {seq}")

    async def _receive_loop(self) -> None:
        errors_in_a_row = 0
        while True:
            try:
                data = await self._socket.receive()
            except anyio.BrokenResourceError:
                self._socket_errors += 1
                errors_in_a_row += 1
                if errors_in_a_row >= _SOCKET_ERROR_LIMIT:
                    self._close("the UDP socket keeps failing")
                    return
                continue
            except anyio.ClosedResourceError:
                return
            errors_in_a_row = 0
            await self._handle(data)

    async def _handle(self, data: bytes) -> None:
        self._received += 1
        now = anyio.current_time()
        outcome = self._session.receive(data, now)
        if isinstance(outcome, Garbage):
            return
        self._valid += 1
        self._last_received = now
        if isinstance(outcome, LoginReply):
            if self._login_answer is None:
                self._login_answer = outcome.accepted
                self._login_event.set()
        elif isinstance(outcome, Reply):
            waiter = self._waiters.get(outcome.seq)
            if waiter is not None and not waiter.done.is_set():
                waiter.text = outcome.text
                waiter.done.set()
        elif isinstance(outcome, Message):
            # ACK every copy, duplicates included, and before the callback runs: an unanswered
            # message is resent and finally gets us dropped (formats.md §5.3).
            await self._send(outcome.ack)
            if outcome.fresh and self._on_message is not None:
                self._on_message(outcome.text)

    async def _keepalive_loop(self) -> None:
        interval = self._settings.keepalive_interval
        while True:
            due = self._last_command_sent + interval
            now = anyio.current_time()
            if now < due:
                await anyio.sleep(due - now)
                continue
            self._keepalives += 1
            try:
                async with self._slots:
                    await self._exchange(b"", now + self._settings.command_timeout)
            except CommandTimeout:
                continue
            except RConDisconnected:
                return

    async def _watchdog_loop(self) -> None:
        limit = self._settings.dead_timeout
        while True:
            due = self._last_received + limit
            now = anyio.current_time()
            if now >= due:
                self._close(f"nothing received from the server for {limit:g} s")
                return
            await anyio.sleep(due - now)


@asynccontextmanager
async def open_rcon(
    host: str,
    port: int,
    password: str,
    *,
    on_message: MessageCallback | None = None,
    settings: RConSettings | None = None,
) -> AsyncIterator[RConClient]:
    """Log in to a BattlEye RCon server and yield the session; close it on exit.

    Args:
        host: Address of the RCon server.
        port: Its RCon UDP port (``RConPort``).
        password: ``RConPassword``, sent as UTF-8.
        on_message: Called with each new server message (see ``MessageCallback``).
        settings: Timing and sizing; defaults are in ``RConSettings``.

    Raises:
        LoginFailed: the password was rejected (do not retry until it changes).
        RConUnreachable: no answer to the login in ``settings.login_timeout``.
        ValueError: the password contains NUL.
    """
    settings = RConSettings() if settings is None else settings
    encode_login(password)  # fail on a bad password before touching the network
    error: Exception | None = None
    async with (
        await anyio.create_connected_udp_socket(host, port) as socket,
        anyio.create_task_group() as tasks,
    ):
        client = RConClient(socket, settings=settings, on_message=on_message)
        tasks.start_soon(client._guarded, client._receive_loop)
        try:
            await client._login(password)
            tasks.start_soon(client._guarded, client._keepalive_loop)
            tasks.start_soon(client._guarded, client._watchdog_loop)
            yield client
        except Exception as exc:
            # Re-raised below once the background tasks stopped, so the caller sees the error
            # itself rather than an exception group from the task group.
            error = exc
        finally:
            client._close("closed by its owner")
    if error is not None:
        raise error
