"""RPT / script-log parser: formats.md §1.2–1.4 examples, levels, milestones, dates."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citadel.games.dayz.rpt import (
    AverageFps,
    CompileDiagnostic,
    EngineFatal,
    EntryGrouper,
    MissionRead,
    PlayerConnected,
    PlayerCount,
    PlayerKicked,
    Ready,
    RptEntry,
    RptParser,
    ScriptCompileError,
    ScriptRuntimeError,
    ServerVersion,
    StackFrame,
    classify,
    detect_event,
    may_continue,
    parse_tag,
    parse_timestamp,
)
from citadel.games.dayz.tail import LineSplitter

# The example blocks of formats.md §1.3 and §1.4, verbatim.
DATA = Path(__file__).parent / "data"
RPT_EXAMPLE = (DATA / "rpt_example.RPT").read_text("utf-8")
SCRIPT_EXAMPLE = (DATA / "script_example.log").read_text("utf-8")


def parse_all(text: str, start_date: date | None = None) -> list[RptEntry]:
    parser = RptParser(start_date)
    out: list[RptEntry] = []
    for line in text.split("\n")[:-1]:
        out += parser.feed(line)
    return out + parser.flush()


def test_timestamp_shapes() -> None:
    assert parse_timestamp("18:30:12.845 Hello") == (
        time(18, 30, 12, 845000),
        "18:30:12.845",
        "Hello",
    )
    assert parse_timestamp(" 9:05:01 Arma style") == (time(9, 5, 1), "9:05:01", "Arma style")
    assert parse_timestamp("9:05:01.5 x") == (time(9, 5, 1, 500000), "9:05:01.5", "x")
    assert parse_timestamp("18:30:12.845 ") == (time(18, 30, 12, 845000), "18:30:12.845", "")
    for bad in ("Current time:  2024/05/01 18:30:12", "25:00:00 x", "18:61:00 x", "18:30 x", ""):
        assert parse_timestamp(bad) is None


def test_tag_tolerates_padding() -> None:
    assert parse_tag("SCRIPT    (E): boom") == ("SCRIPT", "E", "boom")
    assert parse_tag("SCRIPT       : ok") == ("SCRIPT", None, "ok")
    assert parse_tag("XML (E): bad") == ("XML", "E", "bad")
    assert parse_tag("ANIMATION (E): bad") == ("ANIMATION", "E", "bad")
    assert parse_tag("[CE][Hive] :: Initializing OFFLINE") is None
    assert parse_tag("Average server FPS: 59.94") is None


def test_classify_levels() -> None:
    assert classify("SCRIPT    (E): x") == "error"
    assert classify("ENGINE    (F): Crashed") == "error"
    assert classify("ENTITY    (W): y") == "warn"
    assert classify("SCRIPT       : z") == "info"
    assert classify("Mission read.") == "info"
    assert classify("anything", ("Stack trace:", "a.c:1")) == "error"


def test_rpt_example_dates_header_and_milestones() -> None:
    entries = parse_all(RPT_EXAMPLE)
    header = [e for e in entries if e.time is None]
    stamped = [e for e in entries if e.time is not None]
    # Header lines are kept (never dropped), as untimestamped entries, in order.
    assert header[0].message.startswith("=====")
    assert [e.message for e in header][4:7] == [
        "Exe timestamp: 2024/04/25 10:12:33",
        "Current time:  2024/05/01 18:30:12",
        "",
    ]
    assert header[-1].event == ServerVersion(version="1.25.158593")
    assert len(stamped) == 16
    assert all(e.continuation == () for e in stamped)
    assert stamped[0].at == datetime(2024, 5, 1, 18, 30, 12, 845000)
    assert stamped[0].time == "18:30:12.845"
    events = [e.event for e in stamped if e.event is not None]
    assert events == [
        MissionRead(),
        Ready(),
        AverageFps(fps=59.94),
        PlayerCount(count=0),
        PlayerConnected(name="PlayerOne", steam_id="76561190000000001"),
        PlayerKicked(name="PlayerOne", player_no=2, dpnid=2048123456, code=6, reason=""),
    ]
    assert {e.level for e in entries} == {"info"}


def test_script_log_compile_error_and_runtime_block() -> None:
    entries = parse_all(SCRIPT_EXAMPLE, date(2024, 5, 1))
    assert len(entries) == 3
    loaded, compile_err, runtime = entries
    assert loaded.channel == "SCRIPT"
    assert loaded.severity is None
    assert loaded.level == "info"
    assert compile_err.level == "error"
    assert compile_err.event == ScriptCompileError(
        module="World",
        diagnostics=(
            CompileDiagnostic(
                path="ExampleMod/scripts/4_world/broken.c",
                line=13,
                message="Unknown type 'MissingClass'",
            ),
        ),
    )
    assert runtime.level == "error"
    assert runtime.at == datetime(2024, 5, 1, 18, 55, 1, 332000)
    assert len(runtime.continuation) == 5
    assert runtime.text.endswith("missionserver.c:214")
    err = runtime.event
    assert err == ScriptRuntimeError(
        message="NULL pointer to instance",
        class_name="ExampleModManager",
        function="OnUpdate",
        frames=(
            StackFrame(path="ExampleMod/scripts/4_world/examplemodmanager.c", line=88),
            StackFrame(path="scripts/5_mission/mission/missionserver.c", line=214),
        ),
    )
    assert isinstance(err, ScriptRuntimeError)
    assert (err.file, err.line) == ("ExampleMod/scripts/4_world/examplemodmanager.c", 88)


def test_entry_is_emitted_only_when_next_timestamp_arrives() -> None:
    parser = RptParser()
    assert parser.feed("18:55:01.332 SCRIPT    (E): NULL pointer to instance") == []
    assert parser.feed("Class:      'X'") == []
    done = parser.feed("18:55:02.000 next")
    assert [e.message for e in done] == ["SCRIPT    (E): NULL pointer to instance"]
    assert done[0].continuation == ("Class:      'X'",)
    assert [e.message for e in parser.flush()] == ["next"]
    assert parser.flush() == []


def test_date_rolls_at_midnight_but_not_on_small_backsteps() -> None:
    entries = parse_all(
        "Current time:  2024/12/31 23:59:58\n"
        "23:59:59.900 a\n"
        "23:59:59.850 out of order thread\n"
        "0:00:01.000 b\n"
        " 1:00:00 c\n",
    )
    stamped = [e.at for e in entries if e.time is not None]
    assert stamped == [
        datetime(2024, 12, 31, 23, 59, 59, 900000),
        datetime(2024, 12, 31, 23, 59, 59, 850000),
        datetime(2025, 1, 1, 0, 0, 1),
        datetime(2025, 1, 1, 1, 0, 0),
    ]


def test_without_any_date_entries_have_no_datetime() -> None:
    entries = parse_all("18:00:00 x\n")
    assert entries[0].at is None
    assert entries[0].time == "18:00:00"


def test_fps_takes_first_float_only() -> None:
    assert detect_event("Average server FPS: 59.94 (measured in 30 s), min 12.5") == AverageFps(
        fps=59.94
    )
    assert detect_event("Average server FPS: 60") == AverageFps(fps=60.0)


def test_fatal_severity_is_engine_fatal() -> None:
    entries = parse_all("19:02:33.001 ENGINE    (F): Crashed\n")
    assert entries[0].event == EngineFatal(channel="ENGINE", message="Crashed")
    assert entries[0].level == "error"


def test_names_with_parentheses_in_kick_and_connect() -> None:
    assert detect_event("Player Big (Name) (3) (77) kicked from server: 4 (Some text (x))") == (
        PlayerKicked(name="Big (Name)", player_no=3, dpnid=77, code=4, reason="Some text (x)")
    )
    assert detect_event('Player "A "quoted": B"(steamID=1) is connected') == PlayerConnected(
        name='A "quoted": B', steam_id="1"
    )


def test_continuation_is_bounded() -> None:
    parser = RptParser(max_continuation=2)
    out = parser.feed("18:00:00 head")
    for i in range(5):
        out += parser.feed(f"cont {i}")
    out += parser.flush()
    assert out[0].continuation == ("cont 0", "cont 1")
    assert [e.message for e in out[1:]] == ["cont 2", "cont 3", "cont 4"]
    # Nothing dropped.
    assert sum(1 + len(e.continuation) for e in out) == 6


@given(st.lists(st.text(max_size=80), max_size=30))
def test_parser_never_raises_and_keeps_every_line(lines: list[str]) -> None:
    clean = [line.replace("\n", " ") for line in lines]
    parser = RptParser(date(2024, 1, 1))
    out: list[RptEntry] = []
    for line in clean:
        out += parser.feed(line)
    out += parser.flush()
    assert sum(1 + len(e.continuation) for e in out) == len(clean)


def test_crlf_file_through_the_splitter_parses_the_same() -> None:
    splitter = LineSplitter()
    parser = RptParser()
    entries: list[RptEntry] = []
    raw = b"\xef\xbb\xbf" + RPT_EXAMPLE.replace("\n", "\r\n").encode()
    for i in range(0, len(raw), 7):  # odd chunking, as reads from a growing file would be
        for line in splitter.feed(raw[i : i + 7]):
            entries += parser.feed(line)
    entries += parser.flush()
    assert entries == parse_all(RPT_EXAMPLE)


# --- blank lines (formats.md §5.17) --------------------------------------------------------------


def test_blank_lines_are_entries_of_their_own_in_order() -> None:
    # The report's input verbatim: four entries, the blank one included.
    entries = parse_all("Line A\nLine B\n\nLine C\n")
    assert [e.text for e in entries] == ["Line A", "Line B", "", "Line C"]
    # After a timestamped line: the blank line ends the entry instead of joining it.
    entries = parse_all("18:00:00.000 Line A\nLine B\n\nLine C\n   \n18:00:01.000 D\n")
    assert [(e.time, e.text) for e in entries] == [
        ("18:00:00.000", "Line A\nLine B"),
        (None, ""),
        (None, "Line C"),
        (None, "   "),
        ("18:00:01.000", "D"),
    ]


def test_a_blank_line_finishes_the_pending_entry_at_once() -> None:
    parser = RptParser()
    assert parser.feed("18:55:01.332 SCRIPT    (E): boom") == []
    done = parser.feed("")
    assert [e.text for e in done] == ["SCRIPT    (E): boom", ""]
    assert not parser.pending


# --- when a pending entry is complete -----------------------------------------------------------


def test_only_error_heads_and_compile_failures_may_continue() -> None:
    assert may_continue("SCRIPT    (E): NULL pointer to instance")
    assert may_continue("ENGINE    (F): Crashed")
    assert may_continue('Can\'t compile "World" script module!')
    assert not may_continue("SCRIPT    (W): something odd")
    assert not may_continue("SCRIPT       : Module: Game; loaded 416x files")
    assert not may_continue("Player connect enabled")
    assert not may_continue("")


def test_an_ordinary_line_is_due_at_once() -> None:
    grouper = EntryGrouper(RptParser(), grace=0.5)
    assert grouper.feed("18:00:00.000 Player connect enabled", now=10.0) == []
    assert grouper.deadline == 10.0
    assert [e.event for e in grouper.due(now=10.0)] == [Ready()]
    assert grouper.deadline is None
    assert grouper.due(now=99.0) == []


def test_an_error_head_waits_the_grace_for_its_stack_trace() -> None:
    grouper = EntryGrouper(RptParser(), grace=0.5)
    assert grouper.feed("18:55:01.332 SCRIPT    (E): NULL pointer to instance", now=10.0) == []
    assert grouper.due(now=10.0) == []
    assert grouper.due(now=10.3) == []  # the writer paused 300 ms: still pending
    # The rest of the block arrives; each line restarts the grace.
    for offset, line in enumerate(
        ("Class:      'ExampleModManager'", "Function: 'OnUpdate'", "Stack trace:", "a.c:88")
    ):
        assert grouper.feed(line, now=10.3 + offset * 0.1) == []
    assert grouper.deadline == pytest.approx(10.6 + 0.5)
    assert grouper.due(now=11.0) == []
    (entry,) = grouper.due(now=11.2)
    assert entry.level == "error"
    assert isinstance(entry.event, ScriptRuntimeError)
    assert (entry.event.class_name, entry.event.function) == ("ExampleModManager", "OnUpdate")
    assert entry.event.frames == (StackFrame(path="a.c", line=88),)


def test_a_lone_error_line_is_published_after_the_grace() -> None:
    grouper = EntryGrouper(RptParser(), grace=0.5)
    grouper.feed("18:55:01.332 SCRIPT    (E): AUDITMARK NULL pointer", now=10.0)
    assert grouper.due(now=10.49) == []
    assert [e.text for e in grouper.due(now=10.5)] == ["SCRIPT    (E): AUDITMARK NULL pointer"]


def test_the_next_timestamped_line_finishes_an_error_without_waiting() -> None:
    grouper = EntryGrouper(RptParser(), grace=60.0)
    grouper.feed("18:55:01.332 SCRIPT    (E): boom", now=10.0)
    done = grouper.feed("18:55:01.400 next", now=10.01)
    assert [e.text for e in done] == ["SCRIPT    (E): boom"]
    assert [e.text for e in grouper.due(now=10.01)] == ["next"]


def test_an_entry_with_continuation_lines_waits_even_with_an_ordinary_head() -> None:
    grouper = EntryGrouper(RptParser(), grace=0.5)
    grouper.feed("18:30:00.000 Config dump:", now=1.0)
    grouper.feed("  key = value", now=1.0)
    assert grouper.due(now=1.2) == []
    grouper.feed("  other = 2", now=1.3)
    assert [e.text for e in grouper.due(now=1.8)] == ["Config dump:\n  key = value\n  other = 2"]


def test_flush_finishes_a_waiting_entry() -> None:
    grouper = EntryGrouper(RptParser(), grace=60.0)
    grouper.feed("18:55:01.332 SCRIPT    (E): boom", now=1.0)
    assert [e.text for e in grouper.flush()] == ["SCRIPT    (E): boom"]
    assert grouper.deadline is None
