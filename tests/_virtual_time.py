"""Virtual time for asyncio: the counterpart of trio's ``MockClock(autojump_threshold=0)``.

The event loop's clock is virtual. Whenever the loop would block waiting for its next timer
(no callback is ready and no I/O is pending), the clock jumps straight to that timer instead of
sleeping. A five-minute backoff therefore costs microseconds, and the order of events is exactly
the order their deadlines dictate. Real I/O still works: the selector is polled before any jump.

The autojumping lives in `actors.testing.AutojumpSelector`; this is the loop class for tests that
subclass it (e.g. to resolve addresses without a thread). `actors.testing.virtual_time_backend`
gives the same clock to an ``anyio_backend`` fixture.
"""

from __future__ import annotations

import asyncio

from actors.testing import AutojumpSelector


class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` is virtual and jumps to the next timer when idle."""

    def __init__(self) -> None:
        self._autojump = AutojumpSelector()
        super().__init__(selector=self._autojump)

    def time(self) -> float:
        return self._autojump.time()
