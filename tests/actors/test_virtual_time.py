"""Virtual time from `actors.testing.virtual_time_backend`: the fixture in conftest.py runs these
on asyncio (an `AutojumpSelector` loop) and on trio (``MockClock``)."""

from __future__ import annotations

import asyncio
import socket

import anyio
import pytest
from trio.testing import MockClock

from actors.testing import AutojumpSelector, virtual_time_backend

pytestmark = pytest.mark.anyio


async def test_sleep_jumps_virtual_clock() -> None:
    start = anyio.current_time()
    await anyio.sleep(300)
    assert anyio.current_time() - start == pytest.approx(300, abs=0.01)


async def test_timeouts_fire_in_deadline_order() -> None:
    order: list[int] = []

    async def sleeper(n: int) -> None:
        await anyio.sleep(n)
        order.append(n)

    async with anyio.create_task_group() as tg:
        for n in (30, 10, 20):
            tg.start_soon(sleeper, n)
    assert order == [10, 20, 30]


async def test_real_io_is_seen_before_the_clock_jumps() -> None:
    # A datagram already waiting wakes its reader at once: the clock does not skip to the
    # timeout first.
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with left, right:
        left.setblocking(False)
        right.send(b"ping")
        start = anyio.current_time()
        with anyio.fail_after(60):
            await anyio.wait_readable(left)
        assert left.recv(16) == b"ping"
        assert anyio.current_time() == start


# -- the helper itself (plain tests) -----------------------------------------------------------


def test_every_call_gives_a_fresh_clock() -> None:
    first = virtual_time_backend("trio", mock_clock=MockClock)
    second = virtual_time_backend("trio", mock_clock=MockClock)
    assert first[0] == "trio"
    assert first[1]["clock"] is not second[1]["clock"]
    assert first[1]["clock"].autojump_threshold == 0

    name, options = virtual_time_backend("asyncio", selector_event_loop=asyncio.SelectorEventLoop)
    assert name == "asyncio"
    loops = [options["loop_factory"]() for _ in range(2)]
    try:
        assert [loop.time() for loop in loops] == [0.0, 0.0]
        assert isinstance(loops[0]._selector, AutojumpSelector)
        assert loops[0]._selector is not loops[1]._selector
    finally:
        for loop in loops:
            loop.close()


def test_an_hour_on_asyncio_is_virtual() -> None:
    _, options = virtual_time_backend("asyncio", selector_event_loop=asyncio.SelectorEventLoop)

    async def an_hour() -> float:
        start = anyio.current_time()
        await anyio.sleep(3600)
        return anyio.current_time() - start

    assert anyio.run(an_hour, backend="asyncio", backend_options=options) == pytest.approx(3600)


def test_missing_pieces_and_unknown_backends_are_refused() -> None:
    with pytest.raises(TypeError, match="MockClock"):
        virtual_time_backend("trio")
    with pytest.raises(TypeError, match="SelectorEventLoop"):
        virtual_time_backend("asyncio", mock_clock=MockClock)
    with pytest.raises(ValueError, match="curio"):
        virtual_time_backend("curio")
