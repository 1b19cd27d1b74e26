"""Every ``actors`` test runs on asyncio and on trio, both in virtual time.

trio gets ``MockClock(autojump_threshold=0)``; asyncio gets the equivalent autojumping loop from
``tests/_virtual_time.py``. Either way ``anyio.sleep(300)`` returns at once with the clock 300 s
later, so backoff, intensity windows and timeouts are tested without waiting.
"""

from __future__ import annotations

from typing import Any

import pytest
from trio.testing import MockClock

from tests._virtual_time import VirtualTimeEventLoop


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    if request.param == "trio":
        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    return ("asyncio", {"loop_factory": VirtualTimeEventLoop})
