"""What tests of actor systems need: virtual time, report capture, a probe actor, seeded
randomness.

Virtual time: `virtual_time_backend` gives pytest's ``anyio_backend`` fixture a backend whose
clock jumps to the next deadline whenever every task is blocked - trio's
``MockClock(autojump_threshold=0)``, and on asyncio a selector event loop driven by an
`AutojumpSelector`. Everything in the library reads time through anyio, so ``anyio.sleep(300)``
then costs nothing and timeouts fire in deadline order.

`actors` may import only anyio and the standard library (never asyncio or trio, which keeps it
backend-neutral and is enforced by a lint rule and a test), so the caller hands in the two
backend-specific pieces: asyncio's ``SelectorEventLoop`` class and trio's ``MockClock`` class.
The autojumping itself is written against the standard library's ``selectors`` only.

Example::

    capture = ReportCapture()
    async with open_supervisor(specs, reports=capture.bus) as sup:
        await capture.wait_for(ReportKind.RESTART, offender="worker")
"""

from __future__ import annotations

import selectors
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from ._actor import Actor
from ._reports import Report, ReportBus, ReportKind

__all__ = [
    "AutojumpSelector",
    "Crash",
    "Probe",
    "ReportCapture",
    "SequenceRandom",
    "virtual_time_backend",
]


class AutojumpSelector(selectors.BaseSelector):
    """A selector that turns an asyncio selector event loop's clock virtual.

    asyncio's loop calls ``select(timeout)`` with the time to its next timer. Instead of sleeping,
    this selector polls for I/O and, if nothing is ready, advances its clock (`time`) by
    ``timeout`` - the counterpart of trio's ``MockClock(autojump_threshold=0)``. Real I/O still
    works: sockets are polled before any jump. Work in another thread is invisible to it: the
    clock may jump past it.

    Use it with a loop that reads its time from the selector (`virtual_time_backend` does this)::

        class VirtualTimeLoop(asyncio.SelectorEventLoop):
            def __init__(self) -> None:
                self._autojump = AutojumpSelector()
                super().__init__(selector=self._autojump)

            def time(self) -> float:
                return self._autojump.time()
    """

    def __init__(self) -> None:
        self._real = selectors.DefaultSelector()
        self._now = 0.0

    def time(self) -> float:
        """Return the virtual time, in seconds since the selector was made."""
        return self._now

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # nothing scheduled: only I/O or another thread can wake us
            return self._real.select(None)
        self._now += max(0.0, timeout)
        return []

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


def virtual_time_backend(
    backend: str,
    *,
    selector_event_loop: Callable[..., Any] | None = None,
    mock_clock: Callable[..., Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Return an ``anyio_backend`` value that runs a test on ``backend`` in virtual time.

    Call it once per test (from the fixture), so that every test gets a fresh clock.

    Args:
        backend: ``"asyncio"`` or ``"trio"``.
        selector_event_loop: For asyncio: ``asyncio.SelectorEventLoop`` or a subclass (any loop
            class that takes ``selector=``); its instances get an `AutojumpSelector`.
        mock_clock: For trio: ``trio.testing.MockClock``; it is made with
            ``autojump_threshold=0``.

    Example (a ``conftest.py``; the backend pieces are imported there, by the caller - see
    ``tests/actors/conftest.py``)::

        @pytest.fixture(params=["asyncio", "trio"])
        def anyio_backend(request):
            return virtual_time_backend(
                request.param,
                selector_event_loop=asyncio.SelectorEventLoop,
                mock_clock=trio.testing.MockClock,
            )

    Raises:
        ValueError: An unknown backend.
        TypeError: The backend's piece was not given.
    """
    if backend == "trio":
        if mock_clock is None:
            raise TypeError("virtual time on trio needs mock_clock=trio.testing.MockClock")
        return ("trio", {"clock": mock_clock(autojump_threshold=0)})
    if backend == "asyncio":
        if selector_event_loop is None:
            raise TypeError(
                "virtual time on asyncio needs selector_event_loop=asyncio.SelectorEventLoop"
            )
        loop_class = selector_event_loop

        def new_loop() -> Any:
            selector = AutojumpSelector()
            loop = loop_class(selector=selector)
            loop.time = selector.time  # the loop reads every deadline through time()
            return loop

        return ("asyncio", {"loop_factory": new_loop})
    raise ValueError(f"unknown backend {backend!r}: expected 'asyncio' or 'trio'")


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
    """An actor that records what it receives, replies, and crashes on a `Crash` message.

    It replies with ``reply(message)`` (the message itself by default). Several incarnations
    may share one ``Probe.log`` list (pass the same ``log``) so that a test sees messages across
    restarts.

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
