"""What a supervisor keeps about each child: the child, its running incarnation, and the
groups of children waiting for a restart.

These are the supervisor's own mutable records; only the supervisor's task touches them. What
it tells others about its children is in ``_supervisor_ref`` (`ChildInfo`, `ChildCounts`).
"""

from __future__ import annotations

from typing import Any

import anyio

from ._actor import Address, Lifecycle
from ._mailbox import Mailbox
from ._spec import STOPPED, ChildSpec, ChildState, ExitKind


class Run:
    """One incarnation of a child, as its supervisor sees it."""

    __slots__ = ("exited", "kind", "lifecycle", "mailbox", "reason", "scope", "started_at")

    def __init__(self, mailbox: Mailbox[Any]) -> None:
        self.mailbox = mailbox
        self.scope = anyio.CancelScope()
        self.exited = anyio.Event()
        self.lifecycle = Lifecycle()
        # How it ended; these defaults stand when it was cancelled after its shutdown timeout.
        self.kind = ExitKind.SHUTDOWN
        self.reason: object = "killed after the shutdown timeout"
        self.started_at = 0.0


class Pending:
    """A group of children waiting for their restart, and the timer that will start them."""

    __slots__ = ("ids", "timer")

    def __init__(self, ids: tuple[str, ...], timer: anyio.CancelScope | None) -> None:
        self.ids = ids
        self.timer = timer  # None: due at once (a retry posted on the control lane)


class Child:
    """A supervisor's record of one child, across its incarnations."""

    __slots__ = (
        "address",
        "attempt",
        "is_supervisor",
        "restarts",
        "run",
        "spec",
        "state",
    )

    def __init__(self, spec: ChildSpec, address: Address[Any]) -> None:
        self.spec = spec
        self.address = address
        self.run: Run | None = None  # the incarnation running, if any
        self.state: ChildState = STOPPED
        self.attempt = -1  # consecutive restarts so far; the first restart is attempt 0
        self.restarts = 0
        self.is_supervisor = False
