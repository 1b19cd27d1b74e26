"""Keep an RCon session up: log in, wait for the link to die, back off, log in again."""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from typing import NoReturn

import anyio

from ._client import MessageCallback, RConClient, open_rcon
from ._errors import RConUnreachable
from ._settings import Backoff, RConSettings


def backoff_delay(attempt: int, backoff: Backoff, random: Callable[[], float]) -> float:
    """Return the wait before reconnect ``attempt`` (0-based): capped exponential, with jitter.

    The un-jittered delay is ``min(cap, base * 2**attempt)``; jitter takes away up to the
    ``jitter`` fraction of it, drawn from ``random()`` in [0, 1), so many servers that lost RCon
    at the same moment do not all come back in the same instant.
    """
    exponent = min(attempt, 62)  # keeps 2**attempt a sane float however long the outage
    delay = min(backoff.cap, backoff.base * 2.0**exponent)
    return delay * (1.0 - backoff.jitter * random())


async def run_forever(
    host: str,
    port: int,
    password: str,
    *,
    on_message: MessageCallback | None = None,
    on_connected: Callable[[RConClient], object] | None = None,
    on_disconnected: Callable[[str], object] | None = None,
    settings: RConSettings | None = None,
    backoff: Backoff | None = None,
    random: Callable[[], float] = _random.random,
) -> NoReturn:
    """Hold an RCon session open forever, reconnecting with backoff after each loss.

    ``on_connected(client)`` runs after each successful login (the owner keeps the client to
    send commands); ``on_disconnected(reason)`` runs when that session ends. An unreachable
    server is retried with the same backoff; the backoff restarts after a session that stayed up
    ``backoff.reset_after`` seconds. Callbacks are synchronous and must not block.

    Raises:
        LoginFailed: the password was rejected. Retrying would get the host's IP banned by
            BattlEye, so the owner decides when to try again (e.g. after a config change).
    """
    backoff = Backoff() if backoff is None else backoff
    attempt = 0
    while True:
        started: float | None = None
        try:
            async with open_rcon(
                host, port, password, on_message=on_message, settings=settings
            ) as client:
                started = anyio.current_time()
                if on_connected is not None:
                    on_connected(client)
                reason = await client.wait_disconnected()
        except RConUnreachable:
            pass
        if started is not None:
            if on_disconnected is not None:
                on_disconnected(reason)
            if anyio.current_time() - started >= backoff.reset_after:
                attempt = 0
        await anyio.sleep(backoff_delay(attempt, backoff, random))
        attempt += 1
