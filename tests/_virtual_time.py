"""Virtual time for asyncio: the counterpart of trio's ``MockClock(autojump_threshold=0)``.

The event loop's clock is virtual. Whenever the loop would block waiting for its next timer
(no callback is ready and no I/O is pending), the clock jumps straight to that timer instead of
sleeping. A five-minute backoff therefore costs microseconds, and the order of events is exactly
the order their deadlines dictate. Real I/O still works: the selector is polled before any jump.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any


class _AutojumpSelector:
    def __init__(self, loop_time: list[float]) -> None:
        self._real = selectors.DefaultSelector()
        self._now = loop_time

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # nothing scheduled: only I/O or another thread can wake us
            return self._real.select(None)
        self._now[0] += timeout
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` is virtual and jumps to the next timer when idle."""

    def __init__(self) -> None:
        self._virtual_now = [0.0]
        super().__init__(selector=_AutojumpSelector(self._virtual_now))  # type: ignore[arg-type]  # duck-typed selector

    def time(self) -> float:
        return self._virtual_now[0]
