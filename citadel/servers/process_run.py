"""The OS side of a server's current run, for the process actor: watch it, time it, kill it.

``RunControl`` runs the actor's background tasks for the current run, and they report back only
through the actor's control lane, so every state change stays in the actor: ``Exited`` (the
pidfd says the process ended: exit detection is event-driven), ``StartTimedOut``, ``Ready``
(the RPT of a run adopted while ``starting`` says so), ``HangCheck`` ticks and ``Stopped``.
Stopping runs `ladder.stop_ladder` in the background (the actor keeps answering): RCON
``#shutdown`` when connected, SIGTERM to the group, SIGKILL, then no descendant may survive;
``Stopped`` says which step ended it. ``check_hang`` applies the hang rule
(`policy.hang_verdict`): a hung server is killed, and its exit is then reported as a crash.
Once a run has ended, ``process_gone`` kills whatever it left behind (`cleanup`);
``clear_dead_run`` does the same for a run that ended while Citadel was not running.

The RCON port is checked once a run is ready (or adopted) and again before a stop: if the UDP
port is bound, but by no process of this run (`port_held_by_others`), RCON is being answered
by someone else - a leftover of an earlier run, or another server configured with the same
port. ``RconPortHeld`` tells the actor, which warns; the stop ladder then skips RCON
``#shutdown``, which would stop that other process instead of ours.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Final

import anyio
import msgspec

from citadel.servers import _posix, cleanup, ladder
from citadel.servers.handles import ExitStatus, ManagedProcess
from citadel.servers.identity import MARKER_ENV
from citadel.servers.ladder import StopOutcome
from citadel.servers.messages import RconCommand, Ready
from citadel.servers.policy import hang_verdict
from citadel.servers.process_memory import ProcessMemory
from citadel.servers.process_status import StatusPublisher
from citadel.servers.run_files import rpt_shows_ready
from citadel.servers.runtime import RCON, RunInfo, ServerRuntime
from citadel.servers.sampler import ProcessTable

# --- defaults --------------------------------------------------------------------------------
HANG_CHECK_FRACTION: Final = 0.25  # check for a hang every quarter of hang_timeout
SHUTDOWN_COMMAND_TIMEOUT: Final = 5.0
#: How often the RPT of a run adopted while ``starting`` is read for ``Player connect enabled``
#: (the logs actor follows an adopted run from the end of its files, so it may have missed it).
ADOPTED_READY_POLL: Final = 2.0
# -----------------------------------------------------------------------------------------------


# -- control messages from the run's background tasks to the actor ---------------------------


class Exited(msgspec.Struct, frozen=True):
    """Run ``incarnation`` ended with ``status``."""

    incarnation: int
    status: ExitStatus


class Stopped(msgspec.Struct, frozen=True):
    """The stop ladder ended run ``incarnation`` (``outcome`` says how)."""

    incarnation: int
    outcome: StopOutcome


class StartTimedOut(msgspec.Struct, frozen=True):
    """Run ``incarnation`` reached its start deadline."""

    incarnation: int


class HangCheck(msgspec.Struct, frozen=True):
    """Time to apply the hang rule."""


class RconPortHeld(msgspec.Struct, frozen=True):
    """Run ``incarnation``'s RCON port is bound by a process that is not the run's."""

    incarnation: int
    reason: str


def port_held_by_others(pid: int, port: int) -> bool:
    """Whether UDP ``port`` is bound, but by no process of the server ``pid`` (blocking).

    The server's processes are ``pid`` and its group, session and descendants
    (`ProcessTable.members`). A port nobody has bound is not held by others: the server may
    not have opened it yet, or RCON is on another host.
    """
    held = _posix.udp_port_inodes(port)
    if not held:
        return False
    members = (pid, *ProcessTable(max_age=0.0).members(pid))
    return not any(held & _posix.socket_inodes(member) for member in members)


class RunControl:
    """Watches, times, stops and cleans up a server's current run (see the module)."""

    def __init__(
        self,
        runtime: ServerRuntime,
        memory: ProcessMemory,
        status: StatusPublisher,
        *,
        start_soon: Callable[..., None],
        post_control: Callable[[object], None],
    ) -> None:
        self.runtime = runtime
        self.memory = memory
        self._status = status
        self._start_soon = start_soon
        self._post_control = post_control

    # -- watching the run -----------------------------------------------------------------

    def watch(self, process: ManagedProcess, incarnation: int) -> None:
        """Post ``Exited`` once ``process`` has ended (and its output is read)."""

        async def watch() -> None:
            status = await process.wait()
            self._post_control(Exited(incarnation, status))

        self._start_soon(watch)

    def arm_start_timeout(self, incarnation: int) -> None:
        """Expire the start at ``memory.start_deadline`` (kept across the actor's restarts)."""
        deadline = self.memory.start_deadline

        async def expire() -> None:
            await anyio.sleep_until(deadline)
            self._post_control(StartTimedOut(incarnation))

        self._start_soon(expire)
        run = self.runtime.state.current.run
        if run is not None and run.adopted:
            self._start_soon(self._poll_adopted_readiness, incarnation, run)

    async def _poll_adopted_readiness(self, incarnation: int, run: RunInfo) -> None:
        """Read an adopted starting run's RPT until it says ready (the logs actor may not)."""
        while True:
            state = self.runtime.state.current
            if incarnation != self.memory.incarnation or state.status != "starting":
                return
            if await anyio.to_thread.run_sync(rpt_shows_ready, run):
                self._post_control(Ready(incarnation))
                return
            await anyio.sleep(ADOPTED_READY_POLL)

    # -- the RCON port ----------------------------------------------------------------------

    async def rcon_port_stranger(self) -> str | None:
        """Why RCON may be answered by a process that is not this run's, or ``None``."""
        rcon, process = self.runtime.config.rcon, self.memory.process
        if rcon is None or process is None or process.exited:
            return None
        if not await anyio.to_thread.run_sync(port_held_by_others, process.pid, rcon.port):
            return None
        return f"RCON port {rcon.port} is bound by a process that is not this server's"

    def check_rcon_port(self, incarnation: int) -> None:
        """Post ``RconPortHeld`` if the run's RCON port is bound by another process."""

        async def check() -> None:
            reason = await self.rcon_port_stranger()
            if reason is not None:
                self._post_control(RconPortHeld(incarnation, reason))

        self._start_soon(check)

    # -- hang detection -------------------------------------------------------------------

    async def hang_watch(self) -> None:
        """Post ``HangCheck`` every quarter of ``hang_timeout``, for ever."""
        interval = self.runtime.config.hang_timeout * HANG_CHECK_FRACTION
        while True:
            await anyio.sleep(interval)
            self._post_control(HangCheck())

    def check_hang(self) -> None:
        """Apply the hang rule (`policy.hang_verdict`) to a running server."""
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
            self.kill("hang", verdict.reason)
        elif (
            verdict.evidence == "none"
            and memory.hang_warned != memory.incarnation
            and now - memory.ready_at > cfg.hang_timeout
        ):
            memory.hang_warned = memory.incarnation
            self._status.system(
                "warn",
                "hang detection cannot watch this server: it writes no periodic log lines "
                "(Average server FPS: set logAverageFps and -dologs) and RCON has not answered",
            )

    def kill(self, intent: str, detail: str) -> None:
        """SIGKILL the current run's group for ``intent`` (its exit then reports it)."""
        memory = self.memory
        if memory.process is None or memory.process.exited or memory.intent is not None:
            return  # gone, or already being killed or stopped (keep the first reason)
        memory.intent, memory.intent_detail = intent, detail
        self._status.system("error", f"{detail}; killing the process group")
        memory.process.send_signal(signal.SIGKILL)
        if memory.process.pgid is not None:
            ladder.kill_group(memory.process.pgid)

    # -- stopping -------------------------------------------------------------------------

    async def stop_ladder(self, incarnation: int) -> None:
        """Run the stop ladder on the current process; post ``Stopped``."""
        process = self.memory.process
        if process is None:
            return
        outcome = await self._run_ladder(process)
        self._post_control(Stopped(incarnation, outcome))

    async def _run_ladder(self, process: ManagedProcess) -> StopOutcome:
        cfg = self.runtime.config
        graceful = self._rcon_shutdown if self.runtime.rcon.connected else None
        if graceful is None:
            self.memory.graceful_skipped = (
                "RCON is not configured" if cfg.rcon is None else "RCON is not connected"
            )
        else:
            # #shutdown to whoever holds the port would stop that process, not ours.
            stranger = await self.rcon_port_stranger()
            if stranger is not None:
                graceful, self.memory.graceful_skipped = None, stranger
        return await ladder.stop_ladder(
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

    # -- after the exit -------------------------------------------------------------------

    async def process_gone(self) -> None:
        """Kill what is left of the ended run (no descendant survives), close its handle."""
        process = self.memory.process
        if process is not None and process.pgid is not None:
            # A crashed server may leave children behind (still in its process group, or
            # descendants of members, or marked escapees): none may survive it.
            try:
                killed = await cleanup.ensure_no_descendants(
                    process.identity,
                    process.pgid,
                    cleanup.CLEANUP_TIMEOUT,
                    marker=process.marker,
                )
            except cleanup.ProcessesSurvived as error:
                self._status.system("error", f"processes survived SIGKILL: {error.survivors}")
            else:
                if killed:
                    self._status.system("warn", f"killed {len(killed)} leftover process(es)")
        await self._close_process()

    async def clear_dead_run(self, run: RunInfo) -> str | None:
        """Kill what is left of a recorded run found dead; why no new run may start, if so.

        The run's processes are found by its marker (``CITADEL_RUN_ID``): a wrapper shell that
        died while the game it started lives on, a daemon it left behind. Only the marker is
        trusted here, not the process group: the group leader is gone, and its id may since
        belong to a stranger. A new run must never start beside a live process of the old one
        (the same ports: RCON and players would be answered by the wrong process), so this
        returns a reason when one may still live: processes that survived SIGKILL, or a process
        with the run's pid and start time that cannot be recognised (it ``exec``-ed with a
        cleared environment; see ``identity``), which is neither adopted nor killed. The OS
        work is `cleanup.clear_dead_run`'s (shared with `orphans`).
        """
        dead = await cleanup.clear_dead_run(run.identity, run.marker)
        if dead.unrecognised:
            return (
                f"pid {run.pid}, started with the recorded run, still runs but cannot be "
                f"recognised as this server (its command line changed and it carries no "
                f"{MARKER_ENV}); not starting a second copy: stop it, then start the server"
            )
        if dead.survivors:
            self._status.system("error", f"processes survived SIGKILL: {dead.survivors}")
            return (
                f"processes of that run survived SIGKILL {list(dead.survivors)}; "
                "not starting a second copy"
            )
        if dead.killed:
            self._status.system(
                "warn",
                f"killed {len(dead.killed)} leftover process(es) of the run that ended while "
                f"Citadel was not running: {list(dead.killed)}",
            )
        return None

    async def _close_process(self) -> None:
        process, self.memory.process = self.memory.process, None
        if process is not None:
            with anyio.CancelScope(shield=True):
                await process.aclose()
