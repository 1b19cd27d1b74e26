"""The simulated world: determinism, join stages, slots, lock."""

from __future__ import annotations

from dayzsim._world import Connecting, EnteredGame, GuidKnown, Left, Verified, World


def make(seed: int = 1, players: int = 3, churn: float = 0.0, chance: float = 0.0) -> World:
    return World(
        seed,
        target_players=players,
        vehicles=2,
        churn=churn,
        lobby_ticks=1,
        event_chance=chance,
        max_players=60,
    )


def test_same_seed_same_story() -> None:
    a, b = make(5, churn=0.3, chance=0.5), make(5, churn=0.3, chance=0.5)
    for _ in range(50):
        assert a.tick() == b.tick()
    assert [(v.x, v.z) for v in a.vehicles] == [(v.x, v.z) for v in b.vehicles]


def test_join_stages_in_order() -> None:
    world = make(players=1)
    kinds = [type(e) for _ in range(6) for e in world.tick()]
    assert kinds == [Connecting, GuidKnown, Verified, EnteredGame]
    player = world.players[0]
    assert player.in_game
    assert player.ping > 0


def test_players_move_and_vehicles_drive() -> None:
    world = make(players=1)
    for _ in range(5):
        world.tick()
    p = world.players[0]
    before = (p.x, p.z, world.vehicles[0].x)
    world.tick()
    assert before != (p.x, p.z, world.vehicles[0].x)


def test_slot_reuse_and_new_identity() -> None:
    world = make(players=2)
    world.tick()
    gone = world.remove(0)
    assert gone is not None
    events = world.tick()
    newcomer = next(e for e in events if isinstance(e, Connecting))
    assert newcomer.player.slot == 0
    assert newcomer.player.ident.name != gone.ident.name


def test_lock_stops_joins() -> None:
    world = make(players=2)
    world.locked = True
    assert world.tick() == []
    world.locked = False
    assert len(world.tick()) == 2


def test_churn_makes_players_leave() -> None:
    world = make(players=3, churn=1.0)
    events = [e for _ in range(5) for e in world.tick()]
    assert any(isinstance(e, Left) for e in events)
    assert len(world.players) == 3
