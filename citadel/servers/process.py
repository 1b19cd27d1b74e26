"""The ``process`` actor: owns one game server's OS process and its lifecycle.

State machine (DESIGN §2)::

    stopped ──start──> starting ──ready──> running ──stop──> stopping ──> stopped
       ^                  │                   │
       │                  └──exit/timeout─────┴──exit/hang──> crashed ──backoff──> starting
       └──────────────────────── stop (cancels a pending restart) ─────────┘

* It is the only writer of `ServerState`; every published ``serverStatus`` carries a new
  ``seq`` (one more than the last, also when the status repeats, e.g. ``crashed`` again after a
  failed restart). Transitions also raise a ``notification``.
* Exit detection is event-driven (a pidfd, through `handles`). An exit Citadel did
  not ask for is a crash; so is a start that never became ready within ``start_timeout`` and a
  running server judged hung by `policy.hang_verdict` (it is killed first).
* Automatic restarts wait a jittered exponential backoff (``restart_backoff_base`` doubling to
  ``restart_backoff_cap``, reset after ``restart_reset_after`` seconds up); more than
  ``max_restarts_per_hour`` automatic restarts within an hour and it gives up, with a
  notification (`policy.decide_restart`). An automatic start whose executable cannot even be
  spawned is a failed attempt like a crash: counted, backed off, retried. An operator's start
  that cannot be spawned is reported ``crashed`` with the OS error and not retried (the
  operator is there to read it). An operator's stop beats a pending restart; an operator's
  start is always accepted and resets the budget.
* Stopping runs the ladder of `ladder.stop_ladder` in the background (the actor keeps
  answering): RCON ``#shutdown`` when connected, SIGTERM to the group, SIGKILL, then no
  descendant may survive. The ``serverStatus`` says which step ended it.
* The process handle lives in `ServerRuntime`, not in the actor: if this actor crashes, its
  next incarnation re-attaches to the running game instead of starting a second one.
* At every transition the `LifecycleRecord` (seq, status, readiness, the live run with its
  identity: pid + create time + command line) is persisted through the `RunStore`. A restarted
  Citadel continues the ``seq`` where it stopped, adopts the runs still alive and resumes them
  as they were (`policy.adoption_plan`: ``starting`` keeps what is left of its start timeout,
  unless the run's RPT shows it became ready meanwhile), and reports the ones that died
  meanwhile as ``crashed`` with the automatic restart it schedules (``restartIn``). Its first
  ``serverStatus`` of a server repeats the persisted ``seq`` when the status is unchanged
  (what the old Citadel last published), else it is a transition (+1).
* Events, records and notifications leave through one ordered `persistence.Outbox` drained
  by one task, so the actor never waits on the broadcaster or the store: the store actor
  writes the record before its event, and numbers each notification (host-wide unique ids,
  kept across restarts) before it is published. The outbox outlives this actor's crashes.
* The server's stdout and stderr go to a console file per start (tailed by the logs actor), not
  to a pipe: a server writing into a pipe would die of SIGPIPE with the Citadel that read it.
"""

from __future__ import annotations

import logging
import os
import random as _random
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import anyio
import msgspec

from actors import Actor, ActorError, ChildSpec, ExitKind, Restart
from citadel.games.dayz import logfiles
from citadel.games.dayz.beconfig import write_beserver_cfg
from citadel.games.dayz.rpt import Ready as RptReady
from citadel.games.dayz.rpt import RptParser
from citadel.messages import (
    LogLevel,
    ServerStatus,
    ServerStatusEvent,
    Severity,
    utc_timestamp,
)
from citadel.messages.rest import ServerStatusView
from citadel.servers.cleanup import CLEANUP_TIMEOUT, ProcessesSurvived, ensure_no_descendants
from citadel.servers.handles import ExitStatus, ManagedProcess
from citadel.servers.ladder import StopOutcome, kill_group, stop_ladder
from citadel.servers.messages import (
    Accepted,
    FatalStartError,
    GetStatus,
    Notice,
    RconCommand,
    Ready,
    RestartServer,
    StartServer,
    StopServer,
    SystemLog,
)
from citadel.servers.persistence import Outbox, Persist, RunStore
from citadel.servers.policy import (
    adoption_plan,
    decide_restart,
    hang_verdict,
    restart_backoff,
)
from citadel.servers.runtime import (
    LOGS,
    PROCESS,
    RCON,
    LifecycleRecord,
    RunInfo,
    ServerRuntime,
    ServerSnapshot,
)
from citadel.servers.spawn import adopt, spawn

log = logging.getLogger("citadel.process")

# --- defaults --------------------------------------------------------------------------------
HANG_CHECK_FRACTION: Final = 0.25  # check for a hang every quarter of hang_timeout
SHUTDOWN_COMMAND_TIMEOUT: Final = 5.0
CONSOLE_DIR: Final = "citadel"
#: Extra time the supervisor gives this actor to stop beyond the server's own stop ladder.
STOP_MARGIN: Final = 15.0
#: How often the RPT of a run adopted while ``starting`` is read for ``Player connect enabled``
#: (the logs actor follows an adopted run from the end of its files, so it may have missed it).
ADOPTED_READY_POLL: Final = 2.0
#: An adopted run's RPT is named at most this long before the run's recorded start.
ADOPT_RPT_SLACK: Final = timedelta(seconds=2)
#: How much of an RPT is read for the ready line (it comes early; the file may be huge).
READY_SCAN_BYTES: Final = 16 * 1024 * 1024
NOTIFICATION_TYPE: Final = "server.lifecycle"
#: Random bytes of a run's marker (``CITADEL_RUN_ID``, see `spawn.spawn`).
MARKER_BYTES: Final = 16
# -----------------------------------------------------------------------------------------------


# -- control messages from this actor's own background tasks ---------------------------------


class _Exited(msgspec.Struct, frozen=True):
    incarnation: int
    status: ExitStatus


class _Stopped(msgspec.Struct, frozen=True):
    incarnation: int
    outcome: StopOutcome


class _RestartDue(msgspec.Struct, frozen=True):
    token: int


class _StartTimedOut(msgspec.Struct, frozen=True):
    incarnation: int


class _HangCheck(msgspec.Struct, frozen=True):
    pass


@dataclass
class ProcessMemory:
    """What the process actor keeps across its own restarts (it is the only writer)."""

    process: ManagedProcess | None = None
    incarnation: int = 0
    #: Why the current process is going away, once Citadel decided it should:
    #: "stop", "restart", "hang", "start-timeout", "fatal".
    intent: str | None = None
    intent_detail: str = ""
    stop_requested_by: str | None = None
    auto_restarts: tuple[float, ...] = ()
    attempt: int = -1
    restart_token: int = 0
    restart_at: float | None = None  # anyio time of a pending automatic restart
    restart_count: int = 0
    spawned_at: float = 0.0  # anyio time the current run was spawned or adopted
    ready_at: float | None = None  # anyio time the current run became ready (or was adopted)
    start_deadline: float = 0.0  # anyio time the current run's start timeout expires
    hang_warned: int = 0  # incarnation already warned that no hang evidence exists
    graceful_skipped: str | None = None  # why the running stop ladder has no #shutdown step
    fatal_message: str | None = None
    outbox: Outbox | None = None  # the ordered queue of records, events and notices
    last_event: ServerStatusEvent | None = None


async def release_memory(memory: ProcessMemory) -> None:
    """Let go of what a server's process actors kept across restarts (the server is gone).

    A game process still running here is killed with its whole group: Citadel is exiting or
    the server was removed, and an unattended server would be an orphan.
    """
    process, memory.process = memory.process, None
    if process is not None:
        with anyio.CancelScope(shield=True):
            await process.aclose()  # kills the group first if it still runs
    if memory.outbox is not None:
        memory.outbox.close()
        memory.outbox = None


def describe_exit(status: ExitStatus) -> str:
    """A short sentence for an exit status."""
    if status.signal is not None:
        return f"killed by {status.signal}"
    if status.code is not None:
        return f"exited with code {status.code}"
    return "exited (status unknown: not our child)"


def resolve_argv(runtime: ServerRuntime) -> list[str]:
    """The command line: the executable (relative to install_dir, or on PATH) and its args."""
    executable = runtime.config.executable
    candidate = Path(executable)
    if not candidate.is_absolute():
        local = runtime.install_dir / candidate
        if local.exists() or os.sep in executable:
            candidate = local
        else:
            found = shutil.which(executable)
            candidate = Path(found) if found else local
    return [str(candidate), *runtime.config.args]


def rpt_shows_ready(run: RunInfo) -> bool:
    """Whether the RPT of ``run`` already says ``Player connect enabled`` (blocking I/O).

    For a run adopted while it was ``starting``: it may have become ready while Citadel was
    down, and the logs actor follows an adopted run from the end of its files. The RPT is the
    newest named at or after the run's start (less `ADOPT_RPT_SLACK`); only its first
    `READY_SCAN_BYTES` are read.
    """
    try:
        start = datetime.fromtimestamp(run.started_at)
    except (OverflowError, OSError, ValueError):
        return False
    found = logfiles.find_current_logs(run.profile_dir, start, slack=ADOPT_RPT_SLACK)
    if found.rpt is None:
        return False
    try:
        with open(Path(run.profile_dir) / found.rpt, "rb") as rpt:
            data = rpt.read(READY_SCAN_BYTES)
    except OSError:
        return False
    parser = RptParser()
    for line in data.decode("utf-8", errors="replace").splitlines():
        if any(isinstance(entry.event, RptReady) for entry in parser.feed(line)):
            return True
    return any(isinstance(entry.event, RptReady) for entry in parser.flush())


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
        self._random = random
        self._wall = wall_clock
        cfg = runtime.config
        self.backoff = restart_backoff(
            cfg.restart_backoff_base, cfg.restart_backoff_cap, cfg.restart_reset_after
        )

    # -- lifecycle of the actor itself --------------------------------------------------------

    async def on_start(self) -> None:
        memory, state = self.memory, self.runtime.state.current
        if memory.outbox is None:
            # The outbox outlives this actor's crashes: events queued by a crashed incarnation
            # are still sent, in order, by the next one (a dashboard sees no seq gap).
            memory.outbox = Outbox(self.runtime.id)
        self._outbox = memory.outbox
        self.start_soon(memory.outbox.drain, self.runs, self.runtime.publish)
        self.start_soon(self._hang_watch)
        process = memory.process
        if process is not None and not process.exited:
            # This actor crashed and was restarted; the game kept running: re-attach.
            self._watch(process, memory.incarnation)
            if state.status == "stopping":
                self.start_soon(self._stop_ladder, memory.incarnation)
            elif state.status == "starting":
                self._arm_start_timeout(memory.incarnation)
            return
        if process is not None:
            # It exited while this actor was down: the watcher's message died with it.
            status = process.status or _unknown()
            if memory.intent in ("stop", "restart"):
                await self._finish_stop(memory.incarnation, StopOutcome("exited", status))
            else:
                await self._on_exit(_Exited(memory.incarnation, status))
            return
        if state.status == "crashed" and memory.restart_at is not None:
            self._schedule_restart_at(memory.restart_at)
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
                self._transition("stopped", reason="not started", bump=False)
            return
        run = record.run
        adopted = None if run is None else adopt(run.identity, run.marker)
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
            if record.status == "stopping":
                self._transition(
                    "stopped",
                    reason="the server exited while Citadel was not running (it was stopping)",
                    ready=False,
                    notify=("info", "Server stopped"),
                )
                return
            self._transition(
                "crashed",
                reason="the server exited while Citadel was not running",
                ready=False,
                notify=("error", "Server exited while Citadel was down"),
                plan_restart=cfg.auto_restart,
            )
            return
        if cfg.auto_start or (record.restart_pending and cfg.auto_restart):
            why = "auto start" if cfg.auto_start else "the restart pending when Citadel stopped"
            await self._spawn(reason=why, automatic=True)
            return
        self._transition(
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
                return self.status_view()
            case Ready(incarnation=incarnation):
                self._on_ready(incarnation)
            case FatalStartError(incarnation=incarnation, message=text):
                self._on_fatal(incarnation, text)
            case _Exited():
                await self._on_exit(message)
            case _Stopped(incarnation=incarnation, outcome=outcome):
                await self._finish_stop(incarnation, outcome)
            case _RestartDue(token=token):
                await self._on_restart_due(token)
            case _StartTimedOut(incarnation=incarnation):
                await self._on_start_timeout(incarnation)
            case _HangCheck():
                self._check_hang()
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
        self._cancel_restart()
        memory = self.memory
        memory.auto_restarts, memory.attempt = (), -1
        await self._spawn(reason=f"started by {by or 'an operator'}", automatic=False)
        return Accepted(True)

    def _operator_stop(self, by: str | None) -> Accepted:
        memory, status = self.memory, self.runtime.state.current.status
        if memory.restart_at is not None:
            # Stop wins over a pending automatic restart.
            self._cancel_restart()
            self._transition(
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
        self._transition(
            "stopping",
            reason=f"stop requested by {by or 'an operator'}",
            notify=("info", "Server stopping"),
        )
        self.start_soon(self._stop_ladder, memory.incarnation)
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
        self._transition(
            "stopping",
            reason=f"restart requested by {by or 'an operator'}",
            notify=("info", "Server restarting"),
        )
        self.start_soon(self._stop_ladder, memory.incarnation)
        return Accepted(True)

    # -- starting -------------------------------------------------------------------------

    async def _spawn(self, *, reason: str, automatic: bool) -> None:
        """Start a new run; ``automatic`` when no operator asked (auto start, restarts)."""
        runtime, memory = self.runtime, self.memory
        cfg = runtime.config
        memory.intent, memory.intent_detail, memory.fatal_message = None, "", None
        memory.ready_at = None
        started_wall = self._wall()
        marker = secrets.token_hex(MARKER_BYTES)
        try:
            argv = resolve_argv(runtime)
            profile = runtime.profile_dir
            console = _prepare_dirs(profile, started_wall, memory.incarnation + 1)
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
            memory.restart_at = None
            # An automatic start that cannot even spawn (a mount not up yet, EAGAIN, ENOMEM, a
            # binary being replaced) is a failed attempt: counted, backed off, retried until
            # the budget is spent. An operator's start is reported and left to the operator.
            retry = automatic and cfg.auto_restart
            self._system("error", f"could not start: {error}")
            self._transition(
                "crashed",
                reason=f"could not start: {error}",
                notify=("error", "Server failed to start"),
                plan_restart=retry,
            )
            return
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
        self._transition(
            "starting",
            reason=reason,
            run=run,
            ready=False,
            exited=False,
            notify=("info", "Server starting"),
        )
        self._system("info", f"{reason}: pid {process.pid}: {' '.join(argv)}")
        self._watch(process, memory.incarnation)
        self._arm_start_timeout(memory.incarnation)

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
        run = msgspec.structs.replace(previous, incarnation=memory.incarnation, adopted=True)
        adopted = f"adopted the server (pid {process.pid}) after a Citadel restart"
        # The same status as recorded is no transition: the seq is repeated, not bumped.
        bump = plan.status != record.status
        self._watch(process, memory.incarnation)
        if plan.status == "stopping":
            memory.intent = "stop"
            memory.stop_requested_by = "an operator (before Citadel restarted)"
            self._transition(
                "stopping", reason=f"{adopted}; it was stopping", run=run, exited=False, bump=bump
            )
            self.start_soon(self._stop_ladder, memory.incarnation)
        elif plan.status == "running":
            memory.ready_at = now
            self._transition(
                "running",
                reason=f"{adopted}; running",
                run=run,
                ready=True,
                exited=False,
                notify=("info", "Server adopted"),
                bump=bump,
            )
        else:
            memory.start_deadline = now + plan.start_timeout_left
            left = memory.start_deadline - now  # what the armed timer will wait
            self._transition(
                "starting",
                reason=f"{adopted}; still starting ({left:.0f} s left of its start timeout)",
                run=run,
                ready=False,
                exited=False,
                notify=("info", "Server adopted"),
                bump=bump,
            )
            self._arm_start_timeout(memory.incarnation)

    def _watch(self, process: ManagedProcess, incarnation: int) -> None:
        async def watch() -> None:
            status = await process.wait()
            self.post_control(_Exited(incarnation, status))

        self.start_soon(watch)

    def _arm_start_timeout(self, incarnation: int) -> None:
        """Expire the start at ``memory.start_deadline`` (kept across this actor's restarts)."""
        deadline = self.memory.start_deadline

        async def expire() -> None:
            await anyio.sleep_until(deadline)
            self.post_control(_StartTimedOut(incarnation))

        self.start_soon(expire)
        run = self.runtime.state.current.run
        if run is not None and run.adopted:
            self.start_soon(self._poll_adopted_readiness, incarnation, run)

    async def _poll_adopted_readiness(self, incarnation: int, run: RunInfo) -> None:
        """Read an adopted starting run's RPT until it says ready (the logs actor may not)."""
        while True:
            state = self.runtime.state.current
            if incarnation != self.memory.incarnation or state.status != "starting":
                return
            if await anyio.to_thread.run_sync(rpt_shows_ready, run):
                self.post_control(Ready(incarnation))
                return
            await anyio.sleep(ADOPTED_READY_POLL)

    def _on_ready(self, incarnation: int) -> None:
        state = self.runtime.state.current
        if incarnation != self.memory.incarnation or state.status != "starting":
            return
        self.memory.ready_at = anyio.current_time()
        self._transition(
            "running", reason="accepting players", ready=True, notify=("success", "Server running")
        )

    def _on_fatal(self, incarnation: int, text: str) -> None:
        if incarnation == self.memory.incarnation:
            self.memory.fatal_message = text
            self._system("error", f"fatal start error: {text}")

    async def _on_start_timeout(self, incarnation: int) -> None:
        state = self.runtime.state.current
        if incarnation != self.memory.incarnation or state.status != "starting":
            return
        run = state.run
        if run is not None and run.adopted and await anyio.to_thread.run_sync(rpt_shows_ready, run):
            self._on_ready(incarnation)  # became ready just before the deadline
            return
        timeout = self.runtime.config.start_timeout
        self._kill("start-timeout", f"not ready within the start timeout ({timeout:g} s)")

    # -- hang detection -------------------------------------------------------------------

    async def _hang_watch(self) -> None:
        interval = self.runtime.config.hang_timeout * HANG_CHECK_FRACTION
        while True:
            await anyio.sleep(interval)
            self.post_control(_HangCheck())

    def _check_hang(self) -> None:
        runtime, memory = self.runtime, self.memory
        if runtime.state.current.status != "running" or memory.ready_at is None:
            return
        cfg, now = runtime.config, anyio.current_time()
        verdict = hang_verdict(
            now=now,
            timeout=cfg.hang_timeout,
            since=memory.ready_at,
            last_log=runtime.logs.last_activity,
            logs_periodic=runtime.logs.fps is not None,
            rcon_heard=cfg.rcon is not None and runtime.rcon.last_answer > memory.spawned_at,
            last_rcon=runtime.rcon.last_answer,
        )
        if verdict.hung:
            self._kill("hang", verdict.reason)
        elif (
            verdict.evidence == "none"
            and memory.hang_warned != memory.incarnation
            and now - memory.ready_at > cfg.hang_timeout
        ):
            memory.hang_warned = memory.incarnation
            self._system(
                "warn",
                "hang detection cannot watch this server: it writes no periodic log lines "
                "(Average server FPS: set logAverageFps and -dologs) and RCON has not answered",
            )

    def _kill(self, intent: str, detail: str) -> None:
        memory = self.memory
        if memory.process is None or memory.process.exited or memory.intent is not None:
            return  # gone, or already being killed or stopped (keep the first reason)
        memory.intent, memory.intent_detail = intent, detail
        self._system("error", f"{detail}; killing the process group")
        memory.process.send_signal(signal.SIGKILL)
        if memory.process.pgid is not None:
            kill_group(memory.process.pgid)

    # -- stopping -------------------------------------------------------------------------

    async def _stop_ladder(self, incarnation: int) -> None:
        process = self.memory.process
        if process is None:
            return
        outcome = await self._run_ladder(process)
        self.post_control(_Stopped(incarnation, outcome))

    async def _run_ladder(self, process: ManagedProcess) -> StopOutcome:
        cfg = self.runtime.config
        graceful = self._rcon_shutdown if self.runtime.rcon.connected else None
        if graceful is None:
            self.memory.graceful_skipped = (
                "RCON is not configured" if cfg.rcon is None else "RCON is not connected"
            )
        return await stop_ladder(
            process,
            graceful=graceful,
            stop_timeout=cfg.stop_timeout,
            kill_timeout=cfg.kill_timeout,
        )

    async def _rcon_shutdown(self) -> None:
        rcon = self.runtime.sibling(RCON)
        if rcon is None:
            raise RuntimeError("the RCON actor is not running")
        result = await rcon.call(
            RconCommand("#shutdown", timeout=SHUTDOWN_COMMAND_TIMEOUT),
            timeout=SHUTDOWN_COMMAND_TIMEOUT + 1,
        )
        if not getattr(result, "ok", False):
            raise RuntimeError(getattr(result, "error", "RCON #shutdown failed"))
        # The reply may be lost and never confirms anything: the ladder watches the process.
        await anyio.sleep_forever()

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
            self._system("warn", f"graceful stop skipped: {outcome.graceful_error}")
        skipped, memory.graceful_skipped = memory.graceful_skipped, None
        if skipped is not None and outcome.step != "exited":
            reason += f"; RCON #shutdown skipped ({skipped})"
        status = outcome.status or ExitStatus(None, None)
        await self._process_gone()
        self._transition(
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

    async def _on_exit(self, exited: _Exited) -> None:
        memory = self.memory
        if exited.incarnation != memory.incarnation or memory.process is None:
            return
        if memory.intent in ("stop", "restart"):
            return  # the stop ladder reports (with the step that ended it)
        status = exited.status
        intent, detail = memory.intent, memory.intent_detail
        uptime = 0.0 if memory.ready_at is None else anyio.current_time() - memory.ready_at
        await self._process_gone()
        if intent in ("hang", "start-timeout"):
            reason = detail
        elif memory.fatal_message:
            reason = f"{describe_exit(status)} after a fatal start error: {memory.fatal_message}"
        else:
            reason = f"{describe_exit(status)} unexpectedly"
        self._system("error", f"server {reason}")
        self._transition(
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

    async def _process_gone(self) -> None:
        process = self.memory.process
        if process is not None and process.pgid is not None:
            # A crashed server may leave children behind (still in its process group, or
            # descendants of members, or marked escapees): none may survive it.
            try:
                killed = await ensure_no_descendants(
                    process.identity,
                    process.pgid,
                    CLEANUP_TIMEOUT,
                    marker=process.marker,
                )
            except ProcessesSurvived as error:
                self._system("error", f"processes survived SIGKILL: {error.survivors}")
            else:
                if killed:
                    self._system("warn", f"killed {len(killed)} leftover process(es)")
        await self._close_process()

    async def _close_process(self) -> None:
        process, self.memory.process = self.memory.process, None
        if process is not None:
            with anyio.CancelScope(shield=True):
                await process.aclose()

    # -- automatic restarts ---------------------------------------------------------------

    def _plan_restart(self, uptime: float) -> float | None:
        """Schedule the next automatic restart; its delay, or None when the budget is spent."""
        memory, cfg = self.memory, self.runtime.config
        now = anyio.current_time()
        decision = decide_restart(
            memory.auto_restarts,
            memory.attempt,
            now=now,
            uptime=uptime,
            backoff=self.backoff,
            max_per_hour=cfg.max_restarts_per_hour,
            random=self._random,
        )
        memory.auto_restarts, memory.attempt = decision.window, decision.attempt
        if decision.delay is None:
            return None
        self._schedule_restart_at(now + decision.delay)
        return decision.delay

    def _schedule_restart_at(self, at: float) -> None:
        memory = self.memory
        memory.restart_token += 1
        memory.restart_at = at
        token = memory.restart_token

        async def timer() -> None:
            await anyio.sleep_until(at)
            self.post_control(_RestartDue(token))

        self.start_soon(timer)

    def _cancel_restart(self) -> None:
        self.memory.restart_token += 1
        self.memory.restart_at = None

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

    # -- status, events, notifications ----------------------------------------------------

    def _transition(
        self,
        status: ServerStatus,
        *,
        reason: str,
        exit_code: int | None = None,
        signal: str | None = None,
        notify: tuple[Severity, str] | None = None,
        plan_restart: bool = False,
        uptime: float = 0.0,
        bump: bool = True,
        **changes: Any,
    ) -> None:
        """Change the state, persist the record, publish ``serverStatus`` and a notification.

        The restart is planned first, so the event and the notification carry the real
        ``restartIn``. ``bump=False`` publishes the current status with the current seq (only
        for the first event after a Citadel start, which repeats what the last one published).
        """
        runtime, memory = self.runtime, self.memory
        restart_in = self._plan_restart(uptime) if plan_restart else None
        if bump:
            changes["status"] = status
        snapshot = runtime.state.update(**changes)
        self._outbox.put_nowait(Persist(self._record(snapshot)))
        event = ServerStatusEvent(
            server_id=runtime.id,
            status=snapshot.status,
            seq=snapshot.seq,
            timestamp=utc_timestamp(self._wall()),
            reason=reason,
            exit_code=exit_code,
            signal=signal,
            restart_in=None if restart_in is None else round(restart_in, 3),
        )
        memory.last_event = event
        self._outbox.put_nowait(event)
        if plan_restart and restart_in is None:
            limit = runtime.config.max_restarts_per_hour
            self._notify(
                "error",
                "Server given up",
                f"{reason}; {limit} automatic restarts within an hour: not restarting again "
                "until an operator starts it",
            )
        elif notify is not None:
            severity, title = notify
            message = (
                reason if restart_in is None else f"{reason}; restarting in {restart_in:.0f} s"
            )
            self._notify(severity, title, message)

    def _record(self, snapshot: ServerSnapshot) -> LifecycleRecord:
        return LifecycleRecord(
            seq=snapshot.seq,
            status=snapshot.status,
            ready=snapshot.ready,
            run=None if snapshot.exited else snapshot.run,
            restart_pending=self.memory.restart_at is not None,
        )

    def _notify(self, severity: Severity, title: str, message: str) -> None:
        self._outbox.put_nowait(
            Notice(
                server_id=self.runtime.id,
                type=NOTIFICATION_TYPE,
                title=f"{self.runtime.config.name}: {title}",
                message=message,
                severity=severity,
                at=self._wall(),
            )
        )

    def _system(self, level: LogLevel, message: str) -> None:
        logs = self.runtime.sibling(LOGS)
        if logs is not None:
            try:
                logs.cast_nowait(SystemLog(level, message))
            except ActorError:  # the logs actor is down or full: the line is not essential
                log.info("%s: %s", self.runtime.id, message)

    def status_view(self) -> ServerStatusView:
        """``GET /api/servers/{id}/status``."""
        snapshot, memory = self.runtime.state.current, self.memory
        run = snapshot.run if not snapshot.exited else None
        uptime = None
        if run is not None:
            uptime = max(0.0, self._wall() - run.started_at)
        restart_in = None
        if memory.restart_at is not None:
            restart_in = max(0.0, memory.restart_at - anyio.current_time())
        last = memory.last_event
        return ServerStatusView(
            server_id=self.runtime.id,
            status=snapshot.status,
            seq=snapshot.seq,
            pid=None if run is None else run.pid,
            uptime=uptime,
            restart_count=memory.restart_count,
            restart_in=restart_in,
            reason=None if last is None else last.reason,
        )


def _unknown() -> ExitStatus:
    return ExitStatus(None, None, "exit observed while the process actor was down")


def _prepare_dirs(profile: Path, started_wall: float, incarnation: int) -> Path:
    # Synchronous like the fork+exec that follows (microseconds; a worker thread would only
    # add a hop, and a window in which the actor's state is between two runs).
    console_dir = profile / CONSOLE_DIR
    console_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(started_wall))
    return console_dir / f"console_{stamp}_{incarnation}.log"


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
