"""Log-file discovery: name shapes, the T − 5 s rule, newest by name rather than by mtime."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from citadel.games.dayz.logfiles import (
    CurrentLogs,
    LogFileName,
    find_current_logs,
    parse_log_name,
    select_current,
)

T = datetime(2024, 5, 1, 18, 30, 10)


def test_parse_names() -> None:
    assert parse_log_name("DayZServer_x64_2024-05-01_18-30-12.RPT") == LogFileName(
        name="DayZServer_x64_2024-05-01_18-30-12.RPT",
        kind="rpt",
        stamp=datetime(2024, 5, 1, 18, 30, 12),
    )
    linux = parse_log_name("DayZServer_2024-05-01_18-30-12.RPT")
    assert linux is not None
    assert linux.kind == "rpt"
    adm = parse_log_name("DayZServer_x64_2024_05_01_183013457.ADM")
    assert adm is not None
    assert adm.stamp == datetime(2024, 5, 1, 18, 30, 13, 457000)
    assert parse_log_name("DayZServer_x64.ADM") == LogFileName(
        name="DayZServer_x64.ADM", kind="adm", stamp=None
    )
    script = parse_log_name("script_2024-05-01_18-30-14.log")
    assert script is not None
    assert script.kind == "script"
    crash = parse_log_name("crash_2024-05-01_19-02-33.log")
    assert crash is not None
    assert crash.kind == "crash"
    for bad in ("DayZServer_x64_2024-13-01_18-30-12.RPT", "notes.txt", "script_.log", ""):
        assert parse_log_name(bad) is None


def test_select_newest_by_name_not_mtime() -> None:
    late_mtime = datetime(2030, 1, 1).timestamp()
    files = [
        # An old file touched late must not win.
        ("DayZServer_x64_2024-04-30_10-00-00.RPT", late_mtime),
        ("DayZServer_x64_2024-05-01_18-30-12.RPT", 0.0),
        ("DayZServer_x64_2024-05-01_18-30-06.RPT", 0.0),  # within the 5 s slack, but older
        ("DayZServer_x64_2024_05_01_183013457.ADM", 0.0),
        ("script_2024-05-01_18-30-04.log", 0.0),  # 6 s before T: previous incarnation
        ("crash_2024-05-01_19-02-33.log", 0.0),
        ("crash_2024-05-01_18-00-00.log", 0.0),
        ("random.txt", late_mtime),
    ]
    assert select_current(files, T) == CurrentLogs(
        rpt="DayZServer_x64_2024-05-01_18-30-12.RPT",
        adm="DayZServer_x64_2024_05_01_183013457.ADM",
        script=None,
        crashes=("crash_2024-05-01_19-02-33.log",),
    )


def test_slack_boundary_is_inclusive() -> None:
    files = [("script_2024-05-01_18-30-05.log", 0.0)]
    assert select_current(files, T).script == "script_2024-05-01_18-30-05.log"


def test_legacy_adm_uses_mtime() -> None:
    fresh = [("DayZServer_x64.ADM", datetime(2024, 5, 1, 18, 31).timestamp())]
    stale = [("DayZServer_x64.ADM", datetime(2024, 5, 1, 17, 0).timestamp())]
    assert select_current(fresh, T).adm == "DayZServer_x64.ADM"
    assert select_current(stale, T).adm is None


def test_aware_start_is_converted_to_local_time() -> None:
    aware = T.astimezone(UTC)  # the same instant, expressed in UTC
    files = [("DayZServer_x64_2024-05-01_18-30-12.RPT", 0.0)]
    assert select_current(files, aware).rpt == "DayZServer_x64_2024-05-01_18-30-12.RPT"


def test_find_in_directory(tmp_path: Path) -> None:
    (tmp_path / "DayZServer_2024-05-01_18-30-12.RPT").write_text("x")
    (tmp_path / "script_2024-05-01_18-30-14.log").mkdir()  # a directory is not a log
    old = tmp_path / "DayZServer_2024-04-01_18-30-12.RPT"
    old.write_text("x")
    os.utime(old, (datetime(2030, 1, 1).timestamp(),) * 2)
    assert find_current_logs(tmp_path, T) == CurrentLogs(rpt="DayZServer_2024-05-01_18-30-12.RPT")
    assert find_current_logs(tmp_path / "missing", T) == CurrentLogs()
