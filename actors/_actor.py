"""Actors, their stable addresses, ``cast`` and ``call``.

An actor handles one message at a time from its bounded mailbox. Code outside talks to it
through its `Address`, which stays valid across restarts: while the actor is down (crashed and
waiting for its restart, or stopped) sends fail at once with `ActorExited`; once a supervisor
has started the next incarnation, the same address reaches it.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, ClassVar, Generic, TypeVar

import anyio
from anyio.abc import TaskGroup, TaskStatus

from . import _defaults
from ._exceptions import ActorExited, ActorKilled, CallTimeout
from ._mailbox import Envelope, Mailbox, MailboxPolicy, MailboxStatistics, Reply
from ._registry import Registry
from ._reports import ReportBus
from ._spec import ExitKind

M = TypeVar("M")


class _Stop:
    """Control item: leave the message loop with this exit kind."""

    __slots__ = ("kind",)

    def __init__(self, kind: ExitKind) -> None:
        self.kind = kind


class _Kill:
    """Control item: crash now (between two messages), as OTP's ``exit(Pid, kill)``."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Down(enum.Enum):
    NOT_STARTED = "not started"
    RESTARTING = "restarting"
    STOPPED = "stopped"
    CRASHED = "crashed"
    CLOSED = "ended for good"


class Address(Generic[M]):
    """The stable address of an actor: ``cast`` and ``call`` go through it.

    An address outlives the incarnations of a supervised child. It is *closed* when the child
    ends for good (removed from its supervisor, or its supervisor ended); a closed address
    refuses everything and the registry forgets its name.
    """

    __slots__ = ("_close_callbacks", "_down", "_mailbox", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._mailbox: Mailbox[M] | None = None
        self._down: object = _Down.NOT_STARTED
        self._close_callbacks: list[Callable[[Address[M]], None]] = []

    def __repr__(self) -> str:
        state = "alive" if self._mailbox is not None else str(self._down)
        return f"<Address {self.name!r} {state}>"

    @property
    def alive(self) -> bool:
        """Whether an incarnation is running and accepting messages."""
        return self._mailbox is not None

    @property
    def closed(self) -> bool:
        """Whether the actor has ended for good."""
        return self._down is _Down.CLOSED

    def cast_nowait(self, message: M) -> None:
        """Send without waiting for the handler or for room.

        Raises:
            ActorExited: The actor is down.
            MailboxFull: No room and the policy is `Overflow.WAIT` or `Overflow.FAIL`.
        """
        self._live_mailbox().put_nowait(Envelope(message))

    async def cast(self, message: M) -> None:
        """Send without waiting for the handler; waits for room under `Overflow.WAIT`.

        Always a checkpoint: it yields to the event loop once even when there is room, and a
        cancelled cast has sent nothing.

        Raises:
            ActorExited: The actor is down.
            MailboxFull: No room and the policy is `Overflow.FAIL`.
        """
        await self._live_mailbox().put(Envelope(message))

    async def call(
        self,
        message: M,
        timeout: float = _defaults.CALL_TIMEOUT,  # noqa: ASYNC109  # per-call timeout is the API
    ) -> Any:
        """Send and wait for the handler's return value.

        Raises:
            ActorExited: The actor is down, or it crashed or stopped before replying.
            CallTimeout: No reply within ``timeout`` seconds; a later reply is discarded.
            MailboxFull: No room and the policy is not `Overflow.WAIT`.
        """
        mailbox = self._live_mailbox()
        reply = Reply()
        with anyio.move_on_after(timeout):
            await mailbox.put(Envelope(message, reply))
            return await reply.wait()
        reply.abandoned = True
        raise CallTimeout(f"no reply from {self.name!r} within {timeout} s")

    def kill(self, reason: str = "killed") -> None:
        """Crash the current incarnation after the message it is handling, if any.

        The actor ends with `ActorKilled` - an error exit, so its supervisor treats it as a
        crash (restart, intensity, reports). For operators and chaos tests: a stuck actor can
        be restarted without touching its siblings.

        Raises:
            ActorExited: The actor is not alive.
        """
        self._live_mailbox().put_control(_Kill(reason))

    def statistics(self) -> MailboxStatistics:
        """Return the current incarnation's mailbox statistics (zeros while down)."""
        if self._mailbox is None:
            return MailboxStatistics()
        return self._mailbox.statistics()

    def on_close(self, callback: Callable[[Address[M]], None]) -> None:
        """Call ``callback`` once when the actor ends for good (at once if it already has)."""
        if self.closed:
            callback(self)
        else:
            self._close_callbacks.append(callback)

    # -- used by the runtime --------------------------------------------------------------

    def _live_mailbox(self) -> Mailbox[M]:
        mailbox = self._mailbox
        if mailbox is None:
            # The documented reasons are plain text ("restarting", "stopped"), not our enum.
            down = self._down
            raise ActorExited(self.name, down.value if isinstance(down, _Down) else down)
        return mailbox

    def _attach(self, mailbox: Mailbox[M]) -> None:
        self._mailbox = mailbox

    def _detach(self, reason: object = _Down.RESTARTING) -> None:
        self._mailbox = None
        if self._down is not _Down.CLOSED:
            self._down = reason

    def _close(self) -> None:
        if self._down is _Down.CLOSED:
            return
        self._mailbox = None
        self._down = _Down.CLOSED
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            callback(self)


class Actor(Generic[M]):
    """Base class of every actor: override `handle`, and `on_start` / `on_stop` as needed.

    Example::

        class Counter(Actor[int]):
            def __init__(self) -> None:
                self.total = 0

            async def handle(self, message: int) -> int:
                self.total += message
                return self.total        # the reply, when the message came by `call`

        async with open_actor(Counter(), name="counter") as counter:
            await counter.cast(2)
            assert await counter.call(3) == 5

    An exception from `on_start`, `handle` or a background task started with `start_soon`
    crashes the incarnation; its supervisor decides what happens next. Resources that must be
    released however the actor ends (a child process, a socket) go on ``self.exit_stack``.

    A requested stop (`SupervisorRef.terminate_child`, leaving `open_actor`) has one budget,
    the shutdown timeout: `on_stop` and the exit stack together get that long from the request,
    then whatever is still awaiting is cancelled. Plain (synchronous) callbacks on the exit stack
    still run after the deadline, so a cleanup that must happen (killing a process) belongs in
    one. An actor that ends by itself or crashes gets the whole timeout for its exit stack.
    """

    #: The mailbox policy of every incarnation of this class.
    mailbox_policy: ClassVar[MailboxPolicy] = MailboxPolicy()

    address: Address[M]
    reports: ReportBus
    registry: Registry
    exit_stack: contextlib.AsyncExitStack
    _mailbox: Mailbox[M]
    _task_group: TaskGroup

    async def on_start(self) -> None:
        """Initialise; runs before the first message. Raising here is a start failure."""

    async def handle(self, message: M) -> Any:
        """Handle one message; the return value is the reply to a `call`."""
        raise NotImplementedError

    async def on_stop(self, kind: ExitKind) -> None:
        """Clean up after a requested or self-initiated stop (not after a crash)."""

    def start_soon(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run a background task for the life of this incarnation; if it raises, the actor
        crashes, and it is cancelled when the actor stops."""
        self._task_group.start_soon(func, *args)

    def stop(self) -> None:
        """Stop this actor after the current message, as a normal exit."""
        self._mailbox.put_control(_Stop(ExitKind.NORMAL))

    def post_control(self, item: object) -> None:
        """Put ``item`` on this actor's control lane (read before ordinary messages).

        `handle` receives it like any message; background tasks use this to report back
        without competing with a full mailbox.
        """
        self._mailbox.put_control(item)


def unwrap(error: BaseException) -> BaseException:
    """Return the single error inside nested one-member exception groups, else ``error``."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


class Lifecycle:
    """What the runner of one incarnation shares with whoever may stop it.

    Attributes:
        started: Whether the incarnation got past `Actor.on_start` (start failures are told
            apart from crashes).
        stop_deadline: When a requested stop must be complete (``inf`` until one is requested);
            the exit stack is not given time beyond it.
        cut_off: Whether closing the exit stack was cancelled at its deadline.
    """

    __slots__ = ("cut_off", "started", "stop_deadline")

    def __init__(self) -> None:
        self.started = False
        self.stop_deadline = math.inf
        self.cut_off = False


async def run_incarnation(
    actor: Actor[M],
    address: Address[M],
    mailbox: Mailbox[M],
    reports: ReportBus,
    registry: Registry,
    lifecycle: Lifecycle,
    shutdown: float,
    *,
    restarts_on_error: bool = False,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> ExitKind:
    """Run one incarnation of ``actor`` until it stops; return how it stopped.

    ``task_status.started()`` is called once `Actor.on_start` returned and the address
    accepts messages. Exceptions propagate; whatever happens, the address is detached, the
    exit stack is closed (bounded by ``shutdown``, and by ``lifecycle.stop_deadline`` once a
    stop was requested) and callers still waiting are told with `ActorExited`. After an error
    the address says ``"restarting"`` if ``restarts_on_error`` (a supervisor will restart it),
    else ``"crashed"``.
    """
    actor.address = address
    actor.reports = reports
    actor.registry = registry
    actor._mailbox = mailbox
    actor.exit_stack = stack = contextlib.AsyncExitStack()
    down: object = _Down.RESTARTING if restarts_on_error else _Down.CRASHED
    try:
        async with anyio.create_task_group() as task_group:
            actor._task_group = task_group
            await actor.on_start()
            address._attach(mailbox)
            lifecycle.started = True
            task_status.started()
            kind = await _message_loop(actor, mailbox)
            address._detach()
            await actor.on_stop(kind)
            task_group.cancel_scope.cancel()
        down = _Down.STOPPED
        return kind
    finally:
        address._detach(down)
        pending = mailbox.close(ActorExited(address.name, "exited"))
        for envelope in pending:
            if envelope.reply is not None:
                envelope.reply.fail(ActorExited(address.name, "exited before handling the call"))
        # Resources must be released even when we are being cancelled, but not forever: a
        # requested stop has one budget in all (on_stop, then this), the stopper's deadline.
        deadline = min(anyio.current_time() + shutdown, lifecycle.stop_deadline)
        with anyio.CancelScope(deadline=deadline, shield=True) as cleanup:
            await stack.aclose()
        lifecycle.cut_off = cleanup.cancelled_caught


async def _message_loop(actor: Actor[M], mailbox: Mailbox[M]) -> ExitKind:
    while True:
        item = await mailbox.get()
        if isinstance(item, Envelope):
            reply = item.reply
            if reply is None:
                await actor.handle(item.message)
                continue
            try:
                result = await actor.handle(item.message)
            except BaseException as error:
                reply.fail(ActorExited(actor.address.name, error))
                raise
            reply.resolve(result)
        elif isinstance(item, _Stop):
            return item.kind
        elif isinstance(item, _Kill):
            raise ActorKilled(f"actor {actor.address.name!r} was killed: {item.reason}")
        else:
            await actor.handle(item)  # type: ignore[arg-type]  # control items posted by the actor itself


def request_stop(
    mailbox: Mailbox[Any], lifecycle: Lifecycle, timeout: float, kind: ExitKind = ExitKind.SHUTDOWN
) -> None:
    """Ask the incarnation reading ``mailbox`` to stop after its current message, and to be
    done (on_stop and exit stack) within ``timeout`` seconds from now."""
    lifecycle.stop_deadline = min(lifecycle.stop_deadline, anyio.current_time() + timeout)
    mailbox.put_control(_Stop(kind))


@contextlib.asynccontextmanager
async def open_actor(
    actor: Actor[M],
    *,
    name: str | None = None,
    reports: ReportBus | None = None,
    registry: Registry | None = None,
    shutdown: float = _defaults.SHUTDOWN_TIMEOUT,
) -> AsyncIterator[Address[M]]:
    """Run an unsupervised actor for the duration of the ``async with`` block.

    On exit the actor is asked to stop and gets ``shutdown`` seconds before it is cancelled.
    If it crashes, its exception propagates out of the block.
    """
    address: Address[M] = Address(name or type(actor).__name__)
    reports = reports or ReportBus()
    mailbox: Mailbox[M] = Mailbox(actor.mailbox_policy, address.name, reports)
    try:
        async with _run_root(actor, address, mailbox, reports, registry, shutdown) as running:
            yield running
    except BaseExceptionGroup as group:
        # The task group wraps the actor's crash; hand the caller the crash itself.
        error = unwrap(group)
        if isinstance(error, Exception) and not isinstance(error, BaseExceptionGroup):
            raise error from group
        raise


@contextlib.asynccontextmanager
async def _run_root(
    actor: Actor[M],
    address: Address[M],
    mailbox: Mailbox[M],
    reports: ReportBus,
    registry: Registry | None,
    shutdown: float,
) -> AsyncIterator[Address[M]]:
    async with anyio.create_task_group() as task_group:
        scope = anyio.CancelScope()
        done = anyio.Event()
        lifecycle = Lifecycle()

        async def run(*, task_status: TaskStatus[None]) -> None:
            try:
                with scope:
                    await run_incarnation(
                        actor,
                        address,
                        mailbox,
                        reports,
                        registry or Registry(),
                        lifecycle,
                        shutdown,
                        task_status=task_status,
                    )
            finally:
                done.set()

        await task_group.start(run)
        try:
            yield address
        finally:
            request_stop(mailbox, lifecycle, shutdown)
            with anyio.move_on_after(shutdown, shield=True):
                await done.wait()
            scope.cancel()
            address._close()
