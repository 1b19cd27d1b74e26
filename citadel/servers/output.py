"""Console output of a server process: bytes from a pipe become bounded, tagged lines.

``LineSplitter`` is pure: bytes in, ``OutputLine``s out (stdout or stderr, ``\r`` stripped,
UTF-8 with replacement characters), memory bounded whatever the input. ``Pump`` reads one
non-blocking pipe through a splitter and keeps its state in itself, so a read cancelled
half-way loses nothing. ``GameProcess`` (in ``handles``) drives the pumps and counts the lines
(``OutputStatistics``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final, Literal

import anyio
import anyio.lowlevel
import msgspec

# --- defaults -----------------------------------------------------------------------------------
READ_CHUNK_BYTES: Final = 64 * 1024
MAX_LINE_BYTES: Final = 16 * 1024  # longer lines are cut and flagged ``truncated``
# ------------------------------------------------------------------------------------------------

Stream = Literal["stdout", "stderr"]
LineCallback = Callable[["OutputLine"], object]


class OutputLine(msgspec.Struct, frozen=True):
    """One line of a server's console output, without its line ending."""

    stream: Stream
    text: str
    truncated: bool = False


class OutputStatistics(msgspec.Struct, frozen=True):
    """Counters of a ``GameProcess``'s console output."""

    stdout_lines: int
    stderr_lines: int
    truncated_lines: int
    complete: bool  # both pipes reached EOF (False if a descendant held them past the drain)


# --- output splitting (pure) --------------------------------------------------------------------


class LineSplitter:
    """Split one byte stream into ``OutputLine``s: ``\\n``-separated, ``\\r`` stripped, bounded.

    UTF-8 is decoded with replacement characters, so garbage never raises. A line longer than
    ``max_line_bytes`` is emitted cut (``truncated=True``) as soon as the bound is reached, and
    the rest of it, up to its newline, is discarded: memory stays bounded whatever the input.
    """

    def __init__(self, stream: Stream, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self._stream: Stream = stream
        self._max = max_line_bytes
        self._buffer = bytearray()
        self._discarding = False

    def _line(self, data: bytes, *, truncated: bool) -> OutputLine:
        if not truncated:
            data = data.rstrip(b"\r")
        return OutputLine(self._stream, data.decode("utf-8", errors="replace"), truncated)

    def feed(self, data: bytes) -> list[OutputLine]:
        """Consume a chunk; return the lines it completed."""
        lines: list[OutputLine] = []
        start = 0
        while (newline := data.find(b"\n", start)) >= 0:
            piece = data[start:newline]
            start = newline + 1
            if self._discarding:
                self._discarding = False  # the overlong line ends here; its cut head was sent
                continue
            self._buffer += piece
            too_long = len(self._buffer) > self._max
            lines.append(self._line(bytes(self._buffer[: self._max]), truncated=too_long))
            self._buffer.clear()
        if not self._discarding:
            self._buffer += data[start:]
            if len(self._buffer) > self._max:
                lines.append(self._line(bytes(self._buffer[: self._max]), truncated=True))
                self._buffer.clear()
                self._discarding = True
        return lines

    def finish(self) -> list[OutputLine]:
        """Flush at EOF: a last line without a newline is still a line."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        discarding, self._discarding = self._discarding, False
        if not rest or discarding:
            return []
        return [self._line(rest, truncated=False)]


class Pump:
    """Reads one non-blocking pipe into lines; resumable after cancellation (state lives here)."""

    def __init__(self, fd: int, splitter: LineSplitter) -> None:
        self.fd = fd
        self.splitter = splitter
        self.eof = False

    async def run(self, deliver: Callable[[OutputLine], None]) -> None:
        while not self.eof:
            try:
                data = os.read(self.fd, READ_CHUNK_BYTES)
            except BlockingIOError:
                await anyio.wait_readable(self.fd)
                continue
            if not data:
                for line in self.splitter.finish():
                    deliver(line)
                self.eof = True
                return
            for line in self.splitter.feed(data):
                deliver(line)
            # A fast writer keeps the pipe readable; yield so one server cannot starve the loop.
            await anyio.lowlevel.checkpoint()
