"""The simulated world: players joining, moving, chatting, fighting, leaving; vehicles driving.

:class:`World` is deterministic for a given seed and sequence of calls; it performs no I/O and
returns :data:`Event` values that the server turns into log lines and RCON messages.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final

import msgspec

from dayzsim._identity import Identity, identity

MAP_SIZE: Final = 15360.0  # Chernarus, metres
PLAYER_STEP: Final = (5.0, 40.0)  # metres moved per tick
VEHICLE_STEP: Final = (30.0, 200.0)
VEHICLE_CLASSES: Final = (
    "OffroadHatchback",
    "CivilianSedan",
    "Hatchback_02",
    "Sedan_02",
    "Truck_01_Covered",
)
CHAT_LINES: Final = (
    "meet at the (old) barn: north side",
    "anyone near Elektro?",
    "friendly!",
    "need morphine",
    "see you: north gate",
)
HIT_ZONES: Final = (("Torso", 12), ("Head", 0), ("LeftLeg", 31), ("RightArm", 24))
WEAPONS: Final = (
    ("AKM", "Bullet_762x39"),
    ("M4A1", "Bullet_556x45"),
    ("Mosin9130", "Bullet_762x54"),
)


@dataclass
class Player:
    """A connected player: identity, join stage, network id and body state (mutable)."""

    ident: Identity
    slot: int
    dpnid: int
    stage: int  # 0 connecting, 1 GUID sent, 2 verified (lobby), 3 in game
    lobby_left: int
    ping: int
    x: float
    z: float
    heading: float
    hp: float = 100.0

    @property
    def alt(self) -> float:
        """Altitude of the terrain under the player (metres)."""
        return terrain(self.x, self.z)

    @property
    def in_game(self) -> bool:
        """True once the player has left the lobby."""
        return self.stage >= 3


@dataclass
class Vehicle:
    """A vehicle driving around the map (mutable)."""

    id: str
    class_name: str
    x: float
    z: float
    heading: float
    health: float


class PlayerView(msgspec.Struct, frozen=True):
    """A player as seen at one moment: identity, slot, network id and position."""

    ident: Identity
    slot: int
    dpnid: int
    x: float
    z: float
    alt: float
    in_game: bool = False
    dead: bool = False


class Connecting(msgspec.Struct, frozen=True, tag="connecting"):
    """A player opened a connection (no GUID yet)."""

    player: PlayerView


class GuidKnown(msgspec.Struct, frozen=True, tag="guid"):
    """BattlEye computed the player's GUID."""

    player: PlayerView


class Verified(msgspec.Struct, frozen=True, tag="verified"):
    """BattlEye verified the player's GUID."""

    player: PlayerView


class EnteredGame(msgspec.Struct, frozen=True, tag="entered"):
    """The player left the lobby and is in the world."""

    player: PlayerView


class Left(msgspec.Struct, frozen=True, tag="left"):
    """The player disconnected."""

    player: PlayerView


class Chat(msgspec.Struct, frozen=True, tag="chat"):
    """The player wrote in global chat."""

    player: PlayerView
    text: str


class Hit(msgspec.Struct, frozen=True, tag="hit"):
    """One player shot another."""

    victim: PlayerView
    attacker: PlayerView
    hp: float
    zone: str
    component: int
    damage: float
    ammo: str
    weapon: str
    distance: float


Event = Connecting | GuidKnown | Verified | EnteredGame | Left | Chat | Hit


def terrain(x: float, z: float) -> float:
    """A smooth invented terrain height, always above sea level."""
    return 5.0 + 180.0 * abs(math.sin(x / 1700.0) * math.cos(z / 2300.0)) + 0.01 * (x % 97)


def _walk(x: float, z: float, heading: float, step: float) -> tuple[float, float, float]:
    """Move ``step`` metres along ``heading`` (degrees, 0 = north), bouncing off the map edge."""
    rad = math.radians(heading)
    nx, nz = x + step * math.sin(rad), z + step * math.cos(rad)
    if not 0.0 <= nx <= MAP_SIZE:
        nx = min(MAP_SIZE, max(0.0, nx))
        heading = (360.0 - heading) % 360.0
    if not 0.0 <= nz <= MAP_SIZE:
        nz = min(MAP_SIZE, max(0.0, nz))
        heading = (180.0 - heading) % 360.0
    return nx, nz, heading


class World:
    """Players and vehicles, advanced one tick at a time by a seeded random source."""

    def __init__(
        self,
        seed: int,
        *,
        target_players: int,
        vehicles: int,
        churn: float,
        lobby_ticks: int,
        event_chance: float,
        max_players: int,
    ) -> None:
        """Create an empty world with ``vehicles`` vehicles placed at random."""
        self.rng = random.Random(seed)
        self.target_players = min(target_players, max_players)
        self.max_players = max_players
        self.churn = churn
        self.lobby_ticks = lobby_ticks
        self.event_chance = event_chance
        self.players: dict[int, Player] = {}  # by RCON slot
        self.locked = False
        self._next_index = 0
        self.vehicles = [
            Vehicle(
                id=f"veh-{i + 1}",
                class_name=VEHICLE_CLASSES[i % len(VEHICLE_CLASSES)],
                x=self.rng.uniform(1000.0, MAP_SIZE - 1000.0),
                z=self.rng.uniform(1000.0, MAP_SIZE - 1000.0),
                heading=self.rng.uniform(0.0, 360.0),
                health=100.0,
            )
            for i in range(vehicles)
        ]

    def view(self, player: Player, *, dead: bool = False) -> PlayerView:
        """Freeze the current state of ``player``."""
        return PlayerView(
            ident=player.ident,
            slot=player.slot,
            dpnid=player.dpnid,
            x=player.x,
            z=player.z,
            alt=player.alt,
            in_game=player.in_game,
            dead=dead,
        )

    def join(self) -> Player | None:
        """Connect one new player into the lowest free slot (none while locked or full)."""
        if self.locked or len(self.players) >= self.max_players:
            return None
        slot = next(i for i in range(self.max_players + 1) if i not in self.players)
        player = Player(
            ident=identity(self._next_index),
            slot=slot,
            dpnid=self.rng.randrange(1_000_000_000, 2_147_483_647),
            stage=0,
            lobby_left=self.lobby_ticks,
            ping=-1,
            x=self.rng.uniform(500.0, MAP_SIZE - 500.0),
            z=self.rng.uniform(500.0, MAP_SIZE - 500.0),
            heading=self.rng.uniform(0.0, 360.0),
        )
        self._next_index += 1
        self.players[slot] = player
        return player

    def remove(self, slot: int) -> Player | None:
        """Take the player in ``slot`` off the server; the slot becomes free for reuse."""
        return self.players.pop(slot, None)

    def tick(self) -> list[Event]:
        """Advance one tick: join stages, movement, churn, chat and hits."""
        events: list[Event] = []
        for player in list(self.players.values()):
            events.extend(self._advance(player))
        if self.players and self.rng.random() < self.churn:
            leaver = self.rng.choice(sorted(self.players))
            gone = self.players.pop(leaver)
            events.append(Left(self.view(gone)))
        while len(self.players) < self.target_players:
            joined = self.join()
            if joined is None:
                break
            events.append(Connecting(self.view(joined)))
        for vehicle in self.vehicles:
            step = self.rng.uniform(*VEHICLE_STEP)
            vehicle.x, vehicle.z, vehicle.heading = _walk(
                vehicle.x, vehicle.z, vehicle.heading + self.rng.uniform(-20.0, 20.0), step
            )
            vehicle.heading %= 360.0
            vehicle.health = max(0.0, vehicle.health - self.rng.choice((0.0, 0.0, 0.5, 2.0)))
            if vehicle.health == 0.0:
                vehicle.health = 100.0  # "repaired": keeps the demo alive forever
        in_game = [p for p in self.players.values() if p.in_game]
        if in_game and self.rng.random() < self.event_chance:
            speaker = self.rng.choice(in_game)
            events.append(Chat(self.view(speaker), self.rng.choice(CHAT_LINES)))
        if len(in_game) >= 2 and self.rng.random() < self.event_chance:
            events.append(self._hit(in_game))
        return events

    def _advance(self, player: Player) -> list[Event]:
        if player.stage == 0:
            player.stage = 1
            return [GuidKnown(self.view(player))]
        if player.stage == 1:
            player.stage = 2
            return [Verified(self.view(player))]
        if player.stage == 2:
            if player.lobby_left > 0:
                player.lobby_left -= 1
                return []
            player.stage = 3
            player.ping = self.rng.randrange(20, 120)
            return [EnteredGame(self.view(player))]
        player.ping = max(5, player.ping + self.rng.randrange(-5, 6))
        step = self.rng.uniform(*PLAYER_STEP)
        player.x, player.z, heading = _walk(
            player.x, player.z, player.heading + self.rng.uniform(-30.0, 30.0), step
        )
        player.heading = heading % 360.0
        player.hp = min(100.0, player.hp + 1.0)
        return []

    def _hit(self, in_game: list[Player]) -> Hit:
        victim, attacker = self.rng.sample(in_game, 2)
        zone, component = self.rng.choice(HIT_ZONES)
        weapon, ammo = self.rng.choice(WEAPONS)
        damage = round(self.rng.uniform(5.0, 30.0), 4)
        victim.hp = max(1.0, victim.hp - damage)  # nobody dies: deaths would need respawns
        distance = round(math.hypot(victim.x - attacker.x, victim.z - attacker.z), 3)
        return Hit(
            victim=self.view(victim),
            attacker=self.view(attacker),
            hp=round(victim.hp, 1),
            zone=zone,
            component=component,
            damage=damage,
            ammo=ammo,
            weapon=weapon,
            distance=distance,
        )
