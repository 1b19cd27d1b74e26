"""What a server's process actor keeps across its own restarts: ``ProcessMemory``.

It lives in ``ServerRuntime.extras``, not in the actor: if the actor crashes, its next
incarnation finds the running game's handle (and re-attaches instead of starting a second
one), the pending restart, the automatic-restart budget and the outbox where the last one left
them. The actor is its only writer. ``release_memory`` lets go of it once the server is gone.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from citadel.messages import ServerStatusEvent
from citadel.servers.handles import ManagedProcess
from citadel.servers.persistence import Outbox


@dataclass
class ProcessMemory:
    """What the process actor keeps across its own restarts (it is the only writer)."""

    process: ManagedProcess | None = None
    incarnation: int = 0
    #: Why the current process is going away, once Citadel decided it should:
    #: "stop", "restart", "hang", "start-timeout", "fatal".
    intent: str | None = None
    intent_detail: str = ""
    stop_requested_by: str | None = None
    auto_restarts: tuple[float, ...] = ()
    attempt: int = -1
    restart_token: int = 0
    restart_at: float | None = None  # anyio time of a pending automatic restart
    restart_count: int = 0
    spawned_at: float = 0.0  # anyio time the current run was spawned or adopted
    ready_at: float | None = None  # anyio time the current run became ready (or was adopted)
    start_deadline: float = 0.0  # anyio time the current run's start timeout expires
    hang_warned: int = 0  # incarnation already warned that no hang evidence exists
    graceful_skipped: str | None = None  # why the running stop ladder has no #shutdown step
    fatal_message: str | None = None
    outbox: Outbox | None = None  # the ordered queue of records, events and notices
    last_event: ServerStatusEvent | None = None


async def release_memory(memory: ProcessMemory) -> None:
    """Let go of what a server's process actors kept across restarts (the server is gone).

    A game process still running here is killed with its whole group: Citadel is exiting or
    the server was removed, and an unattended server would be an orphan.
    """
    process, memory.process = memory.process, None
    if process is not None:
        with anyio.CancelScope(shield=True):
            await process.aclose()  # kills the group first if it still runs
    if memory.outbox is not None:
        memory.outbox.close()
        memory.outbox = None
