"""Supervisors with OTP semantics, plus backoff between restarts.

A `Supervisor` is an actor whose children are actors (or supervisors). It starts them in order,
stops them in reverse order, and when one exits decides - with pure functions from
``_spec``, ``_strategy``, ``_intensity`` and ``_backoff`` - whether and which to restart.
Every decision is reported on the `ReportBus`. Its records of its children are in
``_children``; what clients can ask of it, and `SupervisorRef`, are in ``_supervisor_ref``.

Exits reach the supervisor on its control lane, so a supervisor with a full mailbox still
learns that a child died. Restarts wait for a backoff delay (a timer task, cancelled when the
restart no longer waits, posts ``_RestartDue``); while a child waits, its stable address refuses
messages at once. Exceeding the restart intensity stops every child and ends the supervisor with
`RestartIntensityExceeded`, which its own parent sees as a crash (escalation).

Decisions beyond (or against) OTP's ``supervisor.erl``:

* Group restarts (`Strategy.ONE_FOR_ALL`, `Strategy.REST_FOR_ONE`) follow OTP for running
  siblings: they are stopped in reverse order and restarted with the crashed child, permanent
  and transient alike, while temporary ones are stopped and removed. A sibling that is already
  stopped (by `SupervisorRef.terminate_child`, or a transient child that ended normally) stays
  stopped; OTP would start it again with the group.
* An explicit stop wins over a pending restart: `terminate_child` (or the supervisor stopping)
  cancels it, and a restart that falls due (or a crash that would restart at once) while a
  `terminate_child` for that child already waits in the mailbox - the supervisor was busy -
  does not start the child only for it to be stopped again.
* Nothing fails silently: a child that crashes while the supervisor stops it (its ``on_stop``
  or exit stack raises, or it crashed just before the stop) gets a `ReportKind.CRASH` report
  (context ``"shutdown"``, or ``"running"`` if it had already ended). It is not restarted on
  its own account: a stop asked for stays a stop, and in a group restart it restarts once,
  with the group, which counts once towards the intensity (OTP's ``shutdown_error``).
* A child's stop has one budget, its spec's ``shutdown``: ``on_stop`` and its exit stack
  together, then it is cancelled (`ReportKind.SHUTDOWN_TIMEOUT`).
* With no backoff, a start that fails is retried from the message loop (a ``_RestartDue`` on
  the control lane, as OTP's ``try_again_restart``), not by recursion: it ends in
  `RestartIntensityExceeded`, and a stop request gets in between two attempts.

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
import random as _random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import anyio
from anyio.abc import TaskStatus

from . import _defaults
from ._actor import (
    Actor,
    Address,
    open_actor,
    request_stop,
    run_incarnation,
    unwrap,
)
from ._backoff import Backoff, backoff_delay, next_attempt
from ._children import Child, Pending, Run
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
from ._spec import (
    RESTARTING,
    RUNNING,
    STOPPED,
    ChildSpec,
    ExitKind,
    Strategy,
    removed_when_stopped,
    should_restart,
)
from ._strategy import group_restart
from ._supervisor_ref import (
    ChildCounts,
    ChildInfo,
    DeleteChild,
    Failure,
    Query,
    RestartChild,
    StartChild,
    SupervisorRef,
    SupervisorStatistics,
    TerminateChild,
)

#: Restart timer tasks are named ``"<TIMER_TASK> <supervisor name>"``.
TIMER_TASK: Final = "actors restart timer of"


# -- control items (posted by the supervisor's own tasks) -------------------------------------


@dataclass(frozen=True, slots=True)
class _ChildExit:
    id: str
    run: Run


@dataclass(frozen=True, slots=True)
class _RestartDue:
    token: int


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
        self._children: dict[str, Child] = {}
        self._order: list[str] = []
        self._restarts: tuple[float, ...] = ()
        self._total_restarts = 0
        self._pending: dict[int, Pending] = {}
        self._next_token = 0

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
            pending = self._pending.pop(message.token, None)
            if pending is not None:
                await self._restart_group(pending.ids)
            return None
        try:
            return await self._handle_call(message)
        except ActorError as error:
            return Failure(error)

    async def _handle_call(self, message: Any) -> Any:
        if isinstance(message, StartChild):
            return await self._start_child(message.spec)
        if isinstance(message, TerminateChild):
            child = self._get(message.id)
            await self._terminate(child)
            if removed_when_stopped(child.spec.restart, self._dynamic):
                self._delete(child)
            return None
        if isinstance(message, RestartChild):
            child = self._get(message.id)
            await self._terminate(child)
            child.attempt = -1
            try:
                await self._start(child)
            except StartFailed:
                child.state = STOPPED
                raise
            return child.address
        if isinstance(message, DeleteChild):
            child = self._get(message.id)
            if child.state != STOPPED:
                raise ActorError(f"child {message.id!r} is {child.state}; terminate it first")
            self._delete(child)
            return None
        if isinstance(message, Query):
            return self._query(message.what)
        raise TypeError(f"supervisor {self.name!r} got an unknown message {message!r}")

    # -- children -------------------------------------------------------------------------

    def _add(self, spec: ChildSpec) -> Child:
        if spec.id in self._children:
            raise ActorError(f"child id {spec.id!r} is already present")
        address: Address[Any] = Address(f"{self.name}/{spec.id}")
        if spec.name is not None:
            self.registry.register(spec.name, address)
        child = Child(spec, address)
        self._children[spec.id] = child
        self._order.append(spec.id)
        return child

    def _delete(self, child: Child) -> None:
        self._children.pop(child.spec.id, None)
        if child.spec.id in self._order:
            self._order.remove(child.spec.id)
        child.address._close()

    def _get(self, child_id: str) -> Child:
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

    async def _start(self, child: Child) -> None:
        self._unpend(child.spec.id)
        try:
            actor = child.spec.start()
        except Exception as error:
            raise StartFailed(f"child {child.spec.id!r}: {error!r}") from error
        run = Run(Mailbox(actor.mailbox_policy, child.address.name, self.reports))
        child.run = run
        child.is_supervisor = isinstance(actor, Supervisor)
        try:
            await self._task_group.start(self._run_child, child, actor, run)
        except Exception as error:
            child.run = None
            raise StartFailed(f"child {child.spec.id!r}: {unwrap(error)!r}") from unwrap(error)
        child.state = RUNNING
        run.started_at = self._clock()

    async def _run_child(
        self,
        child: Child,
        actor: Actor[Any],
        run: Run,
        *,
        task_status: TaskStatus[None],
    ) -> None:
        try:
            with run.scope:
                run.kind = await run_incarnation(
                    actor,
                    child.address,
                    run.mailbox,
                    self.reports,
                    self.registry,
                    run.lifecycle,
                    child.spec.shutdown,
                    restarts_on_error=should_restart(child.spec.restart, ExitKind.ERROR),
                    task_status=task_status,
                )
                run.reason = run.kind.value
        except Exception as error:
            if not run.lifecycle.started:
                raise  # a start failure: it goes to the caller of _start, not to our loop
            run.kind, run.reason = ExitKind.ERROR, unwrap(error)
        finally:
            run.exited.set()
        self.post_control(_ChildExit(child.spec.id, run))

    async def _on_exit(self, exit: _ChildExit) -> None:
        child = self._children.get(exit.id)
        if child is None or child.run is not exit.run:
            return  # an incarnation we stopped on purpose: `_terminate` accounted for its exit
        run = exit.run
        uptime = self._clock() - run.started_at
        child.run = None
        child.state = STOPPED
        self._report_cut_off(child, run)  # its exit stack outlasted the shutdown timeout
        if run.kind is ExitKind.ERROR:
            self._report_crash(child, run, "running", uptime)
        if not should_restart(child.spec.restart, run.kind):
            if removed_when_stopped(child.spec.restart, self._dynamic):
                self._delete(child)
            return
        group = await self._plan_restart(child, uptime, run.reason)
        if group:
            await self._restart_group(group)

    def _report_cut_off(self, child: Child, run: Run) -> None:
        if run.lifecycle.cut_off:
            self.reports.emit(
                ReportKind.SHUTDOWN_TIMEOUT,
                self.name,
                child.spec.id,
                "did not stop in time; cancelled",
                shutdown=child.spec.shutdown,
            )

    def _report_crash(self, child: Child, run: Run, context: str, uptime: float) -> None:
        self.reports.emit(
            ReportKind.CRASH, self.name, child.spec.id, run.reason, context=context, uptime=uptime
        )
        if child.is_supervisor and isinstance(run.reason, RestartIntensityExceeded):
            self.reports.emit(ReportKind.ESCALATION, self.name, child.spec.id, run.reason)

    async def _plan_restart(
        self, child: Child, uptime: float, reason: object
    ) -> tuple[str, ...] | None:
        """Count a restart of ``child``'s group, stop the group, and schedule its start.

        Returns the group if it is to be started at once (no backoff), else ``None`` (a timer
        will post `_RestartDue`). Raises `RestartIntensityExceeded` after stopping every child.
        """
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
        group = await self._stop_group(child)
        child.attempt = next_attempt(self.backoff, child.attempt, uptime)
        delay = backoff_delay(self.backoff, child.attempt, self._random)
        for other_id in group:
            self._unpend(other_id)
            other = self._children[other_id]
            other.state = RESTARTING
            other.address._detach(RESTARTING)
        if delay <= 0:
            return group
        self._next_token += 1
        timer = anyio.CancelScope()
        self._pending[self._next_token] = Pending(group, timer)
        self._task_group.start_soon(
            self._restart_timer, self._next_token, delay, timer, name=f"{TIMER_TASK} {self.name}"
        )
        self.reports.emit(
            ReportKind.RESTART_SCHEDULED,
            self.name,
            child.spec.id,
            reason,
            delay=delay,
            attempt=child.attempt,
            children=group,
        )
        return None

    async def _stop_group(self, child: Child) -> tuple[str, ...]:
        """Stop the siblings that the strategy restarts with ``child``; return the group.

        Which siblings stop, which are removed and which restart is `group_restart`'s decision.
        """
        plan = group_restart(
            self.strategy,
            self._order,
            child.spec.id,
            {i: c.state for i, c in self._children.items()},
            {i: c.spec.restart for i, c in self._children.items()},
        )
        for other_id in plan.stop:
            other = self._children[other_id]
            await self._terminate(other)
            if other_id in plan.remove:
                self._delete(other)
        return plan.group

    async def _restart_timer(self, token: int, delay: float, timer: anyio.CancelScope) -> None:
        with timer:  # cancelled when the restart no longer waits (see `_unpend`)
            await anyio.sleep(delay)
            self.post_control(_RestartDue(token))

    async def _restart_group(self, ids: Sequence[str]) -> None:
        for child_id in ids:
            child = self._children.get(child_id)
            if child is None or child.state != RESTARTING:
                continue  # stopped or deleted meanwhile: an explicit stop wins
            if self._stop_requested(child_id):
                # terminate_child for it is already waiting in our mailbox (it came before we
                # got round to this restart): starting it only to stop it again would, for a
                # game server, spawn a process for nothing.
                self._unpend(child_id)
                child.state = STOPPED
                child.address._detach(STOPPED)
                continue
            try:
                await self._start(child)
            except StartFailed as error:
                child.state = STOPPED
                self.reports.emit(
                    ReportKind.CRASH, self.name, child_id, error.__cause__ or error, context="start"
                )
                # The rest of the group is rescheduled (or the supervisor gives up) from here.
                group = await self._plan_restart(child, 0.0, error)
                if group:
                    # No backoff: try again from the message loop, not by recursion, so a start
                    # that keeps failing ends in RestartIntensityExceeded, and a stop request
                    # on the control lane gets in between (OTP's try_again_restart).
                    self._next_token += 1
                    self._pending[self._next_token] = Pending(group, None)
                    self.post_control(_RestartDue(self._next_token))
                return
            child.restarts += 1
            self._total_restarts += 1
            self.reports.emit(
                ReportKind.RESTART, self.name, child_id, "restarted", attempt=child.attempt
            )

    def _stop_requested(self, child_id: str) -> bool:
        """Whether a `terminate_child` of ``child_id`` waits in this supervisor's mailbox."""
        return any(
            isinstance(message, TerminateChild) and message.id == child_id
            for message in self._mailbox.queued_messages()
        )

    def _unpend(self, child_id: str) -> None:
        for token, pending in list(self._pending.items()):
            if child_id in pending.ids:
                pending.ids = tuple(i for i in pending.ids if i != child_id)
                if not pending.ids:
                    del self._pending[token]
                    if pending.timer is not None:
                        pending.timer.cancel()  # no task outlives the restart it waited for

    async def _terminate(self, child: Child) -> None:
        self._unpend(child.spec.id)
        run, child.run = child.run, None  # from here on its exit notice is stale
        if run is not None:
            ended_by_itself = run.mailbox.closed
            request_stop(run.mailbox, run.lifecycle, child.spec.shutdown)
            with anyio.CancelScope(deadline=run.lifecycle.stop_deadline):
                await run.exited.wait()
            if not run.exited.is_set():
                run.scope.cancel()
                # Its exit stack shares the deadline that just passed, so this is prompt.
                await run.exited.wait()
                run.lifecycle.cut_off = True
            self._report_cut_off(child, run)
            if run.kind is ExitKind.ERROR:
                # It crashed, before our request or while stopping (on_stop or its exit stack
                # raised). Its exit notice is stale now, so this is the one report of it; it is
                # not restarted on its own account (OTP's shutdown_error).
                context = "running" if ended_by_itself else "shutdown"
                self._report_crash(child, run, context, self._clock() - run.started_at)
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
            pending_restarts=len(self._pending),
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
