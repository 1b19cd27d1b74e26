"""Automatic restarts of one server, for the process actor: the budget and the timer.

After a crash the server is restarted after a jittered exponential backoff
(``restart_backoff_base`` doubling to ``restart_backoff_cap``, reset after
``restart_reset_after`` seconds up); more than ``max_restarts_per_hour`` automatic restarts
within an hour and it gives up (`policy.decide_restart` decides; ``RestartPlanner.plan`` applies
it). The timer posts ``RestartDue`` to the actor, which starts the server unless an operator's
stop (``cancel``) came first. Budget, token and due time live in `ProcessMemory`, so a pending
restart survives the actor's crashes.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import msgspec

from citadel.servers.policy import decide_restart, restart_backoff
from citadel.servers.process_memory import ProcessMemory
from citadel.servers.runtime import ServerRuntime


class RestartDue(msgspec.Struct, frozen=True):
    """The automatic restart with this ``token`` is due (stale once the token moved on)."""

    token: int


class RestartPlanner:
    """Plans, schedules and cancels one server's automatic restarts (see the module)."""

    def __init__(
        self,
        runtime: ServerRuntime,
        memory: ProcessMemory,
        *,
        random: Callable[[], float],
        start_soon: Callable[..., None],
        post_control: Callable[[object], None],
    ) -> None:
        self.runtime = runtime
        self.memory = memory
        self._random = random
        self._start_soon = start_soon
        self._post_control = post_control
        cfg = runtime.config
        self.backoff = restart_backoff(
            cfg.restart_backoff_base, cfg.restart_backoff_cap, cfg.restart_reset_after
        )

    def plan(self, uptime: float) -> float | None:
        """Schedule the next automatic restart; its delay, or None when the budget is spent."""
        memory, cfg = self.memory, self.runtime.config
        now = anyio.current_time()
        decision = decide_restart(
            memory.auto_restarts,
            memory.attempt,
            now=now,
            uptime=uptime,
            backoff=self.backoff,
            max_per_hour=cfg.max_restarts_per_hour,
            random=self._random,
        )
        memory.auto_restarts, memory.attempt = decision.window, decision.attempt
        if decision.delay is None:
            return None
        self.schedule_at(now + decision.delay)
        return decision.delay

    def schedule_at(self, at: float) -> None:
        """Post ``RestartDue`` at anyio time ``at`` (kept in memory across restarts)."""
        memory = self.memory
        memory.restart_token += 1
        memory.restart_at = at
        token = memory.restart_token

        async def timer() -> None:
            await anyio.sleep_until(at)
            self._post_control(RestartDue(token))

        self._start_soon(timer)

    def cancel(self) -> None:
        """Forget the pending automatic restart (its timer fires into nothing)."""
        self.memory.restart_token += 1
        self.memory.restart_at = None
