"""One client's outbox: lag that shows only as a writer waiting on a paused transport."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
import pytest

from citadel.realtime import Frame, QueueLimits, drop_notice
from citadel.realtime._transport import Counters, Outbox

pytestmark = pytest.mark.anyio


async def test_a_writer_waiting_on_a_paused_transport_is_lag_even_with_nothing_queued() -> None:
    hopeless: list[Outbox] = []
    lagging: list[None] = []
    counters = Counters()
    outbox = Outbox(
        QueueLimits(max_lag=5.0),
        drop_notice,
        counters,
        hopeless.append,
        on_lagging=lambda: lagging.append(None),
    )
    entered, never = asyncio.Event(), asyncio.Event()

    async def paused_send(message: Any) -> None:  # an ASGI send whose transport never drains
        entered.set()
        await never.wait()

    outbox.attach(paused_send, None)
    writer = asyncio.ensure_future(outbox.run_writer())
    try:
        outbox.enqueue(Frame("serverStatus", "a", b"{}"))
        with anyio.fail_after(5):
            await entered.wait()
        now = time.monotonic()
        assert len(outbox.events) == 0  # taken by the writer: the queue alone shows no lag
        assert lagging  # the engine was asked to sweep
        assert outbox.check_lag(now) is True
        assert hopeless == []
        assert outbox.check_lag(now + 5.5) is False
        assert hopeless == [outbox]
        assert counters.lag_disconnects == 1
    finally:
        writer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writer
