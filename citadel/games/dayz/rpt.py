"""RPT and script-log grammar: timestamps, tags, entries, levels and milestones.

Both the engine report (``*.RPT``) and the script log (``script_*.log``) share one line shape
(formats.md §1.2–1.4): an optional header without timestamps, then ``H:MM:SS[.mmm] message``
lines, each possibly followed by untimestamped continuation lines (stack traces, compiler
diagnostics). An *entry* is one timestamped line plus its continuation lines. A blank line
is an entry of its own and ends the entry before it (formats.md §5.17: ``"Line A\nLine B\n\n
Line C\n"`` is four ``log`` entries, the blank one included, in order).

:class:`RptParser` is the incremental part (current date, pending entry); everything else is a
pure function. Feed it complete lines (see ``tail.LineSplitter``); it returns finished
:class:`RptEntry` records. An entry is finished when the next timestamped (or blank) line
arrives or on :meth:`RptParser.flush`. :class:`EntryGrouper` adds *when* to flush on the
caller's clock: an entry whose head may have continuation lines (`may_continue`) is held for a
short grace after its last line, any other is finished at the end of the read that brought it.

Example:
    >>> p = RptParser()
    >>> p.feed("Current time:  2024/05/01 18:30:12")[0].at is None
    True
    >>> p.feed("18:31:20.118 Player connect enabled")
    []
    >>> [e.event for e in p.flush()]
    [Ready()]
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Final, Literal

import msgspec

__all__ = [
    "AverageFps",
    "CompileDiagnostic",
    "EngineFatal",
    "EntryGrouper",
    "Level",
    "MissionRead",
    "PlayerConnected",
    "PlayerCount",
    "PlayerKicked",
    "Ready",
    "RptEntry",
    "RptEvent",
    "RptParser",
    "ScriptCompileError",
    "ScriptRuntimeError",
    "ServerVersion",
    "StackFrame",
    "classify",
    "detect_event",
    "may_continue",
    "parse_current_time",
    "parse_tag",
    "parse_timestamp",
]

Level = Literal["debug", "info", "warn", "error"]

# --- defaults -------------------------------------------------------------------------------
MAX_CONTINUATION_LINES: Final = 500
"""Continuation lines kept in one entry; further ones become entries of their own."""
ENTRY_GRACE: Final = 0.5
"""Seconds a pending entry that may still grow (`may_continue`) waits for its next line. DayZ
may flush a script error's head and its ``Class:``/``Stack trace:`` lines separately; an
entry that cannot grow is never held back (the log latency target is p99 <= 50 ms)."""
ROLLOVER_MIN_BACKSTEP: Final = timedelta(hours=1)
"""A time this much earlier than the previous line means midnight passed. Smaller back-steps
(out-of-order threads, a DST fall-back of exactly one hour) keep the date."""
_SEVERITY_LEVEL: Final[dict[str, Level]] = {
    "F": "error",
    "E": "error",
    "W": "warn",
    "I": "info",
    "D": "debug",
}
# ---------------------------------------------------------------------------------------------

_TIMESTAMP_RE: Final = re.compile(
    r"^\s?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?\s(.*)$", re.DOTALL
)
_TAG_RE: Final = re.compile(r"^([A-Z]+)\s*(?:\(([A-Z])\))?\s*:\s")
_CURRENT_TIME_RE: Final = re.compile(
    r"^Current time:\s+(\d{4})/(\d{1,2})/(\d{1,2})\s+(\d{1,2}):(\d{2}):(\d{2})\s*$"
)
_VERSION_RE: Final = re.compile(r"^Version (\d+\.\d+\.\d+)\s*$")
_FPS_RE: Final = re.compile(r"^Average server FPS:\s*(\d+(?:\.\d+)?)")
_PLAYERS_RE: Final = re.compile(r"^Players:\s*(\d+) in total")
_COMPILE_RE: Final = re.compile(r"Can't compile \"([^\"]*)\" script module!")
_DIAGNOSTIC_RE: Final = re.compile(r"^(.+?)\((\d+)\): (.*)$")
_FRAME_RE: Final = re.compile(r"^(.+):(\d+)\s*$")
_CLASS_RE: Final = re.compile(r"^Class:\s*'(.*)'\s*$")
_FUNCTION_RE: Final = re.compile(r"^Function:\s*'(.*)'\s*$")
_CONNECTED_RE: Final = re.compile(r'^Player "(.*)"\(steamID=(\d+)\) is connected\s*$')
_KICKED_RE: Final = re.compile(
    r"^Player (.*) \((\d+)\) \((\d+)\) kicked from server: (-?\d+) \((.*)\)\s*$"
)


# --- records ---------------------------------------------------------------------------------


class Ready(msgspec.Struct, frozen=True, tag="ready"):
    """``Player connect enabled``: the server accepts players."""


class MissionRead(msgspec.Struct, frozen=True, tag="mission_read"):
    """``Mission read.``: a start-up milestone before readiness."""


class ServerVersion(msgspec.Struct, frozen=True, tag="version"):
    """The header's ``Version 1.xx.yyyyyy`` line."""

    version: str


class AverageFps(msgspec.Struct, frozen=True, tag="fps"):
    """``Average server FPS: <float>`` (only the first number is read)."""

    fps: float


class PlayerCount(msgspec.Struct, frozen=True, tag="player_count"):
    """``Players: N in total``."""

    count: int


class PlayerConnected(msgspec.Struct, frozen=True, tag="player_connected"):
    """``Player "<name>"(steamID=<id>) is connected``."""

    name: str
    steam_id: str


class PlayerKicked(msgspec.Struct, frozen=True, tag="player_kicked"):
    """``Player <name> (<n>) (<dpnid>) kicked from server: <code> (<text>)``."""

    name: str
    player_no: int
    dpnid: int
    code: int
    reason: str


class CompileDiagnostic(msgspec.Struct, frozen=True):
    """One ``<path>(<line>): <message>`` line after a compile failure."""

    path: str
    line: int
    message: str


class ScriptCompileError(msgspec.Struct, frozen=True, tag="script_compile_error"):
    """``Can't compile "<Module>" script module!``: a fatal start error, not a warning."""

    module: str
    diagnostics: tuple[CompileDiagnostic, ...] = ()


class StackFrame(msgspec.Struct, frozen=True):
    """One ``path:line`` frame of a script stack trace."""

    path: str
    line: int


class ScriptRuntimeError(msgspec.Struct, frozen=True, tag="script_runtime_error"):
    """A script error block: message, ``Class:``, ``Function:`` and ``Stack trace:`` frames."""

    message: str
    class_name: str | None = None
    function: str | None = None
    frames: tuple[StackFrame, ...] = ()

    @property
    def file(self) -> str | None:
        """The innermost frame's path, if there is a stack trace."""
        return self.frames[0].path if self.frames else None

    @property
    def line(self) -> int | None:
        """The innermost frame's line, if there is a stack trace."""
        return self.frames[0].line if self.frames else None


class EngineFatal(msgspec.Struct, frozen=True, tag="engine_fatal"):
    """A line with ``(F)`` severity: crash evidence (formats.md §1.5)."""

    channel: str
    message: str


RptEvent = (
    Ready
    | MissionRead
    | ServerVersion
    | AverageFps
    | PlayerCount
    | PlayerConnected
    | PlayerKicked
    | ScriptCompileError
    | ScriptRuntimeError
    | EngineFatal
)


class RptEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One log entry: a timestamped line and its continuation lines, classified.

    ``time`` is the clock text as written (``"18:30:12.845"``), ``at`` the local datetime when
    the date is known (from ``Current time:`` or the file name), else ``None``. Header lines and
    orphan continuation lines become entries with ``time=None``.
    """

    time: str | None
    at: datetime | None
    message: str
    continuation: tuple[str, ...] = ()
    level: Level = "info"
    channel: str | None = None
    severity: str | None = None
    event: RptEvent | None = None

    @property
    def text(self) -> str:
        """The whole entry as one text: message and continuation lines joined by newlines."""
        return "\n".join((self.message, *self.continuation))


# --- pure helpers ----------------------------------------------------------------------------


def parse_timestamp(line: str) -> tuple[time, str, str] | None:
    """Split ``H:MM:SS[.mmm] message`` into (clock time, clock text, message), else ``None``."""
    m = _TIMESTAMP_RE.match(line)
    if m is None:
        return None
    hours, minutes, seconds, frac, message = m.groups()
    h, mi, s = int(hours), int(minutes), int(seconds)
    if h > 23 or mi > 59 or s > 59:
        return None
    micro = int(frac.ljust(3, "0")) * 1000 if frac else 0
    clock = f"{hours}:{minutes}:{seconds}" + (f".{frac}" if frac else "")
    return time(h, mi, s, micro), clock, message


def parse_tag(message: str) -> tuple[str, str | None, str] | None:
    """Split ``SCRIPT    (E): text`` into (channel, severity letter or None, text)."""
    m = _TAG_RE.match(message)
    if m is None:
        return None
    return m.group(1), m.group(2), message[m.end() :]


def parse_current_time(line: str) -> datetime | None:
    """Read the header's ``Current time:  YYYY/MM/DD HH:MM:SS`` line."""
    m = _CURRENT_TIME_RE.match(line)
    if m is None:
        return None
    try:
        y, mo, d, h, mi, s = (int(g) for g in m.groups())
        return datetime(y, mo, d, h, mi, s)
    except ValueError:
        return None


def classify(message: str, continuation: tuple[str, ...] = ()) -> Level:
    """Level of an entry: ``(E)``/``(F)`` error, ``(W)`` warn, untagged info.

    A block carrying a script stack trace is an error even without a tag.
    """
    tag = parse_tag(message)
    if tag is not None and tag[1] is not None:
        return _SEVERITY_LEVEL.get(tag[1], "info")
    if any(line.startswith("Stack trace:") for line in continuation):
        return "error"
    return "info"


def may_continue(message: str) -> bool:
    """Whether an entry whose timestamped line is ``message`` may still get continuation lines.

    Script and engine errors (``(E)``, ``(F)``) carry ``Class:``/``Function:``/``Stack trace:``
    lines or compiler diagnostics, possibly written after a pause; ordinary lines are written
    whole, so a lone ordinary line is complete as soon as it is read.
    """
    tag = parse_tag(message)
    if tag is not None and tag[1] in ("E", "F"):
        return True
    return _COMPILE_RE.search(message) is not None


def _to_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _parse_runtime_error(text: str, continuation: tuple[str, ...]) -> ScriptRuntimeError | None:
    class_name: str | None = None
    function: str | None = None
    frames: list[StackFrame] = []
    in_stack = False
    seen = False
    for raw in continuation:
        line = raw.strip()
        if m := _CLASS_RE.match(line):
            class_name, seen = m.group(1), True
        elif m := _FUNCTION_RE.match(line):
            function, seen = m.group(1), True
        elif line.startswith("Stack trace:"):
            in_stack = seen = True
        elif in_stack and (m := _FRAME_RE.match(line)):
            frames.append(StackFrame(path=m.group(1), line=int(m.group(2))))
    if not seen:
        return None
    return ScriptRuntimeError(
        message=text, class_name=class_name, function=function, frames=tuple(frames)
    )


def detect_event(message: str, continuation: tuple[str, ...] = ()) -> RptEvent | None:
    """Recognise the milestone or structured event an entry carries, if any."""
    tag = parse_tag(message)
    text = message if tag is None else tag[2]
    if tag is not None and tag[1] == "F":
        return EngineFatal(channel=tag[0], message=text)
    if m := _COMPILE_RE.search(text):
        diags = []
        for line in continuation:
            if d := _DIAGNOSTIC_RE.match(line.strip()):
                diags.append(CompileDiagnostic(path=d.group(1), line=int(d.group(2)), message=d[3]))
        return ScriptCompileError(module=m.group(1), diagnostics=tuple(diags))
    if tag is not None and tag[1] == "E" and continuation:
        err = _parse_runtime_error(text, continuation)
        if err is not None:
            return err
    if tag is not None:
        return None
    stripped = message.rstrip()
    if stripped == "Player connect enabled":
        return Ready()
    if stripped == "Mission read.":
        return MissionRead()
    if m := _FPS_RE.match(message):
        return AverageFps(fps=float(m.group(1)))
    if m := _PLAYERS_RE.match(message):
        return PlayerCount(count=int(m.group(1)))
    if m := _CONNECTED_RE.match(message):
        return PlayerConnected(name=m.group(1), steam_id=m.group(2))
    if m := _KICKED_RE.match(message):
        return PlayerKicked(
            name=m.group(1),
            player_no=int(m.group(2)),
            dpnid=int(m.group(3)),
            code=int(m.group(4)),
            reason=m.group(5),
        )
    if m := _VERSION_RE.match(message):
        return ServerVersion(version=m.group(1))
    return None


def _make_entry(
    clock: str | None, at: datetime | None, message: str, continuation: tuple[str, ...]
) -> RptEntry:
    tag = parse_tag(message)
    return RptEntry(
        time=clock,
        at=at,
        message=message,
        continuation=continuation,
        level=classify(message, continuation),
        channel=None if tag is None else tag[0],
        severity=None if tag is None else tag[1],
        event=detect_event(message, continuation),
    )


# --- incremental parser ----------------------------------------------------------------------


class RptParser:
    """Group RPT / script-log lines into entries, tracking the date across midnight.

    Args:
        start_date: the date to assume before a ``Current time:`` header is seen (e.g. from the
            file name); without either, entries carry ``at=None``.
        max_continuation: continuation lines kept in one entry; the rest become entries of
            their own so one endless block cannot grow memory without bound.
    """

    def __init__(
        self,
        start_date: date | None = None,
        *,
        max_continuation: int = MAX_CONTINUATION_LINES,
    ) -> None:
        """Create a parser with no pending entry."""
        self._date = start_date
        self._last: time | None = None
        self._max_continuation = max_continuation
        self._pending: tuple[str, datetime | None, str] | None = None
        self._cont: list[str] = []

    @property
    def current_date(self) -> date | None:
        """The date applied to the next timestamped line (``None`` if unknown)."""
        return self._date

    @property
    def pending(self) -> bool:
        """Whether an entry is waiting for more lines (or for `flush`)."""
        return self._pending is not None

    @property
    def pending_may_continue(self) -> bool:
        """Whether the pending entry may still grow: its head `may_continue`, or it already
        has continuation lines (a multi-line block whose end is not known yet)."""
        if self._pending is None:
            return False
        return bool(self._cont) or may_continue(self._pending[2])

    def feed(self, line: str) -> list[RptEntry]:
        """Take one complete line; return the entries it finishes (zero, one or two)."""
        out: list[RptEntry] = []
        stamped = parse_timestamp(line)
        if stamped is None:
            blank = not line.strip()
            if not blank and self._pending is not None and len(self._cont) < self._max_continuation:
                self._cont.append(line)
                return out
            out += self.flush()
            header_time = parse_current_time(line)
            if header_time is not None:
                self._date = header_time.date()
                self._last = header_time.time()
            out.append(_make_entry(None, None, line, ()))
            return out
        clock, text, message = stamped
        out += self.flush()
        at = self._stamp(clock)
        self._pending = (text, at, message)
        return out

    def flush(self) -> list[RptEntry]:
        """Finish and return the pending entry, if any."""
        if self._pending is None:
            return []
        text, at, message = self._pending
        entry = _make_entry(text, at, message, tuple(self._cont))
        self._pending = None
        self._cont = []
        return [entry]

    def _stamp(self, clock: time) -> datetime | None:
        last, self._last = self._last, clock
        if self._date is None:
            return None
        if last is not None:
            back = datetime.combine(self._date, last) - datetime.combine(self._date, clock)
            if back > ROLLOVER_MIN_BACKSTEP:
                self._date += timedelta(days=1)
        return datetime.combine(self._date, clock)


class EntryGrouper:
    """An `RptParser` that also decides when a pending entry is complete, on the caller's clock.

    The parser finishes an entry when the next timestamped or blank line arrives. Beyond that:

    * `due` at the end of a read finishes a pending entry that cannot grow
      (`RptParser.pending_may_continue` is false) at once: an ordinary line is never held back;
    * an entry that may grow is finished by `due` once ``grace`` seconds passed since its last
      line, so a script error whose stack trace is written a moment after its head stays one
      entry; `deadline` says when, so the caller can wake up for it;
    * `flush` finishes it regardless (the file is drained).

    Times are whatever clock the caller passes (``anyio.current_time()`` in the logs actor).

    Example:
        >>> g = EntryGrouper(RptParser(), grace=0.5)
        >>> g.feed("18:55:01.332 SCRIPT    (E): NULL pointer to instance", now=10.0)
        []
        >>> g.due(now=10.2), g.deadline
        ([], 10.5)
        >>> [e.continuation for e in g.feed("Class: 'X'", now=10.4) + g.due(now=10.95)]
        [("Class: 'X'",)]
    """

    def __init__(self, parser: RptParser, *, grace: float = ENTRY_GRACE) -> None:
        """Wrap ``parser``; entries that may grow wait ``grace`` seconds for their next line."""
        self.parser = parser
        self._grace = grace
        self._last_line = 0.0

    @property
    def deadline(self) -> float | None:
        """When the pending entry becomes due (``None``: nothing pending)."""
        if not self.parser.pending:
            return None
        if not self.parser.pending_may_continue:
            return self._last_line
        return self._last_line + self._grace

    def feed(self, line: str, now: float) -> list[RptEntry]:
        """Take one complete line read at ``now``; return the entries it finishes."""
        self._last_line = now
        return self.parser.feed(line)

    def due(self, now: float) -> list[RptEntry]:
        """Finish the pending entry if it cannot grow or its grace is over (call after a read)."""
        deadline = self.deadline
        if deadline is None or now < deadline:
            return []
        return self.parser.flush()

    def flush(self) -> list[RptEntry]:
        """Finish the pending entry now (the file was drained)."""
        return self.parser.flush()
