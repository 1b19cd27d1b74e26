"""Linux specifics for game-server processes: pidfds, process groups, ``/proc`` scans.

Everything here is synchronous and cheap; the async layer (``handles``, ``spawn``, ``cleanup``,
``ladder``, ``sampler``) waits on the file descriptors these functions hand out. Nothing here
finds a process by name: processes are addressed by pid, and a pid is only signalled through a
pidfd opened *before* its identity was checked, so a recycled pid cannot be hit by mistake.
"""

from __future__ import annotations

import os
import select
import signal
from typing import Final, NamedTuple

PROC_ROOT: Final = "/proc"


class StatEntry(NamedTuple):
    """The fields of ``/proc/<pid>/stat`` that the process layer needs."""

    ppid: int
    pgrp: int
    session: int


class ChildExit(NamedTuple):
    """How a child ended, read without reaping it: an exit code or a signal name."""

    code: int | None
    signal: str | None


def signal_name(signum: int) -> str:
    """Return ``"SIGKILL"`` for 9; unknown numbers become ``"SIG<n>"`` (never raises)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"


def open_pidfd(pid: int) -> int | None:
    """Open a pidfd for ``pid``; ``None`` when no such process exists (it may be a zombie)."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def pidfd_exited(fd: int) -> bool:
    """Whether the process behind ``fd`` has exited (a zombie counts as exited); never blocks."""
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


def pidfd_signal(fd: int, sig: int) -> bool:
    """Send ``sig`` through a pidfd; ``False`` if the process has already exited."""
    try:
        signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        return False
    return True


def check_signallable_group(pgid: int) -> None:
    """Refuse group ids whose signalling would hit init, everything, or Citadel itself.

    ``killpg(0)`` means "my own group" and 1 is init's; a game server always leads its own
    session, so its group is never Citadel's.
    """
    if pgid <= 1:
        raise ValueError(f"refusing to signal process group {pgid}")
    if pgid == os.getpgrp():
        raise ValueError(f"refusing to signal Citadel's own process group {pgid}")


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to every process of group ``pgid``; ``False`` if the group is empty."""
    check_signallable_group(pgid)
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def peek_child_exit(pid: int) -> ChildExit | None:
    """Read a child's exit status *without reaping it* (``WNOWAIT``); ``None`` if still running.

    The zombie keeps the pid and its process group id reserved until it is reaped, so group
    signals sent during cleanup cannot reach a newcomer that recycled the number.
    """
    result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    if result is None or result.si_pid == 0:
        return None
    if result.si_code == os.CLD_EXITED:
        return ChildExit(result.si_status, None)
    return ChildExit(None, signal_name(result.si_status))


def environ_has(pid: int, entry: bytes) -> bool:
    """Whether ``entry`` (``b"NAME=value"``) is in the environment ``pid`` was started with.

    ``False`` when the process is gone, a zombie (empty environment) or not readable by us.
    """
    try:
        with open(f"{PROC_ROOT}/{pid}/environ", "rb") as environ:
            data = environ.read()
    except OSError:
        return False
    return entry in data.split(b"\0")


def find_by_environ(entry: bytes) -> list[int]:
    """Every process whose start environment holds ``entry`` (blocking: one ``/proc`` pass).

    Only processes whose environment we may read are seen (our own user's, or all for root).
    """
    found: list[int] = []
    with os.scandir(PROC_ROOT) as entries:
        for item in entries:
            if item.name.isdigit() and environ_has(int(item.name), entry):
                found.append(int(item.name))
    return found


def udp_port_inodes(port: int) -> set[int]:
    """Inodes of the UDP sockets bound to local ``port`` (any address, IPv4 and IPv6).

    Read from ``/proc/net/udp`` and ``udp6``, so only sockets in Citadel's network namespace
    are seen. Lines are ``sl local_address rem_address st ... uid timeout inode ...`` with the
    local port in hex after the last ``:``.
    """
    found: set[int] = set()
    for table in ("udp", "udp6"):
        try:
            with open(f"{PROC_ROOT}/net/{table}", "rb") as sockets:
                lines = sockets.read().splitlines()[1:]
        except OSError:
            continue  # no IPv6 on this host: nothing bound there
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            try:
                if int(fields[1].rpartition(b":")[2], 16) == port:
                    found.add(int(fields[9]))
            except ValueError:
                continue
    return found


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` holds open; empty if it is gone or unreadable."""
    found: set[int] = set()
    try:
        entries = os.scandir(f"{PROC_ROOT}/{pid}/fd")
    except OSError:
        return found
    with entries:
        for entry in entries:
            try:
                target = os.readlink(entry.path)
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:[") and target.endswith("]"):
                found.add(int(target[8:-1]))
    return found


def _parse_stat(data: bytes) -> StatEntry | None:
    # The command name (field 2) is in parentheses and may itself contain spaces and ')'; the
    # fields after the LAST ')' are fixed: state, ppid, pgrp, ...
    close = data.rfind(b")")
    if close < 0:
        return None
    fields = data[close + 1 :].split()
    if len(fields) < 4:
        return None
    try:
        return StatEntry(ppid=int(fields[1]), pgrp=int(fields[2]), session=int(fields[3]))
    except ValueError:
        return None


def read_stat_table() -> dict[int, StatEntry]:
    """Read ppid, pgrp and session of every process on the host in one ``/proc`` pass.

    Processes that vanish during the scan are skipped. One pass costs a few milliseconds on a
    busy host, which is why callers share it (see ``ProcessTable``).
    """
    table: dict[int, StatEntry] = {}
    with os.scandir(PROC_ROOT) as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"{PROC_ROOT}/{entry.name}/stat", "rb") as stat_file:
                    data = stat_file.read()
            except OSError:
                continue  # exited between listing and reading: nothing to record
            parsed = _parse_stat(data)
            if parsed is not None:
                table[int(entry.name)] = parsed
    return table
