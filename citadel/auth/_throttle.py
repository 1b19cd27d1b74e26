"""Login throttling: pure bookkeeping of failures per IP and per username, time injected.

After ``max_failures`` failures inside ``window`` seconds a key is locked out for ``base``
seconds, doubling with each further lockout up to ``cap``. A lockout streak is forgotten once
a key has been quiet for ``cap`` seconds after its last lockout ended. Success resets the
*username* key only: resetting the IP key would let someone holding one valid account
interleave logins with guesses against others and never be slowed down.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

import msgspec

DEFAULT_MAX_FAILURES: Final = 5
DEFAULT_WINDOW: Final = 300.0
DEFAULT_LOCKOUT_BASE: Final = 60.0
DEFAULT_LOCKOUT_CAP: Final = 3600.0
PRUNE_THRESHOLD: Final = 10_000
"""Above this many tracked keys, idle ones are dropped (bounds memory under a spray)."""
MAX_KEY_LENGTH: Final = 128


@dataclass
class _KeyState:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    lockouts: int = 0
    last_failure: float = 0.0


class ThrottleStatistics(msgspec.Struct, frozen=True):
    """How many keys are tracked and how many are locked out right now."""

    tracked: int
    locked: int


class LoginThrottle:
    """Decides whether a login attempt may proceed, and records its outcome.

    Example:
        >>> throttle = LoginThrottle()
        >>> throttle.retry_after("192.0.2.7", "admin", now=0.0)
        0.0
    """

    def __init__(
        self,
        *,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window: float = DEFAULT_WINDOW,
        lockout_base: float = DEFAULT_LOCKOUT_BASE,
        lockout_cap: float = DEFAULT_LOCKOUT_CAP,
    ) -> None:
        """Create a throttle with the given limits (seconds)."""
        self._max_failures = max_failures
        self._window = window
        self._base = lockout_base
        self._cap = lockout_cap
        self._keys: dict[tuple[str, str], _KeyState] = {}
        self._next_prune = float("-inf")

    @staticmethod
    def _keys_for(ip: str | None, username: str) -> list[tuple[str, str]]:
        keys = [("user", username.casefold()[:MAX_KEY_LENGTH])]
        if ip:
            keys.append(("ip", ip[:MAX_KEY_LENGTH]))
        return keys

    def retry_after(self, ip: str | None, username: str, *, now: float) -> float:
        """Return 0 if an attempt may proceed now, else the seconds until it may."""
        wait = 0.0
        for key in self._keys_for(ip, username):
            state = self._keys.get(key)
            if state is not None and state.locked_until > now:
                wait = max(wait, state.locked_until - now)
        return wait

    def record_failure(self, ip: str | None, username: str, *, now: float) -> None:
        """Count a failed attempt against the IP and the username."""
        if len(self._keys) > PRUNE_THRESHOLD and now >= self._next_prune:
            self._prune(now)
            # A full scan per failure would make a spray quadratic; once a second is plenty.
            self._next_prune = now + 1.0
        for key in self._keys_for(ip, username):
            state = self._keys.setdefault(key, _KeyState())
            if state.lockouts and now - max(state.last_failure, state.locked_until) >= self._cap:
                state.lockouts = 0
            state.last_failure = now
            while state.failures and state.failures[0] <= now - self._window:
                state.failures.popleft()
            state.failures.append(now)
            if len(state.failures) >= self._max_failures:
                lockout = min(self._base * 2**state.lockouts, self._cap)
                state.locked_until = now + lockout
                state.lockouts += 1
                state.failures.clear()

    def record_success(self, ip: str | None, username: str, *, now: float) -> None:
        """Forget the username's failures and lockout streak (the IP's stay; see module doc)."""
        del ip, now  # part of the signature so callers need not know which keys reset
        self._keys.pop(self._keys_for(None, username)[0], None)

    def statistics(self, *, now: float) -> ThrottleStatistics:
        """Return how many keys are tracked and locked at ``now``."""
        locked = sum(1 for s in self._keys.values() if s.locked_until > now)
        return ThrottleStatistics(tracked=len(self._keys), locked=locked)

    def _prune(self, now: float) -> None:
        # Drops unlocked keys quiet for a window; their lockout streak is forgotten, a fair
        # price for memory bounded by the failure rate over one window.
        idle = [
            key
            for key, s in self._keys.items()
            if s.locked_until <= now and now - s.last_failure >= self._window
        ]
        for key in idle:
            del self._keys[key]
