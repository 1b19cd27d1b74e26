"""Pure tests: line splitting and exit status translation (no event loop, no processes)."""

from __future__ import annotations

import os

import pytest

from citadel.servers import _posix
from citadel.servers.handles import ExitStatus
from citadel.servers.output import LineSplitter, OutputLine


def test_lines_split_on_newline_and_strip_carriage_return() -> None:
    splitter = LineSplitter("stdout")
    assert splitter.feed(b"one\r\ntw") == [OutputLine("stdout", "one")]
    assert splitter.feed(b"o\n\nthree") == [OutputLine("stdout", "two"), OutputLine("stdout", "")]
    assert splitter.finish() == [OutputLine("stdout", "three")]
    assert splitter.finish() == []


def test_invalid_utf8_is_replaced_not_raised() -> None:
    splitter = LineSplitter("stderr")
    # A multi-byte character split across chunks is still decoded whole.
    lines = splitter.feed(b"caf\xc3") + splitter.feed(b"\xa9 \xff\xfe\n")
    assert lines == [OutputLine("stderr", "café \ufffd\ufffd")]


def test_overlong_line_is_cut_flagged_and_the_rest_discarded() -> None:
    splitter = LineSplitter("stdout", max_line_bytes=4)
    assert splitter.feed(b"abcdefg") == [OutputLine("stdout", "abcd", truncated=True)]
    assert splitter.feed(b"hij") == []  # still the same overlong line: discarded
    assert splitter.feed(b"k\nok\n") == [OutputLine("stdout", "ok")]
    assert splitter.feed(b"abcdefgh\nxy") == [OutputLine("stdout", "abcd", truncated=True)]
    assert splitter.finish() == [OutputLine("stdout", "xy")]


def test_overlong_tail_at_eof_is_not_emitted_twice() -> None:
    splitter = LineSplitter("stdout", max_line_bytes=2)
    assert splitter.feed(b"abc") == [OutputLine("stdout", "ab", truncated=True)]
    assert splitter.finish() == []


def test_line_of_exactly_the_bound_is_whole() -> None:
    splitter = LineSplitter("stdout", max_line_bytes=3)
    assert splitter.feed(b"abc\n") == [OutputLine("stdout", "abc")]


def test_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LineSplitter("stdout", max_line_bytes=0)


@pytest.mark.parametrize(
    ("returncode", "expected"),
    [
        (0, ExitStatus(0, None)),
        (3, ExitStatus(3, None)),
        (-9, ExitStatus(None, "SIGKILL")),
        (-15, ExitStatus(None, "SIGTERM")),
        (-200, ExitStatus(None, "SIG200")),
    ],
)
def test_exit_status_from_returncode(returncode: int, expected: ExitStatus) -> None:
    assert ExitStatus.from_returncode(returncode) == expected


def test_stat_line_parsing_survives_odd_command_names() -> None:
    assert _posix._parse_stat(b"42 (a b) c)) S 7 42 42 0") == _posix.StatEntry(
        ppid=7, pgrp=42, session=42
    )
    assert _posix._parse_stat(b"garbage") is None
    assert _posix._parse_stat(b"42 (x) S") is None
    assert _posix._parse_stat(b"42 (x) S nope 1") is None


@pytest.mark.parametrize("pgid", [-5, 0, 1])
def test_group_signal_refuses_init_and_everything(pgid: int) -> None:
    with pytest.raises(ValueError, match="refusing"):
        _posix.signal_group(pgid, 0)


def test_group_signal_refuses_own_group() -> None:
    with pytest.raises(ValueError, match="own process group"):
        _posix.signal_group(os.getpgrp(), 0)
