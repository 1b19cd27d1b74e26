"""Backend-neutral actors with OTP-style supervision, built on anyio.

An `Actor` handles one message at a time from a bounded mailbox (`MailboxPolicy`, `Overflow`).
Others reach it through its stable `Address` with ``cast`` (tell) and ``call`` (ask, with a
timeout). A `Supervisor` starts children from `ChildSpec`s, restarts them by `Strategy` and
`Restart` type, waits a `Backoff` delay between restarts, and gives up past its restart
intensity. Everything that goes wrong is a `Report` on a `ReportBus`. `actors.testing` has
what tests need. The pure decisions - `backoff_delay`, `next_attempt`, `add_restart` - are
public too, for applications with restart policies of their own.

The library imports only anyio; it runs on asyncio and on trio.
"""

from ._actor import Actor, Address, open_actor
from ._backoff import Backoff, backoff_delay, next_attempt
from ._exceptions import (
    ActorError,
    ActorExited,
    ActorKilled,
    CallTimeout,
    MailboxFull,
    NameTaken,
    RestartIntensityExceeded,
    StartFailed,
    TooManyChildren,
    UnknownChild,
)
from ._intensity import add_restart
from ._mailbox import MailboxPolicy, MailboxStatistics, Overflow
from ._registry import Registry
from ._reports import Report, ReportBus, ReportKind
from ._spec import ChildSpec, ExitKind, Restart, Strategy
from ._supervisor import DynamicSupervisor, Supervisor, open_supervisor
from ._supervisor_ref import ChildCounts, ChildInfo, SupervisorRef, SupervisorStatistics

__all__ = [
    "Actor",
    "ActorError",
    "ActorExited",
    "ActorKilled",
    "Address",
    "Backoff",
    "CallTimeout",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "DynamicSupervisor",
    "ExitKind",
    "MailboxFull",
    "MailboxPolicy",
    "MailboxStatistics",
    "NameTaken",
    "Overflow",
    "Registry",
    "Report",
    "ReportBus",
    "ReportKind",
    "Restart",
    "RestartIntensityExceeded",
    "StartFailed",
    "Strategy",
    "Supervisor",
    "SupervisorRef",
    "SupervisorStatistics",
    "TooManyChildren",
    "UnknownChild",
    "add_restart",
    "backoff_delay",
    "next_attempt",
    "open_actor",
    "open_supervisor",
]
