"""Turning a growing log file into lines: a pure splitter and an async ``FileTail``.

The splitter (:class:`LineSplitter`) is fed raw bytes and returns complete lines. It never
drops anything: blank lines are kept, an unterminated tail stays buffered until its newline (or
``flush``), invalid UTF-8 becomes U+FFFD, and a line longer than ``max_line_bytes`` is cut into
pieces so a flood or a binary file cannot make the buffer grow without bound.

:class:`FileTail` follows one path. It keeps the file descriptor open and tracks
``(device, inode, offset)``:

* truncation (size < offset) restarts from offset 0;
* replacement (the path now names another inode) first reads the old file to its end, then
  opens the new one from offset 0, so lines written just before the swap are not lost;
* ``drain()`` reads the open file to EOF and flushes the partial last line; use it on the old
  file after the process exited (formats.md §1.9 rule 2, §5 item 16).

I/O choice: the "anything new?" check is one ``os.stat`` of the path, done inline because a
stat of a local file costs microseconds and this keeps an idle poll free of thread hops (a
path stat rather than ``fstat`` of the descriptor, because only the path reveals replacement).
The reads themselves run in a worker thread (``anyio.to_thread.run_sync``) with ``os.pread``
at an explicit offset, and the tail's state is only updated on the event-loop side after the
thread returns. So a cancelled read leaves the state untouched and the next call re-reads the
same bytes: nothing is skipped or duplicated. Each ``read_available()`` reads at most
``max_read_bytes``; a larger backlog is returned over several calls.

A ``FileTail`` has one consumer; concurrent calls raise ``anyio.BusyResourceError``.

Known limit: truncation is detected by size only, so a file truncated and then rewritten past
the old offset between two reads looks like growth. DayZ never truncates its logs (a new file
per start), so this only matters for hand-edited files.
"""

from __future__ import annotations

import os
import stat as stat_module
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import anyio
import msgspec

__all__ = [
    "FileTail",
    "LineSplitter",
    "TailStatistics",
    "open_file_tail",
]

# --- defaults -------------------------------------------------------------------------------
DEFAULT_MAX_LINE_BYTES: Final = 64 * 1024
"""Longest line kept whole; longer ones are cut into pieces of at most this many bytes."""
DEFAULT_READ_CHUNK_BYTES: Final = 64 * 1024
"""Size of one ``pread`` call."""
DEFAULT_MAX_READ_BYTES: Final = 4 * 1024 * 1024
"""Most bytes one ``read_available()`` consumes, bounding the lines it returns at once."""
UTF8_BOM: Final = b"\xef\xbb\xbf"
_UTF8_MAX_CONTINUATION: Final = 3
# ---------------------------------------------------------------------------------------------


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


class LineSplitter:
    """Split a byte stream into decoded lines, buffering the unterminated tail.

    Lines end at ``\\n``; trailing ``\\r`` characters are stripped (CRLF files); blank lines are
    kept; a UTF-8 BOM at the very start of the stream is removed. A line longer than
    ``max_line_bytes`` is emitted in pieces, each cut at a UTF-8 character boundary where one
    exists. The cut points depend only on the bytes, so any chunking of the same stream yields
    the same lines.

    Example:
        >>> s = LineSplitter()
        >>> s.feed(b"Line A\\nLine B\\n\\nLine C\\nLine D")
        ['Line A', 'Line B', '', 'Line C']
        >>> s.flush()
        ['Line D']
    """

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        """Create a splitter; ``max_line_bytes`` must be at least 4 (one UTF-8 character)."""
        if max_line_bytes < _UTF8_MAX_CONTINUATION + 1:
            raise ValueError(f"max_line_bytes must be >= 4, got {max_line_bytes}")
        self._max = max_line_bytes
        self._buf = bytearray()
        self._at_start = True
        self.split_lines = 0
        """How many times an over-long line was cut."""

    @property
    def pending_bytes(self) -> int:
        """Bytes buffered for the unterminated last line."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[str]:
        """Add bytes and return every line they complete (possibly none)."""
        if not data:
            return []
        buf = self._buf
        buf += data
        if self._at_start:
            # Wait until we can tell whether the stream starts with a BOM.
            if len(buf) < len(UTF8_BOM) and UTF8_BOM.startswith(buf):
                return []
            if buf.startswith(UTF8_BOM):
                del buf[: len(UTF8_BOM)]
            self._at_start = False
        lines: list[str] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            end = len(buf) if nl < 0 else nl
            # Cut over-long content first, so the result does not depend on where the chunk
            # boundaries fell (the terminated and the buffered case cut at the same points).
            while end - start > self._max:
                cut = self._cut_point(buf, start)
                lines.append(_decode(bytes(buf[start:cut])))
                self.split_lines += 1
                start = cut
            if nl < 0:
                break
            lines.append(_decode(bytes(buf[start:nl]).rstrip(b"\r")))
            start = nl + 1
        del buf[:start]
        return lines

    def flush(self) -> list[str]:
        """Return the buffered unterminated tail as a line, if there is one."""
        if not self._buf:
            return []
        rest = bytes(self._buf).rstrip(b"\r")
        self._buf.clear()
        self._at_start = False
        return [_decode(rest)]

    def _cut_point(self, buf: bytearray, start: int) -> int:
        cut = start + self._max
        # Move back to the first byte of a multi-byte character (continuation bytes are
        # 0b10xxxxxx); give up after 3 steps (invalid UTF-8) and cut at the limit.
        for _ in range(_UTF8_MAX_CONTINUATION):
            if buf[cut] & 0xC0 != 0x80:
                return cut
            cut -= 1
        return cut if buf[cut] & 0xC0 != 0x80 else start + self._max


class TailStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a :class:`FileTail`'s position and counters."""

    path: str
    open: bool
    inode: int | None
    offset: int
    pending_bytes: int
    bytes_read: int
    lines: int
    truncations: int
    replacements: int
    split_lines: int


def _pread_range(fd: int, offset: int, limit: int, chunk: int) -> bytes:
    """Read from ``offset`` until EOF or ``limit`` bytes (worker-thread side; no state)."""
    parts: list[bytes] = []
    total = 0
    while total < limit:
        data = os.pread(fd, min(chunk, limit - total), offset + total)
        if not data:
            break
        parts.append(data)
        total += len(data)
    return b"".join(parts)


class FileTail:
    """Follow one log file by path, returning new complete lines when asked.

    Polling cadence is the caller's business: call :meth:`read_available` whenever you want
    what is new. A path that does not exist yet is not an error; it is opened once it appears.

    Example:
        >>> async def follow(path):                                    # doctest: +SKIP
        ...     async with open_file_tail(path) as tail:
        ...         while True:
        ...             for line in await tail.read_available():
        ...                 print(line)
        ...             await anyio.sleep(0.25)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        from_end: bool = False,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        read_chunk_bytes: int = DEFAULT_READ_CHUNK_BYTES,
        max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
    ) -> None:
        """Prepare to follow ``path``; with ``from_end`` the first open skips existing content."""
        self._path = Path(path)
        self._from_end = from_end
        self._max_line_bytes = max_line_bytes
        self._chunk = read_chunk_bytes
        self._max_read = max_read_bytes
        self._splitter = LineSplitter(max_line_bytes)
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None
        self._offset = 0
        self._opened_once = False
        self._guard = anyio.ResourceGuard("reading from")
        self._bytes_read = 0
        self._lines = 0
        self._truncations = 0
        self._replacements = 0
        self._split_before = 0
        self._out: list[str] = []

    @property
    def path(self) -> Path:
        """The followed path."""
        return self._path

    def statistics(self) -> TailStatistics:
        """Return the current position and counters."""
        return TailStatistics(
            path=str(self._path),
            open=self._fd is not None,
            inode=None if self._ident is None else self._ident[1],
            offset=self._offset,
            pending_bytes=self._splitter.pending_bytes,
            bytes_read=self._bytes_read,
            lines=self._lines,
            truncations=self._truncations,
            replacements=self._replacements,
            split_lines=self._split_before + self._splitter.split_lines,
        )

    async def read_available(self) -> list[str]:
        """Return the complete lines written since the last call (one ``stat`` if none)."""
        with self._guard:
            if self._fd is None and not self._try_open():
                return self._deliver()
            try:
                st: os.stat_result | None = os.stat(self._path)
            except FileNotFoundError:
                st = None  # deleted or mid-rename: keep reading the descriptor we hold
            except OSError:
                return self._deliver()
            if st is not None and (st.st_dev, st.st_ino) != self._ident:
                # Replaced: finish the old file first (its last lines came before the swap).
                await self._read_to_eof()
                self._emit(self._splitter.flush())
                self._close_fd()
                self._replacements += 1
                if self._try_open():
                    await self._read_step(None)
                return self._deliver()
            await self._read_step(None if st is None else st.st_size)
            return self._deliver()

    async def drain(self) -> list[str]:
        """Read the open file to EOF and flush the unterminated last line.

        Use this on the previous incarnation's file once its process has exited. Lines written
        after ``drain`` are still picked up by later calls.
        """
        with self._guard:
            if self._fd is None and not self._try_open():
                return self._deliver()
            await self._read_to_eof()
            self._emit(self._splitter.flush())
            return self._deliver()

    def close(self) -> None:
        """Close the file descriptor; a later read reopens the path from offset 0."""
        self._close_fd()

    # --- internals ---------------------------------------------------------------------------
    # Lines go to self._out as soon as they are split and are handed over only at the end of a
    # public call: if the call is cancelled between two reads, the lines already consumed stay
    # in self._out for the next call instead of being lost with the cancelled frame.

    def _emit(self, lines: list[str]) -> None:
        self._lines += len(lines)
        self._out += lines

    def _deliver(self) -> list[str]:
        out, self._out = self._out, []
        return out

    def _try_open(self) -> bool:
        # O_NONBLOCK: opening a FIFO read-only would otherwise block until a writer appears;
        # it has no effect on regular files.
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(self._path, flags)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            return False
        if not stat_module.S_ISREG(st.st_mode):
            # A FIFO or device would block pread forever; only regular files are followed.
            os.close(fd)
            return False
        self._fd = fd
        self._ident = (st.st_dev, st.st_ino)
        self._offset = st.st_size if (self._from_end and not self._opened_once) else 0
        self._opened_once = True
        self._split_before += self._splitter.split_lines
        self._splitter = LineSplitter(self._max_line_bytes)
        return True

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._ident = None

    async def _read_step(self, size: int | None) -> int:
        """Read up to ``max_read_bytes`` new bytes; return how many were read."""
        fd = self._fd
        assert fd is not None
        if size is None:
            try:
                size = os.fstat(fd).st_size
            except OSError:
                return 0
        if size < self._offset:
            # Truncated in place: whatever was buffered belonged to the old content.
            self._emit(self._splitter.flush())
            self._split_before += self._splitter.split_lines
            self._splitter = LineSplitter(self._max_line_bytes)
            self._truncations += 1
            self._offset = 0
        if size == self._offset:
            return 0
        limit = min(size - self._offset, self._max_read)
        data = await anyio.to_thread.run_sync(_pread_range, fd, self._offset, limit, self._chunk)
        # State changes only after the worker returned (see the module docstring).
        self._offset += len(data)
        self._bytes_read += len(data)
        self._emit(self._splitter.feed(data))
        return len(data)

    async def _read_to_eof(self) -> None:
        # Loop until a step reads nothing: the writer may still be appending while we drain.
        while await self._read_step(None):
            pass


@asynccontextmanager
async def open_file_tail(
    path: str | os.PathLike[str],
    *,
    from_end: bool = False,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> AsyncIterator[FileTail]:
    """Open a :class:`FileTail` on ``path`` and close its descriptor on exit."""
    tail = FileTail(path, from_end=from_end, max_line_bytes=max_line_bytes)
    try:
        yield tail
    finally:
        tail.close()
