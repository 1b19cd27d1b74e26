"""Who a process is: pid plus create time plus command line, never the executable name.

A pid alone is a number the kernel hands out again; pid, create time and command line together
name one process for its whole life. ``ProcessIdentity`` is a frozen msgspec Struct, so the app
stores it (SQLite, JSON) when it starts a server and, after a Citadel restart, ``adopt``
(in ``spawn``) re-attaches only to a process that still matches all three.

Create times come from psutil: boot-relative start ticks plus the boot time in ``/proc/stat``.
The boot time is recomputed from the wall clock by the kernel and may wobble by a second, so two
readings of the same process are compared within ``CREATE_TIME_TOLERANCE``. A pid recycled that
quickly would need four million process creations in between.
"""

from __future__ import annotations

from typing import Final

import msgspec
import psutil

CREATE_TIME_TOLERANCE: Final = 2.0  # seconds; see the module docstring


class ProcessIdentity(msgspec.Struct, frozen=True):
    """A persistable name for one OS process: pid, create time (epoch seconds), command line."""

    pid: int
    create_time: float
    cmdline: tuple[str, ...]


def same_process(expected: ProcessIdentity, actual: ProcessIdentity) -> bool:
    """Whether two readings name the same process (pure: pid, cmdline, create time ± tolerance)."""
    return (
        expected.pid == actual.pid
        and expected.cmdline == actual.cmdline
        and abs(expected.create_time - actual.create_time) <= CREATE_TIME_TOLERANCE
    )


def same_start(expected: ProcessIdentity, actual: ProcessIdentity) -> bool:
    """Like ``same_process`` without the command line, for descendants that may ``exec``."""
    return (
        expected.pid == actual.pid
        and abs(expected.create_time - actual.create_time) <= CREATE_TIME_TOLERANCE
    )


def identity_of(process: psutil.Process) -> ProcessIdentity | None:
    """Read the identity of a live psutil process; ``None`` if it is gone or a zombie."""
    try:
        with process.oneshot():
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            return ProcessIdentity(
                pid=process.pid,
                create_time=process.create_time(),
                cmdline=tuple(process.cmdline()),
            )
    except psutil.AccessDenied:
        # Another user's process (not one Citadel started): name it without a command line,
        # which is enough for same_start and never enough for same_process.
        try:
            return ProcessIdentity(process.pid, process.create_time(), ())
        except psutil.Error:
            return None
    except psutil.Error:
        return None


def read_identity(pid: int) -> ProcessIdentity | None:
    """Read the identity of the live process ``pid``; ``None`` if there is none (or a zombie)."""
    try:
        process = psutil.Process(pid)
    except psutil.Error:
        return None
    return identity_of(process)


def live_process(identity: ProcessIdentity) -> psutil.Process | None:
    """The running psutil process that ``identity`` names, or ``None`` if gone or different."""
    try:
        process = psutil.Process(identity.pid)
    except psutil.Error:
        return None
    current = identity_of(process)
    if current is None or not same_process(identity, current):
        return None
    return process


def matches(identity: ProcessIdentity) -> bool:
    """Whether the process ``identity`` names is still running (pid reuse does not fool it)."""
    return live_process(identity) is not None
