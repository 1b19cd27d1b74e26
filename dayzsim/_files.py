"""The files a DayZ server writes: RPT, ADM and script logs, crash logs, plus snapshot JSON.

Log lines are written as UTF-8 and flushed per batch so a tailer sees them promptly. Snapshot
files are replaced atomically (write a temporary sibling, then ``os.replace``).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Final, TextIO

import msgspec

from dayzsim import _text

NAME_CLASH_WAIT: Final = 0.05  # seconds between checks while a same-second log name exists
NAME_CLASH_LIMIT: Final = 2.5  # give up waiting (and overwrite) after this long

_json: Final = msgspec.json.Encoder()


def now() -> dt.datetime:
    """Host local time, as the real server stamps its logs."""
    return dt.datetime.now()


def fresh_start_time(profile: Path) -> dt.datetime:
    """A start time whose RPT and script log names do not exist yet in ``profile``.

    The names have one-second resolution; a crash-looping server restarted within the same
    second would otherwise truncate the file a tailer is still draining.
    """
    deadline = time.monotonic() + NAME_CLASH_LIMIT
    while True:
        at = now()
        taken = (profile / _text.rpt_name(at)).exists() or (
            profile / _text.script_name(at)
        ).exists()
        if not taken or time.monotonic() > deadline:
            return at
        time.sleep(NAME_CLASH_WAIT)


def _open(path: Path) -> TextIO:
    return path.open("w", encoding="utf-8", newline="\n")


class LogFiles:
    """The RPT, ADM and script log of one server run."""

    def __init__(self, profile: Path, started: dt.datetime, *, adminlog: bool) -> None:
        """Create the run's log files in ``profile`` (the ADM only with ``-adminlog``)."""
        self.profile = profile
        self.rpt_path = profile / _text.rpt_name(started)
        self.script_path = profile / _text.script_name(started)
        self.adm_path = profile / _text.adm_name(started) if adminlog else None
        self._rpt = _open(self.rpt_path)
        self._script = _open(self.script_path)
        self._adm = _open(self.adm_path) if self.adm_path is not None else None
        self.closed = False

    def rpt_header(self, exe_path: str, command_line: str, started: dt.datetime) -> None:
        """Write the RPT header block."""
        exe_time = dt.datetime.fromtimestamp(os.stat(__file__).st_mtime)
        self._write(self._rpt, [_text.rpt_header(exe_path, command_line, exe_time, started)])
        if self._adm is not None:
            self._write(self._adm, [_text.adm_header(started)])

    def rpt(self, message: str, *continuation: str) -> None:
        """One timestamped RPT entry, plus untimestamped continuation lines."""
        self._write(self._rpt, [f"{_text.rpt_time(now())} {message}", *continuation])

    def rpt_many(self, messages: Iterable[str]) -> None:
        """Several timestamped RPT lines with one flush."""
        stamp = _text.rpt_time(now())
        self._write(self._rpt, [f"{stamp} {m}" for m in messages])

    def script(self, message: str, *continuation: str) -> None:
        """One timestamped script-log entry, plus continuation lines."""
        self._write(self._script, [f"{_text.rpt_time(now())} {message}", *continuation])

    def adm(self, *messages: str) -> None:
        """ADM lines ``HH:MM:SS | message`` (ignored without ``-adminlog``)."""
        if self._adm is None or not messages:
            return
        stamp = _text.adm_time(now())
        self._write(self._adm, [f"{stamp} | {m}" for m in messages])

    def _write(self, stream: TextIO, lines: list[str]) -> None:
        if self.closed or not lines:
            return
        stream.write("".join(f"{line}\n" for line in lines))
        stream.flush()

    def close(self) -> None:
        """Flush and close every file."""
        self.closed = True
        for stream in (self._rpt, self._script, self._adm):
            if stream is not None:
                stream.close()


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: Path, value: object) -> None:
    """Encode ``value`` with msgspec and write it atomically."""
    write_atomic(path, _json.encode(value) + b"\n")


def write_crash_log(profile: Path, reason: str) -> Path:
    """Write a ``crash_<time>.log`` naming ``reason``; returns its path."""
    at = now()
    path = profile / _text.crash_name(at)
    path.write_text(f"{_text.rpt_time(at)} Unhandled exception\n{reason}\n", encoding="utf-8")
    return path
