"""Shared by the actors tests: a virtual-time bound that turns a deadlock into a failure."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

#: Virtual seconds after which a test counts as hung (far beyond any test's own timeline).
VIRTUAL_DEADLINE = 100_000.0


def bounded(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Fail a test that deadlocks: in virtual time the deadline arrives at once."""

    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> None:
        with anyio.fail_after(VIRTUAL_DEADLINE):
            await test(*args, **kwargs)

    return run
