"""Keep an RCon session up: log in, wait for the link to die, back off, log in again."""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from typing import NoReturn

import anyio

from actors import Backoff, backoff_delay, next_attempt

from ._client import MessageCallback, RConClient, open_rcon
from ._errors import RConUnreachable
from ._settings import (
    RECONNECT_BASE,
    RECONNECT_CAP,
    RECONNECT_JITTER,
    RECONNECT_RESET_AFTER,
    RConSettings,
)


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
    if backoff is None:
        backoff = Backoff(
            base=RECONNECT_BASE,
            cap=RECONNECT_CAP,
            jitter=RECONNECT_JITTER,
            reset_after=RECONNECT_RESET_AFTER,
        )
    attempt = -1
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
        uptime = 0.0
        if started is not None:
            if on_disconnected is not None:
                on_disconnected(reason)
            uptime = anyio.current_time() - started
        attempt = next_attempt(backoff, attempt, uptime)
        await anyio.sleep(backoff_delay(backoff, attempt, random))
