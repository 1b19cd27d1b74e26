"""Simulated failures: crash (exit code, signal or abort) and freeze (hang)."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Final, NoReturn

from dayzsim._config import Controls
from dayzsim._files import LogFiles, write_crash_log

FREEZE_NAP: Final = 3600.0
SIGNAL_GRACE: Final = 1.0  # seconds to wait for a self-sent signal before exiting by hand


def crash_signal(arg: str) -> signal.Signals:
    """Resolve ``SEGV``, ``SIGSEGV``, ``segv`` or ``11`` to a signal; unknown names give SEGV."""
    text = arg.strip().upper()
    if text.isdigit():
        try:
            return signal.Signals(int(text))
        except ValueError:
            return signal.SIGSEGV
    name = text if text.startswith("SIG") else f"SIG{text}"
    try:
        return signal.Signals[name]
    except KeyError:
        return signal.SIGSEGV


def crash_exit_code(arg: str) -> int:
    """The exit status for ``exit:<n>`` (any non-number gives 3)."""
    try:
        return int(arg) & 0xFF
    except ValueError:
        return 3


def crash(controls: Controls, logs: LogFiles, profile: Path) -> NoReturn:
    """Die the configured way after writing the crash evidence a real server leaves."""
    reason = f"simulated crash ({controls.crash_mode}:{controls.crash_arg})"
    logs.rpt("ENGINE    (F): Crashed", reason)
    logs.close()
    write_crash_log(profile, reason)
    print(f"dayz-sim: {reason}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    # A crash must not litter the install dir with core files.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if controls.crash_mode == "abort":
        os.abort()
    if controls.crash_mode == "signal":
        sig = crash_signal(controls.crash_arg)
        with contextlib.suppress(OSError, ValueError):  # SIGKILL/SIGSTOP cannot be handled
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        time.sleep(SIGNAL_GRACE)  # the signal is normally delivered before this returns
        os._exit(128 + sig)
    os._exit(crash_exit_code(controls.crash_arg))


def freeze() -> NoReturn:
    """Block the whole process: no logs, no RCON, no signal handling; only SIGKILL ends it.

    Deliberately a blocking call on the event-loop thread: a frozen game server does not run
    its loop either, and asyncio's SIGTERM handler only runs inside the loop.
    """
    while True:
        time.sleep(FREEZE_NAP)
