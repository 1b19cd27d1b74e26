"""Descendant cleanup: find everything left of a server and SIGKILL it, bounded and verified.

``ensure_no_descendants`` is the last rung of every stop (the ladder's, a crash's, a closed
handle's): no process of a server may outlive it. ``snapshot_tree`` (and ``remember_tree``)
record a server's tree *before* a signal, while the parent links still lead to it.
``clear_dead_run`` kills what is left of a recorded run that could not be adopted after a
Citadel restart (by its marker only), and tells when its process may still live unrecognised.

Descendants are found three ways: through parent links (snapshotted before every signal), as
members of the server's process group, and - for a process spawned with a ``marker`` - by the
``CITADEL_RUN_ID=<marker>`` entry every descendant inherits in its environment. The marker
finds a descendant that left the session (``setsid``) *and* lost its parent (a double-forked
daemon, re-parented to init), also after a Citadel restart. Only a descendant that both
escapes that way and replaces its environment (``execve`` with a clean one) is not found; a
cgroup per server would close that last gap.

The errors of the whole process control layer (``output``, ``handles``, ``spawn``, ``cleanup``,
``ladder``, ``sampler``) are rooted here, the lowest module that raises one::

    ProcessControlError
     └── ProcessesSurvived      SIGKILLed processes still running after the bound (D state)
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Sequence
from typing import Final

import anyio
import msgspec
import psutil

from citadel.servers import _posix
from citadel.servers.identity import (
    CREATE_TIME_TOLERANCE,
    ProcessIdentity,
    live_process,
    marker_entry,
    read_identity,
    same_start,
)

# --- defaults -----------------------------------------------------------------------------------
CLEANUP_TIMEOUT: Final = 5.0  # SIGKILL of leftovers -> gone
# ------------------------------------------------------------------------------------------------


class ProcessControlError(Exception):
    """Root of the errors raised by the process control layer."""


class ProcessesSurvived(ProcessControlError):
    """Processes were still running after SIGKILL and the cleanup bound."""

    def __init__(self, survivors: Sequence[int], killed: Sequence[int]) -> None:
        super().__init__(f"processes survived SIGKILL: {sorted(survivors)}")
        self.survivors: tuple[int, ...] = tuple(sorted(survivors))
        self.killed: tuple[int, ...] = tuple(sorted(killed))


def snapshot_tree(root: ProcessIdentity, marker: str | None = None) -> tuple[ProcessIdentity, ...]:
    """The root (if it still matches) and all its descendants right now, as identities.

    Take it *before* signalling: a killed parent's children are re-parented to init and can no
    longer be found through the root. ``marker`` (the run's) recognises a root that ``exec``-ed
    (see ``identity``).
    """
    process = live_process(root, marker)
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
    for identity in (*known, *snapshot_tree(root_identity, marker)):
        candidates[identity.pid] = identity
    entry = None if marker is None else marker_entry(marker)
    marked: set[int] = set()
    if entry is not None:
        # A read of every /proc/<pid>/environ: milliseconds on a busy host, so off the loop.
        marked = set(await anyio.to_thread.run_sync(_posix.find_by_environ, entry))
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
                    entry is not None
                    and identity.pid in marked_only
                    and not _posix.environ_has(identity.pid, entry)
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


class DeadRun(msgspec.Struct, frozen=True):
    """What `clear_dead_run` found of a recorded run that could not be adopted.

    Attributes:
        unrecognised: A process with the run's pid and start time runs, but shows neither the
            recorded command line nor the run's marker: it may be the run (``exec`` with a
            cleared environment) or not. Nothing was killed.
        killed: Processes that still carried the run's marker, SIGKILLed.
        survivors: Processes of the run still running after SIGKILL and the bound.
    """

    unrecognised: bool = False
    killed: tuple[int, ...] = ()
    survivors: tuple[int, ...] = ()


async def clear_dead_run(
    root: ProcessIdentity,
    marker: str | None,
    timeout: float = CLEANUP_TIMEOUT,  # noqa: ASYNC109 (a bound like the ladder's steps)
) -> DeadRun:
    """SIGKILL what is left of a recorded run whose process ``root`` could not be adopted.

    Call it once the adoption rule (``spawn.adopt``) failed for ``root``. The run's processes
    are found by its ``marker`` only (a game whose wrapper shell died, a daemon it left): not
    by the process group, whose leader is gone and whose id may since be a stranger's. A
    process with the recorded pid and start time that ``adopt`` did not recognise is left
    alone and reported (``unrecognised``): never killed by a guess.
    """
    current = read_identity(root.pid)
    if current is not None and same_start(root, current):
        return DeadRun(unrecognised=True)
    if marker is None:
        return DeadRun()
    try:
        killed = await ensure_no_descendants(root, None, timeout, marker=marker)
    except ProcessesSurvived as error:
        return DeadRun(killed=error.killed, survivors=error.survivors)
    return DeadRun(killed=tuple(killed))


def remember_tree(
    known: dict[tuple[int, float], ProcessIdentity],
    root: ProcessIdentity,
    marker: str | None = None,
) -> None:
    """Add ``root`` and its current descendants to ``known`` (see ``snapshot_tree``)."""
    for identity in snapshot_tree(root, marker):
        known[identity.pid, identity.create_time] = identity
