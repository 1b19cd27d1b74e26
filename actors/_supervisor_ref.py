"""The client side of a supervisor: what can be asked of it, its answers, and `SupervisorRef`.

Every request is a call on the supervisor's address. A request the supervisor refuses (an
unknown child, ``max_children`` reached, a start that raised) comes back as a `Failure`, which
`SupervisorRef` raises in the caller; the supervisor itself lives on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from ._actor import Address
from ._exceptions import ActorError
from ._spec import ChildSpec, ChildState, Restart


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One row of `SupervisorRef.which_children`."""

    id: str
    address: Address[Any]
    state: ChildState
    restart: Restart
    restarts: int
    supervisor: bool


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """The answer of `SupervisorRef.count_children` (OTP's specs/active/supervisors/workers)."""

    specs: int
    active: int
    supervisors: int
    workers: int


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    """A snapshot of a supervisor."""

    children: int
    running: int
    restarting: int
    #: Groups of children waiting for their restart (each waits on one timer).
    pending_restarts: int
    restarts_in_window: int
    total_restarts: int
    intensity: int
    period: float


# -- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartChild:
    spec: ChildSpec


@dataclass(frozen=True, slots=True)
class TerminateChild:
    id: str


@dataclass(frozen=True, slots=True)
class RestartChild:
    id: str


@dataclass(frozen=True, slots=True)
class DeleteChild:
    id: str


@dataclass(frozen=True, slots=True)
class Query:
    what: Literal["which", "count", "statistics"]


@dataclass(frozen=True, slots=True)
class Failure:
    """A call the supervisor refused; the ref re-raises it (the supervisor itself lives on)."""

    error: ActorError


class SupervisorRef:
    """Talks to a running supervisor through its address (all methods are calls).

    Calls wait without a timeout by default, as OTP's supervisor calls do: terminating a child
    legitimately takes up to its shutdown timeout, and a supervisor always answers.
    """

    def __init__(self, address: Address[Any], timeout: float = math.inf) -> None:
        self.address = address
        self.timeout = timeout

    async def _call(self, message: object) -> Any:
        result = await self.address.call(message, self.timeout)
        if isinstance(result, Failure):
            raise result.error
        return result

    async def start_child(self, spec: ChildSpec) -> Address[Any]:
        """Add and start a child; return its stable address.

        Raises:
            StartFailed: Its start raised (it is not kept).
            TooManyChildren: ``max_children`` reached.
        """
        address: Address[Any] = await self._call(StartChild(spec))
        return address

    async def terminate_child(self, child_id: str) -> None:
        """Stop a child (and cancel a pending restart); its spec is kept (unless dynamic)."""
        await self._call(TerminateChild(child_id))

    async def restart_child(self, child_id: str) -> Address[Any]:
        """Start a stopped child again, or stop and start a running one; resets its backoff."""
        address: Address[Any] = await self._call(RestartChild(child_id))
        return address

    async def delete_child(self, child_id: str) -> None:
        """Forget a stopped child's spec; its address ends for good."""
        await self._call(DeleteChild(child_id))

    async def which_children(self) -> list[ChildInfo]:
        """Return every child in start order."""
        children: list[ChildInfo] = await self._call(Query("which"))
        return children

    async def count_children(self) -> ChildCounts:
        """Return OTP's child counts."""
        counts: ChildCounts = await self._call(Query("count"))
        return counts

    async def statistics(self) -> SupervisorStatistics:
        """Return a snapshot: children, running, restarting, restarts in the window."""
        stats: SupervisorStatistics = await self._call(Query("statistics"))
        return stats
