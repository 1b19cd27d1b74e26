"""The rcon actor against the real simulator process over real UDP RCON.

The test plays the process actor: it starts the simulator, writes ``runtime.state`` (a run built
from the spawned process's identity, then ready + running) and watches what the actor publishes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors import Address, Backoff, Registry, open_actor
from actors.testing import Probe
from citadel.config import RconConfig, ServerConfig
from citadel.games.battleye import RConSettings
from citadel.games.dayz.beconfig import write_beserver_cfg
from citadel.games.dayz.rcon_text import Ban as ListedBan
from citadel.games.dayz.rcon_text import PlayerTable, RconPlayer, parse_bans, parse_server_message
from citadel.messages import Event, LogEvent, Player, PlayersEvent
from citadel.servers.identity import read_identity
from citadel.servers.messages import (
    FindPlayer,
    KickPlayer,
    PlayerLookup,
    RconCommand,
    RconResult,
    SystemLog,
)
from citadel.servers.rcon import (
    NOT_CONFIGURED,
    NOT_CONNECTED,
    RECONNECTING,
    RconActor,
    bans_to_reapply,
    identify_players,
    is_bans_reply,
    is_players_reply,
    new_player_id,
    refreshes_players,
    same_player,
    should_connect,
    spec,
)
from citadel.servers.runtime import LOGS, RCON, RunInfo, ServerRuntime, ServerSnapshot
from citadel.store import Ban as StoredBan
from citadel.store import Store
from citadel.store.actor import StoreActor
from tests.dayzsim._harness import BASE_ENV, free_udp_port

pytestmark = pytest.mark.anyio

PASSWORD = "s3cret-pass"
GUID_A = "0123456789abcdef0123456789abcdef"
GUID_B = "fedcba9876543210fedcba9876543210"
#: Players stay in the lobby (ping -1, no changes) once verified: a quiet, stable list.
STILL = {"DAYZSIM_LOBBY_TICKS": "1000000"}


# --- pure decisions ----------------------------------------------------------------------------


def row(slot: int, guid: str | None, name: str = "PlayerOne", ip: str = "192.0.2.7") -> RconPlayer:
    return RconPlayer(
        slot=slot,
        ip=ip,
        port=2304,
        ping=31,
        guid=guid,
        verified=guid is not None,
        name=name,
        lobby=False,
    )


def test_ids_are_slot_and_digest_and_survive_the_guid_becoming_known() -> None:
    first = identify_players([row(3, None)], ())
    assert first[0].id.startswith("3-")
    assert "192.0.2.7" not in first[0].id  # ids go to viewers who may not see addresses
    later = identify_players([row(3, GUID_A)], first)
    assert later[0].id == first[0].id
    assert later[0].guid == GUID_A
    # A Citadel restarted meanwhile (no previous list) derives the same id again.
    fresh = identify_players([row(3, GUID_A)], ())
    assert fresh[0].id == first[0].id


def test_a_reused_slot_gets_a_new_id() -> None:
    before = identify_players([row(3, GUID_A)], ())
    after = identify_players([row(3, GUID_B, name="Other")], before)
    assert after[0].id != before[0].id
    # A GUID never goes back to unknown: a GUID-less row in that slot is a newcomer...
    newcomer = identify_players([row(3, None, name="Other")], before)
    assert newcomer[0].id != before[0].id
    # Same slot, no GUID either time, but another address: another player.
    pending = identify_players([row(3, None)], ())
    other = identify_players([row(3, None, ip="198.51.100.22")], pending)
    assert other[0].id != pending[0].id
    assert not same_player(before[0], row(4, GUID_A))


def test_ids_differ_by_address_and_name() -> None:
    assert new_player_id(row(1, None)) != new_player_id(row(1, None, name="Player Two"))
    assert new_player_id(row(1, None)) == new_player_id(row(1, None))


def test_only_real_players_replies_are_believed() -> None:
    empty = PlayerTable(players=(), total=None)
    assert not is_players_reply("Unknown command", empty)
    assert not is_players_reply("", empty)
    assert is_players_reply("(0 players in total)", PlayerTable(players=(), total=0))
    assert is_players_reply("Players on server:\n", empty)


def test_connect_only_when_ready_and_running_or_stopping() -> None:
    run = RunInfo(
        incarnation=1,
        identity=read_identity(os.getpid()) or pytest.fail("no identity"),
        started_at=0.0,
        profile_dir="/x",
    )
    assert not should_connect(ServerSnapshot(status="starting", run=run))
    assert not should_connect(ServerSnapshot(status="running", run=run, ready=False))
    assert not should_connect(ServerSnapshot(status="running", run=None, ready=True))
    assert should_connect(ServerSnapshot(status="running", run=run, ready=True))
    assert should_connect(ServerSnapshot(status="stopping", run=run, ready=True))
    assert not should_connect(ServerSnapshot(status="stopping", run=run, ready=True, exited=True))
    assert not should_connect(ServerSnapshot(status="crashed", run=run, ready=True))


def stored_ban(
    ban_id: int, *, guid: str | None = None, ip: str | None = None, expires_at: float | None = None
) -> StoredBan:
    return StoredBan(
        id=ban_id,
        server_id="alpha",
        guid=guid,
        ip=ip,
        reason=f"reason {ban_id}",
        minutes=None if expires_at is None else 60,
        expires_at=expires_at,
        created_by="admin",
        created_at=0.0,
    )


def test_only_missing_unexpired_stored_bans_are_reapplied() -> None:
    listed = parse_bans(
        "GUID Bans:\n[#] [GUID] [Minutes left] [Reason]\n" + "-" * 40 + "\n"
        f"0  {GUID_A.upper()} perm Cheating\n\n"
        "IP Bans:\n[#] [IP Address] [Minutes left] [Reason]\n" + "-" * 46 + "\n"
        "1  198.51.100.22   perm Ban evasion\n"
    )
    stored = [
        stored_ban(1, guid=GUID_A),  # listed (GUID case differs): kept as is
        stored_ban(2, guid=GUID_B),  # missing, permanent
        stored_ban(3, ip="198.51.100.22"),  # listed
        stored_ban(4, ip="192.0.2.9", expires_at=1000.0 + 90),  # missing, 1.5 min left
        stored_ban(5, guid="00112233445566778899aabbccddeeff", expires_at=999.0),  # expired
    ]
    assert bans_to_reapply(stored, listed, now=1000.0) == [
        f"addBan {GUID_B} 0 reason 2",
        "addBan 192.0.2.9 2 reason 4",
    ]
    assert bans_to_reapply(stored[:1], [], now=0.0) == [f"addBan {GUID_A} 0 reason 1"]
    assert bans_to_reapply([], listed, now=0.0) == []


def test_bans_replies_are_recognised_even_when_empty() -> None:
    assert is_bans_reply("GUID Bans:\n[#] [GUID] [Minutes left] [Reason]\n---\n\nIP Bans:\n")
    assert not is_bans_reply("Disallowed command")
    assert not is_bans_reply("")
    assert isinstance(parse_bans("GUID Bans:\n"), tuple)
    assert all(isinstance(b, ListedBan) for b in parse_bans("GUID Bans:\n"))


def test_player_messages_trigger_a_poll() -> None:
    assert refreshes_players(parse_server_message("Player #3 A B (192.0.2.7:2304) connected"))
    assert refreshes_players(parse_server_message("Player #3 A B disconnected"))
    assert refreshes_players(parse_server_message(f"Player #3 A - BE GUID: {GUID_A}"))
    assert refreshes_players(
        parse_server_message(f"Player #3 A ({GUID_A}) has been kicked by BattlEye: Admin Kick")
    )
    assert not refreshes_players(parse_server_message("(Global) A: hello"))
    assert not refreshes_players(parse_server_message("RCon admin #0: (Global) hi"))


# --- the actor against the simulator -----------------------------------------------------------


@dataclass
class Recorder:
    """The ``publish`` of the runtime: records events and wakes waiters."""

    events: list[Event] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)

    async def __call__(self, event: Event) -> bool:
        self.events.append(event)
        self.changed.set()
        self.changed = anyio.Event()
        return True

    def players_events(self) -> list[PlayersEvent]:
        return [e for e in self.events if isinstance(e, PlayersEvent)]

    async def wait_for(
        self, check: Callable[[Event], bool], limit: float = 5.0, *, after: int = 0
    ) -> Event:
        """Wait for an event recorded at index ``after`` or later that passes ``check``."""
        seen = after
        with anyio.fail_after(limit):
            while True:
                for event in self.events[seen:]:
                    if check(event):
                        return event
                seen = len(self.events)
                await self.changed.wait()


class SimProcess:
    """The simulator as a real process in its own session, killed by group at teardown."""

    def __init__(self, root: Path, port: int, env: Mapping[str, str], password: str) -> None:
        self.root = root
        profiles = root / "profiles"
        write_beserver_cfg(profiles, password, port)
        full_env = {**os.environ, **BASE_ENV, "DAYZSIM_PLAYERS": "3", **env}
        with (root / "stderr.txt").open("wb") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dayzsim",
                    "-config=serverDZ.cfg",
                    "-port=2302",
                    "-profiles=profiles",
                    "-dologs",
                ],
                cwd=root,
                env=full_env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    async def wait_ready(self, limit: float = 10.0) -> None:
        with anyio.fail_after(limit):
            while True:
                for rpt in (self.root / "profiles").glob("DayZServer_*.RPT"):
                    if "Player connect enabled" in rpt.read_text("utf-8", errors="replace"):
                        return
                assert self.proc.poll() is None, (self.root / "stderr.txt").read_text()
                await anyio.sleep(0.02)


@dataclass
class World:
    """One server's runtime, its rcon actor and the simulators started for it."""

    runtime: ServerRuntime
    recorder: Recorder
    tmp: Path
    port: int
    password: str
    sims: list[SimProcess] = field(default_factory=list)
    actor: RconActor | None = None
    address: Address[Any] | None = None
    incarnation: int = 0

    def start_sim(self, env: Mapping[str, str] | None = None) -> SimProcess:
        # A directory per run: the simulator waits for a new second before reusing one.
        root = self.tmp / f"run{len(self.sims)}"
        root.mkdir()
        sim = SimProcess(root, self.port, env or {}, self.password)
        self.sims.append(sim)
        return sim

    def announce_run(self, sim: SimProcess) -> None:
        """What the process actor does right after spawning."""
        identity = read_identity(sim.proc.pid)
        assert identity is not None
        self.incarnation += 1
        run = RunInfo(
            incarnation=self.incarnation,
            identity=identity,
            started_at=identity.create_time,
            profile_dir=str(sim.root / "profiles"),
        )
        self.runtime.state.update(status="starting", run=run, ready=False, exited=False)

    def announce_ready(self) -> None:
        self.runtime.state.update(status="running", ready=True)

    async def start_ready(self, env: Mapping[str, str] | None = None) -> SimProcess:
        sim = self.start_sim(env)
        self.announce_run(sim)
        await sim.wait_ready()
        self.announce_ready()
        return sim

    async def command(self, text: str, limit: float = 5.0) -> RconResult:
        assert self.address is not None
        result = await self.address.call(RconCommand(text, limit), timeout=6.0)
        assert isinstance(result, RconResult)
        return result

    @property
    def rcon_actor(self) -> RconActor:
        assert self.actor is not None
        return self.actor


def make_runtime(
    tmp: Path, recorder: Recorder, port: int, password: str, *, rcon: bool = True
) -> ServerRuntime:
    config = ServerConfig(
        id="alpha",
        name="Alpha",
        install_dir=str(tmp),
        executable="DayZServer",
        rcon=RconConfig(password=password, port=port) if rcon else None,
    )
    return ServerRuntime(config=config, registry=Registry(), publish=recorder)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    recorder = Recorder()
    port = free_udp_port()
    state = World(
        make_runtime(tmp_path, recorder, port, PASSWORD), recorder, tmp_path, port, PASSWORD
    )
    try:
        yield state
    finally:
        for sim in state.sims:
            sim.kill()


@contextlib.asynccontextmanager
async def running_actor(
    world: World, players_interval: float = 0.05, **options: Any
) -> AsyncIterator[World]:
    actor = RconActor(world.runtime, players_interval=players_interval, **options)
    name = world.runtime.child_name(RCON)
    async with open_actor(actor, name=name, registry=world.runtime.registry) as address:
        world.actor, world.address = actor, address
        yield world


def full_list(count: int) -> Callable[[Event], bool]:
    """An event listing ``count`` players, every GUID known."""

    def check(event: Event) -> bool:
        return (
            isinstance(event, PlayersEvent)
            and len(event.players) == count
            and all(p.guid is not None for p in event.players)
        )

    return check


async def wait_until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    with anyio.fail_after(limit):
        while not condition():
            await anyio.sleep(0.01)


async def test_connects_only_after_ready_then_publishes_the_players(world: World) -> None:
    async with running_actor(world) as w:
        sim = w.start_sim({"DAYZSIM_PLAYERS": "5", **STILL})
        w.announce_run(sim)
        await sim.wait_ready()
        # The game is up but nobody said "ready": the actor must not have tried yet.
        await anyio.wait_all_tasks_blocked()
        assert w.rcon_actor.statistics().connects == 0
        assert not w.runtime.rcon.connected
        assert w.recorder.events == []

        w.announce_ready()
        event = await w.recorder.wait_for(full_list(5))
        assert isinstance(event, PlayersEvent)
        names = {p.name for p in event.players}
        assert names == {
            "PlayerOne",
            "Player Two",
            "Игрок_3",
            "Big Name [TAG]",
            "Survivor (Lobby) Joe",  # the lobby suffix is cut, the look-alike in the name kept
        }
        for player in event.players:
            assert player.slot is not None
            assert player.id.startswith(f"{player.slot}-")
            assert player.ip is not None
            assert player.ip.count(".") == 3
        assert len({p.id for p in event.players}) == 5
        assert w.runtime.rcon.connected
        assert w.runtime.rcon.players == tuple(event.players)
        assert w.runtime.rcon.last_answer > 0
        assert w.rcon_actor.statistics().connects == 1


async def test_an_unchanged_list_is_not_published_again(world: World) -> None:
    async with running_actor(world) as w:
        await w.start_ready(STILL)
        await w.recorder.wait_for(full_list(3))
        published = len(w.recorder.players_events())
        polls = w.rcon_actor.statistics().polls
        await wait_until(lambda: w.rcon_actor.statistics().polls >= polls + 5)
        assert len(w.recorder.players_events()) == published


async def test_a_kick_and_a_join_publish_at_once(world: World) -> None:
    # A minute between polls: every change below is seen thanks to the server messages.
    async with running_actor(world, players_interval=60.0) as w:
        await w.start_ready(STILL)
        first = await w.recorder.wait_for(full_list(3))
        assert isinstance(first, PlayersEvent)
        kicked = next(p for p in first.players if p.slot == 1)
        assert kicked.name == "Player Two"

        assert await w.command("kick 1 bye") == RconResult(ok=True, output="")

        def without_kicked(event: Event) -> bool:
            return isinstance(event, PlayersEvent) and all(p.id != kicked.id for p in event.players)

        await w.recorder.wait_for(without_kicked)

        # The simulator fills slot 1 again with a new player, announced only by messages.
        def newcomer_verified(event: Event) -> bool:
            return isinstance(event, PlayersEvent) and any(
                p.slot == 1 and p.guid is not None and p.id != kicked.id for p in event.players
            )

        joined = await w.recorder.wait_for(newcomer_verified)
        assert isinstance(joined, PlayersEvent)
        newcomer = next(p for p in joined.players if p.slot == 1)
        assert newcomer.name not in {"PlayerOne", "Player Two", "Игрок_3"}
        # Its id was given at first sight (before the GUID was known) and kept since.
        first_sight = next(
            p
            for e in w.recorder.players_events()
            for p in e.players
            if p.slot == 1 and p.name == newcomer.name
        )
        assert first_sight.id == newcomer.id
        assert w.rcon_actor.statistics().polls < 20  # no interval polling happened


async def test_commands_and_server_messages(world: World) -> None:
    async with running_actor(world) as w:
        await w.start_ready(STILL)
        await w.recorder.wait_for(full_list(3))
        assert await w.command("say -1 hello there") == RconResult(ok=True, output="")

        def said(event: Event) -> bool:
            return (
                isinstance(event, LogEvent)
                and event.source == "rcon"
                and event.message == "RCon admin #0: (Global) hello there"
            )

        log = await w.recorder.wait_for(said)
        assert isinstance(log, LogEvent)
        assert (log.level, log.file, log.server_id) == ("info", None, "alpha")
        assert log in list(w.runtime.log_history)  # queryable: GET .../logs?source=rcon

        players = await w.command("players")
        assert players.ok
        assert "(3 players in total)" in players.output

        refused = await w.command("say -1 a\nkick 0")
        assert not refused.ok
        assert "control character" in refused.error
        unknown = await w.command("frobnicate")
        assert unknown == RconResult(ok=True, output="Unknown command")


async def test_a_command_without_a_link_fails_fast(world: World) -> None:
    async with running_actor(world) as w:
        with anyio.fail_after(1.0):
            result = await w.command("players", limit=30.0)
        assert result == RconResult(ok=False, error=NOT_CONNECTED, failure="not_connected")
        bad = await w.command("players", limit=float("nan"))
        assert (bad.ok, bad.failure) == (False, "invalid")


async def find(w: World, player_id: str) -> PlayerLookup:
    assert w.address is not None
    lookup = await w.address.call(FindPlayer(player_id, 5.0), timeout=6.0)
    assert isinstance(lookup, PlayerLookup)
    return lookup


async def kick(w: World, player_id: str, reason: str = "") -> RconResult:
    assert w.address is not None
    result = await w.address.call(KickPlayer(player_id, reason, 5.0), timeout=11.0)
    assert isinstance(result, RconResult)
    return result


async def test_a_kick_by_id_never_hits_whoever_took_the_slot_since(world: World) -> None:
    # A minute between polls: only server messages and the kick's own fresh read refresh.
    async with running_actor(world, players_interval=60.0) as w:
        await w.start_ready(STILL)
        first = await w.recorder.wait_for(full_list(3))
        assert isinstance(first, PlayersEvent)
        stale = tuple(first.players)
        victim = next(p for p in stale if p.slot == 1)
        # Someone else kicks slot 1 and the simulator fills it with a newcomer.
        assert (await w.command("kick 1 by someone else")).ok

        def newcomer_in_slot_1(event: Event) -> bool:
            return isinstance(event, PlayersEvent) and any(
                p.slot == 1 and p.guid is not None and p.id != victim.id for p in event.players
            )

        joined = await w.recorder.wait_for(newcomer_in_slot_1)
        assert isinstance(joined, PlayersEvent)
        newcomer = next(p for p in joined.players if p.slot == 1)
        # A list read before the swap: the victim's id still says slot 1.
        w.runtime.rcon.players = stale
        result = await kick(w, victim.id, "stale id")
        assert (result.ok, result.failure) == (False, "gone")
        assert victim.id in result.error
        # The newcomer is still there; the fresh read also replaced the stale list.
        assert any(p.id == newcomer.id for p in w.runtime.rcon.players)
        assert (await find(w, newcomer.id)).player == newcomer

        # A current id is kicked in the slot the fresh read gives.
        other = next(p for p in joined.players if p.slot == 0)
        assert await kick(w, other.id, "bye") == RconResult(ok=True, output="")

        def other_gone(event: Event) -> bool:
            return isinstance(event, PlayersEvent) and all(p.id != other.id for p in event.players)

        await w.recorder.wait_for(other_gone)
        assert any(p.id == newcomer.id for p in w.runtime.rcon.players)


async def test_a_dropped_link_fails_commands_fast_and_never_retries_them(world: World) -> None:
    settings = RConSettings(
        resend_interval=0.2, max_resends=2, login_timeout=0.4, keepalive_interval=30.0
    )
    backoff = Backoff(base=0.05, cap=0.2, jitter=0.0, reset_after=60.0)
    async with running_actor(world, players_interval=60.0, settings=settings, backoff=backoff) as w:
        sim = await w.start_ready(STILL)
        await w.recorder.wait_for(full_list(3))
        os.kill(sim.proc.pid, signal.SIGSTOP)  # the server goes silent, as a dropped session
        try:
            lost = await w.command("say -1 maybe once", limit=2.0)
            assert not lost.ok
            # No reply after every resend (or the session ended under it when another command
            # found the silence first): it may have been applied, and it is not retried.
            assert lost.failure in ("no_reply", "unavailable"), lost
            assert "may or may not" in lost.error
            await wait_until(lambda: not w.runtime.rcon.connected)
            # While it reconnects, a command fails at once and is not kept for later.
            with anyio.fail_after(0.5):
                refused = await w.command("say -1 never sent", limit=5.0)
            assert refused == RconResult(ok=False, error=RECONNECTING, failure="unavailable")
            lookup = await find(w, "0-anything")
            assert lookup.result.failure == "unavailable"
        finally:
            os.kill(sim.proc.pid, signal.SIGCONT)
        await wait_until(lambda: w.runtime.rcon.connected, limit=10.0)
        assert (await w.command("say -1 marker")).ok

        def echoed(event: Event) -> bool:
            return isinstance(event, LogEvent) and event.message.endswith("(Global) marker")

        await w.recorder.wait_for(echoed)
        said = [e.message for e in w.recorder.events if isinstance(e, LogEvent)]
        assert not any("never sent" in m for m in said)


async def test_bans_lost_from_battleyes_list_are_reapplied_on_connect(world: World) -> None:
    store = Store.open(world.tmp / "data")
    try:
        store.add_ban("alpha", guid=GUID_A, reason="cheating", created_by="admin")
        store.add_ban("alpha", ip="192.0.2.99", reason="evasion", minutes=60)
        store.add_ban("alpha", guid=GUID_B, reason="expired", minutes=1, now=0.0)
        store.add_ban("bravo", guid="00112233445566778899aabbccddeeff", reason="elsewhere")
        registry = world.runtime.registry
        async with open_actor(StoreActor(store), name="store", registry=registry) as db:
            registry.register("store", db)
            # A fresh simulator: its bans.txt is empty, as after a reinstall.
            async with running_actor(world) as w:
                await w.start_ready(STILL)
                await wait_until(lambda: w.rcon_actor.statistics().ban_checks == 1)
                assert w.rcon_actor.statistics().bans_reapplied == 2
                listed = parse_bans((await w.command("bans")).output)
                assert {(b.kind, b.id.lower(), b.reason) for b in listed} == {
                    ("guid", GUID_A, "cheating"),
                    ("ip", "192.0.2.99", "evasion"),
                }
                minutes = next(b.minutes for b in listed if b.kind == "ip")
                assert minutes is not None
                assert 58 <= minutes <= 60
            # The next session (a restarted actor) finds them there and adds nothing.
            async with running_actor(world) as w:
                await wait_until(lambda: w.rcon_actor.statistics().ban_checks == 1)
                assert len(parse_bans((await w.command("bans")).output)) == 2
                assert w.rcon_actor.statistics().bans_reapplied == 0
    finally:
        store.close()


async def test_a_server_without_rcon_answers_not_configured(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, Recorder(), 2306, PASSWORD, rcon=False)
    async with open_actor(RconActor(runtime)) as address:
        with anyio.fail_after(1.0):
            result = await address.call(RconCommand("players"))
        assert result == RconResult(ok=False, error=NOT_CONFIGURED, failure="not_configured")


async def test_reconnects_to_the_next_run(world: World) -> None:
    async with running_actor(world) as w:
        first = await w.start_ready(STILL)
        await w.recorder.wait_for(full_list(3))

        first.kill()
        w.runtime.state.update(exited=True, status="crashed")

        def empty(event: Event) -> bool:
            return isinstance(event, PlayersEvent) and event.players == []

        await w.recorder.wait_for(empty)
        assert not w.runtime.rcon.connected
        assert w.runtime.rcon.players == ()
        mark = len(w.recorder.events)

        await w.start_ready(STILL)
        await w.recorder.wait_for(full_list(3), limit=10.0, after=mark)
        assert w.runtime.rcon.connected
        assert w.rcon_actor.statistics().connects >= 2
        # The empty list went out once, not once per state change.
        assert sum(1 for e in w.recorder.players_events() if e.players == []) == 1
        assert (await w.command("say -1 back")).ok


async def test_garbage_on_the_wire_is_ignored(world: World) -> None:
    async with running_actor(world) as w:
        await w.start_ready({**STILL, "DAYZSIM_RCON_GARBAGE": "1"})
        await w.recorder.wait_for(full_list(3))
        assert (await w.command("say -1 still fine")).ok
        stats = w.rcon_actor.statistics().client
        assert stats is not None
        assert stats.garbage > 0


async def test_a_rejected_password_is_not_retried_until_the_next_run(tmp_path: Path) -> None:
    recorder = Recorder()
    port = free_udp_port()
    runtime = make_runtime(tmp_path, recorder, port, "not-the-password")
    w = World(runtime, recorder, tmp_path, port, PASSWORD)
    child = spec(runtime)  # incarnations made by one spec share what they learned
    logs: list[Any] = []
    try:
        async with open_actor(Probe(log=logs), name="logs", registry=runtime.registry) as probe:
            runtime.registry.register(runtime.child_name(LOGS), probe)
            first = child.start()
            assert isinstance(first, RconActor)
            async with open_actor(first, registry=runtime.registry):
                sim = await w.start_ready(STILL)
                await wait_until(lambda: bool(logs))
                assert isinstance(logs[0], SystemLog)
                assert logs[0].level == "warn"
                assert "rejected" in logs[0].message
                stats = first.statistics()
                assert (stats.connects, stats.login_failures) == (1, 1)

                # Any other change of the same run: still no new attempt.
                runtime.state.update(status="stopping")
                await anyio.wait_all_tasks_blocked()
                assert first.statistics().connects == 1

            # A restarted actor (next incarnation) remembers the rejection for this run.
            second = child.start()
            assert isinstance(second, RconActor)
            async with open_actor(second, registry=runtime.registry):
                await anyio.wait_all_tasks_blocked()
                assert second.statistics().connects == 0

                # A new run (same process, new incarnation) may try once more.
                w.announce_run(sim)
                w.announce_ready()
                await wait_until(lambda: second.statistics().login_failures == 1)
                assert second.statistics().connects == 1
            assert recorder.players_events() == []
            assert len(logs) == 2
    finally:
        for sim in w.sims:
            sim.kill()


def test_spec_names_the_child() -> None:
    runtime = make_runtime(Path("/nonexistent"), Recorder(), 2306, PASSWORD)
    child = spec(runtime)
    assert (child.id, child.name) == ("rcon", "alpha/rcon")
    assert isinstance(child.start(), RconActor)
    assert child.start() is not child.start()


def test_player_structs_are_what_the_event_carries() -> None:
    player = identify_players([row(0, GUID_A)], ())[0]
    assert player == Player(
        id=new_player_id(row(0, None)),
        name="PlayerOne",
        ping=31,
        guid=GUID_A,
        slot=0,
        ip="192.0.2.7",
    )
