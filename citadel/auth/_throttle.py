"""Login throttling: pure bookkeeping of failures per IP and per username, time injected.

After ``max_failures`` failures inside ``window`` seconds a key is locked out for ``base``
seconds, doubling with each further lockout up to ``cap``. A lockout streak is forgotten once
a key has been quiet for ``cap`` seconds after its last lockout ended. Success resets the
*username* key only: resetting the IP key would let someone holding one valid account
interleave logins with guesses against others and never be slowed down.

An attempt is *reserved* (``reserve``) before its password is checked and counts against the
budget like a failure until its outcome is recorded. The check takes tens of milliseconds
(scrypt, in a worker thread): without the reservation, concurrent guesses would all pass the
check before the first failure was recorded. With it, at most ``max_failures`` guesses per key
are ever judged in one window, however many arrive at once; the rest are refused at once.
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
IN_FLIGHT_RETRY: Final = 1.0
"""Seconds to wait when the budget is taken by attempts still being checked (they end soon)."""


@dataclass
class _KeyState:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    lockouts: int = 0
    last_failure: float = 0.0
    in_flight: int = 0


class ThrottleStatistics(msgspec.Struct, frozen=True):
    """How many keys are tracked and how many are locked out right now."""

    tracked: int
    locked: int
    in_flight: int


class LoginThrottle:
    """Decides whether a login attempt may proceed, and records its outcome.

    Example:
        >>> throttle = LoginThrottle()
        >>> throttle.reserve("192.0.2.7", "admin", now=0.0)  # 0.0: go ahead, check it
        0.0
        >>> throttle.record_failure("192.0.2.7", "admin", now=0.1)  # it was wrong
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

    def reserve(self, ip: str | None, username: str, *, now: float) -> float:
        """Claim one attempt before its password is checked: 0.0 when claimed, else the wait.

        A claimed attempt counts against the IP's and the username's budget until its outcome
        is recorded: after 0.0, call exactly one of ``record_failure`` or ``record_success``
        with the same ``ip`` and ``username`` (an attempt whose outcome is unknown, e.g. a
        cancelled request, is a failure). The wait is the lockout left, or
        ``IN_FLIGHT_RETRY`` when attempts still being checked fill the budget.
        """
        wait = self.retry_after(ip, username, now=now)
        if wait > 0:
            return wait
        keys = self._keys_for(ip, username)
        for key in keys:
            state = self._keys.get(key)
            if state is not None:
                self._forget_old_failures(state, now)
                if len(state.failures) + state.in_flight >= self._max_failures:
                    return IN_FLIGHT_RETRY
        self._maybe_prune(now)
        for key in keys:
            self._keys.setdefault(key, _KeyState()).in_flight += 1
        return 0.0

    def record_failure(self, ip: str | None, username: str, *, now: float) -> None:
        """Count a failed attempt against the IP and the username (ending its reservation)."""
        self._maybe_prune(now)
        for key in self._keys_for(ip, username):
            state = self._keys.setdefault(key, _KeyState())
            state.in_flight = max(0, state.in_flight - 1)
            if state.lockouts and now - max(state.last_failure, state.locked_until) >= self._cap:
                state.lockouts = 0
            state.last_failure = now
            self._forget_old_failures(state, now)
            state.failures.append(now)
            if len(state.failures) >= self._max_failures:
                lockout = min(self._base * 2**state.lockouts, self._cap)
                state.locked_until = now + lockout
                state.lockouts += 1
                state.failures.clear()

    def record_success(self, ip: str | None, username: str, *, now: float) -> None:
        """End a reservation and forget the username's failures and lockout streak.

        The IP's failures stay (see the module doc).
        """
        del now  # part of the signature so callers need not know which keys reset
        user_key, *ip_keys = self._keys_for(ip, username)
        for key in ip_keys:
            state = self._keys.get(key)
            if state is not None:
                state.in_flight = max(0, state.in_flight - 1)
        user = self._keys.pop(user_key, None)
        if user is not None and user.in_flight > 1:
            # Other attempts on this name are still being checked: keep their reservations.
            self._keys[user_key] = _KeyState(in_flight=user.in_flight - 1)

    def statistics(self, *, now: float) -> ThrottleStatistics:
        """Return how many keys are tracked, locked at ``now`` and being checked."""
        locked = sum(1 for s in self._keys.values() if s.locked_until > now)
        in_flight = sum(s.in_flight for s in self._keys.values())
        return ThrottleStatistics(tracked=len(self._keys), locked=locked, in_flight=in_flight)

    def _forget_old_failures(self, state: _KeyState, now: float) -> None:
        while state.failures and state.failures[0] <= now - self._window:
            state.failures.popleft()

    def _maybe_prune(self, now: float) -> None:
        if len(self._keys) > PRUNE_THRESHOLD and now >= self._next_prune:
            self._prune(now)
            # A full scan per attempt would make a spray quadratic; once a second is plenty.
            self._next_prune = now + 1.0

    def _prune(self, now: float) -> None:
        # Drops unlocked keys quiet for a window with nothing in flight; their lockout streak is
        # forgotten, a fair price for memory bounded by the failure rate over one window.
        idle = [
            key
            for key, s in self._keys.items()
            if s.locked_until <= now and now - s.last_failure >= self._window and not s.in_flight
        ]
        for key in idle:
            del self._keys[key]
