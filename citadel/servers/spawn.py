"""Getting a handle on a server process: spawn a new one, or adopt one by its identity.

* ``spawn(argv, cwd=...)`` starts a server in its own session (so its pid is also its process
  group id), its stdout and stderr on pipes or appended to a file, and returns a
  ``GameProcess`` (see ``handles``). With a ``marker``, every process of the run carries
  ``CITADEL_RUN_ID=<marker>`` in its environment (see ``cleanup``).
* ``adopt(identity, marker)`` re-attaches to a server after a Citadel restart, only if it is
  still the process ``identity`` names: pid and create time, and the command line or (after an
  ``exec``) the run's marker (the rule is in ``identity``). Its exit code is unknowable (not
  our child).
* ``open_game_process`` spawns a server for the duration of a block and leaves no process
  behind.

A server started with pipes dies of SIGPIPE at its next console write once the Citadel that
read the pipes is gone; adoption after a restart therefore only keeps servers whose console
output is quiet or redirected (``spawn(..., output=...)``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import anyio
import anyio.lowlevel
import psutil

from citadel.servers import _posix
from citadel.servers.handles import DRAIN_TIMEOUT, AdoptedProcess, GameProcess
from citadel.servers.identity import MARKER_ENV, ProcessIdentity, live_process
from citadel.servers.ladder import KILL_TIMEOUT
from citadel.servers.output import MAX_LINE_BYTES, LineCallback, LineSplitter, Pump

# --- defaults -----------------------------------------------------------------------------------
TAIL_LINES: Final = 200  # last output lines kept for crash reports
CMDLINE_ATTEMPTS: Final = 200  # reads of a new child's command line while exec finishes ...
CMDLINE_PAUSE: Final = 0.0005  # ... this far apart (at most 0.1 s; normally one read)
# ------------------------------------------------------------------------------------------------


def _child_identity(pid: int, argv: Sequence[str]) -> ProcessIdentity:
    # Popen returns once exec has closed its error pipe, which the kernel does *before* it maps
    # the new program's arguments: for a moment /proc/<pid>/cmdline reads empty. The identity
    # should hold the command line the process shows (for a script, its interpreter comes
    # first), so wait (briefly, bounded) for it to appear. A child that already exited is a
    # zombie whose command line stays empty: then argv is the truth. A script may still
    # ``exec`` later and change it: the run's marker recognises it then, and the process actor
    # re-reads the command line once the run is ready (see ``identity``).
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
        Pump(out_read, LineSplitter("stdout", max_line_bytes)),
        Pump(err_read, LineSplitter("stderr", max_line_bytes)),
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
    ``CITADEL_RUN_ID`` (recorded at spawn): it recognises a server that ``exec``-ed since its
    identity was recorded (a ``/bin/sh`` wrapper), and finds its descendants at cleanup.
    """
    pidfd = _posix.open_pidfd(identity.pid)
    if pidfd is None:
        return None
    try:
        if live_process(identity, marker) is None or _posix.pidfd_exited(pidfd):
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
