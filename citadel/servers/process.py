"""The ``process`` actor: owns one game server's OS process and its lifecycle.

State machine (DESIGN §2)::

    stopped ──start──> starting ──ready──> running ──stop──> stopping ──> stopped
       ^                  │                   │
       │                  └──exit/timeout─────┴──exit/hang──> crashed ──backoff──> starting
       └──────────────────────── stop (cancels a pending restart) ─────────┘

This module holds the state machine: what each message (operator commands, the logs actor's
``Ready`` and ``FatalStartError``, the control messages of its own background tasks) does to the
server's state, and how the actor resumes after its own crash or a Citadel restart (adoption).
The actor is the only writer of `ServerState`, always through `process_status.StatusPublisher`
(record, ``serverStatus`` with a new ``seq`` each, notifications). Its other collaborators:
`process_restarts` (the automatic-restart budget and timer), `process_run` (the background
tasks that watch, time, stop and clean up the current run, reporting back as control messages),
`process_memory` (what survives the actor's own crashes) and `run_files` (command line, console
file, RPT). The decisions are pure functions in `policy`.

* An exit Citadel did not ask for is a crash; so is a start that never became ready within
  ``start_timeout`` and a running server judged hung (it is killed first).
* An automatic start whose executable cannot even be spawned is a failed attempt like a crash:
  counted, backed off, retried. An operator's start that cannot be spawned is reported
  ``crashed`` with the OS error and not retried (the operator is there to read it). An
  operator's stop beats a pending restart; an operator's start is always accepted and resets
  the budget.
* The process handle lives in `ServerRuntime` (`ProcessMemory`), not in the actor: if this actor
  crashes, its next incarnation re-attaches to the running game instead of starting a second
  one.
* At every transition the `LifecycleRecord` (seq, status, readiness, the live run with its
  identity: pid + create time + command line) is persisted through the `RunStore`. A restarted
  Citadel continues the ``seq`` where it stopped, adopts the runs still alive and resumes them
  as they were (`policy.adoption_plan`: ``starting`` keeps what is left of its start timeout,
  unless the run's RPT shows it became ready meanwhile), and reports the ones that died
  meanwhile as ``crashed`` with the automatic restart it schedules (``restartIn``), after
  killing whatever still carries the dead run's marker; it schedules none while a process of
  the dead run may still live (`RunControl.clear_dead_run`). A run recognised by its marker after an
  ``exec`` has its stored command line refreshed at adoption and when it becomes ready. Its first
  ``serverStatus`` of a server repeats the persisted ``seq`` when the status is unchanged
  (what the old Citadel last published), else it is a transition (+1).
* The server's stdout and stderr go to a console file per start (tailed by the logs actor), not
  to a pipe: a server writing into a pipe would die of SIGPIPE with the Citadel that read it.
"""

from __future__ import annotations

import logging
import os
import random as _random
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import anyio
import msgspec

from actors import Actor, ChildSpec, ExitKind, Restart
from citadel.games.dayz.beconfig import write_beserver_cfg
from citadel.servers.cleanup import CLEANUP_TIMEOUT
from citadel.servers.handles import ExitStatus, ManagedProcess
from citadel.servers.ladder import StopOutcome
from citadel.servers.messages import (
    Accepted,
    FatalStartError,
    GetStatus,
    Ready,
    RestartServer,
    StartServer,
    StopServer,
)
from citadel.servers.persistence import Outbox, RunStore
from citadel.servers.policy import adoption_plan
from citadel.servers.process_memory import ProcessMemory
from citadel.servers.process_restarts import RestartDue, RestartPlanner
from citadel.servers.process_run import (
    Exited,
    HangCheck,
    RconPortHeld,
    RunControl,
    StartTimedOut,
    Stopped,
)
from citadel.servers.process_status import StatusPublisher
from citadel.servers.run_files import (
    check_install_dir,
    discard_empty,
    prepare_console,
    resolve_argv,
    rpt_shows_ready,
)
from citadel.servers.runtime import PROCESS, LifecycleRecord, RunInfo, ServerRuntime
from citadel.servers.spawn import adopt, spawn

log = logging.getLogger("citadel.process")

# --- defaults --------------------------------------------------------------------------------
#: Extra time the supervisor gives this actor to stop beyond the server's own stop ladder.
STOP_MARGIN: Final = 15.0
#: Random bytes of a run's marker (``CITADEL_RUN_ID``, see `spawn.spawn`).
MARKER_BYTES: Final = 16
# -----------------------------------------------------------------------------------------------


def describe_exit(status: ExitStatus) -> str:
    """A short sentence for an exit status."""
    if status.signal is not None:
        return f"killed by {status.signal}"
    if status.code is not None:
        return f"exited with code {status.code}"
    # An adopted run: only a parent can read the status, and that was an earlier Citadel.
    return "exited (exit code and signal unknown: the run was adopted, not started by this Citadel)"


class ProcessActor(Actor[Any]):
    """Supervises one game-server process (see the module docstring)."""

    def __init__(
        self,
        runtime: ServerRuntime,
        runs: RunStore,
        *,
        random: Callable[[], float] = _random.random,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.runtime = runtime
        self.runs = runs
        self.memory: ProcessMemory = runtime.extras.setdefault("process", ProcessMemory())
        self._wall = wall_clock
        self._restarts = RestartPlanner(
            runtime,
            self.memory,
            random=random,
            start_soon=self.start_soon,
            post_control=self.post_control,
        )

    # -- lifecycle of the actor itself --------------------------------------------------------

    async def on_start(self) -> None:
        memory, state = self.memory, self.runtime.state.current
        if memory.outbox is None:
            # The outbox outlives this actor's crashes: events queued by a crashed incarnation
            # are still sent, in order, by the next one (a dashboard sees no seq gap).
            memory.outbox = Outbox(self.runtime.id)
        self._status = StatusPublisher(
            self.runtime,
            memory,
            memory.outbox,
            plan_restart=self._restarts.plan,
            wall_clock=self._wall,
        )
        self._run = RunControl(
            self.runtime,
            memory,
            self._status,
            start_soon=self.start_soon,
            post_control=self.post_control,
        )
        self.start_soon(memory.outbox.drain, self.runs, self.runtime.publish)
        self.start_soon(self._run.hang_watch)
        process = memory.process
        if process is not None and not process.exited:
            # This actor crashed and was restarted; the game kept running: re-attach.
            self._run.watch(process, memory.incarnation)
            if state.status == "stopping":
                self.start_soon(self._run.stop_ladder, memory.incarnation)
            elif state.status == "starting":
                self._run.arm_start_timeout(memory.incarnation)
            return
        if process is not None:
            # It exited while this actor was down: the watcher's message died with it.
            status = process.status or _unknown()
            if memory.intent in ("stop", "restart"):
                await self._finish_stop(memory.incarnation, StopOutcome("exited", status))
            else:
                await self._on_exit(Exited(memory.incarnation, status))
            return
        if state.status == "crashed" and memory.restart_at is not None:
            self._restarts.schedule_at(memory.restart_at)
            return
        if state.version == 0:
            await self._first_start()

    async def _first_start(self) -> None:
        """Citadel just started: continue from the persisted record, or start fresh."""
        runtime, cfg = self.runtime, self.runtime.config
        record = await self.runs.load(runtime.id)
        if record is None:
            if cfg.auto_start:
                await self._spawn(reason="auto start", automatic=True)
            else:
                self._status.transition("stopped", reason="not started", bump=False)
            return
        run = record.run
        adopted = None if run is None else adopt(run.identity, run.marker)
        # A recorded run that is not adopted is dead: nothing of it may outlive it.
        blocked = (
            None if run is None or adopted is not None else await self._run.clear_dead_run(run)
        )
        ready = record.ready
        if run is not None and adopted is not None and not ready and record.status != "stopping":
            # Citadel may have died between the game's "Player connect enabled" and the
            # record that says so; the RPT tells. (Before any state change: should this actor
            # crash meanwhile, its next incarnation starts over from the record.)
            try:
                ready = await anyio.to_thread.run_sync(rpt_shows_ready, run)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await adopted.aclose()  # only the pidfd: an adopted server is not killed
                raise
        # Continue the seq (and status) the previous Citadel published last.
        runtime.state.update(seq=record.seq, status=record.status, ready=record.ready)
        if run is not None and adopted is not None:
            self._adopt(adopted, record, run, ready=ready)
            return
        if run is not None or record.status in ("starting", "running", "stopping"):
            blocked_note = "" if blocked is None else f"; {blocked}"
            if record.status == "stopping":
                self._status.transition(
                    "stopped",
                    reason="the server exited while Citadel was not running (it was stopping)"
                    + blocked_note,
                    ready=False,
                    notify=("info", "Server stopped"),
                )
                return
            self._status.transition(
                "crashed",
                reason=f"the server exited while Citadel was not running{blocked_note}",
                ready=False,
                notify=("error", "Server exited while Citadel was down"),
                plan_restart=cfg.auto_restart and blocked is None,
            )
            return
        if cfg.auto_start or (record.restart_pending and cfg.auto_restart):
            why = "auto start" if cfg.auto_start else "the restart pending when Citadel stopped"
            await self._spawn(reason=why, automatic=True)
            return
        self._status.transition(
            record.status, reason=f"{record.status} before Citadel restarted", bump=False
        )

    async def on_stop(self, kind: ExitKind) -> None:
        # Stopping this actor never stops the game: the actor may be stopped because its
        # supervisor gave up and is about to be restarted, and the next incarnation re-attaches
        # to the running process. Stopping the game is the fleet's explicit decision
        # (`Fleet.remove`, `Fleet.stop_all`), made before the actor is stopped.
        return None

    # -- messages -------------------------------------------------------------------------

    async def handle(self, message: Any) -> Any:
        match message:
            case StartServer(by=by):
                return await self._operator_start(by)
            case StopServer(by=by):
                return self._operator_stop(by)
            case RestartServer(by=by):
                return await self._operator_restart(by)
            case GetStatus():
                return self._status.status_view()
            case Ready(incarnation=incarnation):
                self._on_ready(incarnation)
            case FatalStartError(incarnation=incarnation, message=text):
                self._on_fatal(incarnation, text)
            case Exited():
                await self._on_exit(message)
            case Stopped(incarnation=incarnation, outcome=outcome):
                await self._finish_stop(incarnation, outcome)
            case RestartDue(token=token):
                await self._on_restart_due(token)
            case StartTimedOut(incarnation=incarnation):
                await self._on_start_timeout(incarnation)
            case HangCheck():
                self._run.check_hang()
            case RconPortHeld(incarnation=incarnation, reason=reason):
                self._on_rcon_port_held(incarnation, reason)
            case _:
                log.warning("%s: process actor ignored %r", self.runtime.id, message)
        return None

    # -- operator commands ----------------------------------------------------------------

    async def _operator_start(self, by: str | None) -> Accepted:
        status = self.runtime.state.current.status
        if status in ("starting", "running"):
            return Accepted(False, f"the server is already {status}")
        if status == "stopping":
            return Accepted(False, "the server is stopping; start it once it has stopped")
        # An operator's start is always accepted and resets the automatic-restart budget.
        self._restarts.cancel()
        memory = self.memory
        memory.auto_restarts, memory.attempt = (), -1
        failure = await self._spawn(reason=f"started by {by or 'an operator'}", automatic=False)
        return Accepted(True, failure=failure)

    def _operator_stop(self, by: str | None) -> Accepted:
        memory, status = self.memory, self.runtime.state.current.status
        if memory.restart_at is not None:
            # Stop wins over a pending automatic restart.
            self._restarts.cancel()
            self._status.transition(
                "stopped",
                reason=f"stopped by {by or 'an operator'}; the pending restart was cancelled",
                notify=("info", "Server stopped"),
            )
            return Accepted(True)
        if status in ("stopped", "crashed"):
            return Accepted(False, f"the server is {status}")
        if status == "stopping":
            return Accepted(False, "the server is already stopping")
        memory.intent, memory.stop_requested_by = "stop", by
        self._status.transition(
            "stopping",
            reason=f"stop requested by {by or 'an operator'}",
            notify=("info", "Server stopping"),
        )
        self.start_soon(self._run.stop_ladder, memory.incarnation)
        return Accepted(True)

    async def _operator_restart(self, by: str | None) -> Accepted:
        status = self.runtime.state.current.status
        if status in ("stopped", "crashed"):
            return await self._operator_start(by)
        if status == "stopping":
            return Accepted(False, "the server is already stopping")
        memory = self.memory
        memory.intent, memory.stop_requested_by = "restart", by
        memory.auto_restarts, memory.attempt = (), -1
        self._status.transition(
            "stopping",
            reason=f"restart requested by {by or 'an operator'}",
            notify=("info", "Server restarting"),
        )
        self.start_soon(self._run.stop_ladder, memory.incarnation)
        return Accepted(True)

    # -- starting -------------------------------------------------------------------------

    async def _spawn(self, *, reason: str, automatic: bool) -> str | None:
        """Start a new run; ``automatic`` when no operator asked (auto start, restarts).

        Returns why the process could not be spawned, or None once it was.
        """
        runtime, memory = self.runtime, self.memory
        cfg = runtime.config
        memory.intent, memory.intent_detail, memory.fatal_message = None, "", None
        memory.ready_at = None
        started_wall = self._wall()
        marker = secrets.token_hex(MARKER_BYTES)
        console: Path | None = None
        try:
            check_install_dir(runtime)
            argv = resolve_argv(runtime)
            profile = runtime.profile_dir
            console = prepare_console(profile, started_wall, memory.incarnation + 1)
            rcon = cfg.rcon
            if rcon is not None:
                # Also deletes a stale beserver_x64_active_*.cfg, which would win otherwise.
                await anyio.to_thread.run_sync(
                    lambda: write_beserver_cfg(profile, rcon.password, rcon.port, rcon.host)
                )
            env = {**os.environ, **cfg.env} if cfg.env else None
            process = await spawn(
                argv,
                cwd=runtime.install_dir,
                env=env,
                output=console,
                kill_timeout=cfg.kill_timeout,
                marker=marker,
            )
        except (OSError, ValueError) as error:
            if console is not None:
                discard_empty(console)  # no run wrote it: not a log of anything
            memory.restart_at = None
            # An automatic start that cannot even spawn (a mount not up yet, EAGAIN, ENOMEM, a
            # binary being replaced) is a failed attempt: counted, backed off, retried until
            # the budget is spent. An operator's start is reported and left to the operator.
            retry = automatic and cfg.auto_restart
            self._status.system("error", f"could not start: {error}")
            self._status.transition(
                "crashed",
                reason=f"could not start: {error}",
                notify=("error", "Server failed to start"),
                plan_restart=retry,
            )
            return f"could not start: {error}"
        memory.restart_at = None
        memory.incarnation += 1
        memory.process = process
        memory.spawned_at = anyio.current_time()
        memory.start_deadline = memory.spawned_at + cfg.start_timeout
        run = RunInfo(
            incarnation=memory.incarnation,
            identity=process.identity,
            started_at=process.identity.create_time,
            profile_dir=str(runtime.profile_dir),
            console_log=str(console),
            marker=marker,
        )
        self._status.transition(
            "starting",
            reason=reason,
            run=run,
            ready=False,
            exited=False,
            notify=("info", "Server starting"),
        )
        self._status.system("info", f"{reason}: pid {process.pid}: {' '.join(argv)}")
        self._run.watch(process, memory.incarnation)
        self._run.arm_start_timeout(memory.incarnation)
        return None

    def _adopt(
        self, process: ManagedProcess, record: LifecycleRecord, previous: RunInfo, *, ready: bool
    ) -> None:
        """Resume a run found alive after a Citadel restart (`policy.adoption_plan`)."""
        memory, cfg = self.memory, self.runtime.config
        plan = adoption_plan(
            record.status,
            ready=ready,
            started_at=previous.started_at,
            now=self._wall(),
            start_timeout=cfg.start_timeout,
        )
        memory.incarnation += 1
        memory.process = process
        now = memory.spawned_at = anyio.current_time()
        # Recognised perhaps by its marker after an exec: store what runs now (`identity`).
        run = msgspec.structs.replace(
            previous,
            incarnation=memory.incarnation,
            adopted=True,
            identity=process.refresh_identity(),
        )
        adopted = f"adopted the server (pid {process.pid}) after a Citadel restart"
        # The same status as recorded is no transition: the seq is repeated, not bumped.
        bump = plan.status != record.status
        self._run.watch(process, memory.incarnation)
        if plan.status == "stopping":
            memory.intent = "stop"
            memory.stop_requested_by = "an operator (before Citadel restarted)"
            self._status.transition(
                "stopping", reason=f"{adopted}; it was stopping", run=run, exited=False, bump=bump
            )
            self.start_soon(self._run.stop_ladder, memory.incarnation)
        elif plan.status == "running":
            memory.ready_at = now
            self._status.transition(
                "running",
                reason=f"{adopted}; running",
                run=run,
                ready=True,
                exited=False,
                notify=("info", "Server adopted"),
                bump=bump,
            )
            self._run.check_rcon_port(memory.incarnation)
        else:
            memory.start_deadline = now + plan.start_timeout_left
            left = memory.start_deadline - now  # what the armed timer will wait
            self._status.transition(
                "starting",
                reason=f"{adopted}; still starting ({left:.0f} s left of its start timeout)",
                run=run,
                ready=False,
                exited=False,
                notify=("info", "Server adopted"),
                bump=bump,
            )
            self._run.arm_start_timeout(memory.incarnation)

    def _on_ready(self, incarnation: int) -> None:
        state = self.runtime.state.current
        if incarnation != self.memory.incarnation or state.status != "starting":
            return
        self.memory.ready_at = anyio.current_time()
        self._status.transition(
            "running",
            reason="accepting players",
            ready=True,
            notify=("success", "Server running"),
            run=self._settled_run(),
        )
        self._run.check_rcon_port(incarnation)

    def _on_rcon_port_held(self, incarnation: int, reason: str) -> None:
        if incarnation != self.memory.incarnation or self.runtime.state.current.exited:
            return
        message = (
            f"{reason}: RCON answers (players, commands) may come from that process, and a "
            "stop will not send it #shutdown"
        )
        self._status.system("warn", message)
        self._status.notify("warning", "RCON port held by another process", message)

    def _settled_run(self) -> RunInfo | None:
        """The current run, its identity re-read now that a wrapper's ``exec`` is long done."""
        run, process = self.runtime.state.current.run, self.memory.process
        if run is None or process is None:
            return run
        identity = process.refresh_identity()
        if identity == run.identity:
            return run
        return msgspec.structs.replace(run, identity=identity)

    def _on_fatal(self, incarnation: int, text: str) -> None:
        if incarnation == self.memory.incarnation:
            self.memory.fatal_message = text
            self._status.system("error", f"fatal start error: {text}")

    async def _on_start_timeout(self, incarnation: int) -> None:
        state = self.runtime.state.current
        if incarnation != self.memory.incarnation or state.status != "starting":
            return
        run = state.run
        if run is not None and run.adopted and await anyio.to_thread.run_sync(rpt_shows_ready, run):
            self._on_ready(incarnation)  # became ready just before the deadline
            return
        timeout = self.runtime.config.start_timeout
        self._run.kill("start-timeout", f"not ready within the start timeout ({timeout:g} s)")

    # -- stopping -------------------------------------------------------------------------

    async def _finish_stop(self, incarnation: int, outcome: StopOutcome) -> None:
        memory = self.memory
        if incarnation != memory.incarnation or memory.intent not in ("stop", "restart"):
            return
        restart = memory.intent == "restart"
        by = memory.stop_requested_by or "an operator"
        steps = {
            "exited": "it had already exited",
            "graceful": "RCON #shutdown",
            "sigterm": "SIGTERM",
            "sigkill": "SIGKILL",
        }
        reason = f"stopped by {by} ({steps[outcome.step]})"
        if outcome.killed_descendants:
            reason += f"; killed {len(outcome.killed_descendants)} leftover process(es)"
        if outcome.survivors:
            reason += f"; {len(outcome.survivors)} process(es) would not die"
        if outcome.graceful_error:
            self._status.system("warn", f"graceful stop skipped: {outcome.graceful_error}")
        skipped, memory.graceful_skipped = memory.graceful_skipped, None
        if skipped is not None and outcome.step != "exited":
            reason += f"; RCON #shutdown skipped ({skipped})"
        status = outcome.status or ExitStatus(None, None)
        await self._run.process_gone()
        self._status.transition(
            "stopped",
            reason=reason,
            exit_code=status.code,
            signal=status.signal,
            exited=True,
            ready=False,
            notify=("info", "Server stopped"),
        )
        if restart:
            await self._spawn(reason=f"restarted by {by}", automatic=False)

    # -- exits ----------------------------------------------------------------------------

    async def _on_exit(self, exited: Exited) -> None:
        memory = self.memory
        if exited.incarnation != memory.incarnation or memory.process is None:
            return
        if memory.intent in ("stop", "restart"):
            return  # the stop ladder reports (with the step that ended it)
        status = exited.status
        intent, detail = memory.intent, memory.intent_detail
        uptime = 0.0 if memory.ready_at is None else anyio.current_time() - memory.ready_at
        if intent in ("hang", "start-timeout"):
            reason = detail
        elif memory.fatal_message:
            reason = f"{describe_exit(status)} after a fatal start error: {memory.fatal_message}"
        else:
            reason = f"{describe_exit(status)} unexpectedly"
        self._status.system("error", f"server {reason}")
        self._status.transition(
            "crashed",
            reason=reason,
            exit_code=status.code,
            signal=status.signal,
            exited=True,
            ready=False,
            notify=("error", "Server crashed"),
            plan_restart=self.runtime.config.auto_restart,
            uptime=uptime,
        )
        # Reported first (the crash is news, the cleanup takes a /proc scan), cleaned up before
        # this actor handles anything else: a restart or a start never races the leftovers.
        await self._run.process_gone()

    # -- automatic restarts ---------------------------------------------------------------

    async def _on_restart_due(self, token: int) -> None:
        memory = self.memory
        if token != memory.restart_token or memory.restart_at is None:
            return
        if self.runtime.state.current.status != "crashed":
            memory.restart_at = None
            return
        # restart_at stays set until the spawn is past its awaits: should this actor crash
        # before, its next incarnation finds the restart still due and does it.
        memory.restart_count += 1
        await self._spawn(
            reason=f"automatic restart (attempt {memory.attempt + 1})", automatic=True
        )


def _unknown() -> ExitStatus:
    return ExitStatus(None, None, "exit observed while the process actor was down")


def spec(runtime: ServerRuntime, runs: RunStore) -> ChildSpec:
    """The child spec of a server's process actor."""
    cfg = runtime.config
    ladder = cfg.stop_timeout + 2 * cfg.kill_timeout + CLEANUP_TIMEOUT
    return ChildSpec(
        PROCESS,
        start=lambda: ProcessActor(runtime, runs),
        restart=Restart.PERMANENT,
        shutdown=ladder + STOP_MARGIN,
        name=runtime.child_name(PROCESS),
    )
