"""A run's files: its command line, its console file, and what its RPT says.

``resolve_argv`` finds the executable (relative to the install dir, or on PATH).
``prepare_console`` names the file a run's stdout and stderr go to, one per start (tailed by the
logs actor): a file, not a pipe, because a server writing into a pipe would die of SIGPIPE with
the Citadel that read it. ``rpt_shows_ready`` reads a run's RPT for ``Player connect enabled``,
for a run adopted while ``starting``. Plain (blocking) file work, no actor state.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from citadel.games.dayz import logfiles
from citadel.games.dayz.rpt import Ready as RptReady
from citadel.games.dayz.rpt import RptParser
from citadel.servers.runtime import RunInfo, ServerRuntime

# --- defaults --------------------------------------------------------------------------------
CONSOLE_DIR: Final = "citadel"
#: An adopted run's RPT is named at most this long before the run's recorded start.
ADOPT_RPT_SLACK: Final = timedelta(seconds=2)
#: How much of an RPT is read for the ready line (it comes early; the file may be huge).
READY_SCAN_BYTES: Final = 16 * 1024 * 1024
# -----------------------------------------------------------------------------------------------


def check_install_dir(runtime: ServerRuntime) -> None:
    """Refuse a start whose ``install_dir`` is not a directory (blocking, one ``stat``).

    Creating the run's console directory would otherwise create the whole mistyped path, and
    the server would crash-loop in an empty tree instead of failing to start.

    Raises:
        FileNotFoundError: ``[Errno 2] install_dir is not a directory: '<path>'``.
    """
    if not runtime.install_dir.is_dir():
        raise FileNotFoundError(
            errno.ENOENT, "install_dir is not a directory", str(runtime.install_dir)
        )


def resolve_argv(runtime: ServerRuntime) -> list[str]:
    """The command line: the executable (relative to install_dir, or on PATH) and its args."""
    executable = runtime.config.executable
    candidate = Path(executable)
    if not candidate.is_absolute():
        local = runtime.install_dir / candidate
        if local.exists() or os.sep in executable:
            candidate = local
        else:
            found = shutil.which(executable)
            candidate = Path(found) if found else local
    return [str(candidate), *runtime.config.args]


def prepare_console(profile: Path, started_wall: float, incarnation: int) -> Path:
    """Create the run's console directory; the path of its console file."""
    # Synchronous like the fork+exec that follows (microseconds; a worker thread would only
    # add a hop, and a window in which the actor's state is between two runs).
    console_dir = profile / CONSOLE_DIR
    console_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(started_wall))
    return console_dir / f"console_{stamp}_{incarnation}.log"


def discard_empty(console: Path) -> None:
    """Delete the console file of a run that could not be spawned, if nothing was written."""
    with contextlib.suppress(OSError):
        if console.stat().st_size == 0:
            console.unlink()


def rpt_shows_ready(run: RunInfo) -> bool:
    """Whether the RPT of ``run`` already says ``Player connect enabled`` (blocking I/O).

    For a run adopted while it was ``starting``: it may have become ready while Citadel was
    down, and the logs actor follows an adopted run from the end of its files. The RPT is the
    newest named at or after the run's start (less `ADOPT_RPT_SLACK`); only its first
    `READY_SCAN_BYTES` are read.
    """
    try:
        start = datetime.fromtimestamp(run.started_at)
    except (OverflowError, OSError, ValueError):
        return False
    found = logfiles.find_current_logs(run.profile_dir, start, slack=ADOPT_RPT_SLACK)
    if found.rpt is None:
        return False
    try:
        with open(Path(run.profile_dir) / found.rpt, "rb") as rpt:
            data = rpt.read(READY_SCAN_BYTES)
    except OSError:
        return False
    parser = RptParser()
    for line in data.decode("utf-8", errors="replace").splitlines():
        if any(isinstance(entry.event, RptReady) for entry in parser.feed(line)):
            return True
    return any(isinstance(entry.event, RptReady) for entry in parser.flush())
