"""Which log files in a profile directory belong to the current server process.

DayZ starts a new RPT, ADM and script log per process start and never rotates by size
(formats.md §1.1, §1.9). Given the process start time T, the current file of each kind is the
newest whose *name* timestamp is at or after T − 5 s. Modification time is deliberately not the
ranking key: an old file touched late would win. Only the legacy fixed-name ``DayZServer_x64.ADM``
has no name timestamp; its mtime stands in.

File-name times are host local time, so everything here works in naive local datetimes; an
aware ``start`` is converted to local time first.

:func:`parse_log_name` and :func:`select_current` are pure; :func:`find_current_logs` lists the
directory (blocking: call it through ``anyio.to_thread.run_sync``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal

import msgspec

__all__ = [
    "CurrentLogs",
    "LogFileName",
    "LogKind",
    "find_current_logs",
    "parse_log_name",
    "select_current",
]

LogKind = Literal["rpt", "adm", "script", "crash"]

# --- defaults -------------------------------------------------------------------------------
START_SLACK: Final = timedelta(seconds=5)
"""How far before the recorded start a file's name time may lie (clock granularity, the
server stamping the name a moment before we record T)."""
# ---------------------------------------------------------------------------------------------

_RPT_RE: Final = re.compile(
    r"^DayZServer(?:_x64)?_(\d{4})-(\d{2})-(\d{2})_(\d{2})-(\d{2})-(\d{2})\.RPT$", re.IGNORECASE
)
_ADM_RE: Final = re.compile(
    r"^DayZServer(?:_x64)?_(\d{4})_(\d{2})_(\d{2})_(\d{2})(\d{2})(\d{2})(\d{3})\.ADM$",
    re.IGNORECASE,
)
_ADM_LEGACY_RE: Final = re.compile(r"^DayZServer(?:_x64)?\.ADM$", re.IGNORECASE)
_SCRIPT_RE: Final = re.compile(
    r"^script_(\d{4})-(\d{2})-(\d{2})_(\d{2})-(\d{2})-(\d{2})\.log$", re.IGNORECASE
)
_CRASH_RE: Final = re.compile(
    r"^crash_(\d{4})-(\d{2})-(\d{2})_(\d{2})-(\d{2})-(\d{2})\.log$", re.IGNORECASE
)


class LogFileName(msgspec.Struct, frozen=True, kw_only=True):
    """A recognised log file name: its kind and the time in the name (``None`` if legacy)."""

    name: str
    kind: LogKind
    stamp: datetime | None


class CurrentLogs(msgspec.Struct, frozen=True, kw_only=True):
    """The current incarnation's files (names relative to the profile directory)."""

    rpt: str | None = None
    adm: str | None = None
    script: str | None = None
    crashes: tuple[str, ...] = ()


def _stamp(groups: tuple[str | None, ...]) -> datetime | None:
    try:
        parts = [int(g) for g in groups if g is not None]
        y, mo, d, h, mi, s = parts[:6]
        ms = parts[6] if len(parts) > 6 else 0
        return datetime(y, mo, d, h, mi, s, ms * 1000)
    except (ValueError, IndexError):
        return None


def parse_log_name(name: str) -> LogFileName | None:
    """Recognise a DayZ log file name; ``None`` for anything else or an impossible date."""
    for kind, pattern in (
        ("rpt", _RPT_RE),
        ("adm", _ADM_RE),
        ("script", _SCRIPT_RE),
        ("crash", _CRASH_RE),
    ):
        m = pattern.match(name)
        if m is not None:
            stamp = _stamp(m.groups())
            if stamp is None:
                return None
            return LogFileName(name=name, kind=kind, stamp=stamp)  # type: ignore[arg-type]
    if _ADM_LEGACY_RE.match(name):
        return LogFileName(name=name, kind="adm", stamp=None)
    return None


def _local_naive(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone().replace(tzinfo=None)


def select_current(
    files: Iterable[tuple[str, float]],
    start: datetime,
    *,
    slack: timedelta = START_SLACK,
) -> CurrentLogs:
    """Pick the current RPT, ADM, script log and crash logs from ``(name, mtime)`` pairs.

    Args:
        files: file names with their modification time (POSIX seconds); mtime is only used
            for the legacy fixed-name ADM.
        start: when the process started (naive = local time).
        slack: tolerance before ``start``.
    """
    threshold = _local_naive(start) - slack
    best: dict[str, tuple[datetime, str]] = {}
    crashes: list[tuple[datetime, str]] = []
    legacy_adm: str | None = None
    for name, mtime in files:
        parsed = parse_log_name(name)
        if parsed is None:
            continue
        stamp = parsed.stamp
        if stamp is None:
            try:
                if datetime.fromtimestamp(mtime) >= threshold:
                    legacy_adm = name
            except (OverflowError, OSError, ValueError):
                pass  # an absurd mtime cannot make the file current
            continue
        if stamp < threshold:
            continue
        if parsed.kind == "crash":
            crashes.append((stamp, name))
        elif parsed.kind not in best or (stamp, name) > best[parsed.kind]:
            best[parsed.kind] = (stamp, name)

    def pick(kind: str) -> str | None:
        found = best.get(kind)
        return None if found is None else found[1]

    return CurrentLogs(
        rpt=pick("rpt"),
        # A timestamped ADM is more specific than the legacy fixed name.
        adm=pick("adm") or legacy_adm,
        script=pick("script"),
        crashes=tuple(name for _, name in sorted(crashes)),
    )


def find_current_logs(
    profile_dir: str | os.PathLike[str],
    start: datetime,
    *,
    slack: timedelta = START_SLACK,
) -> CurrentLogs:
    """List ``profile_dir`` and select the current files (blocking; missing dir → empty)."""
    entries: list[tuple[str, float]] = []
    try:
        with os.scandir(Path(profile_dir)) as it:
            for entry in it:
                try:
                    if entry.is_file():
                        entries.append((entry.name, entry.stat().st_mtime))
                except OSError:
                    continue  # vanished between listing and stat
    except (FileNotFoundError, NotADirectoryError):
        return CurrentLogs()
    return select_current(entries, start, slack=slack)
