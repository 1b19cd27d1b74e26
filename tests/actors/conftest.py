"""Every ``actors`` test runs on asyncio and on trio, both in virtual time.

`actors.testing.virtual_time_backend` gives trio ``MockClock(autojump_threshold=0)`` and asyncio
a selector loop with an autojumping clock. Either way ``anyio.sleep(300)`` returns at once with
the clock 300 s later, so backoff, intensity windows and timeouts are tested without waiting.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from trio.testing import MockClock

from actors.testing import virtual_time_backend


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return virtual_time_backend(
        request.param, selector_event_loop=asyncio.SelectorEventLoop, mock_clock=MockClock
    )
