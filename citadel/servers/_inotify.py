"""Linux inotify through ctypes: wake a tailer when a watched directory's files change.

The logs actor would otherwise poll: fast polling costs CPU on 100 idle servers, slow polling
delays the first line after a quiet spell. A directory watch costs nothing while nothing is
written and wakes the reader within microseconds of a write. Where inotify is unavailable (not
Linux, or the per-user watch limit is reached) `DirectoryWatch.open` returns ``None`` and the
caller keeps polling.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from pathlib import Path
from typing import Final

import anyio

IN_MODIFY: Final = 0x002
IN_ATTRIB: Final = 0x004
IN_CLOSE_WRITE: Final = 0x008
IN_MOVED_TO: Final = 0x080
IN_CREATE: Final = 0x100
MASK: Final = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
READ_BYTES: Final = 64 * 1024


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC: Final = _libc()


class DirectoryWatch:
    """An inotify instance watching some directories for writes, creations and renames."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._watched: set[Path] = set()

    @classmethod
    def open(cls) -> DirectoryWatch | None:
        """A new watch, or ``None`` where inotify is not available."""
        if _LIBC is None:
            return None
        fd = _LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return None
        return cls(fd)

    def add(self, directory: Path) -> bool:
        """Watch ``directory`` (idempotent); False if it cannot be watched (then poll it)."""
        if directory in self._watched:
            return True
        assert _LIBC is not None
        wd = _LIBC.inotify_add_watch(self._fd, os.fsencode(directory), MASK)
        if wd < 0:
            return False
        self._watched.add(directory)
        return True

    async def wait(self) -> None:
        """Wait until something changed in a watched directory, then discard the events."""
        await anyio.wait_readable(self._fd)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fd, READ_BYTES):
                pass

    def close(self) -> None:
        if self._fd >= 0:
            anyio.notify_closing(self._fd)  # wake (and fail) a task still waiting on it
            os.close(self._fd)
            self._fd = -1
