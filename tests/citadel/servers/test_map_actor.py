"""The map actor against snapshot files written by the test, the ADM fallback, and the simulator.

File tests run in virtual time (the actor checks once per second; a minute costs nothing) with
real files: the actor's stat and read are inline, so no worker thread races the jumping clock.
The simulator test runs in real time.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import Registry, open_actor
from citadel.config import RconConfig, ServerConfig
from citadel.games.dayz.adm import AdmPlayer
from citadel.games.dayz.adm import Position as AdmPosition
from citadel.games.dayz.ids import battleye_guid
from citadel.messages import Event, MapDataEvent, MapPlayer, Player, Position, Vehicle
from citadel.servers.identity import ProcessIdentity, read_identity
from citadel.servers.map import (
    INTERVAL,
    MapActor,
    PlayerKeys,
    Snapshot,
    adm_players_on_map,
    decode_snapshot,
    link_player_ids,
    snapshot_keys,
    snapshot_on_map,
    spec,
)
from citadel.servers.rcon import RconActor
from citadel.servers.runtime import MAP, RCON, RunInfo, ServerRuntime
from tests._virtual_time import VirtualTimeEventLoop
from tests.dayzsim._harness import PASSWORD, running

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("asyncio", {"loop_factory": VirtualTimeEventLoop})


# --- helpers ---------------------------------------------------------------------------------


class Published:
    """The ``publish`` callback: records ``mapData`` events with the (virtual) time."""

    def __init__(self) -> None:
        self.events: list[tuple[float, MapDataEvent]] = []
        self._changed = anyio.Event()

    async def __call__(self, event: Event) -> bool:
        assert isinstance(event, MapDataEvent)
        self.events.append((anyio.current_time(), event))
        self._changed.set()
        self._changed = anyio.Event()
        return True

    @property
    def maps(self) -> list[MapDataEvent]:
        return [event for _, event in self.events]

    async def wait_for(self, predicate: Callable[[MapDataEvent], bool]) -> MapDataEvent:
        with anyio.fail_after(10):
            while True:
                for event in self.maps:
                    if predicate(event):
                        return event
                await self._changed.wait()


def make_runtime(tmp_path: Path) -> tuple[ServerRuntime, Published]:
    published = Published()
    config = ServerConfig(
        id="alpha", name="Alpha", install_dir=str(tmp_path), executable="DayZServer"
    )
    return ServerRuntime(config=config, registry=Registry(), publish=published), published


def start_run(runtime: ServerRuntime, profile: Path, started_at: float | None = None) -> None:
    started = time.time() if started_at is None else started_at
    identity = ProcessIdentity(pid=os.getpid(), create_time=started, cmdline=("DayZServer",))
    run = RunInfo(incarnation=1, identity=identity, started_at=started, profile_dir=str(profile))
    runtime.state.update(status="running", ready=True, run=run)


def snapshot_json(players: list[tuple[str, float]], vehicles: int = 1) -> bytes:
    """A ``positions.json`` in the simulator's format (extra fields included)."""
    doc = {
        "version": 1,
        "world": "chernarusplus",
        "timestamp": "2026-12-03T19:30:18.590Z",
        "tick": 24,
        "players": [
            {
                "id": f"id-{name}",
                "name": name,
                "steamId": "76561190000000001",
                "guid": "0" * 32,
                "slot": n,
                "position": {"x": x, "y": 184.5, "z": 14661.5},
                "heading": 345.9,
            }
            for n, (name, x) in enumerate(players)
        ],
        "vehicles": [
            {
                "id": f"veh-{n}",
                "className": "OffroadHatchback",
                "position": {"x": 6361.3, "y": 106.9, "z": 14261.2},
                "heading": 287.5,
                "health": 84.0,
            }
            for n in range(vehicles)
        ],
    }
    return msgspec.json.encode(doc)


def write_atomic(profile: Path, data: bytes) -> None:
    """Replace ``citadel/positions.json`` the way a map mod does (temporary file + rename)."""
    target = profile / "citadel" / "positions.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


@asynccontextmanager
async def map_actor(runtime: ServerRuntime, **options: Any) -> AsyncIterator[MapActor]:
    actor = MapActor(runtime, **options)
    async with open_actor(actor, name=runtime.child_name(MAP), registry=runtime.registry):
        yield actor


async def wait_checks(actor: MapActor, count: int) -> None:
    """Let virtual time pass until the actor has made ``count`` more checks."""
    target = actor.statistics().checks + count
    with anyio.fail_after(count * INTERVAL * 2 + 1):
        while actor.statistics().checks < target:
            await anyio.sleep(INTERVAL / 4)  # virtual time: costs nothing


# --- pure functions --------------------------------------------------------------------------


def test_decode_reads_the_simulator_format() -> None:
    decoded = decode_snapshot(snapshot_json([("PlayerOne", 100.5)]))
    assert decoded is not None
    players, vehicles = snapshot_on_map(decoded)
    assert players == (
        MapPlayer(
            id="id-PlayerOne",
            name="PlayerOne",
            position=Position(x=100.5, y=184.5, z=14661.5),
            heading=345.9,
        ),
    )
    assert vehicles == (
        Vehicle(
            id="veh-0",
            class_name="OffroadHatchback",
            position=Position(x=6361.3, y=106.9, z=14261.2),
            heading=287.5,
            health=84.0,
        ),
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b'{"players": [{"id": "a", "name": "b", "position": {"x": 1, "y": 2',  # half written
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'{"players": [{"id": 1}]}',
        b"[" * 100_000,
    ],
)
def test_decode_refuses_garbage(data: bytes) -> None:
    assert decode_snapshot(data) is None


@given(st.binary(max_size=200))
def test_decode_never_raises(data: bytes) -> None:
    result = decode_snapshot(data)
    assert result is None or isinstance(result, Snapshot)


def test_adm_players_map_pos_x_z_alt_to_engine_order() -> None:
    players = (
        AdmPlayer(name="PlayerOne", id="id1", pos=AdmPosition(x=4521.3, z=10234.7, alt=312.4)),
        AdmPlayer(name="No Pos", id="id2"),
    )
    assert adm_players_on_map(players) == (
        MapPlayer(id="id1", name="PlayerOne", position=Position(x=4521.3, y=312.4, z=10234.7)),
    )


GUID_1 = "0123456789abcdef0123456789abcdef"
GUID_2 = "fedcba9876543210fedcba9876543210"


def on_map(source_id: str, name: str) -> MapPlayer:
    return MapPlayer(id=source_id, name=name, position=Position(x=1.0, y=2.0, z=3.0))


def listed(player_id: str, name: str, guid: str | None = None, slot: int = 0) -> Player:
    return Player(id=player_id, name=name, ping=30, guid=guid, slot=slot)


def test_map_players_take_the_players_list_ids() -> None:
    steam = "76561190000000007"
    players = [
        listed("0-aaaa", "PlayerOne", GUID_1, slot=0),
        listed("1-bbbb", "Player Two", None, slot=1),
        listed("2-cccc", "Twin", GUID_2, slot=2),
        listed("3-dddd", "Twin", None, slot=3),
        listed("4-eeee", "From Steam", battleye_guid(steam), slot=4),
    ]
    keys = {
        "dz-1": PlayerKeys(guid=GUID_1.upper()),  # GUID, any case
        "dz-4": PlayerKeys(steam_id=steam),  # GUID derived from the Steam64 id
        "dz-3": PlayerKeys(slot=3),  # namesakes: the slot decides
    }
    map_players = [
        on_map("dz-1", "renamed since"),
        on_map("dz-2", "Player Two"),  # a unique name
        on_map("dz-3", "Twin"),
        on_map("dz-5", "Twin"),  # namesakes and no slot: not linked
        on_map("dz-4", "From Steam"),
        on_map("dz-6", "Nobody Listed"),  # not on the RCON list: keeps its own id
    ]
    linked = link_player_ids(map_players, keys, players)
    assert [p.id for p in linked] == ["0-aaaa", "1-bbbb", "3-dddd", "dz-5", "4-eeee", "dz-6"]
    assert [p.name for p in linked] == [p.name for p in map_players]  # nothing else changes
    assert link_player_ids(map_players, keys, ()) == tuple(map_players)


def test_one_listed_id_is_never_given_to_two_map_players() -> None:
    players = [listed("0-aaaa", "Same", GUID_1)]
    twice = [on_map("dz-1", "Same"), on_map("dz-2", "Other")]
    keys = {"dz-2": PlayerKeys(guid=GUID_1)}
    assert [p.id for p in link_player_ids(twice, keys, players)] == ["0-aaaa", "dz-2"]


def test_snapshot_keys_come_from_the_simulator_format() -> None:
    decoded = decode_snapshot(snapshot_json([("PlayerOne", 1.0)]))
    assert decoded is not None
    assert snapshot_keys(decoded) == {
        "id-PlayerOne": PlayerKeys(guid="0" * 32, steam_id="76561190000000001", slot=0)
    }


def test_spec_names_the_child() -> None:
    runtime, _ = make_runtime(Path("/nonexistent"))
    child = spec(runtime)
    assert (child.id, child.name) == ("map", "alpha/map")
    assert isinstance(child.start(), MapActor)


# --- snapshot files, virtual time ------------------------------------------------------------


async def test_unchanged_positions_are_published_once(tmp_path: Path) -> None:
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    write_atomic(profile, snapshot_json([("PlayerOne", 1.0)]))
    start_run(runtime, profile)
    async with map_actor(runtime) as actor:
        first = await published.wait_for(lambda e: bool(e.players))
        assert [p.name for p in first.players] == ["PlayerOne"]
        assert len(first.vehicles) == 1
        await wait_checks(actor, 5)
        # Rewritten with the same content: read again (new inode), but nothing to publish.
        write_atomic(profile, snapshot_json([("PlayerOne", 1.0)]))
        await wait_checks(actor, 5)
        stats = actor.statistics()
        assert (stats.reads, stats.published) == (2, 1)
        assert stats.unchanged >= 8  # stat only, no read
        assert len(published.maps) == 1
        # A move is published.
        write_atomic(profile, snapshot_json([("PlayerOne", 2.0)]))
        moved = await published.wait_for(lambda e: e.players[0].position.x == 2.0)
        assert moved is published.maps[-1]


async def test_garbage_snapshot_is_skipped_and_the_next_valid_one_published(
    tmp_path: Path,
) -> None:
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    write_atomic(profile, snapshot_json([("PlayerOne", 1.0)]))
    start_run(runtime, profile)
    async with map_actor(runtime) as actor:
        await published.wait_for(lambda e: bool(e.players))
        write_atomic(profile, b'{"players": [{"id": "x", "na')  # half written
        await wait_checks(actor, 3)
        write_atomic(profile, b"\x00\xff" * 1000)
        await wait_checks(actor, 3)
        assert actor.statistics().garbage == 2
        assert len(published.maps) == 1  # the last good positions stand
        write_atomic(profile, snapshot_json([("PlayerOne", 1.0), ("Player Two", 5.0)]))
        event = await published.wait_for(lambda e: len(e.players) == 2)
        assert [p.name for p in event.players] == ["PlayerOne", "Player Two"]


async def test_without_a_snapshot_the_adm_player_list_is_used(tmp_path: Path) -> None:
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    profile.mkdir()
    start_run(runtime, profile)
    async with map_actor(runtime) as actor:
        await wait_checks(actor, 2)
        assert published.maps == []  # nothing known, nothing to clear
        runtime.logs.adm_players = (
            AdmPlayer(name="PlayerOne", id="id1", pos=AdmPosition(x=4521.3, z=10234.7, alt=312.4)),
        )
        event = await published.wait_for(lambda e: bool(e.players))
        assert event.players == [
            MapPlayer(id="id1", name="PlayerOne", position=Position(x=4521.3, y=312.4, z=10234.7))
        ]
        assert event.vehicles == []


async def test_a_snapshot_older_than_the_run_is_ignored(tmp_path: Path) -> None:
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    write_atomic(profile, snapshot_json([("Ghost", 1.0)]))
    old = time.time() - 3600
    os.utime(profile / "citadel" / "positions.json", (old, old))
    start_run(runtime, profile)
    runtime.logs.adm_players = (
        AdmPlayer(name="Live", id="id1", pos=AdmPosition(x=1.0, z=2.0, alt=3.0)),
    )
    async with map_actor(runtime):
        event = await published.wait_for(lambda e: bool(e.players))
        assert [p.name for p in event.players] == ["Live"]
        # The mod writes its first snapshot of this run: it wins over the ADM.
        write_atomic(profile, snapshot_json([("PlayerOne", 1.0)]))
        event = await published.wait_for(lambda e: e.players[0].name == "PlayerOne")


async def test_at_most_one_event_per_interval(tmp_path: Path) -> None:
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    write_atomic(profile, snapshot_json([("PlayerOne", 0.0)]))
    start_run(runtime, profile)
    async with map_actor(runtime):
        for step in range(1, 50):  # a new position every 0.1 s for 5 s
            write_atomic(profile, snapshot_json([("PlayerOne", float(step))]))
            await anyio.sleep(0.1)
        times = [t for t, _ in published.events]
        assert len(times) >= 4
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= INTERVAL - 1e-9


async def test_stopping_publishes_one_empty_map(tmp_path: Path) -> None:
    runtime, published = make_runtime(tmp_path)
    profile = tmp_path / "profiles"
    write_atomic(profile, snapshot_json([("PlayerOne", 1.0)]))
    start_run(runtime, profile)
    async with map_actor(runtime) as actor:
        await published.wait_for(lambda e: bool(e.players))
        runtime.state.update(status="stopping")
        empty = await published.wait_for(lambda e: not e.players and not e.vehicles)
        runtime.state.update(status="stopped", exited=True)
        await anyio.sleep(5 * INTERVAL)  # virtual: a wrong second clear would have come
        assert published.maps == [published.maps[0], empty]
        assert actor.statistics().published == 2


# --- the real simulator ----------------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # real time: a real process
async def test_with_the_simulator_positions_are_published(tmp_path: Path) -> None:
    runtime, published = make_runtime(tmp_path)
    env = {"DAYZSIM_PLAYERS": "2", "DAYZSIM_LOBBY_TICKS": "1"}
    async with running(tmp_path, env) as sim:
        identity = read_identity(sim.proc.pid)
        assert identity is not None
        run = RunInfo(
            incarnation=1,
            identity=identity,
            started_at=identity.create_time,
            profile_dir=str(sim.profile),
        )
        runtime.state.update(status="starting", run=run)
        async with map_actor(runtime, interval=0.05):
            event = await published.wait_for(lambda e: len(e.players) == 2)
            assert {p.name for p in event.players} == {"PlayerOne", "Player Two"}
            assert len(event.vehicles) == 3
            assert all(v.class_name and v.health is not None for v in event.vehicles)
            sim.proc.kill()
            sim.proc.wait(timeout=10)
            runtime.state.update(status="crashed", exited=True)
            await published.wait_for(lambda e: not e.players and not e.vehicles)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # real time: a real process
async def test_with_the_simulator_map_players_carry_the_players_list_ids(tmp_path: Path) -> None:
    env = {"DAYZSIM_PLAYERS": "3", "DAYZSIM_LOBBY_TICKS": "1"}
    async with running(tmp_path, env) as sim:
        published = Published()
        events: list[Event] = []

        async def publish(event: Event) -> bool:
            events.append(event)
            if isinstance(event, MapDataEvent):
                return await published(event)
            return True

        config = ServerConfig(
            id="alpha",
            name="Alpha",
            install_dir=str(tmp_path),
            executable="DayZServer",
            rcon=RconConfig(password=PASSWORD, port=sim.rcon_port),
        )
        runtime = ServerRuntime(config=config, registry=Registry(), publish=publish)
        identity = read_identity(sim.proc.pid)
        assert identity is not None
        run = RunInfo(
            incarnation=1,
            identity=identity,
            started_at=identity.create_time,
            profile_dir=str(sim.profile),
        )
        runtime.state.update(status="running", ready=True, run=run)
        rcon = RconActor(runtime, players_interval=0.05)
        async with (
            open_actor(rcon, name=runtime.child_name(RCON), registry=runtime.registry),
            map_actor(runtime, interval=0.05),
        ):

            def linked(event: MapDataEvent) -> bool:
                ids = {p.id for p in runtime.rcon.players}
                return len(event.players) == 3 and {p.id for p in event.players} == ids

            event = await published.wait_for(linked)
            by_id = {p.id: p for p in runtime.rcon.players}
            for player in event.players:
                assert by_id[player.id].name == player.name
                assert not player.id.endswith("=")  # not the DayZ id any more
