"""What the actors of one game server share, and who writes it.

Each piece of shared state has exactly one writer and lives outside the actors, so a sibling
that is restarted reads the current value at once instead of waiting for the next message:

* `ServerState` - written only by the ``process`` actor: lifecycle status, ``seq``, the
  current run (pid, identity, profile dir), readiness. Siblings *watch* it
  (`ServerState.wait_changed`) to start or stop tailing, connecting, sampling. Its lasting
  part (`LifecycleRecord`: seq, status, readiness, the live run) is persisted by the process
  actor at every transition, so a restarted Citadel continues the ``seq`` and adopts the run.
* `LogFacts` - written only by the ``logs`` actor: last activity (for hang detection), fps,
  players from ``PlayerList`` ADM blocks (map fallback).
* `RconFacts` - written only by the ``rcon`` actor: connection, last answer, player list.
* `History` rings - the recent ``log`` and ``metrics`` events, for REST queries.

`ServerRuntime` bundles them with the server's config and the ways to reach the rest of the
tree (publish to the broadcaster, look up a sibling's stable address).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

import anyio
import msgspec

from actors import Address, Registry
from citadel.config import ServerConfig
from citadel.messages import Event, LogEvent, MetricsEvent, ServerStatus
from citadel.servers.identity import ProcessIdentity

T = TypeVar("T")

LOG_HISTORY: Final = 5000
METRICS_HISTORY: Final = 720  # an hour at the default 5 s interval

#: Names of a server's children; their addresses are registered as ``f"{id}/{name}"``.
PROCESS: Final = "process"
LOGS: Final = "logs"
RCON: Final = "rcon"
METRICS: Final = "metrics"
MAP: Final = "map"


class RunInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One game-process incarnation.

    Attributes:
        incarnation: Counts starts (and adoptions) of this server in this Citadel's life.
        identity: pid, create time and command line of the process.
        started_at: Wall-clock start (Unix seconds; the process's create time).
        profile_dir: Absolute path of the profile directory (logs, battleye/, snapshots).
        console_log: The file the process's stdout and stderr go to (tailed by the logs
            actor; a file, not a pipe, so the server survives a Citadel restart).
        adopted: Whether Citadel adopted it after a restart.
        marker: The run's ``CITADEL_RUN_ID`` (in the environment of every process of the run,
            so cleanup finds descendants that escaped the process group).
    """

    incarnation: int
    identity: ProcessIdentity
    started_at: float
    profile_dir: str
    console_log: str | None = None
    adopted: bool = False
    marker: str | None = None

    @property
    def pid(self) -> int:
        return self.identity.pid


class ServerSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The lifecycle state of a server at one moment (see `ServerState`).

    ``run`` is set from the spawn until the process has exited; ``exited`` becomes true once the
    process of ``run`` is gone (its old files may still be drained). ``ready`` is true once the
    server accepts players (RPT ``Player connect enabled``).
    """

    status: ServerStatus = "stopped"
    seq: int = 0
    run: RunInfo | None = None
    ready: bool = False
    exited: bool = False
    version: int = 0


class LifecycleRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What a restarted Citadel needs to know about a server; persisted at every transition.

    Attributes:
        seq: The ``seq`` of the last published ``serverStatus``.
        status: The status it published.
        ready: Whether the run had become ready (``Player connect enabled``).
        run: The run while its process lives (adopted after a Citadel restart), else None.
        restart_pending: An automatic restart was scheduled (``crashed`` with ``restartIn``).
    """

    seq: int
    status: ServerStatus
    ready: bool = False
    run: RunInfo | None = None
    restart_pending: bool = False


class ServerState:
    """The server's lifecycle state: one writer (the process actor), any number of watchers."""

    def __init__(self) -> None:
        self._current = ServerSnapshot()
        self._changed = anyio.Event()

    @property
    def current(self) -> ServerSnapshot:
        return self._current

    def update(self, **changes: Any) -> ServerSnapshot:
        """Apply ``changes`` (process actor only).

        Every ``status`` given bumps ``seq`` by one, also when it equals the current status
        (``crashed`` again after a failed restart): each published ``serverStatus`` carries a
        new ``seq``. An explicit ``seq`` (restoring a persisted record) is taken as it is.
        """
        current = self._current
        if "status" in changes and "seq" not in changes:
            changes["seq"] = current.seq + 1
        self._current = msgspec.structs.replace(current, version=current.version + 1, **changes)
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        return self._current

    async def wait_changed(self, version: int) -> ServerSnapshot:
        """Return the current snapshot once its version differs from ``version``."""
        while self._current.version == version:
            await self._changed.wait()
        return self._current


@dataclass
class LogFacts:
    """Written by the logs actor."""

    last_activity: float = 0.0  # anyio.current_time() of the newest line from the game
    fps: float | None = None
    adm_players: tuple[Any, ...] = ()  # AdmPlayer records from the last PlayerList block
    adm_players_at: float = 0.0


@dataclass
class RconFacts:
    """Written by the rcon actor."""

    connected: bool = False
    last_answer: float = 0.0  # anyio.current_time() of the last datagram from the server
    players: tuple[Any, ...] = ()  # citadel.messages.Player records of the last poll


class History(Generic[T]):
    """A bounded ring of recent items, oldest first."""

    def __init__(self, size: int) -> None:
        self._items: deque[T] = deque(maxlen=size)

    def append(self, item: T) -> None:
        self._items.append(item)

    def __iter__(self) -> Iterator[T]:
        return iter(tuple(self._items))

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class ServerRuntime:
    """Everything one server's actors share (created by the fleet, outlives their restarts).

    Attributes:
        config: The server's configuration.
        registry: The tree's registry (siblings are ``f"{config.id}/{name}"``).
        publish: Sends an event to the broadcaster (False if it is down).
        install_dir: Absolute working directory of the game process.
    """

    config: ServerConfig
    registry: Registry
    publish: Callable[[Event], Awaitable[bool]]
    state: ServerState = field(default_factory=ServerState)
    logs: LogFacts = field(default_factory=LogFacts)
    rcon: RconFacts = field(default_factory=RconFacts)
    log_history: History[LogEvent] = field(default_factory=lambda: History(LOG_HISTORY))
    metrics_history: History[MetricsEvent] = field(default_factory=lambda: History(METRICS_HISTORY))
    #: Private memory of individual actors that must survive their restarts (one writer each).
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def install_dir(self) -> Path:
        return Path(self.config.install_dir).absolute()

    @property
    def profile_dir(self) -> Path:
        return self.install_dir / self.config.profile_dir

    def child_name(self, name: str) -> str:
        return f"{self.config.id}/{name}"

    def sibling(self, name: str) -> Address[Any] | None:
        """The stable address of one of this server's actors, or None while it is absent."""
        return self.registry.whereis(self.child_name(name))
