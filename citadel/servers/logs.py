"""The ``logs`` actor of one game server: tails its log files and turns lines into ``log`` events.

What it follows, per run (one game-process incarnation, ``runtime.state.run``):

* the RPT, the script log and the ADM of that incarnation, found in ``run.profile_dir`` by
  *name* timestamp (``citadel.games.dayz.logfiles``: name time ≥ ``run.started_at`` − 5 s).
  Within those 5 s a previous run's file could pass for the new one's (a restart after a short
  backoff), so a search never takes a file that an earlier incarnation followed, nor one last
  modified before the run started (``mtime`` < ``started_at`` − 1 s: a dead run's file);
  The files may appear seconds after the spawn, so missing ones are searched for again with a
  growing interval (0.1 s → 5 s) for as long as the run lives;
* the console file ``run.console_log`` (the process's stdout + stderr), when the process actor
  gives one; console lines sent as `ConsoleLines` messages are accepted too.

A run's files stay open until the run is over - its process exited (``state.exited``) or a
newer run replaced it - and are then drained to EOF and closed (formats.md §1.9 rule 2, bug
§5.16: the last lines written before the exit are never lost to a switch). Truncation and
replacement of a followed path are `FileTail`'s business.

What it produces:

* RPT and script-log *entries* (a timestamped line plus its continuation lines, `RptParser`;
  a blank line is an entry of its own): one ``log`` event each (``source="rpt"``,
  ``file=<basename>``, the entry's level). When a pending entry is complete is `EntryGrouper`'s
  rule: the next timestamped or blank line finishes it; at the end of a read an entry that
  cannot grow (an ordinary line) is published at once; one that may grow (a script error
  head ``(E)``/``(F)``, a compile failure, an entry that already has continuation lines) waits
  up to ``entry_grace`` (0.5 s) after its last line, so a stack trace written a moment after
  its head stays in the same event; a drained file flushes it. So ordinary lines cost no
  latency, and a lone error line is published ``entry_grace`` late.
* ADM lines: one ``log`` event each (level ``info``); ``PlayerList`` blocks go to
  ``runtime.logs.adm_players`` (the map's fallback).
* Console lines (``file="console"``; stderr lines at least ``warn``) and `SystemLog` messages
  (``source="system"``, ``file=None``).
* Every event is appended to ``runtime.log_history`` and published (the rcon actor appends
  its ``rcon`` lines there too). ``runtime.logs.last_activity`` is bumped on every line from
  the game, ``fps`` on ``Average server FPS``.
* To the process actor: `Ready` when the RPT of the current run says ``Player connect
  enabled``, and `FatalStartError` on a script compile failure. ``Ready`` is sent again (every
  ``ready_resend_interval`` and on every state change) while the state still says ``starting``
  and not ready for a run already seen ready - so a restarted process actor, or a lost message,
  still learns it.

Polling cadence (one loop for all files of this server): 20 ms after a poll that found lines,
then doubling per quiet poll (40, 80, 160 ms) up to 250 ms while idle. A quiet poll costs one
``os.stat`` per followed file (inline, see `FileTail`); with no run there is no polling at all
(the loop waits for the next state change). A state change wakes the loop at once.
Measured on a 2-core VM (asyncio, 100 actors in one process): 100 idle servers cost about 3 %
of one core; one server at ~1000 lines/s has a steady-state p99 of ~30 ms from the write to
``publish`` (each line costs ~15 µs here). The first lines after an idle spell wait up to one
idle pause (250 ms) - the price of polling without inotify.

Choices worth knowing:

* Event timestamps are the time Citadel read the line (the game's clock is local time of
  unverified zone and has no date on most lines; the read time is never more than one poll
  late while lines flow).
* An adopted run (Citadel restarted while the game ran) is followed from the *end* of its
  files: re-publishing a possibly huge history would flood every dashboard. Its readiness is
  the process actor's business (it adopts a running server as ready).
* A new run resets ``runtime.logs`` (fps, ADM players) and counts as activity, so hang
  detection measures silence from the start.
* A restarted logs actor re-reads the current run's files from the start (its offsets died
  with it): duplicates in the history rather than lost lines.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Final, Literal

import anyio
import anyio.lowlevel
import msgspec

from actors import Actor, ActorExited, ChildSpec, MailboxFull, Restart
from citadel.games.dayz import logfiles
from citadel.games.dayz.adm import AdmParser, AdmPlayerList, parse_line
from citadel.games.dayz.rpt import (
    ENTRY_GRACE,
    AverageFps,
    EntryGrouper,
    RptEntry,
    RptParser,
    ScriptCompileError,
    classify,
    parse_timestamp,
)
from citadel.games.dayz.rpt import Ready as RptReady
from citadel.games.dayz.tail import FileTail
from citadel.messages import LogEvent, LogLevel, LogSource, utc_timestamp
from citadel.servers._inotify import DirectoryWatch
from citadel.servers.messages import ConsoleLines, FatalStartError, Ready, SystemLog
from citadel.servers.runtime import LOGS, PROCESS, RunInfo, ServerRuntime, ServerSnapshot

__all__ = [
    "MAX_MESSAGE_CHARS",
    "LogsActor",
    "LogsStatistics",
    "console_level",
    "fatal_message",
    "next_find_delay",
    "next_poll_delay",
    "select_run_logs",
    "spec",
]

# --- defaults -------------------------------------------------------------------------------
ACTIVE_POLL: Final = 0.02
"""Seconds between polls while lines are arriving (keeps line latency far below 50 ms)."""
IDLE_POLL: Final = 0.25
#: With inotify, the idle poll is only a safety net for a missed event.
WATCHED_IDLE_POLL: Final = 2.0
#: After a write wakes us, wait this long so a burst of lines is read in one go.
WRITE_COALESCE: Final = 0.003
"""Longest pause between polls of a quiet server."""
IDLE_BACKOFF: Final = 2.0
"""Growth of the pause per quiet poll, from ``ACTIVE_POLL`` to ``IDLE_POLL``."""
FIND_FIRST: Final = 0.1
"""First pause before searching again for a log file that has not appeared yet."""
FIND_MAX: Final = 5.0
"""Longest pause between searches (a scandir of the profile dir each)."""
FIND_BACKOFF: Final = 1.5
READY_RESEND_INTERVAL: Final = 1.0
#: A file last modified this long before its run's start belongs to an earlier run (create
#: times from /proc are only as exact as the boot time, a whole second).
STALE_SLACK: Final = 1.0
#: Timestamped files remembered as claimed by the incarnation that followed them.
CLAIMED_KEEP: Final = 64
"""How often ``Ready`` is repeated while the state lags behind a run seen ready."""
YIELD_EVERY_LINES: Final = 1000
"""Lines handled between two checkpoints, so a 50k-line burst does not starve the mailbox."""
MAX_MESSAGE_CHARS: Final = 64 * 1024
"""Longest event message; a longer entry (a huge line cut into continuation pieces, up to
``MAX_CONTINUATION_LINES`` of them) is cut here with a note of what was left out."""
CONSOLE_FILE: Final = "console"
"""The ``file`` of console lines."""
_LEVEL_RANK: Final[dict[str, int]] = {"debug": 0, "info": 1, "warn": 2, "error": 3}
# ---------------------------------------------------------------------------------------------

FileKind = Literal["rpt", "script", "adm", "console"]
_SEARCHED: Final[tuple[FileKind, ...]] = ("rpt", "script", "adm")

LogsMessage = ConsoleLines | SystemLog


# --- pure decisions --------------------------------------------------------------------------


def next_poll_delay(
    previous: float, active: bool, *, fast: float = ACTIVE_POLL, slow: float = IDLE_POLL
) -> float:
    """The pause before the next poll: ``fast`` after lines, else growing towards ``slow``."""
    if active:
        return fast
    return min(slow, max(fast, previous) * IDLE_BACKOFF)


def next_find_delay(previous: float) -> float:
    """The pause before searching again for a missing log file."""
    return min(FIND_MAX, max(FIND_FIRST, previous * FIND_BACKOFF))


def console_level(stream: Literal["stdout", "stderr"] | None, text: str) -> LogLevel:
    """The level of one console line: its tag's severity, at least ``warn`` on stderr."""
    stamped = parse_timestamp(text)
    level: LogLevel = classify(stamped[2] if stamped is not None else text)
    if stream == "stderr" and _LEVEL_RANK[level] < _LEVEL_RANK["warn"]:
        return "warn"
    return level


def fatal_message(error: ScriptCompileError) -> str:
    """A one-line description of a script compile failure (with its first diagnostic)."""
    text = f'Can\'t compile "{error.module}" script module'
    if error.diagnostics:
        first = error.diagnostics[0]
        text += f": {first.path}({first.line}): {first.message}"
    return text


def select_run_logs(
    files: Iterable[tuple[str, float]], start: datetime, before: datetime | None = None
) -> logfiles.CurrentLogs:
    """Pick one run's files from ``(name, mtime)`` pairs: named at or after ``start`` − 5 s,
    and (when ``before`` is given, the next run's start) named before ``before`` − 5 s."""
    if before is not None:
        limit = before - logfiles.START_SLACK
        kept = []
        for name, mtime in files:
            parsed = logfiles.parse_log_name(name)
            if parsed is not None and parsed.stamp is not None and parsed.stamp >= limit:
                continue  # a newer run's file
            kept.append((name, mtime))
        files = kept
    return logfiles.select_current(files, start)


def _list_profile(profile_dir: str) -> list[tuple[str, float]]:
    """``(name, mtime)`` of the regular files in ``profile_dir`` (blocking; missing → [])."""
    entries: list[tuple[str, float]] = []
    try:
        with os.scandir(profile_dir) as it:
            for entry in it:
                try:
                    if entry.is_file():
                        entries.append((entry.name, entry.stat().st_mtime))
                except OSError:
                    continue  # vanished between listing and stat
    except OSError:
        return []
    return entries


def _is_stamped(name: str) -> bool:
    parsed = logfiles.parse_log_name(name)
    return parsed is not None and parsed.stamp is not None


def _local_start(run: RunInfo) -> datetime:
    try:
        return datetime.fromtimestamp(run.started_at)
    except (OverflowError, OSError, ValueError):
        return datetime.min + logfiles.START_SLACK  # absurd start: accept any file


def _name_date(name: str) -> date | None:
    parsed = logfiles.parse_log_name(name)
    return None if parsed is None or parsed.stamp is None else parsed.stamp.date()


# --- per-run state ---------------------------------------------------------------------------


class _Followed:
    """One followed file of a run: its tail and its parser."""

    def __init__(
        self, kind: FileKind, path: Path, *, from_end: bool, grace: float = ENTRY_GRACE
    ) -> None:
        self.kind = kind
        self.name = CONSOLE_FILE if kind == "console" else path.name
        self.tail = FileTail(path, from_end=from_end)
        day = _name_date(path.name)
        self.rpt = EntryGrouper(RptParser(day), grace=grace) if kind in ("rpt", "script") else None
        self.adm = AdmParser(day) if kind == "adm" else None


class _Run:
    """What the actor tracks about one incarnation until its files are drained."""

    def __init__(self, run: RunInfo, now: float, grace: float = ENTRY_GRACE) -> None:
        self.info = run
        self.start = _local_start(run)
        self.files: dict[FileKind, _Followed] = {}
        self.next_find = now
        self.find_delay = 0.0
        self.ready_seen = False
        self.next_ready = now
        self.fatal: FatalStartError | None = None
        self.fatal_sent = False
        if run.console_log:
            self.files["console"] = _Followed(
                "console", Path(run.console_log), from_end=run.adopted, grace=grace
            )

    @property
    def incarnation(self) -> int:
        return self.info.incarnation

    def missing(self) -> bool:
        return any(kind not in self.files for kind in _SEARCHED)

    def deadline(self) -> float | None:
        """The earliest time a pending entry of this run's files becomes due."""
        found = [f.rpt.deadline for f in self.files.values() if f.rpt is not None]
        return min((d for d in found if d is not None), default=None)


class LogsStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a `LogsActor` (for tests, benchmarks and ``/readyz``)."""

    runs: int
    files: int
    polls: int
    lines: int
    events: int
    searches: int
    read_errors: int
    poll_delay: float


# --- the actor -------------------------------------------------------------------------------


class LogsActor(Actor[LogsMessage]):
    """Tails one server's RPT, script log, ADM and console; publishes ``log`` events.

    Args:
        runtime: The server's shared runtime (state to watch, facts and history to write).
        ready_resend_interval: Seconds between repeats of ``Ready`` while the state lags.
        active_poll: Pause after a poll that found lines.
        idle_poll: Longest pause while idle.
        entry_grace: Seconds an RPT/script entry that may still grow waits for its next line.
    """

    def __init__(
        self,
        runtime: ServerRuntime,
        *,
        ready_resend_interval: float = READY_RESEND_INTERVAL,
        active_poll: float = ACTIVE_POLL,
        idle_poll: float = IDLE_POLL,
        use_inotify: bool = True,
        entry_grace: float = ENTRY_GRACE,
    ) -> None:
        self.runtime = runtime
        self._grace = entry_grace
        self._resend = ready_resend_interval
        self._fast = active_poll
        self._slow = idle_poll
        self._use_inotify = use_inotify
        self._watch: DirectoryWatch | None = None
        self._runs: dict[int, _Run] = {}
        # Path -> incarnation that followed it (the newest CLAIMED_KEEP): never another run's.
        self._claimed: dict[Path, int] = {}
        self._last_started = -1
        self._delay = active_poll
        self._polls = self._lines = self._events = self._searches = self._read_errors = 0
        self._since_checkpoint = 0

    def statistics(self) -> LogsStatistics:
        """Return the current counters."""
        return LogsStatistics(
            runs=len(self._runs),
            files=sum(len(run.files) for run in self._runs.values()),
            polls=self._polls,
            lines=self._lines,
            events=self._events,
            searches=self._searches,
            read_errors=self._read_errors,
            poll_delay=self._delay,
        )

    async def on_start(self) -> None:
        self.exit_stack.callback(self._close_all)
        self._watch = DirectoryWatch.open() if self._use_inotify else None
        if self._watch is not None:
            self.exit_stack.callback(self._watch.close)
        self.start_soon(self._follow)

    async def handle(self, message: LogsMessage) -> None:
        if isinstance(message, ConsoleLines):
            for stream, text in message.lines:
                self._activity()
                await self._emit(console_level(stream, text), "rpt", text, CONSOLE_FILE)
        elif isinstance(message, SystemLog):
            await self._emit(message.level, "system", message.message, None)

    # --- the loop ----------------------------------------------------------------------------

    async def _follow(self) -> None:
        state = self.runtime.state
        version = -1
        while True:
            snapshot = state.current
            changed = snapshot.version != version
            version = snapshot.version
            if changed:
                await self._apply(snapshot)
            if not self._runs:
                await state.wait_changed(version)  # no run: no work at all
                continue
            got = await self._poll()
            self._send_pending(snapshot, changed)
            if self._watch is None:
                self._delay = next_poll_delay(
                    self._delay, got > 0, fast=self._fast, slow=self._slow
                )
            else:
                # Woken by inotify: the pause only bounds how long a missed event can hide a
                # line (and lets a partial read continue at once).
                self._delay = self._fast if got > 0 else WATCHED_IDLE_POLL
            await self._wait(version, self._pause())

    def _pause(self) -> float:
        """The poll delay, shortened to the earliest pending entry's deadline."""
        deadlines = [d for run in self._runs.values() if (d := run.deadline()) is not None]
        if not deadlines:
            return self._delay
        return max(0.0, min(self._delay, min(deadlines) - anyio.current_time()))

    async def _wait(self, version: int, pause: float) -> None:
        """Wait for a state change, a write in a watched directory, or ``pause`` seconds."""
        watch = self._watch
        woke_by_write = False
        with anyio.move_on_after(pause):
            async with anyio.create_task_group() as tg:

                async def on_state() -> None:
                    await self.runtime.state.wait_changed(version)
                    tg.cancel_scope.cancel()

                async def on_write() -> None:
                    nonlocal woke_by_write
                    assert watch is not None
                    await watch.wait()
                    woke_by_write = True
                    tg.cancel_scope.cancel()

                tg.start_soon(on_state)
                if watch is not None:
                    tg.start_soon(on_write)
        if woke_by_write:
            # A writer usually writes several lines in a burst: read them in one go.
            await anyio.sleep(WRITE_COALESCE)

    async def _apply(self, snapshot: ServerSnapshot) -> None:
        """Start following a new run; drain and close the runs that are over."""
        current = snapshot.run
        for incarnation, run in list(self._runs.items()):
            if current is None or incarnation != current.incarnation or snapshot.exited:
                newer = current is not None and current.incarnation > incarnation
                await self._finish(run, current if newer else None)
                del self._runs[incarnation]
        if current is None or snapshot.exited or current.incarnation <= self._last_started:
            return
        self._last_started = current.incarnation
        now = anyio.current_time()
        facts = self.runtime.logs
        facts.fps = None
        facts.adm_players = ()
        facts.adm_players_at = 0.0
        facts.last_activity = now
        self._runs[current.incarnation] = _Run(current, now, self._grace)
        if self._watch is not None:
            directories = [Path(current.profile_dir)]
            if current.console_log:
                directories.append(Path(current.console_log).parent)
            for directory in directories:
                if not self._watch.add(directory):
                    # Cannot watch (limit reached): fall back to polling for this actor.
                    self._watch.close()
                    self._watch = None
                    break

    async def _poll(self) -> int:
        self._polls += 1
        now = anyio.current_time()
        total = 0
        for run in list(self._runs.values()):
            if run.missing() and now >= run.next_find:
                await self._search(run, None)
                run.find_delay = next_find_delay(run.find_delay)
                run.next_find = now + run.find_delay
            for followed in list(run.files.values()):
                total += await self._read(run, followed, drain=False)
        return total

    async def _search(self, run: _Run, successor: RunInfo | None) -> None:
        """Look for the run's files that are not followed yet."""
        self._searches += 1
        listing = await anyio.to_thread.run_sync(_list_profile, run.info.profile_dir)
        profile = Path(run.info.profile_dir)
        oldest = run.info.started_at - STALE_SLACK
        listing = [
            (name, mtime)
            for name, mtime in listing
            if mtime >= oldest
            and self._claimed.get(profile / name, run.incarnation) == run.incarnation
        ]
        before = None if successor is None else _local_start(successor)
        found = select_run_logs(listing, run.start, before)
        names: dict[FileKind, str | None] = {
            "rpt": found.rpt,
            "script": found.script,
            "adm": found.adm,
        }
        for kind, name in names.items():
            if name is not None and kind not in run.files:
                path = profile / name
                run.files[kind] = _Followed(
                    kind, path, from_end=run.info.adopted, grace=self._grace
                )
                if _is_stamped(name):  # a fixed-name (legacy) ADM is every run's file
                    self._claimed[path] = run.incarnation
                    while len(self._claimed) > CLAIMED_KEEP:
                        del self._claimed[next(iter(self._claimed))]

    async def _read(self, run: _Run, followed: _Followed, *, drain: bool) -> int:
        """Read what is new in one file and emit it; returns the number of lines."""
        try:
            lines = await (followed.tail.drain() if drain else followed.tail.read_available())
        except OSError:
            # An I/O error on one file must not stop the others; the next poll retries.
            self._read_errors += 1
            lines = []
        now = anyio.current_time()
        for line in lines:
            await self._line(run, followed, line, now)
        if lines:
            self._activity()
        if followed.rpt is not None:
            # Drained: the pending entry is complete. Otherwise it is when it cannot grow, or
            # when its grace since the last line is over (EntryGrouper).
            done = followed.rpt.flush() if drain else followed.rpt.due(anyio.current_time())
            for entry in done:
                await self._entry(run, followed, entry)
        if followed.adm is not None and drain:
            for record in followed.adm.flush():
                self._adm_record(record.event)
        return len(lines)

    async def _line(self, run: _Run, followed: _Followed, line: str, now: float) -> None:
        self._lines += 1
        self._since_checkpoint += 1
        if self._since_checkpoint >= YIELD_EVERY_LINES:
            self._since_checkpoint = 0
            await anyio.lowlevel.checkpoint()
        if followed.rpt is not None:
            for entry in followed.rpt.feed(line, now):
                await self._entry(run, followed, entry)
        elif followed.adm is not None:
            for record in followed.adm.feed(line):
                self._adm_record(record.event)
            parsed = parse_line(line)
            await self._emit("info", "rpt", line if parsed is None else parsed[1], followed.name)
        else:
            await self._emit(console_level(None, line), "rpt", line, followed.name)

    async def _entry(self, run: _Run, followed: _Followed, entry: RptEntry) -> None:
        await self._emit(entry.level, "rpt", entry.text, followed.name)
        event = entry.event
        if event is None:
            return
        if isinstance(event, AverageFps):
            self.runtime.logs.fps = event.fps
        if not self._is_live(run):
            return  # a finished run's milestones no longer matter to the process actor
        if isinstance(event, RptReady) and followed.kind == "rpt" and not run.ready_seen:
            run.ready_seen = True
            run.next_ready = anyio.current_time()
        elif isinstance(event, ScriptCompileError) and run.fatal is None:
            run.fatal = FatalStartError(run.incarnation, fatal_message(event))

    def _adm_record(self, event: object) -> None:
        if isinstance(event, AdmPlayerList):
            self.runtime.logs.adm_players = event.players
            self.runtime.logs.adm_players_at = anyio.current_time()

    def _send_pending(self, snapshot: ServerSnapshot, changed: bool) -> None:
        """Send (or repeat) ``Ready`` and ``FatalStartError`` for the current run."""
        current = snapshot.run
        run = None if current is None else self._runs.get(current.incarnation)
        if run is None or snapshot.exited:
            return
        if run.fatal is not None and not run.fatal_sent:
            run.fatal_sent = self._tell_process(run.fatal)
        now = anyio.current_time()
        lagging = snapshot.status == "starting" and not snapshot.ready
        if run.ready_seen and lagging and (changed or now >= run.next_ready):
            self._tell_process(Ready(run.incarnation))
            run.next_ready = now + self._resend

    def _tell_process(self, message: Ready | FatalStartError) -> bool:
        process = self.runtime.sibling(PROCESS)
        if process is None:
            return False
        try:
            process.cast_nowait(message)
        except (ActorExited, MailboxFull):
            return False  # down or busy: Ready is repeated; a fatal error is retried
        return True

    def _is_live(self, run: _Run) -> bool:
        snapshot = self.runtime.state.current
        current = snapshot.run
        return (
            current is not None
            and current.incarnation == run.incarnation
            and not snapshot.exited
            and run.incarnation in self._runs
        )

    async def _finish(self, run: _Run, successor: RunInfo | None) -> None:
        """The run is over: find files that appeared late, drain everything, close."""
        if run.missing():
            await self._search(run, successor)
        for followed in list(run.files.values()):
            await self._read(run, followed, drain=True)
            followed.tail.close()

    def _close_all(self) -> None:
        for run in self._runs.values():
            for followed in run.files.values():
                followed.tail.close()

    # --- output ------------------------------------------------------------------------------

    def _activity(self) -> None:
        self.runtime.logs.last_activity = anyio.current_time()

    async def _emit(
        self, level: LogLevel, source: LogSource, message: str, file: str | None
    ) -> None:
        if len(message) > MAX_MESSAGE_CHARS:
            left = len(message) - MAX_MESSAGE_CHARS
            message = f"{message[:MAX_MESSAGE_CHARS]} … [{left} more characters]"
        event = LogEvent(
            server_id=self.runtime.id,
            level=level,
            source=source,
            message=message,
            timestamp=utc_timestamp(),
            file=file,
        )
        self._events += 1
        self.runtime.log_history.append(event)
        await self.runtime.publish(event)


def spec(runtime: ServerRuntime) -> ChildSpec:
    """The child spec of a server's logs actor."""
    return ChildSpec(
        id=LOGS,
        start=lambda: LogsActor(runtime),
        restart=Restart.PERMANENT,
        name=runtime.child_name(LOGS),
    )
