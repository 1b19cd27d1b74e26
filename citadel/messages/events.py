"""The Socket.IO events Citadel pushes to dashboards (DESIGN §3), as frozen msgspec Structs.

Every event is a Struct tagged with its Socket.IO event name in the field ``event`` (not ``type``:
``notification`` has a ``type`` field of its own). Field names are camelCase on the wire.

Absent values follow one rule, so a dashboard author can predict every payload:

* fields the seed contract marks optional with ``?`` (``guid?``, ``position?``, ``heading?``,
  ``error?``, ``preset?``, ``stdout?`` ...) are **omitted** from the JSON when unknown;
* every other field is **always present**; a value that may not exist is an explicit ``null``
  (``serverStatus.restartIn``, ``serverStatus.exitCode``, ``metrics.fps``, ``log.file``,
  ``notification.serverId`` for host-wide notices, ``hookResult.exitCode`` ...).

Example:
    >>> ev = ServerStatusEvent(server_id="alpha", status="running", seq=3,
    ...                        timestamp="2026-12-03T18:56:31.123Z")
    >>> encode_event(ev)[:50]
    b'{"event":"serverStatus","serverId":"alpha","status'
"""

from __future__ import annotations

from typing import Annotated, Final, TypeAlias, get_args

import msgspec

from citadel.messages._common import (
    BackupRestoreStatus,
    BackupType,
    DangerzoneStatus,
    HookPhase,
    LogLevel,
    LogSource,
    ModInstallStatus,
    ModType,
    Percent,
    ServerId,
    ServerStatus,
    Severity,
    UpdateStage,
    UpdateType,
)

NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]


class _Event(msgspec.Struct, frozen=True, kw_only=True, rename="camel", tag_field="event"):
    """Common configuration of every event (tag field, camelCase, keyword-only)."""


# ----------------------------------------------------------------------------- nested records


class Position(msgspec.Struct, frozen=True):
    """A point in world coordinates (metres; DayZ's y is height)."""

    x: float
    y: float
    z: float


class Player(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """One connected player as listed in a ``players`` event.

    ``id`` is opaque and stable while the player stays connected; it is what
    ``/api/servers/{id}/players/{playerId}/kick`` expects. ``ip`` is only sent to clients whose
    role may kick or ban.
    """

    id: str
    name: str
    ping: int
    guid: str | None = None
    steam_id: str | None = None
    slot: int | None = None
    ip: str | None = None
    position: Position | None = None


class MapPlayer(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """A player marker on the live map."""

    id: str
    name: str
    position: Position
    heading: float | None = None


class Vehicle(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """A vehicle marker on the live map (``health`` 0-1 when the map mod reports it)."""

    id: str
    class_name: str
    position: Position
    heading: float | None = None
    health: float | None = None


class Mod(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One mod of a server, in load order."""

    workshop_id: str
    name: str
    enabled: bool
    order: int
    type: ModType


# ----------------------------------------------------------------------------- events


class ServerStatusEvent(_Event, frozen=True, tag="serverStatus"):
    """A server's lifecycle status changed (or the connect snapshot repeats the current one).

    ``seq`` is per server and increases by exactly one per transition, so a client can detect a
    gap; the connect snapshot repeats the current value, and the count carries on across a
    Citadel restart (``docs/events.md`` states the whole contract).
    ``reason`` says what caused the transition (for a stop: which step of the stop ladder ended
    it). ``exitCode``/``signal`` are set when the process exited. ``restartIn`` is the number of
    seconds until an automatic restart, or null when none is pending. All are explicit nulls.
    """

    server_id: ServerId
    status: ServerStatus
    seq: NonNegativeInt
    timestamp: str
    reason: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    restart_in: float | None = None


class PlayersEvent(_Event, frozen=True, tag="players"):
    """The full player list of a server, sent on change and after kicks/bans."""

    server_id: ServerId
    players: list[Player]


class MetricsEvent(_Event, frozen=True, tag="metrics"):
    """A periodic performance sample: ``cpu``/``ram`` in % of the host, ``uptime`` in seconds."""

    server_id: ServerId
    cpu: float
    ram: float
    players: NonNegativeInt
    fps: float | None
    timestamp: str
    ram_bytes: NonNegativeInt
    uptime: float


class LogEvent(_Event, frozen=True, tag="log"):
    """One log entry; ``file`` names the game log file it came from (null for rcon/system).

    ``dropped`` (ours) is 0 on every line read from the server. A client that fell behind
    receives, instead of the lines it lost, one ``log`` with source ``system``, level ``warn``
    and ``dropped`` set to how many lines of that server it lost.
    """

    server_id: ServerId
    level: LogLevel
    source: LogSource
    message: str
    timestamp: str
    file: str | None = None
    dropped: NonNegativeInt = 0


class MapDataEvent(_Event, frozen=True, tag="mapData"):
    """Live positions of players and vehicles of a server."""

    server_id: ServerId
    players: list[MapPlayer]
    vehicles: list[Vehicle]
    timestamp: str


class ModsEvent(_Event, frozen=True, tag="mods"):
    """The mod list of a server, after install, uninstall, toggle or reorder."""

    server_id: ServerId
    mods: list[Mod]


class ModInstallProgressEvent(_Event, frozen=True, tag="modInstallProgress"):
    """Progress (0-100) of a Workshop mod download and install."""

    server_id: ServerId
    workshop_id: str
    progress: Percent
    status: ModInstallStatus
    message: str


class UpdateProgressEvent(_Event, frozen=True, tag="updateProgress"):
    """Progress of the update pipeline; ``countdown`` is seconds left (null outside countdown)."""

    server_id: ServerId
    stage: UpdateStage
    progress: Percent
    message: str
    update_type: UpdateType
    countdown: int | None = None


class BackupCreatedEvent(_Event, frozen=True, tag="backupCreated"):
    """A backup archive was written; ``size`` in bytes."""

    server_id: ServerId
    filename: str
    type: BackupType
    size: NonNegativeInt
    created_at: str


class BackupRestoreEvent(_Event, frozen=True, tag="backupRestore", omit_defaults=True):
    """Progress of a backup restore; ``error`` only on failure."""

    server_id: ServerId
    status: BackupRestoreStatus
    filename: str
    error: str | None = None


class DangerzoneProgressEvent(_Event, frozen=True, tag="dangerzoneProgress", omit_defaults=True):
    """Progress of a wipe / rebuild / reinstall; ``preset`` names the preset when one was used."""

    server_id: ServerId
    status: DangerzoneStatus
    message: str
    preset: str | None = None


class NotificationEvent(_Event, frozen=True, tag="notification"):
    """A notice for humans; ``serverId`` is null for host-wide notices (sent to admins only)."""

    id: int
    server_id: ServerId | None
    type: str
    title: str
    message: str
    severity: Severity
    timestamp: str


class HookResultEvent(_Event, frozen=True, tag="hookResult", omit_defaults=True):
    """A lifecycle hook ran; ``exitCode`` is null when it could not run or was killed."""

    server_id: ServerId
    hook: str
    phase: HookPhase
    exit_code: int | None
    stdout: str | None = None
    error: str | None = None


class ServerRemovedEvent(_Event, frozen=True, tag="serverRemoved"):
    """(Ours) A server was deleted: no event about it follows, and it left the connect snapshot.

    It ends that server's ``serverStatus`` sequence: a server created again under the same id
    starts a new one.
    """

    server_id: ServerId
    timestamp: str


Event: TypeAlias = (
    ServerStatusEvent
    | PlayersEvent
    | MetricsEvent
    | LogEvent
    | MapDataEvent
    | ModsEvent
    | ModInstallProgressEvent
    | UpdateProgressEvent
    | BackupCreatedEvent
    | BackupRestoreEvent
    | DangerzoneProgressEvent
    | NotificationEvent
    | HookResultEvent
    | ServerRemovedEvent
)
"""Every event Citadel emits (a tagged union on the ``event`` field)."""

EVENT_TYPES: Final[tuple[type[_Event], ...]] = get_args(Event)
"""The event Struct classes, in contract order."""

EVENT_NAMES: Final[tuple[str, ...]] = tuple(str(cls.__struct_config__.tag) for cls in EVENT_TYPES)
"""The Socket.IO event names, in contract order."""

_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(Event)


def event_name(event: Event) -> str:
    """Return the Socket.IO event name of an event (its tag)."""
    return str(type(event).__struct_config__.tag)


def encode_event(event: Event) -> bytes:
    """Encode an event to its JSON payload (camelCase, including the ``event`` tag)."""
    return _ENCODER.encode(event)


def decode_event(data: bytes | str) -> Event:
    """Decode and validate a JSON payload into its event Struct (for tests and clients).

    Raises:
        msgspec.DecodeError: Not JSON, or not a valid event (``msgspec.ValidationError``).
    """
    return _DECODER.decode(data)


def event_schema() -> dict[str, object]:
    """Return the JSON Schema of the event union (what ``docs/events.schema.json`` holds)."""
    return msgspec.json.schema(Event)
