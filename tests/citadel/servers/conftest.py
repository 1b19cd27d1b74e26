"""Fixtures for tests that start real processes: cleanup by pid + create time, output capture."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator

import anyio
import psutil
import pytest

from citadel.messages import Event
from citadel.servers import _posix
from citadel.servers.identity import MARKER_ENV, ProcessIdentity, read_identity, same_start
from citadel.servers.output import OutputLine


def alive(identity: ProcessIdentity) -> bool:
    """Whether the process ``identity`` names still runs (a zombie has ended, it only waits)."""
    if not psutil.pid_exists(identity.pid):
        return False
    try:
        process = psutil.Process(identity.pid)
        if abs(process.create_time() - identity.create_time) > 0.5:
            return False  # the pid now belongs to someone else
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def python(script: str, *args: str) -> list[str]:
    """Argv running ``script`` with this interpreter."""
    return [sys.executable, "-c", script, *args]


class Reaper:
    """Remembers every process a test starts and SIGKILLs the survivors at teardown."""

    def __init__(self) -> None:
        self.identities: list[ProcessIdentity] = []

    def track(self, identity: ProcessIdentity) -> ProcessIdentity:
        self.identities.append(identity)
        return identity

    def track_pid(self, pid: int) -> ProcessIdentity:
        identity = read_identity(pid)
        assert identity is not None, f"pid {pid} is not running"
        return self.track(identity)

    def kill_survivors(self) -> None:
        for identity in self.identities:
            fd = _posix.open_pidfd(identity.pid)
            if fd is None:
                continue
            try:
                current = read_identity(identity.pid)
                if current is not None and same_start(identity, current):
                    _posix.pidfd_signal(fd, signal.SIGKILL)
            finally:
                os.close(fd)


@pytest.fixture
def reaper() -> Iterator[Reaper]:
    keeper = Reaper()
    try:
        yield keeper
    finally:
        keeper.kill_survivors()


class Collector:
    """An ``on_line`` callback that records lines and lets a test wait for one."""

    def __init__(self) -> None:
        self.lines: list[OutputLine] = []
        self._changed = anyio.Event()

    def __call__(self, line: OutputLine) -> None:
        self.lines.append(line)
        self._changed.set()
        self._changed = anyio.Event()

    def texts(self, stream: str | None = None) -> list[str]:
        return [line.text for line in self.lines if stream is None or line.stream == stream]

    async def wait_for(self, prefix: str) -> str:
        """Wait until a line starting with ``prefix`` has arrived; return its text."""
        while True:
            for line in self.lines:
                if line.text.startswith(prefix):
                    return line.text
            await self._changed.wait()


# Double fork: the grandchild leads its own session and group (as a server started by a
# Citadel that was killed since) and is no child of the test. It prints its pid, then lets go
# of the pipe so the launcher's output ends.
DETACH = r"""
import os, signal, sys, time
if os.fork() == 0:
    if os.fork() == 0:
        os.setsid()
        if "ignore-term" in sys.argv:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.write(1, f"{os.getpid()}\n".encode())
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        while True:
            time.sleep(60)
    os._exit(0)
os.wait()
"""


async def detached(reaper: Reaper, *args: str, marker: str | None = None) -> ProcessIdentity:
    """Start `DETACH` (``args``: ``ignore-term``), with ``marker`` as its run marker or none."""
    env = dict(os.environ)
    env.pop(MARKER_ENV, None)
    if marker is not None:
        env[MARKER_ENV] = marker
    with anyio.fail_after(5):
        result = await anyio.run_process([sys.executable, "-c", DETACH, *args], env=env)
    return reaper.track_pid(int(result.stdout))


class Recorder:
    """A ``publish`` that keeps what it was given."""

    def __init__(self) -> None:
        self.published: list[Event] = []

    async def publish(self, event: Event) -> bool:
        self.published.append(event)
        return True
