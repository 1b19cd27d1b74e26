"""Line splitter (pure) and FileTail (real files): §1.9 rules, bug cases §5.16 and §5.17."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from citadel.games.dayz.tail import FileTail, LineSplitter, open_file_tail

# --- splitter --------------------------------------------------------------------------------


def test_bug_5_17_blank_lines_kept_and_tail_buffered() -> None:
    s = LineSplitter()
    assert s.feed(b"Line A\nLine B\n\nLine C\n") == ["Line A", "Line B", "", "Line C"]
    assert s.feed(b"Line D partial") == []
    assert s.pending_bytes == len(b"Line D partial")
    assert s.feed(b" done\n") == ["Line D partial done"]
    assert s.flush() == []


def test_crlf_bom_and_invalid_utf8() -> None:
    s = LineSplitter()
    assert s.feed(b"\xef\xbb") == []  # could still be a BOM
    assert s.feed(b"\xbfhello\r\nw\xffrld\r\n") == ["hello", "w\ufffdrld"]
    # A BOM later in the stream is content, not a marker.
    assert s.feed(b"\xef\xbb\xbfx\n") == ["\ufeffx"]


def test_bom_prefix_that_is_not_a_bom() -> None:
    s = LineSplitter()
    assert s.feed(b"\xef") == []
    assert s.feed(b"A\n") == ["\ufffdA"]


def test_over_long_line_is_cut_on_character_boundaries() -> None:
    s = LineSplitter(max_line_bytes=8)
    data = "aaaaaaaé€bbb\n".encode()  # é is 2 bytes, € is 3 bytes
    lines = s.feed(data)
    assert "".join(lines) == "aaaaaaaé€bbb"
    assert all(len(line.encode()) <= 8 for line in lines)
    assert "\ufffd" not in "".join(lines)
    assert s.split_lines == len(lines) - 1 >= 1


def test_flood_without_newline_keeps_memory_bounded() -> None:
    s = LineSplitter(max_line_bytes=1024)
    produced = 0
    for _ in range(200):
        produced += len(s.feed(b"x" * 1000))
        assert s.pending_bytes <= 1024
    assert produced == 195
    assert s.flush() == ["x" * (200_000 - 195 * 1024)]


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    parts = draw(
        st.lists(
            st.sampled_from([b"\n", b"\r\n", b"\r", b"\xef\xbb\xbf", "é€".encode(), b"\xff", b"ab"])
            | st.binary(max_size=12),
            max_size=40,
        )
    )
    data = b"".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=10)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return data, chunks


@given(chunked(), st.integers(4, 16))
def test_chunking_does_not_change_lines(sample: tuple[bytes, list[bytes]], max_len: int) -> None:
    data, chunks = sample
    whole = LineSplitter(max_len)
    expected = whole.feed(data) + whole.flush()
    pieces = LineSplitter(max_len)
    got: list[str] = []
    for chunk in chunks:
        got += pieces.feed(chunk)
        assert pieces.pending_bytes <= max_len + len(b"\r")  # bounded by the limit
    got += pieces.flush()
    assert got == expected


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=20)))
def test_text_round_trip(lines: list[str]) -> None:
    s = LineSplitter(max_line_bytes=10_000)
    data = "".join(f"{line}\n" for line in lines).encode("utf-8", errors="surrogatepass")
    if any("\ud800" <= ch <= "\udfff" for line in lines for ch in line):
        return  # lone surrogates are not valid UTF-8; covered by the invalid-bytes tests
    assert s.feed(data) == [
        line.removeprefix("\ufeff") if i == 0 else line for i, line in enumerate(lines)
    ]


# --- FileTail ----------------------------------------------------------------------------------


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The tail only uses anyio, so it must behave the same on both backends."""
    return str(request.param)


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as fh:
        fh.write(data)


@pytest.mark.anyio
async def test_tail_reads_only_new_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.RPT"
    async with open_file_tail(path) as tail:
        assert await tail.read_available() == []  # not created yet
        path.write_bytes(b"\xef\xbb\xbfone\r\ntwo")
        assert await tail.read_available() == ["one"]
        assert await tail.read_available() == []
        append(path, b"\nthree\n")
        assert await tail.read_available() == ["two", "three"]
        stats = tail.statistics()
        assert stats.offset == path.stat().st_size
        assert stats.lines == 3
        assert stats.inode == path.stat().st_ino


@pytest.mark.anyio
async def test_tail_from_end_skips_existing(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(b"old\n")
    async with open_file_tail(path, from_end=True) as tail:
        assert await tail.read_available() == []
        append(path, b"new\n")
        assert await tail.read_available() == ["new"]


@pytest.mark.anyio
async def test_tail_truncation_restarts_from_zero(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(b"aaaa\nbbbb\npartial")
    async with open_file_tail(path) as tail:
        assert await tail.read_available() == ["aaaa", "bbbb"]
        with path.open("r+b") as fh:
            fh.truncate(0)
            fh.write(b"new\n")
        assert await tail.read_available() == ["partial", "new"]
        assert tail.statistics().truncations == 1


@pytest.mark.anyio
async def test_tail_replacement_finishes_old_file_first(tmp_path: Path) -> None:
    path = tmp_path / "DayZServer_x64.ADM"
    path.write_bytes(b"old 1\n")
    async with open_file_tail(path) as tail:
        assert await tail.read_available() == ["old 1"]
        # Writer appends to the old inode, then the file is replaced by a new one.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        replacement = tmp_path / "new.tmp"
        replacement.write_bytes(b"new 1\n")
        os.replace(replacement, path)
        os.write(fd, b"old 2\nold tail")
        os.close(fd)
        assert await tail.read_available() == ["old 2", "old tail", "new 1"]
        assert tail.statistics().replacements == 1


@pytest.mark.anyio
async def test_bug_5_16_drain_old_file_after_new_appeared(tmp_path: Path) -> None:
    old = tmp_path / "DayZServer_x64_2024_05_01_183013457.ADM"
    new = tmp_path / "DayZServer_x64_2024_05_01_190001001.ADM"
    old.write_bytes(b"AdminLog started on 2024-05-01 at 18:30:13\n")
    async with open_file_tail(old) as old_tail, open_file_tail(new) as new_tail:
        assert await old_tail.read_available() == ["AdminLog started on 2024-05-01 at 18:30:13"]
        new.write_bytes(b"******\nAdminLog started on 2024-05-01 at 19:00:01\n")
        last = '18:59:59 | Player "PlayerOne"(id=PLACEHOLDERid1=) has been disconnected'
        append(old, last.encode())  # written after the new file appeared, no newline yet
        assert await old_tail.drain() == [last]
        assert await new_tail.read_available() == [
            "******",
            "AdminLog started on 2024-05-01 at 19:00:01",
        ]


@pytest.mark.anyio
async def test_tail_bounds_binary_flood_and_backlog(tmp_path: Path) -> None:
    path = tmp_path / "flood.log"
    path.write_bytes(os.urandom(1 << 16).replace(b"\n", b"x") + b"\nend\n")
    # A small per-call budget exercises the backlog path (several calls for one file).
    tail = FileTail(path, max_line_bytes=1024, max_read_bytes=4096)
    try:
        lines: list[str] = []
        with anyio.fail_after(5):
            while not lines or lines[-1] != "end":
                lines += await tail.read_available()
        assert all(len(line.encode()) <= 3 * 1024 for line in lines)
        assert tail.statistics().split_lines >= 63
        assert tail.statistics().pending_bytes == 0
    finally:
        tail.close()


@pytest.mark.anyio
async def test_tail_ignores_non_regular_files(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    async with open_file_tail(fifo) as tail:
        # Opening a FIFO read-only would block; the tail must refuse it instead.
        with anyio.fail_after(2):
            assert await tail.read_available() == []


@pytest.mark.anyio
async def test_cancelled_read_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(b"a\nb\n")
    async with open_file_tail(path) as tail:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await tail.read_available()
        assert scope.cancelled_caught
        assert tail.statistics().offset == 0
        assert await tail.read_available() == ["a", "b"]
