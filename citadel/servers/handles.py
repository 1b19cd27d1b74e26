"""Handles on a running game-server process: a spawned child or an adopted one.

``ManagedProcess`` watches a process through a pidfd: exit detection is event-driven, for
children and adopted processes alike. ``GameProcess`` is a server this Citadel spawned (see
``spawn``): ``wait()`` pumps its output (each line to ``on_line``, tagged stdout/stderr) and
returns the ``ExitStatus`` only after the exit is known *and* both pipes reached EOF, so the
last lines before a crash are never lost. Keep one ``wait()`` running for the life of the
process (``open_game_process`` does); unread pipes fill and block the server. A child's status
is read with ``WNOWAIT``: the zombie stays unreaped until ``aclose()``, which pins its pid and
process group id while the group is being cleaned up. ``AdoptedProcess`` is a server started
by an earlier Citadel: its exit code is unknowable (not our child), and closing its handle
never kills it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import deque
from collections.abc import Sequence
from typing import Final

import anyio
import anyio.abc
import msgspec

from citadel.servers import _posix
from citadel.servers.cleanup import ProcessControlError, ensure_no_descendants, remember_tree
from citadel.servers.identity import ProcessIdentity, read_identity, same_start
from citadel.servers.output import LineCallback, OutputLine, OutputStatistics, Pump

# --- defaults -----------------------------------------------------------------------------------
DRAIN_TIMEOUT: Final = 2.0  # after exit, how long a descendant may hold the pipes open
ADOPTED_EXIT_NOTE: Final = "not a child of this Citadel: exit code and signal are unknowable"
# ------------------------------------------------------------------------------------------------


class ExitStatus(msgspec.Struct, frozen=True):
    """How a process ended: an exit ``code`` or a ``signal`` name such as ``"SIGKILL"``."""

    code: int | None
    signal: str | None
    note: str = ""

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitStatus:
        """Translate a ``subprocess`` return code (negative means killed by that signal)."""
        if returncode < 0:
            return cls(None, _posix.signal_name(-returncode))
        return cls(returncode, None)


async def _first_of(*events: anyio.Event) -> None:
    async with anyio.create_task_group() as tg:

        async def waiter(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        for event in events:
            tg.start_soon(waiter, event)


class ManagedProcess(anyio.abc.AsyncResource):
    """A game-server process watched through a pidfd: a spawned child or an adopted one.

    At most one task at a time (the "driver") reads the pipes and the pidfd; every other
    ``wait``/``wait_exit`` caller waits for the driver's events, and takes over if the driver is
    cancelled. All reads keep their state in the object, so cancellation loses nothing.
    ``async with`` closes it (``aclose``).
    """

    def __init__(
        self,
        identity: ProcessIdentity,
        pgid: int | None,
        pidfd: int,
        pumps: Sequence[Pump] = (),
        drain_timeout: float = DRAIN_TIMEOUT,
    ) -> None:
        self.identity: ProcessIdentity = identity
        self.pgid: int | None = pgid
        #: The run's ``CITADEL_RUN_ID`` (see ``spawn``), when it has one.
        self.marker: str | None = None
        self._pidfd = pidfd
        self._pumps = tuple(pumps)
        self._drain_timeout = drain_timeout
        self._status: ExitStatus | None = None
        self._exit_time: float | None = None
        self._output_abandoned = False
        self._exited = anyio.Event()
        self._finished = anyio.Event()
        self._driver_done: anyio.Event | None = None
        self._driver_scope: anyio.CancelScope | None = None
        self._close_started = False
        self._closed = False
        self._close_finished = anyio.Event()

    @property
    def pid(self) -> int:
        """The process id."""
        return self.identity.pid

    @property
    def status(self) -> ExitStatus | None:
        """The exit status once known, else ``None``."""
        return self._status

    @property
    def exited(self) -> bool:
        """Whether the exit has been observed."""
        return self._exited.is_set()

    async def wait(self) -> ExitStatus:
        """Wait for the exit and for the end of the output; drives the output while waiting.

        Raises:
            anyio.ClosedResourceError: The handle was closed before the exit was seen.
        """
        await self._until(self._finished)
        assert self._status is not None  # _finished implies _exited
        return self._status

    # A bounded wait that reports instead of raising is what the ladder sequences on.
    async def wait_exit(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait at most ``timeout`` seconds for the exit; ``True`` if it has exited."""
        with anyio.move_on_after(timeout):
            await self._until(self._exited)
        return self._exited.is_set()

    def refresh_identity(self) -> ProcessIdentity:
        """Re-read the live process's command line into ``identity``; return ``identity``.

        For a run that has settled (ready): a wrapper that ``exec``-ed the real server was
        recorded with its own command line, and the stored identity should name what runs now
        (see ``identity``). The new reading is taken only if the process had not exited after
        it was read (so it was this process: its pid cannot be recycled while it lives), still
        has the same start, and shows a command line; otherwise nothing changes.
        """
        if self._closed or self.exited:
            return self.identity
        current = read_identity(self.pid)
        if (
            current is not None
            and current.cmdline
            and same_start(self.identity, current)
            and not _posix.pidfd_exited(self._pidfd)
        ):
            # Only the command line: the recorded create time stays the run's start.
            self.identity = msgspec.structs.replace(self.identity, cmdline=current.cmdline)
        return self.identity

    def send_signal(self, sig: int) -> bool:
        """Signal the process group (or the process alone if it leads no group of its own).

        Returns ``False`` if nothing was left to signal or the handle is closed (after which the
        group id may belong to someone else).
        """
        if self._closed:
            return False
        if self.pgid is not None:
            return _posix.signal_group(self.pgid, sig)
        return _posix.pidfd_signal(self._pidfd, sig)

    async def aclose(self) -> None:
        """Release the pidfd and pipes (see subclasses for what happens to a live process)."""
        if self._close_started:
            await self._close_finished.wait()
            return
        self._close_started = True
        try:
            with anyio.CancelScope(shield=True):
                try:
                    await self._before_close()
                finally:
                    self._closed = True
                    if not all(pump.eof for pump in self._pumps):
                        self._output_abandoned = True
                    self._check_finished()
                    if self._driver_scope is not None:
                        self._driver_scope.cancel()
                    if self._driver_done is not None:
                        await self._driver_done.wait()
                    self._release()
        finally:
            self._close_finished.set()

    # -- hooks -----------------------------------------------------------------------------------

    def _read_exit_status(self) -> ExitStatus:
        raise NotImplementedError

    async def _before_close(self) -> None:
        """Runs shielded at the start of ``aclose``."""

    def _release(self) -> None:
        os.close(self._pidfd)
        for pump in self._pumps:
            os.close(pump.fd)

    # -- the driver ------------------------------------------------------------------------------

    def _deliver(self, line: OutputLine) -> None:
        """Receives every output line (``GameProcess`` overrides)."""

    def _check_finished(self) -> None:
        output_done = self._output_abandoned or all(pump.eof for pump in self._pumps)
        if self._exited.is_set() and output_done:
            self._finished.set()

    async def _until(self, target: anyio.Event) -> None:
        while not target.is_set():
            if self._closed:
                raise anyio.ClosedResourceError
            running = self._driver_done
            if running is not None:
                await _first_of(target, running)
                continue
            done = self._driver_done = anyio.Event()
            try:
                await self._drive(target)
            finally:
                self._driver_done = None
                done.set()

    async def _drive(self, target: anyio.Event) -> None:
        async with anyio.create_task_group() as tg:
            self._driver_scope = tg.cancel_scope
            try:
                for pump in self._pumps:
                    if not pump.eof and not self._output_abandoned:
                        tg.start_soon(self._run_pump, pump)
                if not self._exited.is_set():
                    tg.start_soon(self._watch_exit)
                tg.start_soon(self._drain_deadline)
                await target.wait()
                tg.cancel_scope.cancel()
            finally:
                self._driver_scope = None

    async def _run_pump(self, pump: Pump) -> None:
        await pump.run(self._deliver)
        self._check_finished()

    async def _watch_exit(self) -> None:
        await anyio.wait_readable(self._pidfd)
        if self._status is None:
            self._status = self._read_exit_status()
            self._exit_time = anyio.current_time()
            self._exited.set()
        self._check_finished()

    async def _drain_deadline(self) -> None:
        await self._exited.wait()
        assert self._exit_time is not None
        await anyio.sleep_until(self._exit_time + self._drain_timeout)
        # A descendant still holds the pipes: stop waiting for an EOF that may never come.
        self._output_abandoned = True
        self._check_finished()


class GameProcess(ManagedProcess):
    """A game server spawned by this Citadel (our child, leader of its own process group).

    ``aclose()`` reaps it; if it is still running then, its whole group and every known
    descendant are killed first (closing its pipes would kill it with SIGPIPE anyway).
    """

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        identity: ProcessIdentity,
        pidfd: int,
        pumps: Sequence[Pump],
        *,
        on_line: LineCallback | None,
        tail_lines: int,
        drain_timeout: float,
        kill_timeout: float,
    ) -> None:
        super().__init__(identity, popen.pid, pidfd, pumps, drain_timeout)
        self._popen = popen
        self._on_line = on_line
        self._tail: deque[OutputLine] = deque(maxlen=tail_lines)
        self._kill_timeout = kill_timeout
        self._counts = {"stdout": 0, "stderr": 0}
        self._truncated = 0

    def tail(self) -> tuple[OutputLine, ...]:
        """The last output lines (both streams, in arrival order), for crash reports."""
        return tuple(self._tail)

    def statistics(self) -> OutputStatistics:
        """Line counters and whether the output was read to EOF."""
        return OutputStatistics(
            stdout_lines=self._counts["stdout"],
            stderr_lines=self._counts["stderr"],
            truncated_lines=self._truncated,
            complete=all(pump.eof for pump in self._pumps),
        )

    def _deliver(self, line: OutputLine) -> None:
        self._counts[line.stream] += 1
        self._truncated += line.truncated
        self._tail.append(line)
        if self._on_line is not None:
            self._on_line(line)

    def _read_exit_status(self) -> ExitStatus:
        child_exit = _posix.peek_child_exit(self.pid)
        if child_exit is None:  # the pidfd said it exited; the kernel agrees by construction
            raise ProcessControlError(f"pid {self.pid}: pidfd readable but no exit status")
        return ExitStatus(child_exit.code, child_exit.signal)

    async def _before_close(self) -> None:
        if not self._exited.is_set():
            await _kill_everything(self, self._kill_timeout, self._kill_timeout)
        # Deliver what is still in the pipes (bounded by the drain deadline).
        if self._exited.is_set():
            with anyio.move_on_after(self._drain_timeout + 1.0):
                await self._until(self._finished)

    def _release(self) -> None:
        super()._release()
        if self._exited.is_set():
            self._popen.wait()  # a zombie by now: reaps at once, frees the pid and group id
        else:
            self._popen.poll()


class AdoptedProcess(ManagedProcess):
    """A server started by an earlier Citadel, re-attached by identity; it has no pipes.

    ``aclose()`` only releases the pidfd: closing a handle never kills an adopted server.
    """

    def _read_exit_status(self) -> ExitStatus:
        return ExitStatus(None, None, ADOPTED_EXIT_NOTE)


async def _kill_everything(
    process: ManagedProcess, kill_timeout: float, cleanup_timeout: float
) -> list[int]:
    known: dict[tuple[int, float], ProcessIdentity] = {}
    remember_tree(known, process.identity, process.marker)
    process.send_signal(signal.SIGKILL)
    await process.wait_exit(kill_timeout)
    return await ensure_no_descendants(
        process.identity,
        process.pgid,
        cleanup_timeout,
        known=known.values(),
        marker=process.marker,
    )
