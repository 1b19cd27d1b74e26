"""Value sets and small helpers shared by the wire contract and the rest of Citadel."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

import msgspec

SERVER_ID_PATTERN: Final = r"^[a-z0-9-]{1,32}$"
"""What a server id may look like (it appears in paths, file names and event scopes)."""

ServerId = Annotated[str, msgspec.Meta(pattern=SERVER_ID_PATTERN)]
"""A server id, validated on decode."""

Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]
"""A progress or load figure between 0 and 100."""

ServerStatus = Literal["starting", "running", "stopping", "stopped", "crashed"]
LogLevel = Literal["debug", "info", "warn", "error"]
LogSource = Literal["rpt", "rcon", "system"]
ModType = Literal["client", "server"]
ModInstallStatus = Literal["queued", "downloading", "installing", "complete", "error"]
UpdateStage = Literal[
    "countdown", "stopping", "updating", "starting", "complete", "error", "cancelled"
]
UpdateType = Literal["server", "mods"]
BackupType = Literal["manual", "scheduled", "pre-update", "pre-restore", "pre-wipe"]
BackupRestoreStatus = Literal["starting", "complete", "error"]
DangerzoneStatus = Literal[
    "starting", "stopping", "backing-up", "wiping", "reinstalling", "complete", "error"
]
Severity = Literal["info", "success", "warning", "error"]
HookPhase = Literal[
    "pre-start", "post-start", "pre-stop", "post-stop", "crash", "pre-update", "post-update"
]


def utc_timestamp(now: float | None = None) -> str:
    """Format a Unix time as ISO-8601 UTC with milliseconds and a trailing ``Z``.

    Args:
        now: Seconds since the epoch; the current time when omitted.

    Returns:
        A string such as ``2026-12-03T18:56:31.123Z`` (milliseconds truncated, not rounded, so
        a timestamp never lies about being later than the instant it names).
    """
    if now is None:
        now = time.time()
    moment = datetime.fromtimestamp(now, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
