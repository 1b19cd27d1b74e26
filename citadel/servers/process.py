"""The ``process`` actor: owns one game server's OS process and its lifecycle.

State machine (DESIGN §2)::

    stopped ──start──> starting ──ready──> running ──stop──> stopping ──> stopped
       ^                  │                   │
       │                  └──exit/timeout─────┴──exit/hang──> crashed ──backoff──> starting
       └──────────────────────── stop (cancels a pending restart) ─────────┘

* It is the only writer of `ServerState`; every transition bumps ``seq`` and is published as a
  ``serverStatus`` event and a ``notification``.
* Exit detection is event-driven (a pidfd, through `process_control`). An exit Citadel did
  not ask for is a crash; so is a start that never became ready within ``start_timeout`` and a
  server whose logs and RCON stayed silent past ``hang_timeout`` (it is killed first).
* Automatic restarts wait a jittered exponential backoff (``restart_backoff_base`` doubling to
  ``restart_backoff_cap``, reset after ``restart_reset_after`` seconds up); more than
  ``max_restarts_per_hour`` automatic restarts within an hour and it gives up. An operator's
  stop beats a pending restart; an operator's start is always accepted and resets the budget.
* Stopping runs the ladder of `process_control.stop_ladder` in the background (the actor keeps
  answering): RCON ``#shutdown`` when connected, SIGTERM to the group, SIGKILL, then no
  descendant may survive. The ``serverStatus`` says which step ended it.
* The process handle lives in `ServerRuntime`, not in the actor: if this actor crashes, its
  next incarnation re-attaches to the running game instead of starting a second one. The
  identity (pid + create time + command line) is also persisted, so a restarted Citadel adopts
  the servers still running and reports the ones that died meanwhile as crashed.
* The server's stdout and stderr go to a console file per start (tailed by the logs actor), not
  to a pipe: a server writing into a pipe would die of SIGPIPE with the Citadel that read it.
"""

from __future__ import annotations

import logging
import os
import random as _random
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import anyio
import anyio.abc
import msgspec

from actors import (
    Actor,
    Backoff,
    ChildSpec,
    ExitKind,
    Restart,
    add_restart,
    backoff_delay,
    next_attempt,
)
from citadel.games.dayz.beconfig import write_beserver_cfg
from citadel.messages import (
    LogLevel,
    NotificationEvent,
    ServerStatus,
    ServerStatusEvent,
    Severity,
    utc_timestamp,
)
from citadel.messages.rest import ServerStatusView
from citadel.servers import process_control
from citadel.servers.messages import (
    Accepted,
    FatalStartError,
    GetStatus,
    RconCommand,
    Ready,
    RestartServer,
    StartServer,
    StopServer,
    SystemLog,
)
from citadel.servers.process_control import ExitStatus, ManagedProcess, StopOutcome
from citadel.servers.runtime import LOGS, PROCESS, RCON, RunInfo, ServerRuntime

log = logging.getLogger("citadel.process")

RESTART_WINDOW: Final = 3600.0  # "at most N automatic restarts per hour"
RESTART_JITTER: Final = 0.2
HANG_CHECK_FRACTION: Final = 0.25  # check for a hang every quarter of hang_timeout
SHUTDOWN_COMMAND_TIMEOUT: Final = 5.0
CONSOLE_DIR: Final = "citadel"
OUTBOX_SIZE: Final = 10_000
#: Extra time the supervisor gives this actor to stop beyond the server's own stop ladder.
STOP_MARGIN: Final = 15.0


class RunStore(Protocol):
    """Where the identity of a running server is kept across Citadel restarts."""

    async def save(self, server_id: str, run: RunInfo | None) -> None: ...

    async def load(self, server_id: str) -> RunInfo | None: ...


class MemoryRunStore:
    """A `RunStore` in memory (tests; a Citadel without persistence)."""

    def __init__(self) -> None:
        self.runs: dict[str, RunInfo] = {}

    async def save(self, server_id: str, run: RunInfo | None) -> None:
        if run is None:
            self.runs.pop(server_id, None)
        else:
            self.runs[server_id] = run

    async def load(self, server_id: str) -> RunInfo | None:
        return self.runs.get(server_id)


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
    ready_at: float | None = None  # anyio time the current run became ready
    notification_ids: int = 0
    fatal_message: str | None = None
    outbox: tuple[Any, Any] | None = None  # (send, receive) of the ordered event queue
    extra: dict[str, Any] = field(default_factory=dict)


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
        send, receive = memory.outbox
        send.close()
        receive.close()
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
        self.backoff = Backoff(
            base=cfg.restart_backoff_base,
            cap=cfg.restart_backoff_cap,
            jitter=RESTART_JITTER,
            reset_after=cfg.restart_reset_after,
        )

    # -- lifecycle of the actor itself --------------------------------------------------------

    async def on_start(self) -> None:
        memory, state = self.memory, self.runtime.state.current
        if memory.outbox is None:
            # The outbox outlives this actor's crashes: events queued by a crashed incarnation
            # are still sent, in order, by the next one (a dashboard sees no seq gap).
            memory.outbox = anyio.create_memory_object_stream[Any](OUTBOX_SIZE)
        self._outbox = memory.outbox[0]
        self.start_soon(self._drain_outbox, memory.outbox[1])
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
        """Citadel just started: adopt a server still running from before, or auto-start."""
        previous = await self.runs.load(self.runtime.id)
        if previous is not None:
            adopted = process_control.adopt(previous.identity)
            if adopted is not None:
                await self._adopt(adopted, previous)
                return
            await self.runs.save(self.runtime.id, None)
            self._transition(
                "crashed",
                reason="the server exited while Citadel was not running",
                notify=("error", "Server exited while Citadel was down"),
            )
            if self.runtime.config.auto_restart:
                self._plan_restart("it was found dead at Citadel start")
            return
        if self.runtime.config.auto_start:
            await self._spawn(reason="auto start")
        else:
            self._transition("stopped", reason="not started", publish_only=True)

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
                self._on_start_timeout(incarnation)
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
        await self._spawn(reason=f"started by {by or 'an operator'}")
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

    async def _spawn(self, *, reason: str) -> None:
        runtime, memory = self.runtime, self.memory
        cfg = runtime.config
        memory.intent, memory.intent_detail, memory.fatal_message = None, "", None
        memory.ready_at = None
        started_wall = self._wall()
        try:
            argv = resolve_argv(runtime)
            profile = runtime.profile_dir
            console = await _prepare_dirs(profile, started_wall, memory.incarnation + 1)
            rcon = cfg.rcon
            if rcon is not None:
                # Also deletes a stale beserver_x64_active_*.cfg, which would win otherwise.
                await anyio.to_thread.run_sync(
                    lambda: write_beserver_cfg(profile, rcon.password, rcon.port, rcon.host)
                )
            env = {**os.environ, **cfg.env} if cfg.env else None
            process = await process_control.spawn(
                argv,
                cwd=runtime.install_dir,
                env=env,
                output=console,
                kill_timeout=cfg.kill_timeout,
            )
        except (OSError, ValueError) as error:
            self._system("error", f"could not start: {error}")
            self._transition(
                "crashed",
                reason=f"could not start: {error}",
                notify=("error", "Server failed to start"),
            )
            return
        memory.incarnation += 1
        memory.process = process
        memory.restart_count += 1 if reason.startswith("automatic") else 0
        run = RunInfo(
            incarnation=memory.incarnation,
            identity=process.identity,
            started_at=process.identity.create_time,
            profile_dir=str(runtime.profile_dir),
            console_log=str(console),
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
        await self.runs.save(runtime.id, run)
        self._watch(process, memory.incarnation)
        self._arm_start_timeout(memory.incarnation)

    async def _adopt(self, process: ManagedProcess, previous: RunInfo) -> None:
        memory = self.memory
        memory.incarnation += 1
        memory.process = process
        memory.ready_at = anyio.current_time()
        run = msgspec.structs.replace(previous, incarnation=memory.incarnation, adopted=True)
        await self.runs.save(self.runtime.id, run)
        self._transition(
            "running",
            reason=f"adopted the running server (pid {process.pid}) after a Citadel restart",
            run=run,
            ready=True,
            exited=False,
            notify=("info", "Server adopted"),
        )
        self._watch(process, memory.incarnation)

    def _watch(self, process: ManagedProcess, incarnation: int) -> None:
        async def watch() -> None:
            status = await process.wait()
            self.post_control(_Exited(incarnation, status))

        self.start_soon(watch)

    def _arm_start_timeout(self, incarnation: int) -> None:
        async def expire() -> None:
            await anyio.sleep(self.runtime.config.start_timeout)
            self.post_control(_StartTimedOut(incarnation))

        self.start_soon(expire)

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

    def _on_start_timeout(self, incarnation: int) -> None:
        state = self.runtime.state.current
        if incarnation != self.memory.incarnation or state.status != "starting":
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
        last_sign = max(memory.ready_at, runtime.logs.last_activity, runtime.rcon.last_answer)
        silent = anyio.current_time() - last_sign
        if silent > runtime.config.hang_timeout:
            self._kill("hang", f"hung: no log output or RCON answer for {silent:.0f} s")

    def _kill(self, intent: str, detail: str) -> None:
        memory = self.memory
        if memory.process is None or memory.process.exited:
            return
        memory.intent, memory.intent_detail = intent, detail
        self._system("error", f"{detail}; killing the process group")
        memory.process.send_signal(signal.SIGKILL)
        if memory.process.pgid is not None:
            process_control.kill_group(memory.process.pgid)

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
        return await process_control.stop_ladder(
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
            await self._spawn(reason=f"restarted by {by}")

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
            # descendants of members): none may survive it.
            try:
                killed = await process_control.ensure_no_descendants(
                    process.identity, process.pgid, process_control.CLEANUP_TIMEOUT
                )
            except process_control.ProcessesSurvived as error:
                self._system("error", f"processes survived SIGKILL: {error.survivors}")
            else:
                if killed:
                    self._system("warn", f"killed {len(killed)} leftover process(es)")
        await self.runs.save(self.runtime.id, None)
        await self._close_process()

    async def _close_process(self) -> None:
        process, self.memory.process = self.memory.process, None
        if process is not None:
            with anyio.CancelScope(shield=True):
                await process.aclose()

    # -- automatic restarts ---------------------------------------------------------------

    def _plan_restart(self, why: str, uptime: float = 0.0) -> float | None:
        """Decide the delay before an automatic restart; None when the budget is spent."""
        memory, cfg = self.memory, self.runtime.config
        now = anyio.current_time()
        window, allowed = add_restart(
            memory.auto_restarts, now, cfg.max_restarts_per_hour, RESTART_WINDOW
        )
        if not allowed:
            memory.auto_restarts = window[:-1]  # the refused restart does not count
            self._notify(
                "error",
                "Server given up",
                f"{cfg.max_restarts_per_hour} automatic restarts within an hour; "
                f"not restarting again until an operator starts it ({why})",
            )
            return None
        memory.auto_restarts = window
        memory.attempt = next_attempt(self.backoff, memory.attempt, uptime)
        delay = backoff_delay(self.backoff, memory.attempt, self._random)
        self._schedule_restart_at(now + delay)
        return delay

    def _schedule_restart_at(self, at: float) -> None:
        memory = self.memory
        memory.restart_token += 1
        memory.restart_at = at
        token = memory.restart_token

        async def timer() -> None:
            await anyio.sleep(max(0.0, at - anyio.current_time()))
            self.post_control(_RestartDue(token))

        self.start_soon(timer)

    def _cancel_restart(self) -> None:
        self.memory.restart_token += 1
        self.memory.restart_at = None

    async def _on_restart_due(self, token: int) -> None:
        memory = self.memory
        if token != memory.restart_token or memory.restart_at is None:
            return
        memory.restart_at = None
        if self.runtime.state.current.status != "crashed":
            return
        await self._spawn(reason=f"automatic restart (attempt {memory.attempt + 1})")

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
        publish_only: bool = False,
        **changes: Any,
    ) -> None:
        runtime = self.runtime
        if not publish_only:
            runtime.state.update(status=status, **changes)
        restart_in = self._plan_restart(reason, uptime) if plan_restart else None
        snapshot = runtime.state.current
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
        self.memory.extra["last_event"] = event
        self._publish(event)
        if notify is not None:
            severity, title = notify
            message = (
                reason if restart_in is None else f"{reason}; restarting in {restart_in:.0f} s"
            )
            self._notify(severity, title, message)

    def _notify(self, severity: Severity, title: str, message: str) -> None:
        memory = self.memory
        memory.notification_ids += 1
        self._publish(
            NotificationEvent(
                id=memory.notification_ids,
                server_id=self.runtime.id,
                type="server.lifecycle",
                title=f"{self.runtime.config.name}: {title}",
                message=message,
                severity=severity,
                timestamp=utc_timestamp(self._wall()),
            )
        )

    def _publish(self, event: Any) -> None:
        # Events leave through one queue drained by one task: in order, and without making
        # this actor wait when the broadcaster is busy.
        try:
            self._outbox.send_nowait(event)
        except anyio.WouldBlock:
            log.error("%s: outbox full; dropped %s", self.runtime.id, type(event).__name__)

    async def _drain_outbox(self, receive: anyio.abc.ObjectReceiveStream[Any]) -> None:
        async for event in receive:
            await self.runtime.publish(event)

    def _system(self, level: LogLevel, message: str) -> None:
        logs = self.runtime.sibling(LOGS)
        if logs is not None:
            try:
                logs.cast_nowait(SystemLog(level, message))
            except Exception:  # the logs actor is down or full: the line is not essential
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
        last = memory.extra.get("last_event")
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


async def _prepare_dirs(profile: Path, started_wall: float, incarnation: int) -> Path:
    console_dir = profile / CONSOLE_DIR
    await anyio.Path(console_dir).mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(started_wall))
    return console_dir / f"console_{stamp}_{incarnation}.log"


def spec(runtime: ServerRuntime, runs: RunStore) -> ChildSpec:
    """The child spec of a server's process actor."""
    cfg = runtime.config
    ladder = cfg.stop_timeout + 2 * cfg.kill_timeout + process_control.CLEANUP_TIMEOUT
    return ChildSpec(
        PROCESS,
        start=lambda: ProcessActor(runtime, runs),
        restart=Restart.PERMANENT,
        shutdown=ladder + STOP_MARGIN,
        name=runtime.child_name(PROCESS),
    )
