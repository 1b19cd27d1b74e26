"""Who a process is: pid plus create time plus command line (or run marker), never a name.

A pid alone is a number the kernel hands out again; pid and create time together pin one
process for its whole life (a recycled pid has a new create time). The command line guards the
create-time tolerance below. ``ProcessIdentity`` is a frozen msgspec Struct, so the app stores it
(SQLite, JSON) when it starts a server and, after a Citadel restart, ``adopt`` (in ``spawn``)
re-attaches only to a process it recognises by this rule:

* pid and create time (± ``CREATE_TIME_TOLERANCE``) must match, **and**
* the command line matches, **or** the process's environment carries this run's marker
  (``CITADEL_RUN_ID=<marker>``, set by Citadel for every run, see ``spawn``; a different
  marker, or none, does not count).

The second branch exists because a process may ``exec`` and keep its pid and create time but
change its command line: a ``#!/bin/sh`` wrapper ``exec``-ing the real server (as
docs/simulator.md shows, and as real DayZ setups do) is recorded as ``/bin/sh DayZServer ...``
at spawn and runs as ``.../DayZServer_x64 ...`` a moment later. ``exec`` keeps the environment
unless the program replaces it, so the marker still names the run. Once a run is ready (its
exec long done) the process actor refreshes the stored command line
(``ManagedProcess.refresh_identity``), so even a wrapper that clears the environment is
recognised from then on. Only a process that both execs with a cleared environment *and* loses
its Citadel before it became ready is not recognised: the next Citadel then neither adopts it
nor starts a second copy beside it (docs/operations.md).

Create times come from psutil: boot-relative start ticks plus the boot time in ``/proc/stat``.
The boot time is recomputed from the wall clock by the kernel and may wobble by a second, so two
readings of the same process are compared within ``CREATE_TIME_TOLERANCE``. A pid recycled that
quickly would need four million process creations in between.
"""

from __future__ import annotations

from typing import Final

import msgspec
import psutil

from citadel.servers import _posix

# --- defaults -----------------------------------------------------------------------------------
CREATE_TIME_TOLERANCE: Final = 2.0  # seconds; see the module docstring
#: The environment variable that marks every process of one server run (see ``spawn``).
MARKER_ENV: Final = "CITADEL_RUN_ID"
# ------------------------------------------------------------------------------------------------


class ProcessIdentity(msgspec.Struct, frozen=True):
    """A persistable name for one OS process: pid, create time (epoch seconds), command line."""

    pid: int
    create_time: float
    cmdline: tuple[str, ...]


def same_process(
    expected: ProcessIdentity, actual: ProcessIdentity, *, carries_marker: bool = False
) -> bool:
    """Whether two readings name the same process (pure; the rule of the module docstring).

    Args:
        expected: The recorded identity.
        actual: The identity read now.
        carries_marker: Whether the live process's environment holds the recorded run's
            marker (``marker_entry``); then a changed command line is an ``exec``, not a
            different process.
    """
    return same_start(expected, actual) and (expected.cmdline == actual.cmdline or carries_marker)


def same_start(expected: ProcessIdentity, actual: ProcessIdentity) -> bool:
    """Like ``same_process`` without the command line, for descendants that may ``exec``."""
    return (
        expected.pid == actual.pid
        and abs(expected.create_time - actual.create_time) <= CREATE_TIME_TOLERANCE
    )


def marker_entry(marker: str) -> bytes:
    """The environment entry (``b"CITADEL_RUN_ID=<marker>"``) that marks a run's processes."""
    return f"{MARKER_ENV}={marker}".encode()


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


def live_process(identity: ProcessIdentity, marker: str | None = None) -> psutil.Process | None:
    """The running psutil process that ``identity`` names, or ``None`` if gone or different.

    ``marker`` is the run's ``CITADEL_RUN_ID``: with it, a process whose command line changed
    (it ``exec``-ed) is still recognised by its environment (see the module docstring).
    """
    try:
        process = psutil.Process(identity.pid)
    except psutil.Error:
        return None
    current = identity_of(process)
    if current is None:
        return None
    # The environment is read only when the command line alone does not decide.
    carries = (
        marker is not None
        and current.cmdline != identity.cmdline
        and _posix.environ_has(identity.pid, marker_entry(marker))
    )
    if not same_process(identity, current, carries_marker=carries):
        return None
    return process


def matches(identity: ProcessIdentity, marker: str | None = None) -> bool:
    """Whether the process ``identity`` names is still running (pid reuse does not fool it)."""
    return live_process(identity, marker) is not None
