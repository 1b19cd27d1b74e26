"""Supervisors with OTP semantics, plus backoff between restarts.

A `Supervisor` is an actor whose children are actors (or supervisors). It starts them in order,
stops them in reverse order, and when one exits decides - with pure functions from
``_spec``, ``_strategy``, ``_intensity`` and ``_backoff`` - whether and which to restart.
Every decision is reported on the `ReportBus`.

Exits reach the supervisor on its control lane, so a supervisor with a full mailbox still
learns that a child died. Restarts wait for a backoff delay (a timer posts ``_RestartDue``);
while a child waits, its stable address refuses messages at once. An explicit stop
(`SupervisorRef.terminate_child`, or the supervisor stopping) cancels a pending restart.
Exceeding the restart intensity stops every child and ends the supervisor with
`RestartIntensityExceeded`, which its own parent sees as a crash (escalation).

Example::

    children = [
        ChildSpec("store", start=Store),
        ChildSpec("api", start=lambda: Api(port=3001), restart=Restart.TRANSIENT),
    ]
    async with open_supervisor(children, strategy=Strategy.REST_FOR_ONE) as sup:
        print(await sup.which_children())
"""

from __future__ import annotations

import contextlib
import math
import random as _random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import anyio
from anyio.abc import TaskStatus

from . import _defaults
from ._actor import Actor, Address, Started, open_actor, request_stop, run_incarnation, unwrap
from ._backoff import Backoff, backoff_delay, next_attempt
from ._exceptions import (
    ActorError,
    RestartIntensityExceeded,
    StartFailed,
    TooManyChildren,
    UnknownChild,
)
from ._intensity import add_restart, prune
from ._mailbox import Mailbox
from ._registry import Registry
from ._reports import ReportBus, ReportKind
from ._spec import ChildSpec, ExitKind, Restart, Strategy, should_restart
from ._strategy import affected_children

ChildState = Literal["running", "restarting", "stopped"]

RUNNING: Final = "running"
RESTARTING: Final = "restarting"
STOPPED: Final = "stopped"


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One row of `SupervisorRef.which_children`."""

    id: str
    address: Address[Any]
    state: ChildState
    restart: Restart
    restarts: int
    supervisor: bool


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """The answer of `SupervisorRef.count_children` (OTP's specs/active/supervisors/workers)."""

    specs: int
    active: int
    supervisors: int
    workers: int


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    """A snapshot of a supervisor."""

    children: int
    running: int
    restarting: int
    restarts_in_window: int
    total_restarts: int
    intensity: int
    period: float


# -- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _StartChild:
    spec: ChildSpec


@dataclass(frozen=True, slots=True)
class _TerminateChild:
    id: str


@dataclass(frozen=True, slots=True)
class _RestartChild:
    id: str


@dataclass(frozen=True, slots=True)
class _DeleteChild:
    id: str


@dataclass(frozen=True, slots=True)
class _Query:
    what: Literal["which", "count", "statistics"]


@dataclass(frozen=True, slots=True)
class _ChildExit:
    id: str
    incarnation: int
    kind: ExitKind
    reason: object


@dataclass(frozen=True, slots=True)
class _RestartDue:
    token: int


@dataclass(frozen=True, slots=True)
class _Failure:
    """A call the supervisor refused; the ref re-raises it (the supervisor itself lives on)."""

    error: ActorError


class _Child:
    __slots__ = (
        "address",
        "attempt",
        "exited",
        "incarnation",
        "is_supervisor",
        "mailbox",
        "restarts",
        "scope",
        "spec",
        "started_at",
        "state",
    )

    def __init__(self, spec: ChildSpec, address: Address[Any]) -> None:
        self.spec = spec
        self.address = address
        self.mailbox: Mailbox[Any] | None = None
        self.scope = anyio.CancelScope()
        self.exited = anyio.Event()
        self.incarnation = 0  # 0: no incarnation running
        self.state: ChildState = STOPPED
        self.started_at: float | None = None
        self.attempt = -1  # consecutive restarts so far; the first restart is attempt 0
        self.restarts = 0
        self.is_supervisor = False


class Supervisor(Actor[Any]):
    """Supervises an ordered list of children with one restart strategy.

    Args:
        children: Child specs, started in this order at start-up.
        strategy: Which siblings restart with a crashed child.
        intensity: At most this many restarts ...
        period: ... within this many seconds, else the supervisor gives up.
        backoff: Delay between restarts; `Backoff.none` restarts at once.
        max_children: Refuse `start_child` beyond this many children.
        random: Source of jitter in ``[0, 1)``; inject a seeded one in tests.
        clock: Source of timestamps for the intensity window (default: anyio's clock).
    """

    _dynamic: bool = False

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: int = _defaults.INTENSITY,
        period: float = _defaults.PERIOD,
        backoff: Backoff | None = None,
        max_children: int | None = None,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        if intensity < 0 or period <= 0:
            raise ValueError("intensity must be >= 0 and period > 0")
        ids = [spec.id for spec in children]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate child ids in {ids}")
        self._specs = tuple(children)
        self.strategy = strategy
        self.intensity = intensity
        self.period = period
        self.backoff = backoff if backoff is not None else Backoff()
        self.max_children = max_children
        self._random = random
        self._clock = clock
        self._children: dict[str, _Child] = {}
        self._order: list[str] = []
        self._restarts: tuple[float, ...] = ()
        self._total_restarts = 0
        self._pending: dict[int, tuple[str, ...]] = {}
        self._next_token = 0
        self._next_incarnation = 0

    @property
    def name(self) -> str:
        return self.address.name

    # -- lifecycle ------------------------------------------------------------------------

    async def on_start(self) -> None:
        self.exit_stack.callback(self._close_all)
        for spec in self._specs:
            child = self._add(spec)
            try:
                await self._start(child)
            except StartFailed:
                await self._terminate_all()
                raise

    async def on_stop(self, kind: ExitKind) -> None:
        await self._terminate_all()

    async def handle(self, message: Any) -> Any:
        if isinstance(message, _ChildExit):
            await self._on_exit(message)
            return None
        if isinstance(message, _RestartDue):
            ids = self._pending.pop(message.token, None)
            if ids:
                await self._restart_group(ids)
            return None
        try:
            return await self._handle_call(message)
        except ActorError as error:
            return _Failure(error)

    async def _handle_call(self, message: Any) -> Any:
        if isinstance(message, _StartChild):
            return await self._start_child(message.spec)
        if isinstance(message, _TerminateChild):
            child = self._get(message.id)
            await self._terminate(child)
            if child.spec.restart is Restart.TEMPORARY or self._dynamic:
                self._delete(child)
            return None
        if isinstance(message, _RestartChild):
            child = self._get(message.id)
            await self._terminate(child)
            child.attempt = -1
            try:
                await self._start(child)
            except StartFailed:
                child.state = STOPPED
                raise
            return child.address
        if isinstance(message, _DeleteChild):
            child = self._get(message.id)
            if child.state != STOPPED:
                raise ActorError(f"child {message.id!r} is {child.state}; terminate it first")
            self._delete(child)
            return None
        if isinstance(message, _Query):
            return self._query(message.what)
        raise TypeError(f"supervisor {self.name!r} got an unknown message {message!r}")

    # -- children -------------------------------------------------------------------------

    def _add(self, spec: ChildSpec) -> _Child:
        if spec.id in self._children:
            raise ActorError(f"child id {spec.id!r} is already present")
        address: Address[Any] = Address(f"{self.name}/{spec.id}")
        if spec.name is not None:
            self.registry.register(spec.name, address)
        child = _Child(spec, address)
        self._children[spec.id] = child
        self._order.append(spec.id)
        return child

    def _delete(self, child: _Child) -> None:
        self._children.pop(child.spec.id, None)
        if child.spec.id in self._order:
            self._order.remove(child.spec.id)
        child.address._close()

    def _get(self, child_id: str) -> _Child:
        child = self._children.get(child_id)
        if child is None:
            raise UnknownChild(f"supervisor {self.name!r} has no child {child_id!r}")
        return child

    async def _start_child(self, spec: ChildSpec) -> Address[Any]:
        if self.max_children is not None and len(self._children) >= self.max_children:
            raise TooManyChildren(f"{self.name!r} already has {self.max_children} children")
        child = self._add(spec)
        try:
            await self._start(child)
        except StartFailed:
            self._delete(child)
            raise
        return child.address

    async def _start(self, child: _Child) -> None:
        self._unpend(child.spec.id)
        try:
            actor = child.spec.start()
        except Exception as error:
            raise StartFailed(f"child {child.spec.id!r}: {error!r}") from error
        self._next_incarnation += 1
        incarnation = self._next_incarnation
        mailbox: Mailbox[Any] = Mailbox(actor.mailbox_policy, child.address.name, self.reports)
        child.mailbox = mailbox
        child.scope = anyio.CancelScope()
        child.exited = anyio.Event()
        child.incarnation = incarnation
        child.is_supervisor = isinstance(actor, Supervisor)
        started = Started()
        try:
            await self._task_group.start(
                self._run_child, child, actor, mailbox, incarnation, started
            )
        except Exception as error:
            child.incarnation = 0
            child.mailbox = None
            child.started_at = None
            raise StartFailed(f"child {child.spec.id!r}: {unwrap(error)!r}") from unwrap(error)
        child.state = RUNNING
        child.started_at = self._clock()

    async def _run_child(
        self,
        child: _Child,
        actor: Actor[Any],
        mailbox: Mailbox[Any],
        incarnation: int,
        started: Started,
        *,
        task_status: TaskStatus[None],
    ) -> None:
        kind = ExitKind.SHUTDOWN
        reason: object = "killed after the shutdown timeout"
        scope, exited = child.scope, child.exited
        try:
            with scope:
                kind = await run_incarnation(
                    actor,
                    child.address,
                    mailbox,
                    self.reports,
                    self.registry,
                    started,
                    child.spec.shutdown,
                    task_status=task_status,
                )
                reason = kind.value
        except Exception as error:
            if not started.value:
                raise  # a start failure: it goes to the caller of _start, not to our loop
            kind, reason = ExitKind.ERROR, unwrap(error)
        finally:
            exited.set()
        self.post_control(_ChildExit(child.spec.id, incarnation, kind, reason))

    async def _on_exit(self, exit: _ChildExit) -> None:
        child = self._children.get(exit.id)
        if child is None or child.incarnation != exit.incarnation:
            return  # an incarnation we stopped on purpose: its exit is already accounted for
        uptime = self._clock() - child.started_at if child.started_at is not None else 0.0
        child.incarnation = 0
        child.mailbox = None
        child.started_at = None
        child.state = STOPPED
        if exit.kind is ExitKind.ERROR:
            self.reports.emit(
                ReportKind.CRASH, self.name, exit.id, exit.reason, context="running", uptime=uptime
            )
            if child.is_supervisor and isinstance(exit.reason, RestartIntensityExceeded):
                self.reports.emit(ReportKind.ESCALATION, self.name, exit.id, exit.reason)
        if not should_restart(child.spec.restart, exit.kind):
            if child.spec.restart is Restart.TEMPORARY or self._dynamic:
                self._delete(child)
            return
        await self._schedule_restart(child, uptime, exit.reason)

    async def _schedule_restart(self, child: _Child, uptime: float, reason: object) -> None:
        now = self._clock()
        self._restarts, allowed = add_restart(self._restarts, now, self.intensity, self.period)
        if not allowed:
            error = RestartIntensityExceeded(
                f"supervisor {self.name!r}: more than {self.intensity} restarts "
                f"in {self.period} s (last: child {child.spec.id!r}: {reason!r})"
            )
            self.reports.emit(
                ReportKind.GIVE_UP, self.name, child.spec.id, error, intensity=self.intensity
            )
            await self._terminate_all()
            raise error
        ids = affected_children(self.strategy, self._order, child.spec.id)
        for other_id in reversed(ids):
            other = self._children[other_id]
            if other is not child and other.state == RUNNING:
                await self._terminate(other)
        child.attempt = next_attempt(self.backoff, child.attempt, uptime)
        delay = backoff_delay(self.backoff, child.attempt, self._random)
        for other_id in ids:
            self._unpend(other_id)
            other = self._children[other_id]
            other.state = RESTARTING
            other.address._detach(RESTARTING)
        if delay <= 0:
            await self._restart_group(ids)
            return
        self._next_token += 1
        self._pending[self._next_token] = ids
        self.start_soon(self._restart_timer, self._next_token, delay)
        self.reports.emit(
            ReportKind.RESTART_SCHEDULED,
            self.name,
            child.spec.id,
            reason,
            delay=delay,
            attempt=child.attempt,
            children=ids,
        )

    async def _restart_timer(self, token: int, delay: float) -> None:
        await anyio.sleep(delay)
        self.post_control(_RestartDue(token))

    async def _restart_group(self, ids: Sequence[str]) -> None:
        for child_id in ids:
            child = self._children.get(child_id)
            if child is None or child.state != RESTARTING:
                continue  # stopped or deleted meanwhile: an explicit stop wins
            try:
                await self._start(child)
            except StartFailed as error:
                child.state = STOPPED
                self.reports.emit(
                    ReportKind.CRASH, self.name, child_id, error.__cause__ or error, context="start"
                )
                # The rest of the group is rescheduled (or the supervisor gives up) from here.
                await self._schedule_restart(child, 0.0, error)
                return
            child.restarts += 1
            self._total_restarts += 1
            self.reports.emit(
                ReportKind.RESTART, self.name, child_id, "restarted", attempt=child.attempt
            )

    def _unpend(self, child_id: str) -> None:
        for token, ids in list(self._pending.items()):
            if child_id in ids:
                rest = tuple(i for i in ids if i != child_id)
                if rest:
                    self._pending[token] = rest
                else:
                    del self._pending[token]

    async def _terminate(self, child: _Child) -> None:
        self._unpend(child.spec.id)
        if child.incarnation and child.mailbox is not None:
            child.incarnation = 0  # from here on its exit notice is stale
            request_stop(child.mailbox)
            with anyio.move_on_after(child.spec.shutdown):
                await child.exited.wait()
            if not child.exited.is_set():
                self.reports.emit(
                    ReportKind.SHUTDOWN_TIMEOUT,
                    self.name,
                    child.spec.id,
                    "did not stop in time; cancelled",
                    shutdown=child.spec.shutdown,
                )
                child.scope.cancel()
                await child.exited.wait()
        child.incarnation = 0
        child.mailbox = None
        child.started_at = None
        child.state = STOPPED
        child.address._detach(STOPPED)

    async def _terminate_all(self) -> None:
        for child_id in reversed(list(self._order)):
            child = self._children.get(child_id)
            if child is not None:
                await self._terminate(child)

    def _close_all(self) -> None:
        for child in list(self._children.values()):
            child.address._close()

    def _query(self, what: str) -> Any:
        children = [self._children[i] for i in self._order]
        if what == "which":
            return [
                ChildInfo(
                    c.spec.id, c.address, c.state, c.spec.restart, c.restarts, c.is_supervisor
                )
                for c in children
            ]
        if what == "count":
            supervisors = sum(1 for c in children if c.is_supervisor)
            return ChildCounts(
                specs=len(children),
                active=sum(1 for c in children if c.state == RUNNING),
                supervisors=supervisors,
                workers=len(children) - supervisors,
            )
        return SupervisorStatistics(
            children=len(children),
            running=sum(1 for c in children if c.state == RUNNING),
            restarting=sum(1 for c in children if c.state == RESTARTING),
            restarts_in_window=len(prune(self._restarts, self._clock(), self.period)),
            total_restarts=self._total_restarts,
            intensity=self.intensity,
            period=self.period,
        )


class DynamicSupervisor(Supervisor):
    """A one-for-one supervisor for many children of one kind, added at run time.

    Children that end for good (a temporary child's exit, a transient child's normal exit, or
    `SupervisorRef.terminate_child`) are removed, as with OTP's ``simple_one_for_one``.
    """

    _dynamic = True

    def __init__(
        self,
        *,
        max_children: int | None = None,
        intensity: int = _defaults.INTENSITY,
        period: float = _defaults.PERIOD,
        backoff: Backoff | None = None,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        super().__init__(
            (),
            strategy=Strategy.ONE_FOR_ONE,
            intensity=intensity,
            period=period,
            backoff=backoff,
            max_children=max_children,
            random=random,
            clock=clock,
        )


class SupervisorRef:
    """Talks to a running supervisor through its address (all methods are calls).

    Calls wait without a timeout by default, as OTP's supervisor calls do: terminating a child
    legitimately takes up to its shutdown timeout, and a supervisor always answers.
    """

    def __init__(self, address: Address[Any], timeout: float = math.inf) -> None:
        self.address = address
        self.timeout = timeout

    async def _call(self, message: object) -> Any:
        result = await self.address.call(message, self.timeout)
        if isinstance(result, _Failure):
            raise result.error
        return result

    async def start_child(self, spec: ChildSpec) -> Address[Any]:
        """Add and start a child; return its stable address.

        Raises:
            StartFailed: Its start raised (it is not kept).
            TooManyChildren: ``max_children`` reached.
        """
        address: Address[Any] = await self._call(_StartChild(spec))
        return address

    async def terminate_child(self, child_id: str) -> None:
        """Stop a child (and cancel a pending restart); its spec is kept (unless dynamic)."""
        await self._call(_TerminateChild(child_id))

    async def restart_child(self, child_id: str) -> Address[Any]:
        """Start a stopped child again, or stop and start a running one; resets its backoff."""
        address: Address[Any] = await self._call(_RestartChild(child_id))
        return address

    async def delete_child(self, child_id: str) -> None:
        """Forget a stopped child's spec; its address ends for good."""
        await self._call(_DeleteChild(child_id))

    async def which_children(self) -> list[ChildInfo]:
        """Return every child in start order."""
        children: list[ChildInfo] = await self._call(_Query("which"))
        return children

    async def count_children(self) -> ChildCounts:
        """Return OTP's child counts."""
        counts: ChildCounts = await self._call(_Query("count"))
        return counts

    async def statistics(self) -> SupervisorStatistics:
        """Return a snapshot: children, running, restarting, restarts in the window."""
        stats: SupervisorStatistics = await self._call(_Query("statistics"))
        return stats


@contextlib.asynccontextmanager
async def open_supervisor(
    children: Sequence[ChildSpec] = (),
    *,
    name: str = "root",
    reports: ReportBus | None = None,
    registry: Registry | None = None,
    shutdown: float = float("inf"),
    supervisor: Supervisor | None = None,
    **options: Any,
) -> AsyncIterator[SupervisorRef]:
    """Run a root supervisor for the duration of the block.

    Pass either ``children`` and `Supervisor` options, or a ready ``supervisor`` (e.g. a
    `DynamicSupervisor`). Leaving the block stops the children in reverse order. If the
    supervisor gives up, `RestartIntensityExceeded` propagates out of the block.
    """
    root = supervisor if supervisor is not None else Supervisor(children, **options)
    async with open_actor(
        root, name=name, reports=reports, registry=registry, shutdown=shutdown
    ) as address:
        yield SupervisorRef(address)
