"""BattlEye RCon tests run on asyncio and trio, both in virtual time, over real loopback UDP.

Loopback datagrams are delivered inside ``sendto``, so the virtual clocks (which jump only when
every task is blocked and no socket is ready) never skip over a packet in flight: a 45 s idle
period costs microseconds while the packets themselves are real.

Work in a thread is the exception: the clock cannot see it and would jump past it. asyncio resolves
every address in a worker thread, so the asyncio loop here resolves inline; the tests only use the
numeric address 127.0.0.1, which needs no DNS.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from tests._virtual_time import VirtualTimeEventLoop

from ._fake_server import PASSWORD, FakeBattlEye


class _InlineResolverLoop(VirtualTimeEventLoop):
    # Same call as the base class, resolved without a thread.
    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        return socket.getaddrinfo(host, port, family, type, proto, flags)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    if request.param == "trio":
        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    return ("asyncio", {"loop_factory": _InlineResolverLoop})


@pytest.fixture
async def server() -> AsyncIterator[FakeBattlEye]:
    async with (
        await anyio.create_udp_socket(local_host="127.0.0.1") as socket,
        anyio.create_task_group() as tasks,
    ):
        fake = FakeBattlEye(socket, PASSWORD)
        tasks.start_soon(fake.serve)
        yield fake
        tasks.cancel_scope.cancel()
