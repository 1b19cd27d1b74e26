"""Capped exponential backoff with jitter, as a pure function.

The delay before restart attempt ``n`` (0-based) is::

    min(cap, base * factor ** n * (1 + jitter * r)),   r uniform in [0, 1)

Jitter only ever lengthens the delay, so the first restart is never earlier than ``base`` and
restarts of many children spread out instead of stampeding; the cap applies after the jitter, so
``cap`` is the longest an operator ever waits (Akka's ``BackoffSupervisor`` jitters after the cap
and can overshoot it by ``jitter``). Once the exponential part reaches the cap, the jitter has no
room left: delays at the cap are the cap. An attempt counter resets once a child has stayed up for
``reset_after`` seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import _defaults


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long a supervisor waits before restarting a crashed child.

    Attributes:
        base: Delay before the first restart, in seconds. ``0`` restarts immediately (OTP).
        cap: The longest delay, jitter included.
        factor: Growth per consecutive attempt.
        jitter: Random extra fraction of the delay, in ``[0, jitter)``.
        reset_after: Uptime after which the attempt counter starts again at zero.
    """

    base: float = _defaults.BACKOFF_BASE
    cap: float = _defaults.BACKOFF_CAP
    factor: float = _defaults.BACKOFF_FACTOR
    jitter: float = _defaults.BACKOFF_JITTER
    reset_after: float = _defaults.BACKOFF_RESET_AFTER

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or self.jitter < 0 or self.reset_after < 0:
            raise ValueError("backoff times and jitter must not be negative")
        if self.factor < 1:
            raise ValueError("backoff factor must be at least 1")

    @classmethod
    def none(cls) -> Backoff:
        """Restart at once, as OTP does."""
        return cls(base=0.0, cap=0.0, jitter=0.0)


def backoff_delay(backoff: Backoff, attempt: int, random: Callable[[], float]) -> float:
    """Return the delay before restart ``attempt`` (0 for the first restart after a crash)."""
    if backoff.base == 0:
        return 0.0
    # Cap the exponent first: factor ** attempt overflows a float long before it matters.
    exponential = backoff.cap
    if attempt < 64:
        try:
            exponential = min(backoff.cap, backoff.base * backoff.factor**attempt)
        except OverflowError:  # a large factor overflows even below 64 attempts
            exponential = backoff.cap
    # The cap bounds the jittered delay: an operator reads "cap" as the longest wait.
    return min(backoff.cap, exponential * (1.0 + backoff.jitter * random()))


def next_attempt(backoff: Backoff, previous_attempt: int, uptime: float) -> int:
    """Return the attempt number for a crash after ``uptime`` seconds of running.

    A child that stayed up at least ``reset_after`` seconds starts over at attempt 0.
    """
    if uptime >= backoff.reset_after:
        return 0
    return previous_attempt + 1
