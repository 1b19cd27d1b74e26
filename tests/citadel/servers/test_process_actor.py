"""The process actor in virtual time (trio ``MockClock`` and the autojumping asyncio loop).

Backoff, budgets, start and hang timeouts are minutes of virtual time that cost microseconds.
The OS parts stay real: a start that fails is a real failed ``exec`` of a missing program; a
server that never becomes ready or hangs is a real sleeping process (killed for real). The
facts the sibling actors would write (log activity, fps, RCON answers) are written by the test,
which is what the process actor reads them from.

Tests with a live process run on trio only, with ``autojump_threshold`` = `PATIENT_AUTOJUMP`:
while the loop waits for a real exit, a clock that jumps at once would race through the timers
(an autojumping clock cannot know an exit is a millisecond away). Their time assertions are
on what the actor decided (the silence it reported), not on when the exit was seen.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from actors import Address, Registry, open_actor
from citadel.config import RconConfig, ServerConfig
from citadel.demo import free_udp_port
from citadel.messages import Event, NotificationEvent, ServerStatusEvent
from citadel.servers.identity import ProcessIdentity, read_identity
from citadel.servers.messages import (
    Accepted,
    GetStatus,
    Notice,
    Ready,
    StartServer,
    StopServer,
)
from citadel.servers.persistence import MemoryRunStore
from citadel.servers.process import ProcessActor
from citadel.servers.process_memory import ProcessMemory, release_memory
from citadel.servers.runtime import LifecycleRecord, RunInfo, ServerRuntime
from tests._virtual_time import VirtualTimeEventLoop

pytestmark = pytest.mark.anyio
MISSING = "/nonexistent/citadel-test/DayZServer"
PATIENT_AUTOJUMP = 0.01  # real seconds of idleness before the mock clock jumps
REAL_PROCESS = pytest.mark.parametrize("anyio_backend", ["trio-patient"], indirect=True)
SLEEP = "import time\nwhile True:\n    time.sleep(3600)\n"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    if request.param == "trio":
        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    if request.param == "trio-patient":
        return ("trio", {"clock": MockClock(autojump_threshold=PATIENT_AUTOJUMP)})
    return ("asyncio", {"loop_factory": VirtualTimeEventLoop})


class Server:
    """One process actor with its runtime, and everything it published (with the time)."""

    def __init__(self, tmp_path: Path, runs: MemoryRunStore, **overrides: Any) -> None:
        settings: dict[str, Any] = {
            "id": "alpha",
            "name": "Alpha",
            "install_dir": str(tmp_path),
            "executable": MISSING,
            "auto_start": True,
            **overrides,
        }
        self.config = ServerConfig(**settings)
        self.runs = runs
        self.published: list[tuple[float, Event]] = []
        self._changed = anyio.Event()
        self.runtime = ServerRuntime(config=self.config, registry=Registry(), publish=self._publish)
        self.address: Address[Any] | None = None

    async def _publish(self, event: Event) -> bool:
        self.published.append((anyio.current_time(), event))
        self._changed.set()
        self._changed = anyio.Event()
        return True

    def statuses(self) -> list[ServerStatusEvent]:
        return [e for _, e in self.published if isinstance(e, ServerStatusEvent)]

    def notes(self) -> list[NotificationEvent]:
        return [e for _, e in self.published if isinstance(e, NotificationEvent)]

    def time_of(self, event: Event) -> float:
        return next(t for t, e in self.published if e is event)

    async def wait_status(
        self, predicate: Callable[[ServerStatusEvent], bool], count: int = 1
    ) -> ServerStatusEvent:
        """The ``count``-th ``serverStatus`` matching ``predicate`` (waits for it)."""
        while True:
            matching = [e for e in self.statuses() if predicate(e)]
            if len(matching) >= count:
                return matching[count - 1]
            await self._changed.wait()

    async def wait_note(self, predicate: Callable[[NotificationEvent], bool]) -> NotificationEvent:
        """The first ``notification`` matching ``predicate`` (waits for it)."""
        while True:
            for note in self.notes():
                if predicate(note):
                    return note
            await self._changed.wait()

    @property
    def memory(self) -> ProcessMemory:
        memory: ProcessMemory = self.runtime.extras["process"]
        return memory

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Address[Any]]:
        actor = ProcessActor(self.runtime, self.runs, random=lambda: 0.0)
        try:
            async with open_actor(actor, name="alpha/process") as address:
                self.address = address
                yield address
        finally:
            await release_memory(self.memory)  # kills a real process left running


def python_server(tmp_path: Path, script: str = SLEEP, **overrides: Any) -> dict[str, Any]:
    return {"executable": sys.executable, "args": ["-c", script], **overrides}


def assert_seq_steps(server: Server) -> None:
    seqs = [e.seq for e in server.statuses()]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs


# --- automatic restarts -------------------------------------------------------------------------


async def test_failed_automatic_starts_back_off_count_and_give_up(tmp_path: Path) -> None:
    """Defaults: 5 s doubling to 300 s, 10 automatic restarts in an hour, then a give-up."""
    server = Server(tmp_path, MemoryRunStore())
    async with server.running():
        with anyio.fail_after(3600):
            final = await server.wait_status(lambda e: e.restart_in is None)
    crashes = server.statuses()
    assert all(e.status == "crashed" for e in crashes)
    assert all(e.reason is not None and "could not start" in e.reason for e in crashes)
    # The auto start and 10 automatic restarts each failed; each is its own transition.
    assert [e.restart_in for e in crashes] == [
        5.0,
        10.0,
        20.0,
        40.0,
        80.0,
        160.0,
        300.0,
        300.0,
        300.0,
        300.0,
        None,
    ]
    assert final is crashes[-1]
    assert_seq_steps(server)
    assert crashes[0].seq == 1
    # Each retry came when its restartIn said.
    for before, after in itertools.pairwise(crashes):
        assert before.restart_in is not None
        elapsed = server.time_of(after) - server.time_of(before)
        assert elapsed == pytest.approx(before.restart_in, abs=0.01)
    gave_up = [n for n in server.notes() if "given up" in n.title]
    assert len(gave_up) == 1
    assert "10 automatic restarts within an hour" in gave_up[0].message
    assert "could not start" in gave_up[0].message
    assert server.runs.records["alpha"].status == "crashed"
    assert not server.runs.records["alpha"].restart_pending


async def test_an_operator_start_that_cannot_spawn_is_reported_not_retried(
    tmp_path: Path,
) -> None:
    server = Server(tmp_path, MemoryRunStore(), auto_start=False)
    async with server.running() as address:
        with anyio.fail_after(60):
            await server.wait_status(lambda e: e.status == "stopped")
            assert (await address.call(StartServer(by="ops"))).ok
            crashed = await server.wait_status(lambda e: e.status == "crashed")
        await anyio.sleep(600)  # virtual time: long past any backoff
    assert crashed.restart_in is None
    assert crashed.reason is not None
    assert "No such file" in crashed.reason
    assert [e.status for e in server.statuses()] == ["stopped", "crashed"]
    assert [n.title for n in server.notes()] == ["Alpha: Server failed to start"]


async def test_stop_cancels_a_pending_restart(tmp_path: Path) -> None:
    server = Server(tmp_path, MemoryRunStore())
    async with server.running() as address:
        with anyio.fail_after(60):
            await server.wait_status(lambda e: e.status == "crashed")
            assert (await address.call(StopServer(by="ops"))).ok
        await anyio.sleep(600)  # virtual time: past the cancelled restart
    assert [(e.status, e.seq) for e in server.statuses()] == [("crashed", 1), ("stopped", 2)]
    assert server.runs.records["alpha"] == LifecycleRecord(seq=2, status="stopped")


# --- Citadel restarted ------------------------------------------------------------------------


def dead_run(tmp_path: Path) -> RunInfo:
    # Our own pid with a create time of 1970: the identity of a process that no longer exists.
    identity = ProcessIdentity(os.getpid(), 1.0, ("DayZServer",))
    return RunInfo(incarnation=3, identity=identity, started_at=1.0, profile_dir=str(tmp_path))


async def test_found_dead_at_start_is_crashed_with_the_scheduled_restart(tmp_path: Path) -> None:
    runs = MemoryRunStore()
    runs.records["alpha"] = LifecycleRecord(
        seq=7, status="running", ready=True, run=dead_run(tmp_path)
    )
    server = Server(tmp_path, runs)
    async with server.running():
        with anyio.fail_after(60):
            retried = await server.wait_status(lambda e: e.seq == 9)
    found = server.statuses()[0]
    assert (found.status, found.seq) == ("crashed", 8)
    assert found.reason == "the server exited while Citadel was not running"
    assert found.restart_in == 5.0  # the restart it scheduled, not null
    note = server.notes()[0]
    assert note.title == "Alpha: Server exited while Citadel was down"
    assert note.message.endswith("restarting in 5 s")
    # The restart did come (and failed here, the executable being missing: counted again).
    assert server.time_of(retried) - server.time_of(found) == pytest.approx(5.0, abs=0.01)
    assert retried.restart_in == 10.0


async def test_a_live_process_that_cannot_be_recognised_blocks_a_second_copy(
    tmp_path: Path,
) -> None:
    # The recorded pid and start are a live process (this one) whose command line is not the
    # recorded one and whose environment has no marker: most likely the server, exec'd with a
    # cleared environment. Citadel neither adopts nor kills it, and starts no second copy.
    me = read_identity(os.getpid())
    assert me is not None
    identity = ProcessIdentity(me.pid, me.create_time, ("/bin/sh", "DayZServer"))
    run = RunInfo(
        incarnation=3,
        identity=identity,
        started_at=me.create_time,
        profile_dir=str(tmp_path),
        marker="0123abcd",
    )
    runs = MemoryRunStore()
    runs.records["alpha"] = LifecycleRecord(seq=7, status="running", ready=True, run=run)
    server = Server(tmp_path, runs)
    async with server.running():
        with anyio.fail_after(60):
            found = await server.wait_status(lambda e: True)
        await anyio.sleep(3600)  # virtual time: no automatic restart comes
    assert (found.status, found.seq) == ("crashed", 8)
    assert found.restart_in is None
    assert f"pid {me.pid}, started with the recorded run, still runs" in (found.reason or "")
    assert "not starting a second copy" in (found.reason or "")
    assert server.statuses() == [found]


async def test_seq_and_status_continue_from_the_record(tmp_path: Path) -> None:
    runs = MemoryRunStore()
    runs.records["alpha"] = LifecycleRecord(seq=4, status="stopped")
    server = Server(tmp_path, runs, auto_start=False)
    async with server.running() as address:
        with anyio.fail_after(60):
            first = await server.wait_status(lambda e: True)
            await address.call(StartServer())
            await server.wait_status(lambda e: e.status == "crashed")
    # The first event repeats what the last Citadel published; the next transition is +1.
    assert (first.status, first.seq) == ("stopped", 4)
    assert [e.seq for e in server.statuses()] == [4, 5]
    assert runs.records["alpha"].seq == 5


# --- notifications and the store --------------------------------------------------------------


async def test_notification_ids_are_unique_across_servers(tmp_path: Path) -> None:
    runs = MemoryRunStore()
    alpha = Server(tmp_path / "a", runs, max_restarts_per_hour=2)
    bravo = Server(tmp_path / "b", runs, id="bravo", max_restarts_per_hour=2)
    async with alpha.running(), bravo.running():
        with anyio.fail_after(600):
            await alpha.wait_status(lambda e: e.restart_in is None)
            await bravo.wait_status(lambda e: e.restart_in is None)
    ids = [n.id for n in alpha.notes() + bravo.notes()]
    assert len(ids) == 6
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == [note_id for note_id, _ in runs.notices]


class GatedStore(MemoryRunStore):
    """A store whose notifications wait for a gate (a store actor that is busy)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = anyio.Event()

    async def add_notification(self, notice: Notice) -> int:
        await self.gate.wait()
        return await super().add_notification(notice)


async def test_the_actor_never_waits_for_the_store(tmp_path: Path) -> None:
    runs = GatedStore()
    server = Server(tmp_path, runs)
    async with server.running() as address:
        with anyio.fail_after(600):
            # The first crash's notification is stuck in the store; the actor goes on: its
            # restarts come and fail on time, and it answers at once ...
            await server.wait_status(lambda e: e.seq == 1)
            await anyio.sleep(60)  # virtual: the restarts after 5, 10 and 20 s
            view = await address.call(GetStatus())
            assert (view.status, view.seq) == ("crashed", 4)
            assert runs.records["alpha"].seq == 1  # records wait behind the notice, in order
            # ... while the events behind the notice wait, in order.
            assert [e.seq for e in server.statuses()] == [1]
            runs.gate.set()
            await server.wait_status(lambda e: e.seq == 4)
    assert [e.seq for e in server.statuses()] == [1, 2, 3, 4]
    assert [n.id for n in server.notes()] == [1, 2, 3, 4]
    assert runs.records["alpha"].seq == 4


# --- start timeout and hangs (real sleeping processes) --------------------------------------


@REAL_PROCESS
async def test_a_start_that_never_becomes_ready_times_out(tmp_path: Path) -> None:
    server = Server(tmp_path, MemoryRunStore(), **python_server(tmp_path, start_timeout=120.0))
    async with server.running():
        with anyio.fail_after(600):
            starting = await server.wait_status(lambda e: e.status == "starting")
            crashed = await server.wait_status(lambda e: e.status == "crashed")
    assert crashed.reason == "not ready within the start timeout (120 s)"
    assert crashed.signal == "SIGKILL"
    assert crashed.restart_in == 5.0
    assert server.time_of(crashed) - server.time_of(starting) >= 120.0


async def make_running(server: Server) -> ServerStatusEvent:
    starting = await server.wait_status(lambda e: e.status == "starting")
    assert server.address is not None
    await server.address.cast(Ready(server.memory.incarnation))  # the logs actor's job
    running = await server.wait_status(lambda e: e.status == "running")
    assert running.seq == starting.seq + 1
    return running


@REAL_PROCESS
async def test_a_server_whose_fps_lines_stop_is_hung_even_while_rcon_answers(
    tmp_path: Path,
) -> None:
    rcon = RconConfig(password="pw", port=2306)
    server = Server(tmp_path, MemoryRunStore(), rcon=rcon, **python_server(tmp_path))
    async with server.running(), anyio.create_task_group() as tg:
        with anyio.fail_after(3600):
            running = await make_running(server)
            facts = server.runtime
            facts.logs.fps = 59.9  # it logs periodically ...
            facts.logs.last_activity = anyio.current_time()

            async def rcon_answers() -> None:
                while True:  # ... and BattlEye keeps answering while the game loop is frozen
                    facts.rcon.last_answer = anyio.current_time()
                    await anyio.sleep(30)

            tg.start_soon(rcon_answers)
            crashed = await server.wait_status(lambda e: e.status == "crashed")
            tg.cancel_scope.cancel()
    assert crashed.reason is not None
    assert crashed.signal == "SIGKILL"
    match = re.fullmatch(r"hung: no log output for (\d+) s", crashed.reason)
    assert match is not None, crashed.reason
    # Checked every quarter of hang_timeout: killed at the first check past 180 s of silence.
    assert 180 < int(match[1]) <= 180 + 45
    assert server.time_of(crashed) - server.time_of(running) > 180.0


@REAL_PROCESS
async def test_a_quiet_server_without_rcon_is_not_killed(tmp_path: Path) -> None:
    server = Server(tmp_path, MemoryRunStore(), **python_server(tmp_path))
    async with server.running():
        with anyio.fail_after(7200):
            await make_running(server)
            await anyio.sleep(3600)  # virtual: an hour without a line, no RCON configured
            assert server.statuses()[-1].status == "running"
            assert server.memory.hang_warned == server.memory.incarnation


@REAL_PROCESS
async def test_a_quiet_server_with_rcon_is_hung_when_rcon_falls_silent(tmp_path: Path) -> None:
    rcon = RconConfig(password="pw", port=2306)
    server = Server(tmp_path, MemoryRunStore(), rcon=rcon, **python_server(tmp_path))
    async with server.running(), anyio.create_task_group() as tg:
        with anyio.fail_after(7200):
            await make_running(server)
            facts = server.runtime
            silenced = anyio.Event()

            async def rcon_answers_for_an_hour() -> None:
                until = anyio.current_time() + 3600
                while anyio.current_time() < until:
                    facts.rcon.last_answer = anyio.current_time()
                    await anyio.sleep(60)
                silenced.set()

            tg.start_soon(rcon_answers_for_an_hour)
            await silenced.wait()
            assert server.statuses()[-1].status == "running"  # no log line for an hour: fine
            crashed = await server.wait_status(lambda e: e.status == "crashed")
    assert crashed.reason is not None
    assert crashed.reason.startswith("hung: no RCON answer and no log output for ")
    assert server.time_of(crashed) - facts.rcon.last_answer > 180.0


# --- the RCON port ----------------------------------------------------------------------------


@REAL_PROCESS
async def test_an_rcon_port_bound_by_another_process_is_warned_and_gets_no_shutdown(
    tmp_path: Path,
) -> None:
    # A stranger (this test process: no part of the server's run) holds the RCON port, as the
    # orphan of an earlier run would: RCON would be answered, and #shutdown obeyed, by it.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.1", 0))
        port = stranger.getsockname()[1]
        rcon = RconConfig(password="pw", port=port)
        server = Server(tmp_path, MemoryRunStore(), rcon=rcon, **python_server(tmp_path))
        async with server.running() as address:
            with anyio.fail_after(3600):
                await make_running(server)
                note = await server.wait_note(lambda n: "RCON port held" in n.title)
                server.runtime.rcon.connected = True  # the RCON actor logged in (to the stranger)
                assert await address.call(StopServer()) == Accepted(True)
                stopped = await server.wait_status(lambda e: e.status == "stopped")
    held = f"RCON port {port} is bound by a process that is not this server's"
    assert note.severity == "warning"
    assert note.message.startswith(held)
    assert stopped.reason == f"stopped by an operator (SIGTERM); RCON #shutdown skipped ({held})"


# Binds the RCON port, then says so through a FIFO (opening it blocks until the test reads).
BINDS_PORT = """
import socket, sys, time
rcon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rcon.bind(("127.0.0.1", int(sys.argv[1])))
open(sys.argv[2], "w").close()
while True:
    time.sleep(3600)
"""


@REAL_PROCESS
async def test_an_rcon_port_bound_by_the_server_itself_is_not_a_stranger(tmp_path: Path) -> None:
    port = free_udp_port()
    bound = tmp_path / "bound"
    os.mkfifo(bound)
    rcon = RconConfig(password="pw", port=port)
    server = Server(
        tmp_path,
        MemoryRunStore(),
        rcon=rcon,
        executable=sys.executable,
        args=["-c", BINDS_PORT, str(port), str(bound)],
        start_timeout=1e6,  # the clock jumps while the test waits for the real bind
    )
    async with server.running() as address:
        with anyio.fail_after(1e6):
            await server.wait_status(lambda e: e.status == "starting")
            await anyio.to_thread.run_sync(bound.read_text)  # the server has bound its port
            await make_running(server)
            server.runtime.rcon.connected = True
            assert await address.call(StopServer()) == Accepted(True)
            stopped = await server.wait_status(lambda e: e.status == "stopped")
    # #shutdown was tried (and failed: no RCON actor here), not skipped; no warning.
    assert stopped.reason == "stopped by an operator (SIGTERM)"
    assert not [n for n in server.notes() if "RCON port held" in n.title]
