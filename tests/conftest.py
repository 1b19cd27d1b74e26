"""Shared test configuration.

Async tests use anyio's pytest plugin. By default they run on asyncio, the backend Citadel runs on
in production. The ``actors`` tests override ``anyio_backend`` (tests/actors/conftest.py) to run
on both asyncio and trio, in virtual time.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
