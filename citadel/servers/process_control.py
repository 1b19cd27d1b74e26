"""OS process control for game servers: spawn, watch, stop, clean up, sample.

This is the layer under the per-server ``process`` actor. The actor decides *when*; this module
does the OS work, every step bounded:

* ``spawn(argv, cwd=...)`` starts a server in its own session (so its pid is also its process
  group id) with stdout and stderr on pipes, and returns a ``GameProcess``.
  ``GameProcess.wait()`` pumps the output (each line to ``on_line``, tagged stdout/stderr) and
  returns the ``ExitStatus`` only after the exit is known *and* both pipes reached EOF, so the
  last lines before a crash are never lost. Keep one ``wait()`` running for the life of the
  process (``open_game_process`` does); unread pipes fill and block the server.
* Exit detection is event-driven on a pidfd, for children and adopted processes alike. A child's
  status is read with ``WNOWAIT``: the zombie stays unreaped until ``aclose()``, which pins its
  pid and process group id while the group is being cleaned up.
* ``adopt(identity)`` re-attaches to a server after a Citadel restart, only if pid, create time
  and command line all still match. Its exit code is unknowable (not our child).
* The stop ladder pieces (``terminate_group``, ``kill_group``, ``ManagedProcess.wait_exit``,
  ``ensure_no_descendants``) and the convenience ``stop_ladder`` that chains them.
* ``ProcessGroupSampler`` measures CPU and RAM of the server's group, session and tree.

Caveats the caller must know:

* A server started with pipes dies of SIGPIPE at its next console write once the Citadel that
  read the pipes is gone; adoption after a restart therefore only keeps servers whose console
  output is quiet or redirected.
* Descendants are found three ways: through parent links (snapshotted before every signal), as
  members of the server's process group, and - for a process spawned with a ``marker`` - by the
  ``CITADEL_RUN_ID=<marker>`` entry every descendant inherits in its environment. The marker
  finds a descendant that left the session (``setsid``) *and* lost its parent (a double-forked
  daemon, re-parented to init), also after a Citadel restart. Only a descendant that both
  escapes that way and replaces its environment (``execve`` with a clean one) is not found; a
  cgroup per server would close that last gap.

Errors::

    ProcessControlError
     └── ProcessesSurvived      SIGKILLed processes still running after the bound (D state)
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final, Literal, NamedTuple

import anyio
import anyio.abc
import anyio.lowlevel
import msgspec
import psutil

from citadel.servers import _posix
from citadel.servers.identity import (
    CREATE_TIME_TOLERANCE,
    ProcessIdentity,
    live_process,
    read_identity,
    same_start,
)

# --- defaults -----------------------------------------------------------------------------------
READ_CHUNK_BYTES: Final = 64 * 1024
MAX_LINE_BYTES: Final = 16 * 1024  # longer lines are cut and flagged ``truncated``
TAIL_LINES: Final = 200  # last output lines kept for crash reports
DRAIN_TIMEOUT: Final = 2.0  # after exit, how long a descendant may hold the pipes open
STOP_TIMEOUT: Final = 60.0  # graceful (#shutdown) -> exit
KILL_TIMEOUT: Final = 10.0  # SIGTERM -> exit, and SIGKILL -> exit
CLEANUP_TIMEOUT: Final = 5.0  # SIGKILL of leftovers -> gone
PROCESS_TABLE_MAX_AGE: Final = 1.0  # seconds a shared /proc scan is reused by samplers
ADOPTED_EXIT_NOTE: Final = "not a child of this Citadel: exit code and signal are unknowable"
CMDLINE_ATTEMPTS: Final = 200  # reads of a new child's command line while exec finishes ...
CMDLINE_PAUSE: Final = 0.0005  # ... this far apart (at most 0.1 s; normally one read)
#: The environment variable that marks every process of one server run (see ``spawn``).
MARKER_ENV: Final = "CITADEL_RUN_ID"
# ------------------------------------------------------------------------------------------------

Stream = Literal["stdout", "stderr"]
StopStep = Literal["exited", "graceful", "sigterm", "sigkill"]
LineCallback = Callable[["OutputLine"], object]


class ProcessControlError(Exception):
    """Root of the errors raised by the process control layer."""


class ProcessesSurvived(ProcessControlError):
    """Processes were still running after SIGKILL and the cleanup bound."""

    def __init__(self, survivors: Sequence[int], killed: Sequence[int]) -> None:
        super().__init__(f"processes survived SIGKILL: {sorted(survivors)}")
        self.survivors: tuple[int, ...] = tuple(sorted(survivors))
        self.killed: tuple[int, ...] = tuple(sorted(killed))


class OutputLine(msgspec.Struct, frozen=True):
    """One line of a server's console output, without its line ending."""

    stream: Stream
    text: str
    truncated: bool = False


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


class StopOutcome(msgspec.Struct, frozen=True):
    """What ``stop_ladder`` did: the step that ended the process and what had to be cleaned."""

    step: StopStep
    status: ExitStatus | None  # None only if even SIGKILL did not end it within the bound
    killed_descendants: tuple[int, ...] = ()
    survivors: tuple[int, ...] = ()
    graceful_error: str | None = None


class GroupSample(msgspec.Struct, frozen=True):
    """CPU and memory of a whole process tree; ``cpu_percent_of_host`` is None when priming."""

    cpu_percent_of_host: float | None
    ram_bytes: int
    ram_percent_of_host: float
    processes: int


class OutputStatistics(msgspec.Struct, frozen=True):
    """Counters of a ``GameProcess``'s console output."""

    stdout_lines: int
    stderr_lines: int
    truncated_lines: int
    complete: bool  # both pipes reached EOF (False if a descendant held them past the drain)


# --- output splitting (pure) --------------------------------------------------------------------


class LineSplitter:
    """Split one byte stream into ``OutputLine``s: ``\\n``-separated, ``\\r`` stripped, bounded.

    UTF-8 is decoded with replacement characters, so garbage never raises. A line longer than
    ``max_line_bytes`` is emitted cut (``truncated=True``) as soon as the bound is reached, and
    the rest of it, up to its newline, is discarded: memory stays bounded whatever the input.
    """

    def __init__(self, stream: Stream, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self._stream: Stream = stream
        self._max = max_line_bytes
        self._buffer = bytearray()
        self._discarding = False

    def _line(self, data: bytes, *, truncated: bool) -> OutputLine:
        if not truncated:
            data = data.rstrip(b"\r")
        return OutputLine(self._stream, data.decode("utf-8", errors="replace"), truncated)

    def feed(self, data: bytes) -> list[OutputLine]:
        """Consume a chunk; return the lines it completed."""
        lines: list[OutputLine] = []
        start = 0
        while (newline := data.find(b"\n", start)) >= 0:
            piece = data[start:newline]
            start = newline + 1
            if self._discarding:
                self._discarding = False  # the overlong line ends here; its cut head was sent
                continue
            self._buffer += piece
            too_long = len(self._buffer) > self._max
            lines.append(self._line(bytes(self._buffer[: self._max]), truncated=too_long))
            self._buffer.clear()
        if not self._discarding:
            self._buffer += data[start:]
            if len(self._buffer) > self._max:
                lines.append(self._line(bytes(self._buffer[: self._max]), truncated=True))
                self._buffer.clear()
                self._discarding = True
        return lines

    def finish(self) -> list[OutputLine]:
        """Flush at EOF: a last line without a newline is still a line."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        discarding, self._discarding = self._discarding, False
        if not rest or discarding:
            return []
        return [self._line(rest, truncated=False)]


class _Pump:
    """Reads one non-blocking pipe into lines; resumable after cancellation (state lives here)."""

    def __init__(self, fd: int, splitter: LineSplitter) -> None:
        self.fd = fd
        self.splitter = splitter
        self.eof = False

    async def run(self, deliver: Callable[[OutputLine], None]) -> None:
        while not self.eof:
            try:
                data = os.read(self.fd, READ_CHUNK_BYTES)
            except BlockingIOError:
                await anyio.wait_readable(self.fd)
                continue
            if not data:
                for line in self.splitter.finish():
                    deliver(line)
                self.eof = True
                return
            for line in self.splitter.feed(data):
                deliver(line)
            # A fast writer keeps the pipe readable; yield so one server cannot starve the loop.
            await anyio.lowlevel.checkpoint()


async def _first_of(*events: anyio.Event) -> None:
    async with anyio.create_task_group() as tg:

        async def waiter(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        for event in events:
            tg.start_soon(waiter, event)


# --- process handles ----------------------------------------------------------------------------


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
        pumps: Sequence[_Pump] = (),
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

    async def _run_pump(self, pump: _Pump) -> None:
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
        pumps: Sequence[_Pump],
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


def _child_identity(pid: int, argv: Sequence[str]) -> ProcessIdentity:
    # Popen returns once exec has closed its error pipe, which the kernel does *before* it maps
    # the new program's arguments: for a moment /proc/<pid>/cmdline reads empty. The identity
    # must hold the command line the process will show for the rest of its life (for a script,
    # its interpreter comes first), or adoption after a Citadel restart would not recognise it
    # and start a duplicate. So wait (briefly, bounded) for it to appear. A child that already
    # exited is a zombie whose command line stays empty: then argv is the truth.
    process = psutil.Process(pid)
    create_time = process.create_time()
    cmdline: tuple[str, ...] = ()
    for _ in range(CMDLINE_ATTEMPTS):
        try:
            cmdline = tuple(process.cmdline())
        except psutil.Error:
            break
        if cmdline:
            break
        time.sleep(CMDLINE_PAUSE)  # blocking, but the window is microseconds
    return ProcessIdentity(pid, create_time, cmdline or tuple(argv))


async def spawn(
    argv: Sequence[str],
    *,
    cwd: str | Path,
    env: Mapping[str, str] | None = None,
    on_line: LineCallback | None = None,
    output: str | Path | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
    tail_lines: int = TAIL_LINES,
    drain_timeout: float = DRAIN_TIMEOUT,
    kill_timeout: float = KILL_TIMEOUT,
    marker: str | None = None,
) -> GameProcess:
    """Start ``argv`` (never through a shell) in a new session, output captured line by line.

    With ``output``, stdout and stderr are appended to that file instead of pipes (``on_line``
    is then never called; tail the file). A server writing to a file survives the death of the
    Citadel that started it - a pipe would kill it with SIGPIPE - so it can be re-adopted.

    Args:
        argv: Program and arguments; ``argv[0]`` is resolved like ``execvp`` does.
        cwd: Working directory (the server's install dir).
        env: Full environment for the child; ``None`` inherits Citadel's.
        on_line: Called synchronously with every ``OutputLine``; must not block.
        max_line_bytes: Longer lines are cut and flagged ``truncated``.
        tail_lines: How many last lines ``GameProcess.tail()`` keeps.
        drain_timeout: After the exit, how long to wait for pipe EOF.
        kill_timeout: Bound for the kill in ``aclose()`` of a still-running process.
        marker: A value unique to this run, put in the environment as ``CITADEL_RUN_ID``:
            every descendant inherits it, so cleanup finds even those that left the process
            group and lost their parent (``ensure_no_descendants``).

    Raises:
        OSError: The program could not be started (not found, not executable, bad cwd).
    """
    if not argv:
        raise ValueError("argv must name a program")
    if marker is not None:
        env = {**(os.environ if env is None else env), MARKER_ENV: marker}
    await anyio.lowlevel.checkpoint()  # before the fork: cancellation after it would orphan
    if output is not None:
        process = _spawn_to_file(argv, cwd, env, Path(output), drain_timeout, kill_timeout)
        process.marker = marker
        return process
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        # fork+exec is quick and synchronous (anyio.open_process does the same); a worker
        # thread would open a window in which cancellation orphans the new process.
        popen = subprocess.Popen(  # noqa: ASYNC220
            list(argv),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out_write,
            stderr=err_write,
            start_new_session=True,
        )
    except BaseException:
        os.close(out_read)
        os.close(err_read)
        raise
    finally:
        # Only the child keeps the write ends, so EOF means every writer is gone.
        os.close(out_write)
        os.close(err_write)
    os.set_blocking(out_read, False)
    os.set_blocking(err_read, False)
    try:
        # The child cannot be reaped before we wait on it, so its pid is ours here: no race.
        pidfd = os.pidfd_open(popen.pid)
    except BaseException:  # e.g. a kernel without pidfd (< 5.3): leave nothing behind
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
        os.close(out_read)
        os.close(err_read)
        raise
    pumps = (
        _Pump(out_read, LineSplitter("stdout", max_line_bytes)),
        _Pump(err_read, LineSplitter("stderr", max_line_bytes)),
    )
    process = GameProcess(
        popen,
        _child_identity(popen.pid, argv),
        pidfd,
        pumps,
        on_line=on_line,
        tail_lines=tail_lines,
        drain_timeout=drain_timeout,
        kill_timeout=kill_timeout,
    )
    process.marker = marker
    return process


def _spawn_to_file(
    argv: Sequence[str],
    cwd: str | Path,
    env: Mapping[str, str] | None,
    output: Path,
    drain_timeout: float,
    kill_timeout: float,
) -> GameProcess:
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    try:
        popen = subprocess.Popen(  # see spawn: no window for cancellation
            list(argv),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
        )
    finally:
        os.close(fd)
    try:
        pidfd = os.pidfd_open(popen.pid)
    except BaseException:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
        raise
    return GameProcess(
        popen,
        _child_identity(popen.pid, argv),
        pidfd,
        (),
        on_line=None,
        tail_lines=0,
        drain_timeout=drain_timeout,
        kill_timeout=kill_timeout,
    )


def adopt(identity: ProcessIdentity, marker: str | None = None) -> AdoptedProcess | None:
    """Re-attach to the process ``identity`` names; ``None`` if it is gone or a different one.

    The pidfd is opened *before* the identity check, so the handle cannot end up on a process
    that recycled the pid in between. The process group is used for signals only when the
    process leads it (as every server Citadel spawns does). ``marker`` is the run's
    ``CITADEL_RUN_ID`` (recorded at spawn), so its descendants can be found at cleanup.
    """
    pidfd = _posix.open_pidfd(identity.pid)
    if pidfd is None:
        return None
    try:
        if live_process(identity) is None or _posix.pidfd_exited(pidfd):
            os.close(pidfd)
            return None
        pgid = os.getpgid(identity.pid)
    except ProcessLookupError:
        os.close(pidfd)
        return None
    adopted = AdoptedProcess(identity, pgid if pgid == identity.pid else None, pidfd)
    adopted.marker = marker
    return adopted


@asynccontextmanager
async def open_game_process(
    argv: Sequence[str],
    *,
    cwd: str | Path,
    env: Mapping[str, str] | None = None,
    on_line: LineCallback | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
    drain_timeout: float = DRAIN_TIMEOUT,
    kill_timeout: float = KILL_TIMEOUT,
    marker: str | None = None,
) -> AsyncIterator[GameProcess]:
    """Spawn a server for the duration of a block; leaving the block leaves no process behind.

    Inside the block the output is pumped and the exit watched by a background ``wait()``.
    However the block ends (normally, by an exception, or by anyio cancellation of the
    supervising task), a still-running server's whole group and every known descendant are
    SIGKILLed, shielded and bounded by ``kill_timeout``, then the child is reaped. For a graceful
    stop, call ``stop_ladder`` inside the block.
    """
    process = await spawn(
        argv,
        cwd=cwd,
        env=env,
        on_line=on_line,
        max_line_bytes=max_line_bytes,
        drain_timeout=drain_timeout,
        kill_timeout=kill_timeout,
        marker=marker,
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(process.wait)
            try:
                yield process
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The task group exists only to pump output; an error from the caller's block (or a
        # single one from the pump) should surface as itself, not wrapped in a group.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        await process.aclose()


# --- stop ladder --------------------------------------------------------------------------------


def terminate_group(pgid: int) -> bool:
    """Send SIGTERM to process group ``pgid``; ``False`` if the group is empty."""
    return _posix.signal_group(pgid, signal.SIGTERM)


def kill_group(pgid: int) -> bool:
    """Send SIGKILL to process group ``pgid``; ``False`` if the group is empty."""
    return _posix.signal_group(pgid, signal.SIGKILL)


def snapshot_tree(root: ProcessIdentity) -> tuple[ProcessIdentity, ...]:
    """The root (if it still matches) and all its descendants right now, as identities.

    Take it *before* signalling: a killed parent's children are re-parented to init and can no
    longer be found through the root.
    """
    process = live_process(root)
    if process is None:
        return ()
    found = [root]
    try:
        children = process.children(recursive=True)
    except psutil.Error:
        return tuple(found)
    for child in children:
        try:
            found.append(ProcessIdentity(child.pid, child.create_time(), ()))
        except psutil.Error:
            continue  # already gone: nothing to kill
    return tuple(found)


async def ensure_no_descendants(
    root_identity: ProcessIdentity,
    pgid: int | None,
    timeout: float,  # noqa: ASYNC109 (each ladder step carries its own bound)
    *,
    known: Iterable[ProcessIdentity] = (),
    marker: str | None = None,
) -> list[int]:
    """SIGKILL everything left of a server, wait until it is gone, return the pids it killed.

    Candidates: ``known`` identities (snapshots taken before earlier signals), the root's
    current tree, every member of group ``pgid``, every process whose environment carries
    ``CITADEL_RUN_ID=<marker>`` (found by a ``/proc`` scan in a worker thread), and the current
    descendants of all of these, excluding anything created before the root. Each is
    killed through a pidfd opened before its create time is re-checked, so a recycled pid is
    never hit (a process found by its marker only must still carry it then). Zombies count as
    gone. Waiting is event-driven (pidfd readability).

    Raises:
        ProcessesSurvived: Some process was still running after ``timeout`` seconds.
    """
    candidates: dict[int, ProcessIdentity] = {}
    for identity in (*known, *snapshot_tree(root_identity)):
        candidates[identity.pid] = identity
    marker_entry = None if marker is None else f"{MARKER_ENV}={marker}".encode()
    marked: set[int] = set()
    if marker_entry is not None:
        # A read of every /proc/<pid>/environ: milliseconds on a busy host, so off the loop.
        marked = set(await anyio.to_thread.run_sync(_posix.find_by_environ, marker_entry))
    table = _posix.read_stat_table()
    found: list[int] = []
    if pgid is not None:
        _posix.check_signallable_group(pgid)
        found = [pid for pid, stat in table.items() if stat.pgrp == pgid]
    # Descendants of every candidate too: a grandchild that left the group with setsid is still
    # found while its parent (a group member or a known process) lives.
    children: dict[int, list[int]] = {}
    for pid, stat in table.items():
        children.setdefault(stat.ppid, []).append(pid)
    frontier = [*candidates, *found, *marked]
    while frontier:
        kids = children.get(frontier.pop(), [])
        found.extend(kids)
        frontier.extend(kids)
    # Found by the marker alone: re-checked after its pidfd is open (the pid could be new).
    marked_only = marked - set(found) - set(candidates)
    for pid in (*found, *marked):
        if pid in candidates:
            continue
        member = read_identity(pid)
        # Anything older than the root cannot be one of its descendants or group members.
        if member and member.create_time >= root_identity.create_time - CREATE_TIME_TOLERANCE:
            candidates[pid] = member
    candidates.pop(os.getpid(), None)

    pending: list[tuple[int, int]] = []
    try:
        for identity in candidates.values():
            fd = _posix.open_pidfd(identity.pid)
            if fd is None:
                continue
            current = read_identity(identity.pid)
            if (
                current is None
                or not same_start(identity, current)
                or (
                    marker_entry is not None
                    and identity.pid in marked_only
                    and not _posix.environ_has(identity.pid, marker_entry)
                )
                or _posix.pidfd_exited(fd)
                or not _posix.pidfd_signal(fd, signal.SIGKILL)
            ):
                os.close(fd)
                continue
            pending.append((identity.pid, fd))
        with anyio.move_on_after(timeout):
            for _, fd in pending:
                if not _posix.pidfd_exited(fd):
                    await anyio.wait_readable(fd)
        survivors = [pid for pid, fd in pending if not _posix.pidfd_exited(fd)]
    finally:
        for _, fd in pending:
            os.close(fd)
    killed = sorted(pid for pid, _ in pending)
    if survivors:
        raise ProcessesSurvived(survivors, killed)
    return killed


def _remember(known: dict[tuple[int, float], ProcessIdentity], root: ProcessIdentity) -> None:
    for identity in snapshot_tree(root):
        known[identity.pid, identity.create_time] = identity


async def _kill_everything(
    process: ManagedProcess, kill_timeout: float, cleanup_timeout: float
) -> list[int]:
    known: dict[tuple[int, float], ProcessIdentity] = {}
    _remember(known, process.identity)
    process.send_signal(signal.SIGKILL)
    await process.wait_exit(kill_timeout)
    return await ensure_no_descendants(
        process.identity,
        process.pgid,
        cleanup_timeout,
        known=known.values(),
        marker=process.marker,
    )


async def stop_ladder(
    process: ManagedProcess,
    *,
    graceful: Callable[[], Awaitable[None]] | None,
    stop_timeout: float = STOP_TIMEOUT,
    kill_timeout: float = KILL_TIMEOUT,
    cleanup_timeout: float = CLEANUP_TIMEOUT,
) -> StopOutcome:
    """Stop a server step by step, each step bounded, and say which step ended it.

    ``graceful()`` (e.g. RCON ``#shutdown``; skipped when ``None``) → wait ``stop_timeout`` →
    SIGTERM to the group → wait ``kill_timeout`` → SIGKILL to the group → wait ``kill_timeout``
    → SIGKILL every leftover descendant (``ensure_no_descendants``). A ``graceful()`` that
    raises ends its step at once (recorded in ``graceful_error``). The tree is snapshotted
    before every signal so descendants that escape the group are still found.
    """
    known: dict[tuple[int, float], ProcessIdentity] = {}
    _remember(known, process.identity)
    graceful_error: str | None = None
    step: StopStep | None = "exited" if process.exited else None

    if step is None and graceful is not None:
        with anyio.move_on_after(stop_timeout):
            async with anyio.create_task_group() as tg:

                async def ask() -> None:
                    nonlocal graceful_error
                    try:
                        await graceful()
                    except Exception as exc:  # recorded; the ladder goes on to SIGTERM
                        graceful_error = f"{type(exc).__name__}: {exc}"
                        tg.cancel_scope.cancel()

                tg.start_soon(ask)
                await process.wait_exit(math.inf)
                tg.cancel_scope.cancel()
        if process.exited:
            step = "graceful"
    if step is None:
        _remember(known, process.identity)
        process.send_signal(signal.SIGTERM)
        if await process.wait_exit(kill_timeout):
            step = "sigterm"
    if step is None:
        _remember(known, process.identity)
        process.send_signal(signal.SIGKILL)
        await process.wait_exit(kill_timeout)
        step = "sigkill"

    survivors: tuple[int, ...] = ()
    try:
        killed = tuple(
            await ensure_no_descendants(
                process.identity,
                process.pgid,
                cleanup_timeout,
                known=known.values(),
                marker=process.marker,
            )
        )
    except ProcessesSurvived as exc:
        killed, survivors = exc.killed, exc.survivors
    return StopOutcome(step, process.status, killed, survivors, graceful_error)


# --- metrics ------------------------------------------------------------------------------------


class ProcessTable:
    """Host-wide parent→children, group→members and session→members indexes from one ``/proc``
    scan, reused for ``max_age`` s.

    One scan costs milliseconds on a busy host; shared by every sampler, 100 servers sampled
    every 5 s cost about one scan per second instead of one per server.
    """

    def __init__(
        self,
        max_age: float = PROCESS_TABLE_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_age = max_age
        self._clock = clock
        self._children: dict[int, list[int]] = {}
        self._groups: dict[int, list[int]] = {}
        self._sessions: dict[int, list[int]] = {}
        self._scanned_at: float | None = None

    def _refresh(self) -> None:
        now = self._clock()
        if self._scanned_at is not None and now - self._scanned_at <= self._max_age:
            return
        children: dict[int, list[int]] = {}
        groups: dict[int, list[int]] = {}
        sessions: dict[int, list[int]] = {}
        for pid, entry in _posix.read_stat_table().items():
            children.setdefault(entry.ppid, []).append(pid)
            groups.setdefault(entry.pgrp, []).append(pid)
            sessions.setdefault(entry.session, []).append(pid)
        self._children, self._groups, self._sessions = children, groups, sessions
        self._scanned_at = now

    def _with_descendants(self, roots: Iterable[int], exclude: int) -> list[int]:
        found: dict[int, None] = {}
        frontier = list(roots)
        while frontier:
            pid = frontier.pop()
            if pid in found or pid == exclude:
                continue
            found[pid] = None
            frontier.extend(self._children.get(pid, ()))
        return list(found)

    def descendants(self, pid: int) -> list[int]:
        """All descendants of ``pid`` at the last scan (refreshed when older than max_age)."""
        self._refresh()
        return self._with_descendants(self._children.get(pid, ()), pid)

    def members(self, pid: int) -> list[int]:
        """Everything that belongs to the server ``pid`` at the last scan, ``pid`` excluded.

        That is its descendants, every member of the process group and of the session that
        ``pid`` leads (only when it leads them: a group or session id is its leader's pid), and
        their descendants. Group and session members re-parented to init (their parent died)
        are no longer descendants but still the server's: they were forked from it and never
        left. A process that left both with ``setsid`` is only found while its parent lives.
        """
        self._refresh()
        roots = [
            *self._children.get(pid, ()),
            *self._groups.get(pid, ()),
            *self._sessions.get(pid, ()),
        ]
        return self._with_descendants(roots, pid)


_SHARED_TABLE: Final = ProcessTable()


class _Tracked(NamedTuple):
    process: psutil.Process
    cpu_seconds: float


class ProcessGroupSampler:
    """Samples CPU and RAM of a server's process group, session and tree (`ProcessTable.members`,
    so members re-parented to init count too); cheap enough for 100 servers at 5 s.

    CPU is the delta of user+system time over the tree between two samples, divided by elapsed
    time and the host's CPU count (the first sample only primes and reports ``None``). RAM is the
    sum of resident set sizes (shared pages count once per process). psutil objects are cached
    per pid; the member list comes from the shared ``ProcessTable`` on every sample.
    """

    def __init__(
        self,
        identity: ProcessIdentity,
        *,
        table: ProcessTable | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity: ProcessIdentity = identity
        self._root = live_process(identity)
        self._table = table if table is not None else _SHARED_TABLE
        self._clock = clock
        self._tracked: dict[int, _Tracked] = {}
        self._last_time: float | None = None
        self._host_ram = psutil.virtual_memory().total
        self._cpus = psutil.cpu_count() or 1

    def known_processes(self) -> tuple[ProcessIdentity, ...]:
        """Identities seen in the last sample: pass to ``ensure_no_descendants`` after a crash."""
        found = []
        for pid, tracked in self._tracked.items():
            try:
                found.append(ProcessIdentity(pid, tracked.process.create_time(), ()))
            except psutil.Error:
                continue
        return tuple(found)

    def sample(self) -> GroupSample | None:
        """Measure the tree now; ``None`` once the root process is gone."""
        if self._root is None:
            return None
        now = self._clock()
        cpu_delta = 0.0
        ram = 0
        tracked: dict[int, _Tracked] = {}
        for pid in (self._root.pid, *self._table.members(self._root.pid)):
            previous = self._tracked.get(pid)
            try:
                process = previous.process if previous else psutil.Process(pid)
                with process.oneshot():
                    times = process.cpu_times()
                    rss = process.memory_info().rss
            except psutil.Error:
                if pid == self._root.pid:
                    self._root = None
                    return None
                continue
            seconds = times.user + times.system
            if previous is not None and seconds >= previous.cpu_seconds:
                cpu_delta += seconds - previous.cpu_seconds
            elif previous is not None or self._last_time is not None:
                cpu_delta += seconds  # born since the last sample (or pid reused): all recent
            tracked[pid] = _Tracked(process, seconds)
            ram += rss
        cpu: float | None = None
        if self._last_time is not None and now > self._last_time:
            cpu = 100.0 * cpu_delta / ((now - self._last_time) * self._cpus)
        self._tracked, self._last_time = tracked, now
        return GroupSample(
            cpu_percent_of_host=cpu,
            ram_bytes=ram,
            ram_percent_of_host=100.0 * ram / self._host_ram if self._host_ram else 0.0,
            processes=len(tracked),
        )
