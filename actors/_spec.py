"""Child specifications: what a supervisor starts, the states a child is in, and how its
supervisor treats the child's exits."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from . import _defaults

if TYPE_CHECKING:
    from ._actor import Actor

ChildState = Literal["running", "restarting", "stopped"]

RUNNING: Final = "running"
RESTARTING: Final = "restarting"
STOPPED: Final = "stopped"


class Restart(enum.Enum):
    """When a child is restarted (OTP's restart types)."""

    #: Always restarted, whatever the exit.
    PERMANENT = "permanent"
    #: Restarted only after an abnormal exit (an error), not after a normal stop.
    TRANSIENT = "transient"
    #: Never restarted; removed from the supervisor when it exits.
    TEMPORARY = "temporary"


class Strategy(enum.Enum):
    """Which siblings restart with a crashed child (OTP's strategies)."""

    #: Only the crashed child.
    ONE_FOR_ONE = "one_for_one"
    #: Every child: the others are stopped (in reverse order) and all restart in order.
    ONE_FOR_ALL = "one_for_all"
    #: The crashed child and every child started after it.
    REST_FOR_ONE = "rest_for_one"


class ExitKind(enum.Enum):
    """How an incarnation of a child ended."""

    #: It stopped by itself (``Actor.stop()``).
    NORMAL = "normal"
    #: Its supervisor asked it to stop and it did, in time or after cancellation. An actor
    #: cannot end itself with this kind (OTP's ``exit(shutdown)``); that exit is `NORMAL`.
    SHUTDOWN = "shutdown"
    #: It raised, or its start raised.
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start one child and what to do when it exits.

    Example::

        ChildSpec("metrics", start=lambda: MetricsSampler(server), restart=Restart.PERMANENT)

    Attributes:
        id: Unique among the supervisor's children.
        start: Returns a fresh actor (an `Actor`, or a `Supervisor` for a subtree) for each
            incarnation. It must not block; slow initialisation belongs in ``Actor.on_start``.
        restart: `Restart.PERMANENT`, `TRANSIENT` or `TEMPORARY`.
        shutdown: Seconds the child gets to stop before it is cancelled.
        name: Registers the child's stable address under this name in the supervisor's
            registry, for as long as the child exists.
    """

    id: str
    start: Callable[[], Actor[Any]]
    restart: Restart = Restart.PERMANENT
    shutdown: float = _defaults.SHUTDOWN_TIMEOUT
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a child spec needs a non-empty id")
        if self.shutdown < 0:
            raise ValueError("shutdown timeout must not be negative")


def should_restart(restart: Restart, exit_kind: ExitKind) -> bool:
    """Decide whether an exit of this kind restarts a child of this restart type."""
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return exit_kind is ExitKind.ERROR
    return False


def removed_when_stopped(restart: Restart, dynamic: bool) -> bool:
    """Decide whether a child that ended for good is removed from its supervisor.

    Temporary children are, and every child of a `DynamicSupervisor` (OTP deletes the child of a
    ``simple_one_for_one`` supervisor); the others keep their spec for `restart_child`.
    """
    return restart is Restart.TEMPORARY or dynamic
