"""The map-mod snapshot (``positions.json``) and the heartbeat file, as msgspec Structs."""

from __future__ import annotations

import datetime as dt
from typing import Final

import msgspec

from dayzsim._world import World, terrain

SNAPSHOT_VERSION: Final = 1
WORLD_NAME: Final = "chernarusplus"


class Position(msgspec.Struct, frozen=True):
    """Engine order: ``x`` east, ``y`` altitude, ``z`` north (metres)."""

    x: float
    y: float
    z: float


class PlayerPosition(msgspec.Struct, frozen=True, rename="camel"):
    """One in-game player on the map."""

    id: str
    name: str
    steam_id: str
    guid: str
    slot: int
    position: Position
    heading: float


class VehiclePosition(msgspec.Struct, frozen=True, rename="camel"):
    """One vehicle on the map."""

    id: str
    class_name: str
    position: Position
    heading: float
    health: float


class Positions(msgspec.Struct, frozen=True):
    """The whole ``positions.json`` document."""

    version: int
    world: str
    timestamp: str
    tick: int
    players: list[PlayerPosition]
    vehicles: list[VehiclePosition]


class Heartbeat(msgspec.Struct, frozen=True, rename="camel"):
    """The whole ``heartbeat.json`` document."""

    version: int
    pid: int
    state: str  # starting | running | stopping | stopped
    timestamp: str
    started_at: str
    uptime: float
    tick: int
    players: int
    fps: float | None
    rcon_port: int | None
    rcon_clients: int


def iso_utc(at: dt.datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``."""
    utc = at.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def positions(world: World, tick: int, at: dt.datetime) -> Positions:
    """Snapshot the positions of in-game players (not those in the lobby) and vehicles."""
    players = [
        PlayerPosition(
            id=p.ident.dayz_id,
            name=p.ident.name,
            steam_id=str(p.ident.steam64),
            guid=p.ident.guid,
            slot=p.slot,
            position=Position(round(p.x, 2), round(p.alt, 2), round(p.z, 2)),
            heading=round(p.heading, 1),
        )
        for p in sorted(world.players.values(), key=lambda p: p.slot)
        if p.in_game
    ]
    vehicles = [
        VehiclePosition(
            id=v.id,
            class_name=v.class_name,
            position=Position(round(v.x, 2), round(terrain(v.x, v.z), 2), round(v.z, 2)),
            heading=round(v.heading, 1),
            health=round(v.health, 1),
        )
        for v in world.vehicles
    ]
    return Positions(SNAPSHOT_VERSION, WORLD_NAME, iso_utc(at), tick, players, vehicles)
