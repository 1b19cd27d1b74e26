"""Restart intensity over a sliding window, as pure functions (OTP's ``add_restart``)."""

from __future__ import annotations

from collections.abc import Sequence


def prune(restarts: Sequence[float], now: float, period: float) -> tuple[float, ...]:
    """Keep the restart timestamps that still fall inside the window ``(now - period, now]``."""
    return tuple(t for t in restarts if now - t < period)


def add_restart(
    restarts: Sequence[float], now: float, intensity: int, period: float
) -> tuple[tuple[float, ...], bool]:
    """Record a restart at ``now``.

    Returns:
        The new window and whether the restart is allowed. It is refused when it would make
        more than ``intensity`` restarts within ``period`` seconds; the supervisor then gives up.
    """
    window = (*prune(restarts, now, period), now)
    return window, len(window) <= intensity
