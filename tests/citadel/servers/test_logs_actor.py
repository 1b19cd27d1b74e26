"""The logs actor against real files (written by the test) and against the real simulator.

The test plays the process actor: it writes ``runtime.state`` and registers a `Probe` under the
process actor's name to receive ``Ready`` / ``FatalStartError``. Files get the real DayZ names
in a temporary profile dir. Ordering is by events (the publish callback wakes the test);
``fail_after`` bounds every wait on real I/O.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors import Address, Registry, open_actor
from actors.testing import Probe
from citadel.config import ServerConfig
from citadel.games.dayz import logfiles
from citadel.games.dayz.rpt import CompileDiagnostic, ScriptCompileError, parse_timestamp
from citadel.messages import Event, LogEvent
from citadel.servers.identity import ProcessIdentity, read_identity
from citadel.servers.logs import (
    ACTIVE_POLL,
    IDLE_POLL,
    MAX_MESSAGE_CHARS,
    LogsActor,
    console_level,
    fatal_message,
    next_find_delay,
    next_poll_delay,
    select_run_logs,
    spec,
)
from citadel.servers.messages import ConsoleLines, FatalStartError, Ready, SystemLog
from citadel.servers.runtime import LOG_HISTORY, LOGS, PROCESS, RunInfo, ServerRuntime
from tests.dayzsim._harness import running

pytestmark = pytest.mark.anyio

LIMIT = 5.0  # seconds any single wait on real file I/O may take
ANY_FILE = "\0any"  # not a possible file name


# --- helpers ---------------------------------------------------------------------------------


class Published:
    """The ``publish`` callback: records events and wakes waiters."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = anyio.Event()

    async def __call__(self, event: Event) -> bool:
        self.events.append(event)
        self._changed.set()
        self._changed = anyio.Event()
        return True

    def logs(self, file: str | None = ANY_FILE) -> list[LogEvent]:
        """The ``log`` events so far, of one ``file`` (``None`` = system lines) or of all."""
        return [
            e
            for e in self.events
            if isinstance(e, LogEvent) and (file == ANY_FILE or e.file == file)
        ]

    def messages(self, file: str | None = ANY_FILE) -> list[str]:
        return [e.message for e in self.logs(file)]

    async def wait_for(self, predicate: Callable[[LogEvent], bool]) -> LogEvent:
        with anyio.fail_after(LIMIT):
            while True:
                for event in self.logs():
                    if predicate(event):
                        return event
                await self._changed.wait()

    async def wait_message(self, needle: str) -> LogEvent:
        return await self.wait_for(lambda e: needle in e.message)

    async def wait_count(self, count: int) -> None:
        with anyio.fail_after(LIMIT * 4):
            while len(self.logs()) < count:
                await self._changed.wait()


def make_runtime(tmp_path: Path) -> tuple[ServerRuntime, Published]:
    published = Published()
    config = ServerConfig(
        id="alpha", name="Alpha", install_dir=str(tmp_path), executable="DayZServer"
    )
    return ServerRuntime(config=config, registry=Registry(), publish=published), published


def run_info(profile: Path, incarnation: int, started_at: float, **extra: Any) -> RunInfo:
    identity = ProcessIdentity(pid=os.getpid(), create_time=started_at, cmdline=("DayZServer",))
    return RunInfo(
        incarnation=incarnation,
        identity=identity,
        started_at=started_at,
        profile_dir=str(profile),
        **extra,
    )


def names(started_at: float) -> tuple[str, str, str]:
    """The RPT, ADM and script-log names of a run started at ``started_at`` (local time)."""
    at = datetime.fromtimestamp(started_at)
    return (
        f"DayZServer_x64_{at:%Y-%m-%d_%H-%M-%S}.RPT",
        f"DayZServer_x64_{at:%Y_%m_%d_%H%M%S}{at.microsecond // 1000:03d}.ADM",
        f"script_{at:%Y-%m-%d_%H-%M-%S}.log",
    )


def append(path: Path, data: str | bytes) -> None:
    with path.open("ab") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


RPT_HEADER = (
    "=====================================================================\n"
    "== /srv/dayz/DayZServer\n"
    "=====================================================================\n"
    "Exe timestamp: 2024/04/25 10:12:33\n"
    "Current time:  2024/05/01 18:30:12\n"
    "\n"
    "Version 1.25.158593\n"
)


@asynccontextmanager
async def logs_actor(runtime: ServerRuntime, **options: Any) -> AsyncIterator[LogsActor]:
    actor = LogsActor(runtime, **options)
    async with open_actor(actor, name=runtime.child_name(LOGS), registry=runtime.registry):
        yield actor


@asynccontextmanager
async def process_probe(runtime: ServerRuntime) -> AsyncIterator[tuple[Probe, Address[Any]]]:
    probe = Probe()
    name = runtime.child_name(PROCESS)
    async with open_actor(probe, name=name, registry=runtime.registry) as address:
        runtime.registry.register(name, address)
        yield probe, address


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll a condition on the actor's counters (no ordering by sleep: the condition decides)."""
    with anyio.fail_after(LIMIT):
        while not condition():
            await anyio.sleep(0.005)


# --- pure decisions --------------------------------------------------------------------------


def test_poll_delay_is_fast_while_active_and_backs_off_to_the_idle_cap() -> None:
    assert next_poll_delay(IDLE_POLL, True) == ACTIVE_POLL
    delays = [ACTIVE_POLL]
    for _ in range(6):
        delays.append(next_poll_delay(delays[-1], False))
    assert delays[:5] == pytest.approx([0.02, 0.04, 0.08, 0.16, 0.25])
    assert delays[-1] == IDLE_POLL


def test_find_delay_grows_and_is_capped() -> None:
    delay = 0.0
    seen = []
    for _ in range(20):
        delay = next_find_delay(delay)
        seen.append(delay)
    assert seen[0] == pytest.approx(0.1)
    assert seen == sorted(seen)
    assert seen[-1] == 5.0


def test_console_level_uses_the_tag_and_lifts_stderr_to_warn() -> None:
    assert console_level("stdout", "RCon listening on 127.0.0.1:2306") == "info"
    assert console_level("stderr", "dayz-sim: missing serverDZ.cfg") == "warn"
    assert console_level("stdout", "18:30:28.950 SCRIPT    (E): boom") == "error"
    assert console_level("stderr", "SCRIPT    (E): boom") == "error"


def test_fatal_message_names_the_module_and_first_diagnostic() -> None:
    error = ScriptCompileError(
        module="World",
        diagnostics=(CompileDiagnostic("ExampleMod/scripts/4_world/broken.c", 13, "Unknown"),),
    )
    assert fatal_message(error) == (
        'Can\'t compile "World" script module: ExampleMod/scripts/4_world/broken.c(13): Unknown'
    )
    assert fatal_message(ScriptCompileError(module="Game")).endswith('"Game" script module')


def test_select_run_logs_ignores_files_of_the_next_run() -> None:
    first, second = 1_700_000_000.0, 1_700_000_100.0
    rpt1, adm1, _ = names(first)
    rpt2, adm2, script2 = names(second)
    files = [(rpt1, 0.0), (adm1, 0.0), (rpt2, 0.0), (adm2, 0.0), (script2, 0.0)]
    start1, start2 = datetime.fromtimestamp(first), datetime.fromtimestamp(second)
    bounded = select_run_logs(files, start1, start2)
    assert (bounded.rpt, bounded.adm, bounded.script) == (rpt1, adm1, None)
    assert select_run_logs(files, start1).rpt == rpt2  # unbounded: the newest wins
    assert select_run_logs(files, start1).rpt == logfiles.select_current(files, start1).rpt


def test_spec_names_the_child() -> None:
    runtime, _ = make_runtime(Path("/nonexistent"))
    child = spec(runtime)
    assert (child.id, child.name) == ("logs", "alpha/logs")
    assert isinstance(child.start(), LogsActor)


# --- real files ------------------------------------------------------------------------------


async def test_rpt_appearing_late_is_found_entries_published_and_ready_sent(
    tmp_path: Path,
) -> None:
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    profile.mkdir()
    started = time.time()
    runtime.state.update(status="starting", run=run_info(profile, 1, started))
    rpt_name, _, _ = names(started)
    async with process_probe(runtime) as (probe, _), logs_actor(runtime) as actor:
        await wait_until(lambda: actor.statistics().searches >= 2)  # searched, found nothing
        assert actor.statistics().files == 0
        rpt = profile / rpt_name
        append(
            rpt,
            RPT_HEADER
            + "18:30:12.845 Initializing stats manager.\n"
            + "18:55:01.332 SCRIPT    (E): NULL pointer to instance\n"
            + "Class:      'ExampleModManager'\n"
            + "Function: 'OnUpdate'\n"
            + "Stack trace:\n"
            + "ExampleMod/scripts/4_world/examplemodmanager.c:88\n"
            + "18:55:02.000 Average server FPS: 59.94 (measured in 30 s)\n"
            + "18:55:03.000 Player connect enabled\n",
        )
        ready = await published.wait_message("Player connect enabled")
        assert (ready.source, ready.level, ready.file) == ("rpt", "info", rpt_name)
        await probe.wait_for_count(1)
        assert probe.log == [Ready(1)]
        error = next(e for e in published.logs(rpt_name) if "NULL pointer" in e.message)
        assert error.level == "error"
        assert error.message == (
            "SCRIPT    (E): NULL pointer to instance\nClass:      'ExampleModManager'\n"
            "Function: 'OnUpdate'\nStack trace:\nExampleMod/scripts/4_world/examplemodmanager.c:88"
        )
        messages = published.messages(rpt_name)
        # Header lines (the blank one too) are kept, in order, before the entries.
        assert messages[:7] == RPT_HEADER.splitlines()
        assert messages[7:] == [
            "Initializing stats manager.",
            error.message,
            "Average server FPS: 59.94 (measured in 30 s)",
            "Player connect enabled",
        ]
        assert runtime.logs.fps == pytest.approx(59.94)
        assert runtime.logs.last_activity > 0
        assert list(runtime.log_history) == published.logs()


async def test_old_run_is_drained_after_exit_before_the_new_run_is_read(tmp_path: Path) -> None:
    """formats.md §5.16: the old ADM's last line, written after the new ADM appeared."""
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    profile.mkdir()
    first = time.time() - 60
    second = time.time()
    rpt1, adm1, _ = names(first)
    rpt2, adm2, _ = names(second)
    append(profile / rpt1, RPT_HEADER + "18:30:12.845 first run\n")
    append(profile / adm1, "AdminLog started on 2024-05-01 at 18:30:13\n\n18:41:07 | one\n")
    runtime.state.update(status="running", ready=True, run=run_info(profile, 1, first))
    async with logs_actor(runtime) as actor:
        await published.wait_message("one")
        await published.wait_message("first run")
        assert actor.statistics().files == 2
        # The next run's files appear, then the old ADM gets its last line (unterminated, so
        # only a drain that flushes can deliver it), then the old process is seen gone.
        append(profile / rpt2, RPT_HEADER + "19:00:01.000 second run\n")
        append(profile / adm2, "AdminLog started on 2024-05-01 at 19:00:01\n")
        last = '18:59:59 | Player "PlayerOne"(id=PLACEHOLDERid1=) has been disconnected'
        append(profile / adm1, last)
        runtime.state.update(exited=True, status="stopped", ready=False)
        runtime.state.update(status="starting", exited=False, run=run_info(profile, 2, second))
        await published.wait_message("second run")
        await published.wait_message("AdminLog started on 2024-05-01 at 19:00:01")
        messages = published.messages()
        old_last = messages.index('Player "PlayerOne"(id=PLACEHOLDERid1=) has been disconnected')
        assert old_last < messages.index("AdminLog started on 2024-05-01 at 19:00:01")
        assert published.logs(adm1)[-1].level == "info"
        # The new files are read from their start; the old run is closed.
        assert published.messages(rpt2)[0] == RPT_HEADER.splitlines()[0]
        assert actor.statistics().runs == 1


async def test_a_quick_restart_never_follows_the_previous_runs_files(tmp_path: Path) -> None:
    """A restart 1 s after the first start: the old RPT's name is inside the new run's slack,
    and the new RPT appears late; the new run must wait for its own file."""
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    profile.mkdir()
    first = time.time() - 1
    second = first + 1
    rpt1, _, _ = names(first)
    rpt2, _, _ = names(second + 1)
    append(profile / rpt1, RPT_HEADER + "18:30:12.845 Player connect enabled\n")
    runtime.state.update(status="starting", run=run_info(profile, 1, first))
    async with process_probe(runtime) as (probe, _), logs_actor(runtime) as actor:
        await probe.wait_for_count(1)
        assert probe.log == [Ready(1)]
        runtime.state.update(exited=True, status="crashed")
        runtime.state.update(status="starting", exited=False, run=run_info(profile, 2, second))
        searches = actor.statistics().searches
        await wait_until(lambda: actor.statistics().searches >= searches + 2)
        assert actor.statistics().files == 0  # the old RPT was not taken for the new run
        append(profile / rpt2, RPT_HEADER + "19:00:01.000 second run\n")
        event = await published.wait_message("second run")
        assert event.file == rpt2
        assert probe.log == [Ready(1)]  # the old file's readiness line was not the new run's


async def test_a_file_last_written_before_the_run_started_is_not_its_file(
    tmp_path: Path,
) -> None:
    """A dead run Citadel never followed (it was down): named inside the slack, but untouched
    since before the new process existed."""
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    profile.mkdir()
    started = time.time()
    stale, _, _ = names(started - 3)
    append(profile / stale, RPT_HEADER + "18:30:12.845 Player connect enabled\n")
    os.utime(profile / stale, (started - 2.5, started - 2.5))
    runtime.state.update(status="starting", run=run_info(profile, 1, started))
    async with process_probe(runtime) as (probe, _), logs_actor(runtime) as actor:
        await wait_until(lambda: actor.statistics().searches >= 2)
        assert actor.statistics().files == 0
        current, _, _ = names(started + 1)
        append(profile / current, RPT_HEADER + "19:00:01.000 Player connect enabled\n")
        event = await published.wait_message("Player connect enabled")
        assert event.file == current
        await probe.wait_for_count(1)
        assert published.logs(stale) == []


async def test_lines_written_just_before_exit_are_drained(tmp_path: Path) -> None:
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    profile.mkdir()
    started = time.time()
    rpt_name, _, _ = names(started)
    rpt = profile / rpt_name
    append(rpt, RPT_HEADER)
    runtime.state.update(status="running", ready=True, run=run_info(profile, 1, started))
    async with logs_actor(runtime) as actor:
        await published.wait_message("Version 1.25")
        append(rpt, "19:00:00.000 Server shutting down\nstack line without newline")
        runtime.state.update(status="stopped", exited=True)
        event = await published.wait_message("Server shutting down")
        assert event.message == "Server shutting down\nstack line without newline"
        await wait_until(lambda: actor.statistics().runs == 0)
        assert actor.statistics().files == 0


def running_rpt(tmp_path: Path, runtime: ServerRuntime) -> Path:
    """A running server's RPT (header written) in a fresh profile dir."""
    profile = tmp_path / "profiles"
    profile.mkdir()
    started = time.time()
    rpt = profile / names(started)[0]
    append(rpt, RPT_HEADER)
    runtime.state.update(status="running", ready=True, run=run_info(profile, 1, started))
    return rpt


async def quiet_polls(actor: LogsActor, lines: int, polls: int = 3) -> None:
    """Wait until the actor has read ``lines`` lines in all and then polled ``polls`` more
    times without finding any (the old code flushed a pending entry after one)."""
    await wait_until(lambda: actor.statistics().lines == lines)
    seen = actor.statistics().polls
    await wait_until(lambda: actor.statistics().polls >= seen + polls)


SCRIPT_ERROR_REST = (
    "Class:      'ExampleModManager'\n"
    "Function: 'OnUpdate'\n"
    "Stack trace:\n"
    "ExampleMod/scripts/4_world/examplemodmanager.c:88\n"
)


async def test_a_script_error_whose_stack_trace_comes_later_is_one_event(tmp_path: Path) -> None:
    """The writer flushes the head, pauses, then writes the rest of the block."""
    runtime, published = make_runtime(tmp_path)
    rpt = running_rpt(tmp_path, runtime)
    async with logs_actor(runtime, use_inotify=False, entry_grace=60.0) as actor:
        await published.wait_message("Version 1.25")
        lines = actor.statistics().lines
        append(rpt, "18:55:01.332 SCRIPT    (E): AUDITMARK NULL pointer\n")
        await quiet_polls(actor, lines + 1)
        append(rpt, SCRIPT_ERROR_REST)
        await quiet_polls(actor, lines + 5)
        assert not any("AUDITMARK" in m for m in published.messages())
        append(rpt, "18:55:02.000 SCRIPT       : next\n")
        await published.wait_message("next")
        after = published.messages(rpt.name)[
            published.messages(rpt.name).index("Version 1.25.158593") + 1 :
        ]
        assert after == [
            "SCRIPT    (E): AUDITMARK NULL pointer\n" + SCRIPT_ERROR_REST.rstrip("\n"),
            "SCRIPT       : next",
        ]
        assert published.logs(rpt.name)[-2].level == "error"


async def test_ordinary_lines_are_not_held_and_an_error_head_waits_until_drained(
    tmp_path: Path,
) -> None:
    runtime, published = make_runtime(tmp_path)
    rpt = running_rpt(tmp_path, runtime)
    # A grace far beyond the wait bound: what arrives did not wait for it.
    async with logs_actor(runtime, entry_grace=60.0) as actor:
        await published.wait_message("Version 1.25")
        append(rpt, "18:00:00.000 an ordinary line\n")
        await published.wait_message("an ordinary line")
        lines = actor.statistics().lines
        append(rpt, "18:00:01.000 SCRIPT    (E): boom\n")
        await quiet_polls(actor, lines + 1, polls=1)
        assert "SCRIPT    (E): boom" not in published.messages()
        runtime.state.update(status="stopped", exited=True)  # drained: nothing more can come
        event = await published.wait_message("boom")
        assert (event.message, event.level) == ("SCRIPT    (E): boom", "error")


async def test_a_lone_error_line_is_published_once_the_grace_is_over(tmp_path: Path) -> None:
    runtime, published = make_runtime(tmp_path)
    rpt = running_rpt(tmp_path, runtime)
    async with logs_actor(runtime, entry_grace=0.2):
        await published.wait_message("Version 1.25")
        append(rpt, "18:55:01.332 SCRIPT    (E): AUDITMARK NULL pointer\n")
        event = await published.wait_message("AUDITMARK")
        assert (event.message, event.level) == ("SCRIPT    (E): AUDITMARK NULL pointer", "error")


async def test_blank_lines_are_events_of_their_own(tmp_path: Path) -> None:
    runtime, published = make_runtime(tmp_path)
    rpt = running_rpt(tmp_path, runtime)
    async with logs_actor(runtime):
        await published.wait_message("Version 1.25")
        append(rpt, "18:00:00.000 Line A\nLine B\n\nLine C\n18:00:01.000 end\n")
        await published.wait_message("end")
        messages = published.messages(rpt.name)
        assert messages[messages.index("Line A\nLine B") :] == [
            "Line A\nLine B",
            "",
            "Line C",
            "end",
        ]


async def test_console_and_system_lines(tmp_path: Path) -> None:
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    console = profile / "citadel" / "console_x.log"
    console.parent.mkdir(parents=True)
    append(console, "RCon listening on 127.0.0.1:2306\n")
    started = time.time()
    runtime.state.update(
        status="starting", run=run_info(profile, 1, started, console_log=str(console))
    )
    async with logs_actor(runtime) as actor:
        from_file = await published.wait_message("RCon listening")
        assert (from_file.source, from_file.file, from_file.level) == ("rpt", "console", "info")
        await actor.address.cast(
            ConsoleLines(1, (("stdout", "banner line"), ("stderr", "dayz-sim: no serverDZ.cfg")))
        )
        await actor.address.cast(SystemLog("error", "fatal start error: boom"))
        system = await published.wait_message("fatal start error")
        assert (system.source, system.file, system.level) == ("system", None, "error")
        out = next(e for e in published.logs("console") if e.message == "banner line")
        err = next(e for e in published.logs("console") if "serverDZ" in e.message)
        assert (out.level, err.level) == ("info", "warn")
        assert {"banner line", "fatal start error: boom"} <= {
            e.message for e in runtime.log_history
        }


async def test_invalid_utf8_huge_lines_and_truncation_never_stop_the_tail(tmp_path: Path) -> None:
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    profile.mkdir()
    started = time.time()
    rpt = profile / names(started)[0]
    append(rpt, b"18:00:00.000 bad \xff\xfe bytes\n" + b"18:00:01.000 " + b"A" * 200_000 + b"\n")
    append(rpt, bytes(range(256)) + b"\n18:00:02.000 after garbage\n")
    runtime.state.update(status="running", ready=True, run=run_info(profile, 1, started))
    async with logs_actor(runtime):
        await published.wait_message("after garbage")
        assert "bad \ufffd\ufffd bytes" in published.messages()
        # The 200 KB line is cut by the tailer, its pieces joined into one entry, and the event
        # message capped so one line cannot put megabytes on every dashboard.
        assert max(len(m) for m in published.messages()) <= MAX_MESSAGE_CHARS + 100
        assert any(m.endswith("more characters]") for m in published.messages())
        # Truncated in place and rewritten shorter: read again from the start.
        rpt.write_bytes(b"18:10:00.000 fresh start\n")
        await published.wait_message("fresh start")


async def test_adm_lines_and_player_list(tmp_path: Path) -> None:
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    profile.mkdir()
    started = time.time()
    adm_name = names(started)[1]
    append(
        profile / adm_name,
        "AdminLog started on 2024-05-01 at 18:30:13\n"
        "18:45:00 | ##### PlayerList log: 1 players\n"
        '18:45:00 | Player "PlayerOne" (id=PLACEHOLDERid1= pos=<4521.3, 10234.7, 312.4>)\n'
        "18:45:00 | #####\n"
        '18:46:31 | Chat("PlayerOne"(id=PLACEHOLDERid1=)): hi: there\n',
    )
    runtime.state.update(status="running", ready=True, run=run_info(profile, 1, started))
    async with logs_actor(runtime):
        chat = await published.wait_message("Chat(")
        assert (chat.file, chat.level, chat.source) == (adm_name, "info", "rpt")
        assert chat.message == 'Chat("PlayerOne"(id=PLACEHOLDERid1=)): hi: there'
        (player,) = runtime.logs.adm_players
        assert (player.name, player.pos.x, player.pos.z, player.pos.alt) == (
            "PlayerOne",
            4521.3,
            10234.7,
            312.4,
        )
        assert runtime.logs.adm_players_at > 0


async def test_ready_is_sent_again_to_a_restarted_process_actor(tmp_path: Path) -> None:
    runtime, _ = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    profile.mkdir()
    started = time.time()
    append(profile / names(started)[0], RPT_HEADER + "18:31:20.118 Player connect enabled\n")
    runtime.state.update(status="starting", run=run_info(profile, 1, started))
    async with logs_actor(runtime, ready_resend_interval=0.05):
        async with process_probe(runtime) as (first, _):
            with anyio.fail_after(LIMIT):
                await first.wait_for_count(1)
            assert first.log[0] == Ready(1)
        # The process actor went down before it updated the state; its successor is told.
        assert runtime.sibling(PROCESS) is None
        async with process_probe(runtime) as (second, _):
            with anyio.fail_after(LIMIT):
                await second.wait_for_count(1)
            assert second.log[0] == Ready(1)
            # Once the state says ready, the repeats stop (a later state change sends none).
            runtime.state.update(status="running", ready=True)
            count = len(second.log)
            runtime.state.update(status="running")
            await anyio.sleep(0.2)  # a window in which a wrong repeat would arrive
            assert len(second.log) == count


async def test_script_compile_error_is_a_fatal_start_error(tmp_path: Path) -> None:
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    profile.mkdir()
    started = time.time()
    script = profile / names(started)[2]
    append(
        script,
        "18:30:28.901 SCRIPT       : Module: Game; loaded 416x files; 1379x classes\n"
        '18:30:28.950 SCRIPT    (E): Can\'t compile "World" script module!\n'
        "ExampleMod/scripts/4_world/broken.c(13): Unknown type 'MissingClass'\n",
    )
    runtime.state.update(status="starting", run=run_info(profile, 1, started))
    async with process_probe(runtime) as (probe, _), logs_actor(runtime):
        with anyio.fail_after(LIMIT):
            await probe.wait_for_count(1)
        assert probe.log == [
            FatalStartError(
                1,
                'Can\'t compile "World" script module: '
                "ExampleMod/scripts/4_world/broken.c(13): Unknown type 'MissingClass'",
            )
        ]
        event = await published.wait_message("Can't compile")
        assert (event.level, event.file) == ("error", script.name)
        assert event.message.endswith("Unknown type 'MissingClass'")


async def test_a_burst_is_published_whole_with_bounded_history(tmp_path: Path) -> None:
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    profile.mkdir()
    started = time.time()
    runtime.state.update(status="running", ready=True, run=run_info(profile, 1, started))
    burst = 50_000
    async with logs_actor(runtime) as actor:
        await wait_until(lambda: actor.statistics().searches >= 1)
        append(
            profile / names(started)[0],
            "".join(f"18:00:00.000 SCRIPT       : [Flood] line {n}\n" for n in range(burst)),
        )
        await published.wait_count(burst)
        assert published.messages()[-1] == f"SCRIPT       : [Flood] line {burst - 1}"
        assert len(runtime.log_history) == LOG_HISTORY
        assert next(iter(runtime.log_history)).message.endswith(f"line {burst - LOG_HISTORY}")


async def test_no_run_means_no_polling(tmp_path: Path) -> None:
    runtime, _ = make_runtime(tmp_path)
    async with logs_actor(runtime) as actor:
        await anyio.sleep(0.1)  # long enough for several polls if it polled
        assert actor.statistics().polls == 0


# --- the real simulator ----------------------------------------------------------------------


async def test_with_the_simulator_entries_published_and_ready_sent(tmp_path: Path) -> None:
    runtime, published = make_runtime(tmp_path)
    env = {"DAYZSIM_SCRIPT_ERROR_TICKS": "3", "DAYZSIM_STATS_TICKS": "2"}
    async with running(tmp_path, env) as sim, process_probe(runtime) as (probe, _):
        identity = read_identity(sim.proc.pid)
        assert identity is not None
        run = RunInfo(
            incarnation=1,
            identity=identity,
            started_at=identity.create_time,
            profile_dir=str(sim.profile),
            console_log=str(sim.root / "stdout.txt"),
        )
        runtime.state.update(status="starting", run=run)
        async with logs_actor(runtime) as actor:
            ready = await published.wait_for(
                lambda e: e.message == "Player connect enabled" and (e.file or "").endswith(".RPT")
            )
            assert ready.level == "info"
            await published.wait_for(lambda e: e.file == "console" and "RCon" in e.message)
            with anyio.fail_after(LIMIT):
                await probe.wait_for_count(1)
            assert probe.log[0] == Ready(1)
            runtime.state.update(status="running", ready=True)
            # Script errors arrive as one multi-line event from the script log.
            script_error = await published.wait_for(
                lambda e: (e.file or "").startswith("script_") and "Stack trace:" in e.message
            )
            assert script_error.level == "error"
            await published.wait_message("Average server FPS")
            assert runtime.logs.fps is not None
            sim.proc.kill()
            sim.proc.wait(timeout=10)
            runtime.state.update(status="crashed", exited=True, ready=False)
            await wait_until(lambda: actor.statistics().runs == 0)
            # Everything in the RPT was published: its last line is in the last RPT event.
            rpt = sim.one("DayZServer_*.RPT")
            last_line = rpt.read_text(encoding="utf-8", errors="replace").splitlines()[-1]
            stamped = parse_timestamp(last_line)
            assert (last_line if stamped is None else stamped[2]) in published.messages(rpt.name)[
                -1
            ]
