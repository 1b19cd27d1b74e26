"""The ``map`` actor of one game server: player and vehicle positions as ``mapData`` events.

Sources, best first:

1. ``<run.profile_dir>/citadel/positions.json``, the snapshot a map mod (or the simulator)
   replaces atomically every few seconds (docs/simulator.md): players and vehicles with
   engine-order coordinates (``x`` east, ``y`` altitude, ``z`` north), ``heading``, ``health``.
   A file older than the run (``mtime`` before ``run.started_at`` − 1 s) is a previous run's
   leftover and is ignored.
2. Without a (current) snapshot file: the last ADM ``PlayerList`` block the logs actor put in
   ``runtime.logs.adm_players`` (``pos=<x, z, alt>`` → ``Position(x, y=alt, z)``; no vehicles).

Player ids: a map player carries the id of the same player in the ``players`` list (the rcon
actor's ``runtime.rcon.players``) whenever it can be matched, so a dashboard can link the two:
by BattlEye GUID (the snapshot's ``guid``, or the one derived from its ``steamId``, formats.md
§1.8), else by a name exactly one listed player has (the slot decides between namesakes when the
snapshot gives one). A player that cannot be matched (not on the RCON list yet, or no RCON)
keeps the source's own id, the DayZ player id. `link_player_ids` is that rule.

While a run exists and the status is ``starting`` or ``running``, the actor checks once per
``interval`` (1 s): one ``os.stat`` of the snapshot, and a read + decode only when its
``(inode, mtime, size)`` changed. A file that does not decode (garbage, half written by a mod
that does not rename atomically, too large) is skipped and counted; the last good positions
stay. A ``mapData`` event is published only when the positions differ from the last one
published, so at most once per ``interval``. When the server stops, one empty ``mapData``
clears the dashboards' maps.

I/O choice: the stat and the read run inline on the event loop. The file is small (about
200 bytes per player or vehicle, so ~40 KB for 100 players and 100 vehicles) on a local disk,
a read of that size takes tens of microseconds, and a thread hop would cost more than the
read; files over ``MAX_SNAPSHOT_BYTES`` are refused unread, which bounds the worst case.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

import anyio
import msgspec

from actors import Actor, ChildSpec, Restart
from citadel.games.dayz.adm import AdmPlayer
from citadel.games.dayz.ids import battleye_guid
from citadel.messages import MapDataEvent, MapPlayer, Player, Position, Vehicle, utc_timestamp
from citadel.servers.runtime import MAP, RunInfo, ServerRuntime, ServerSnapshot

__all__ = [
    "MapActor",
    "MapStatistics",
    "PlayerKeys",
    "Snapshot",
    "adm_players_on_map",
    "decode_snapshot",
    "link_player_ids",
    "snapshot_keys",
    "snapshot_on_map",
    "spec",
]

# --- defaults -------------------------------------------------------------------------------
INTERVAL: Final = 1.0
"""Seconds between checks, and so the shortest time between two ``mapData`` events."""
SNAPSHOT_PATH: Final = Path("citadel") / "positions.json"
"""Where the snapshot lives, relative to the profile dir."""
MAX_SNAPSHOT_BYTES: Final = 4 * 1024 * 1024
"""Larger snapshot files are refused unread (they would block the loop on the read)."""
STALE_SLACK: Final = 1.0
"""A snapshot modified more than this before the run started belongs to an earlier run
(the recorded start time may wobble by up to a second, see ``identity``)."""
ACTIVE_STATUSES: Final = frozenset({"starting", "running"})
# ---------------------------------------------------------------------------------------------


class SnapshotPosition(msgspec.Struct, frozen=True):
    """Engine order: ``x`` east, ``y`` altitude, ``z`` north (metres)."""

    x: float
    y: float
    z: float


class SnapshotPlayer(msgspec.Struct, frozen=True, rename="camel"):
    """One player in ``positions.json``; ``steamId``, ``guid`` and ``slot`` are optional."""

    id: str
    name: str
    position: SnapshotPosition
    heading: float | None = None
    steam_id: str | None = None
    guid: str | None = None
    slot: int | None = None


class SnapshotVehicle(msgspec.Struct, frozen=True, rename="camel"):
    """One vehicle in ``positions.json``."""

    id: str
    class_name: str
    position: SnapshotPosition
    heading: float | None = None
    health: float | None = None


class Snapshot(msgspec.Struct, frozen=True):
    """The parts of ``positions.json`` the map uses (unknown fields are ignored)."""

    players: list[SnapshotPlayer] = msgspec.field(default_factory=list)
    vehicles: list[SnapshotVehicle] = msgspec.field(default_factory=list)
    version: int = 1


class PlayerKeys(msgspec.Struct, frozen=True):
    """What a map player can be matched to a listed player on (see `link_player_ids`)."""

    guid: str | None = None
    steam_id: str | None = None
    slot: int | None = None


_decoder: Final = msgspec.json.Decoder(Snapshot)

MapContent = tuple[tuple[MapPlayer, ...], tuple[Vehicle, ...]]
_EMPTY: Final[MapContent] = ((), ())
_NO_KEYS: Final[Mapping[str, PlayerKeys]] = {}


# --- pure functions --------------------------------------------------------------------------


def decode_snapshot(data: bytes) -> Snapshot | None:
    """Decode a ``positions.json`` document; ``None`` for anything that is not one."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError:  # ValidationError is a DecodeError
        return None


def _finite(*values: float | None) -> bool:
    return all(v is None or math.isfinite(v) for v in values)


def _position(p: SnapshotPosition) -> Position | None:
    # JSON has no NaN, but 1e999 decodes to inf, which would not survive encoding the event.
    return Position(x=p.x, y=p.y, z=p.z) if _finite(p.x, p.y, p.z) else None


def snapshot_on_map(snapshot: Snapshot) -> MapContent:
    """The players and vehicles of a snapshot, as event records (non-finite ones dropped)."""
    players: list[MapPlayer] = []
    for p in snapshot.players:
        position = _position(p.position)
        if position is not None:
            heading = p.heading if _finite(p.heading) else None
            players.append(MapPlayer(id=p.id, name=p.name, position=position, heading=heading))
    vehicles: list[Vehicle] = []
    for v in snapshot.vehicles:
        position = _position(v.position)
        if position is not None:
            vehicles.append(
                Vehicle(
                    id=v.id,
                    class_name=v.class_name,
                    position=position,
                    heading=v.heading if _finite(v.heading) else None,
                    health=v.health if _finite(v.health) else None,
                )
            )
    return tuple(players), tuple(vehicles)


def snapshot_keys(snapshot: Snapshot) -> dict[str, PlayerKeys]:
    """The matching keys of a snapshot's players, by their snapshot id."""
    return {
        p.id: PlayerKeys(guid=p.guid, steam_id=p.steam_id, slot=p.slot) for p in snapshot.players
    }


def link_player_ids(
    players: Iterable[MapPlayer], keys: Mapping[str, PlayerKeys], listed: Iterable[Player]
) -> tuple[MapPlayer, ...]:
    """Give each map player the id of the same player in ``listed`` (the ``players`` list).

    Matched by BattlEye GUID (``keys[id].guid``, or derived from ``keys[id].steam_id``), else
    by a name exactly one listed player has - or, among namesakes, the one in the same slot.
    Unmatched players keep their own id; no listed id is given to two map players.
    """
    listed = tuple(listed)
    by_guid = {p.guid.lower(): p for p in listed if p.guid}
    by_name: dict[str, list[Player]] = {}
    for p in listed:
        by_name.setdefault(p.name, []).append(p)
    used: set[str] = set()
    out: list[MapPlayer] = []
    for player in players:
        key = keys.get(player.id, PlayerKeys())
        guid = key.guid or (battleye_guid(key.steam_id) if key.steam_id else None)
        match = by_guid.get(guid.lower()) if guid else None
        if match is None:
            namesakes = by_name.get(player.name, [])
            if len(namesakes) > 1 and key.slot is not None:
                namesakes = [p for p in namesakes if p.slot == key.slot]
            if len(namesakes) == 1:
                match = namesakes[0]
        if match is not None and match.id not in used:
            used.add(match.id)
            player = msgspec.structs.replace(player, id=match.id)
        out.append(player)
    return tuple(out)


def adm_players_on_map(players: Iterable[AdmPlayer]) -> tuple[MapPlayer, ...]:
    """Players of an ADM ``PlayerList`` block that have a position (``<x, z, alt>``)."""
    out: list[MapPlayer] = []
    for player in players:
        pos = player.pos
        if pos is None or not _finite(pos.x, pos.z, pos.alt):
            continue
        out.append(
            MapPlayer(
                id=player.id, name=player.name, position=Position(x=pos.x, y=pos.alt, z=pos.z)
            )
        )
    return tuple(out)


def _active(snapshot: ServerSnapshot) -> bool:
    return snapshot.run is not None and not snapshot.exited and snapshot.status in ACTIVE_STATUSES


# --- the actor -------------------------------------------------------------------------------


class MapStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a `MapActor`."""

    checks: int
    reads: int
    unchanged: int
    garbage: int
    published: int


class MapActor(Actor[object]):
    """Publishes the positions of one server's players and vehicles.

    Args:
        runtime: The server's shared runtime.
        interval: Seconds between checks (and the least time between two events).
    """

    def __init__(self, runtime: ServerRuntime, *, interval: float = INTERVAL) -> None:
        self.runtime = runtime
        self._interval = interval
        self._stat_key: tuple[int, int, int] | None = None
        self._from_file: tuple[MapContent, Mapping[str, PlayerKeys]] | None = None
        self._published: MapContent = _EMPTY
        self._next_check = 0.0
        self._checks = self._reads = self._unchanged = self._garbage = self._count = 0

    def statistics(self) -> MapStatistics:
        """Return the current counters."""
        return MapStatistics(
            checks=self._checks,
            reads=self._reads,
            unchanged=self._unchanged,
            garbage=self._garbage,
            published=self._count,
        )

    async def on_start(self) -> None:
        self.start_soon(self._watch)

    async def handle(self, message: object) -> None:
        """The map actor takes no messages; anything sent is ignored."""

    async def _watch(self) -> None:
        state = self.runtime.state
        while True:
            snapshot = state.current
            if not _active(snapshot):
                if self._published != _EMPTY:
                    await self._publish(_EMPTY)
                self._stat_key = None
                self._from_file = None
                await state.wait_changed(snapshot.version)
                continue
            assert snapshot.run is not None
            now = anyio.current_time()
            if now >= self._next_check:
                self._next_check = now + self._interval
                (players, vehicles), keys = self._check(snapshot.run)
                # Linked on every check: the players list changes on its own schedule.
                content = (link_player_ids(players, keys, self.runtime.rcon.players), vehicles)
                if content != self._published:
                    await self._publish(content)
            # Wake early on a state change (a stop clears the map at once), never check early.
            with anyio.move_on_after(self._next_check - anyio.current_time()):
                await state.wait_changed(snapshot.version)

    def _check(self, run: RunInfo) -> tuple[MapContent, Mapping[str, PlayerKeys]]:
        """The current positions (with source ids) and the players' matching keys: from the
        snapshot file if there is one, else from the ADM."""
        self._checks += 1
        path = Path(run.profile_dir) / SNAPSHOT_PATH
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is None or st.st_mtime < run.started_at - STALE_SLACK:
            self._stat_key = None
            self._from_file = None
            return (adm_players_on_map(self.runtime.logs.adm_players), ()), _NO_KEYS
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key == self._stat_key:
            self._unchanged += 1
        else:
            self._stat_key = key
            decoded = self._read(path, st.st_size)
            if decoded is None:
                self._garbage += 1
            else:
                self._from_file = snapshot_on_map(decoded), snapshot_keys(decoded)
        # A garbage file keeps the last good positions (or what was published before it).
        if self._from_file is not None:
            return self._from_file
        return self._published, _NO_KEYS

    def _read(self, path: Path, size: int) -> Snapshot | None:
        if size > MAX_SNAPSHOT_BYTES:
            return None
        self._reads += 1
        try:
            with path.open("rb") as f:
                data = f.read(MAX_SNAPSHOT_BYTES + 1)
        except OSError:
            return None
        if len(data) > MAX_SNAPSHOT_BYTES:
            return None
        return decode_snapshot(data)

    async def _publish(self, content: MapContent) -> None:
        self._published = content
        self._count += 1
        players, vehicles = content
        await self.runtime.publish(
            MapDataEvent(
                server_id=self.runtime.id,
                players=list(players),
                vehicles=list(vehicles),
                timestamp=utc_timestamp(),
            )
        )


def spec(runtime: ServerRuntime) -> ChildSpec:
    """The child spec of a server's map actor."""
    return ChildSpec(
        id=MAP,
        start=lambda: MapActor(runtime),
        restart=Restart.PERMANENT,
        name=runtime.child_name(MAP),
    )
