"""One Citadel per data dir: an exclusive ``flock`` on ``<data-dir>/citadel.lock``.

Two Citadels on one data dir would both adopt the same game servers, each take the other's
stop for a crash and restart it, and start second copies on the same ports. The lock is held
for the life of ``citadel serve`` and released by the kernel when the process ends, however it
ends, so a Citadel killed with SIGKILL never blocks the next start (which then adopts the
servers). The file holds the holder's pid, for the error message only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

__all__ = ["LOCK_FILE", "DataDirInUse", "data_dir_lock"]

LOCK_FILE: Final = "citadel.lock"


class DataDirInUse(OSError):
    """Another live process holds the data dir's lock."""


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold the data dir's lock for the block.

    Raises:
        DataDirInUse: another Citadel runs on this data dir (its pid in the message).
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise DataDirInUse(
                f"{data_dir} is in use by another Citadel (pid {holder}); stop it first, "
                "or give this one its own --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
