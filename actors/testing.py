"""What tests of actor systems need: report capture, a probe actor, seeded randomness.

Virtual time comes from the backend rather than from this module: run tests on trio with
``MockClock(autojump_threshold=0)`` and on asyncio with an autojumping loop (this project's
``tests/_virtual_time.py``). Everything in the library reads time through anyio, so
``anyio.sleep(300)`` then costs nothing and timeouts fire in deadline order. (This module may
import only anyio, so it cannot ship the backends' clocks itself.)

Example::

    capture = ReportCapture()
    async with open_supervisor(specs, reports=capture.bus) as sup:
        await capture.wait_for(ReportKind.RESTART, offender="worker")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from ._actor import Actor
from ._reports import Report, ReportBus, ReportKind

__all__ = ["Crash", "Probe", "ReportCapture", "SequenceRandom"]


class ReportCapture:
    """Records every report of a bus and lets a test wait for one.

    Args:
        bus: The bus to observe; a new one (``capture.bus``) if omitted.
    """

    def __init__(self, bus: ReportBus | None = None) -> None:
        self.bus = bus if bus is not None else ReportBus()
        self.reports: list[Report] = []
        self._changed = anyio.Event()
        self.bus.subscribe(self._record)

    def _record(self, report: Report) -> None:
        self.reports.append(report)
        self._changed.set()
        self._changed = anyio.Event()

    def of_kind(self, kind: ReportKind, offender: str | None = None) -> list[Report]:
        """Return the reports of ``kind`` (and ``offender``, if given) in order."""
        return [
            r
            for r in self.reports
            if r.kind is kind and (offender is None or r.offender == offender)
        ]

    async def wait_for(
        self, kind: ReportKind, offender: str | None = None, count: int = 1
    ) -> list[Report]:
        """Wait until at least ``count`` reports of ``kind`` (and ``offender``) were made."""
        while len(found := self.of_kind(kind, offender)) < count:
            await self._changed.wait()
        return found


class Crash:
    """A message that makes a `Probe` raise ``error`` (a `RuntimeError` by default)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error if error is not None else RuntimeError("crash requested by a test")


class Probe(Actor[Any]):
    """An actor that records what it receives, replies with ``reply(message)``, and crashes
    on a `Crash` message.

    Several incarnations may share one ``Probe.log`` list (pass the same ``log``) so that a
    test sees messages across restarts.

    Args:
        reply: Computes the reply to each message (default: echo the message).
        log: Where received messages are appended.
        fail_start: If set, `on_start` raises it (a child whose start keeps failing).
        started: Called with the probe once it started (to count incarnations).
    """

    def __init__(
        self,
        reply: Callable[[Any], Any] | None = None,
        *,
        log: list[Any] | None = None,
        fail_start: BaseException | None = None,
        started: Callable[[Probe], None] | None = None,
    ) -> None:
        self.reply = reply
        self.log: list[Any] = log if log is not None else []
        self.fail_start = fail_start
        self._started = started
        self._received = anyio.Event()

    async def on_start(self) -> None:
        if self.fail_start is not None:
            raise self.fail_start
        if self._started is not None:
            self._started(self)

    async def handle(self, message: Any) -> Any:
        if isinstance(message, Crash):
            raise message.error
        self.log.append(message)
        self._received.set()
        self._received = anyio.Event()
        return self.reply(message) if self.reply is not None else message

    async def wait_for_count(self, count: int) -> None:
        """Wait until the log holds at least ``count`` messages."""
        while len(self.log) < count:
            await self._received.wait()


class SequenceRandom:
    """A deterministic stand-in for ``random.random``: returns ``values`` in a cycle."""

    def __init__(self, *values: float) -> None:
        if not values or any(not 0 <= v < 1 for v in values):
            raise ValueError("values must be in [0, 1)")
        self._values = values
        self._next = 0

    def __call__(self) -> float:
        value = self._values[self._next % len(self._values)]
        self._next += 1
        return value
