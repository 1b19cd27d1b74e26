"""The stop ladder: stop a server step by step, every step bounded, and say which step ended it.

``stop_ladder`` chains the pieces: ``graceful()`` (RCON ``#shutdown``) → SIGTERM to the group
(``terminate_group``) → SIGKILL to the group (``kill_group``) → SIGKILL every leftover
descendant (``ensure_no_descendants``, in ``cleanup``). The process actor decides *when*; this
module does the OS work and returns a ``StopOutcome``.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Awaitable, Callable
from typing import Final, Literal

import anyio
import msgspec

from citadel.servers import _posix
from citadel.servers.cleanup import (
    CLEANUP_TIMEOUT,
    ProcessesSurvived,
    ensure_no_descendants,
    remember_tree,
)
from citadel.servers.handles import ExitStatus, ManagedProcess
from citadel.servers.identity import ProcessIdentity

# --- defaults -----------------------------------------------------------------------------------
STOP_TIMEOUT: Final = 60.0  # graceful (#shutdown) -> exit
KILL_TIMEOUT: Final = 10.0  # SIGTERM -> exit, and SIGKILL -> exit
# ------------------------------------------------------------------------------------------------

StopStep = Literal["exited", "graceful", "sigterm", "sigkill"]


class StopOutcome(msgspec.Struct, frozen=True):
    """What ``stop_ladder`` did: the step that ended the process and what had to be cleaned."""

    step: StopStep
    status: ExitStatus | None  # None only if even SIGKILL did not end it within the bound
    killed_descendants: tuple[int, ...] = ()
    survivors: tuple[int, ...] = ()
    graceful_error: str | None = None


def terminate_group(pgid: int) -> bool:
    """Send SIGTERM to process group ``pgid``; ``False`` if the group is empty."""
    return _posix.signal_group(pgid, signal.SIGTERM)


def kill_group(pgid: int) -> bool:
    """Send SIGKILL to process group ``pgid``; ``False`` if the group is empty."""
    return _posix.signal_group(pgid, signal.SIGKILL)


async def stop_ladder(
    process: ManagedProcess,
    *,
    graceful: Callable[[], Awaitable[None]] | None,
    stop_timeout: float = STOP_TIMEOUT,
    kill_timeout: float = KILL_TIMEOUT,
    cleanup_timeout: float = CLEANUP_TIMEOUT,
) -> StopOutcome:
    """Stop a server step by step, each step bounded, and say which step ended it.

    ``graceful()`` (e.g. RCON ``#shutdown``; skipped when ``None``) → wait ``stop_timeout`` →
    SIGTERM to the group → wait ``kill_timeout`` → SIGKILL to the group → wait ``kill_timeout``
    → SIGKILL every leftover descendant (``ensure_no_descendants``). A ``graceful()`` that
    raises ends its step at once (recorded in ``graceful_error``). The tree is snapshotted
    before every signal so descendants that escape the group are still found.
    """
    known: dict[tuple[int, float], ProcessIdentity] = {}
    remember_tree(known, process.identity, process.marker)
    graceful_error: str | None = None
    step: StopStep | None = "exited" if process.exited else None

    if step is None and graceful is not None:
        with anyio.move_on_after(stop_timeout):
            async with anyio.create_task_group() as tg:

                async def ask() -> None:
                    nonlocal graceful_error
                    try:
                        await graceful()
                    except Exception as exc:  # recorded; the ladder goes on to SIGTERM
                        graceful_error = f"{type(exc).__name__}: {exc}"
                        tg.cancel_scope.cancel()

                tg.start_soon(ask)
                await process.wait_exit(math.inf)
                tg.cancel_scope.cancel()
        if process.exited:
            step = "graceful"
    if step is None:
        remember_tree(known, process.identity, process.marker)
        process.send_signal(signal.SIGTERM)
        if await process.wait_exit(kill_timeout):
            step = "sigterm"
    if step is None:
        remember_tree(known, process.identity, process.marker)
        process.send_signal(signal.SIGKILL)
        await process.wait_exit(kill_timeout)
        step = "sigkill"

    survivors: tuple[int, ...] = ()
    try:
        killed = tuple(
            await ensure_no_descendants(
                process.identity,
                process.pgid,
                cleanup_timeout,
                known=known.values(),
                marker=process.marker,
            )
        )
    except ProcessesSurvived as exc:
        killed, survivors = exc.killed, exc.survivors
    return StopOutcome(step, process.status, killed, survivors, graceful_error)
