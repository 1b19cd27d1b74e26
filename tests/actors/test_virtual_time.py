from __future__ import annotations

import anyio
import pytest

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
