"""The metrics actor sampling the real simulator process.

The test plays the process actor (writes ``runtime.state``) and the rcon and logs actors (writes
the player list and fps facts the metrics actor reads).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from actors import Registry, open_actor
from citadel.config import ServerConfig
from citadel.messages import Event, MetricsEvent, Player
from citadel.servers.identity import read_identity
from citadel.servers.metrics import MetricsActor, build_metrics_event, should_sample, spec
from citadel.servers.runtime import RunInfo, ServerRuntime, ServerSnapshot
from citadel.servers.sampler import GroupSample, ProcessGroupSampler, ProcessTable
from tests.citadel.servers.conftest import Reaper
from tests.dayzsim._harness import BASE_ENV

pytestmark = pytest.mark.anyio

INTERVAL = 0.1


# --- pure ---------------------------------------------------------------------------------------


def test_event_fields_are_clamped_and_rounded() -> None:
    sample = GroupSample(
        cpu_percent_of_host=12.3456, ram_bytes=1 << 20, ram_percent_of_host=1.23456, processes=2
    )
    event = build_metrics_event(
        "alpha", sample, players=3, fps=44.5, uptime=12.345, timestamp="2026-12-03T18:56:31.123Z"
    )
    assert event == MetricsEvent(
        server_id="alpha",
        cpu=12.35,
        ram=1.23,
        players=3,
        fps=44.5,
        timestamp="2026-12-03T18:56:31.123Z",
        ram_bytes=1 << 20,
        uptime=12.3,
    )
    wild = GroupSample(
        cpu_percent_of_host=None, ram_bytes=-1, ram_percent_of_host=130.0, processes=1
    )
    odd = build_metrics_event("alpha", wild, players=-1, fps=None, uptime=-5.0, timestamp="t")
    assert (odd.cpu, odd.ram, odd.ram_bytes, odd.players, odd.uptime) == (0.0, 100.0, 0, 0, 0.0)


def test_sampling_follows_the_run() -> None:
    identity = read_identity(os.getpid())
    assert identity is not None
    run = RunInfo(incarnation=1, identity=identity, started_at=0.0, profile_dir="/x")
    assert not should_sample(ServerSnapshot())
    assert should_sample(ServerSnapshot(status="starting", run=run))
    assert should_sample(ServerSnapshot(status="stopping", run=run, ready=True))
    assert not should_sample(ServerSnapshot(status="crashed", run=run, exited=True))


def test_spec_names_the_child(tmp_path: Path) -> None:
    runtime, _ = make_runtime(tmp_path)
    child = spec(runtime)
    assert (child.id, child.name) == ("metrics", "alpha/metrics")
    assert isinstance(child.start(), MetricsActor)


# --- against a real process ---------------------------------------------------------------------


@dataclass
class Recorder:
    events: list[Event] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)

    async def __call__(self, event: Event) -> bool:
        self.events.append(event)
        self.changed.set()
        self.changed = anyio.Event()
        return True

    def metrics(self) -> list[MetricsEvent]:
        return [e for e in self.events if isinstance(e, MetricsEvent)]

    async def wait_for(
        self, check: Callable[[MetricsEvent], bool], limit: float = 5.0, *, after: int = 0
    ) -> MetricsEvent:
        seen = after
        with anyio.fail_after(limit):
            while True:
                for event in self.events[seen:]:
                    if isinstance(event, MetricsEvent) and check(event):
                        return event
                seen = len(self.events)
                await self.changed.wait()


def make_runtime(tmp: Path) -> tuple[ServerRuntime, Recorder]:
    recorder = Recorder()
    config = ServerConfig(
        id="alpha",
        name="Alpha",
        install_dir=str(tmp),
        executable="DayZServer",
        metrics_interval=INTERVAL,
    )
    return ServerRuntime(config=config, registry=Registry(), publish=recorder), recorder


class Sims:
    """Simulator processes (no RCON: no BattlEye config), killed by group at teardown."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        root = self.tmp / f"run{len(self.procs)}"
        root.mkdir()
        env = {**os.environ, **BASE_ENV, "DAYZSIM_PLAYERS": "3", "DAYZSIM_LOG_FLOOD": "200"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "dayzsim", "-config=serverDZ.cfg", "-profiles=profiles"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[Sims]:
    keeper = Sims(tmp_path)
    try:
        yield keeper
    finally:
        for proc in keeper.procs:
            keeper.kill(proc)


def announce(runtime: ServerRuntime, proc: subprocess.Popen[bytes], incarnation: int) -> None:
    """What the process actor does after spawning (and, for metrics, readiness is irrelevant)."""
    identity = read_identity(proc.pid)
    assert identity is not None
    run = RunInfo(
        incarnation=incarnation,
        identity=identity,
        started_at=identity.create_time,
        profile_dir="profiles",
    )
    runtime.state.update(status="starting", run=run, ready=False, exited=False)


@contextlib.asynccontextmanager
async def running(runtime: ServerRuntime) -> AsyncIterator[MetricsActor]:
    actor = MetricsActor(runtime)
    async with open_actor(actor, name="alpha/metrics", registry=runtime.registry):
        yield actor


async def wait_until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    with anyio.fail_after(limit):
        while not condition():
            await anyio.sleep(0.01)


def players(count: int) -> tuple[Player, ...]:
    return tuple(Player(id=f"{i}-x", name=f"P{i}", ping=30, slot=i) for i in range(count))


async def test_samples_the_running_process(tmp_path: Path, sims: Sims) -> None:
    runtime, recorder = make_runtime(tmp_path)
    async with running(runtime) as actor:
        await anyio.wait_all_tasks_blocked()
        assert actor.statistics().samples == 0  # no run, no sampling
        runtime.rcon.players = players(2)
        runtime.logs.fps = 44.5
        proc = sims.start()
        announce(runtime, proc, 1)

        busy = await recorder.wait_for(lambda e: e.cpu > 0)
        assert busy.ram > 0
        assert busy.ram_bytes > 1 << 20  # a Python process holds megabytes
        assert busy.players == 2
        assert busy.fps == 44.5
        assert busy.server_id == "alpha"
        assert 0 <= busy.uptime < 30

        runtime.rcon.players = players(3)
        runtime.logs.fps = None
        later = await recorder.wait_for(lambda e: e.players == 3, after=len(recorder.events))
        assert later.fps is None
        assert later.uptime >= busy.uptime
        assert list(runtime.metrics_history) == recorder.metrics()
        assert len(runtime.metrics_history) >= 2
        assert actor.statistics().sampling == 1


async def test_nothing_is_sampled_once_the_run_has_exited(tmp_path: Path, sims: Sims) -> None:
    runtime, recorder = make_runtime(tmp_path)
    async with running(runtime) as actor:
        proc = sims.start()
        announce(runtime, proc, 1)
        await recorder.wait_for(lambda e: True)
        # The state says exited (the process itself is still there): sampling stops.
        runtime.state.update(exited=True, status="crashed")
        await wait_until(lambda: actor.statistics().sampling is None)
        count = len(recorder.events)
        samples = actor.statistics().samples
        await anyio.sleep(4 * INTERVAL)  # a window in which several samples would have come
        assert len(recorder.events) == count
        assert actor.statistics().samples == samples


async def test_a_vanished_process_is_skipped_quietly(tmp_path: Path, sims: Sims) -> None:
    runtime, recorder = make_runtime(tmp_path)
    async with running(runtime) as actor:
        first = sims.start()
        announce(runtime, first, 1)
        await recorder.wait_for(lambda e: True)
        sims.kill(first)  # gone, and the state does not know yet
        await wait_until(lambda: actor.statistics().vanished == 1)
        assert actor.statistics().sampling is None
        count = len(recorder.events)

        # The actor is alive and samples the next run.
        second = sims.start()
        announce(runtime, second, 2)
        await recorder.wait_for(lambda e: e.ram_bytes > 0, after=count)
        assert actor.statistics().sampling == 2


async def test_a_dead_unreaped_process_is_not_reported(tmp_path: Path, sims: Sims) -> None:
    runtime, recorder = make_runtime(tmp_path)
    async with running(runtime) as actor:
        proc = sims.start()
        announce(runtime, proc, 1)
        await recorder.wait_for(lambda e: True)
        os.killpg(proc.pid, signal.SIGKILL)  # not reaped: a zombie, as the process actor keeps it
        await wait_until(lambda: actor.statistics().skipped >= 2)
        count = len(recorder.events)
        await wait_until(lambda: actor.statistics().skipped >= 4)
        assert len(recorder.events) == count
        assert all(e.ram_bytes > 0 for e in recorder.metrics())


async def test_a_run_whose_process_is_already_gone(tmp_path: Path, sims: Sims) -> None:
    runtime, recorder = make_runtime(tmp_path)
    proc = sims.start()
    identity = read_identity(proc.pid)
    assert identity is not None
    sims.kill(proc)
    runtime.state.update(
        status="starting",
        run=RunInfo(incarnation=1, identity=identity, started_at=0.0, profile_dir="profiles"),
    )
    async with running(runtime) as actor:
        await wait_until(lambda: actor.statistics().vanished == 1)
        assert recorder.events == []


# --- group and session members that are no longer descendants ---------------------------------

#: A "server" that leaves two processes behind its dead intermediate child, both re-parented to
#: init (or a subreaper): C stays in the server's process group and spins; B moves to a group of
#: its own inside the server's session. Each holds 32 MiB. The server prints "<B> <C>".
ORPHANS = r"""
import os, sys, time

def hold(spin):
    block = bytearray(32 * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    os.write(ready_w, b"x")
    while True:
        if not spin:
            time.sleep(1)

ready_r, ready_w = os.pipe()
pids_r, pids_w = os.pipe()
middle = os.fork()
if middle == 0:
    b = os.fork()
    if b == 0:
        os.setpgid(0, 0)
        hold(False)
    c = os.fork()
    if c == 0:
        hold(True)
    os.write(pids_w, f"{b} {c}\n".encode())
    os._exit(0)
os.waitpid(middle, 0)
pids = os.read(pids_r, 100).decode()
for _ in range(2):
    os.read(ready_r, 1)
sys.stdout.write(pids)
sys.stdout.flush()
while True:
    time.sleep(1)
"""

MIB = 1 << 20


def spawn_orphans(reaper: Reaper) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", ORPHANS],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    reaper.track_pid(proc.pid)
    return proc


async def start_orphans(reaper: Reaper) -> tuple[subprocess.Popen[bytes], int, int]:
    proc = spawn_orphans(reaper)
    assert proc.stdout is not None
    with anyio.fail_after(10):
        line = await anyio.to_thread.run_sync(proc.stdout.readline)
    b, c = (int(pid) for pid in line.split())
    reaper.track_pid(b)
    reaper.track_pid(c)
    return proc, b, c


async def test_group_and_session_members_re_parented_to_init_are_measured(
    tmp_path: Path, reaper: Reaper
) -> None:
    proc, b, c = await start_orphans(reaper)
    try:
        assert os.getpgid(c) == proc.pid
        assert os.getpgid(b) == b
        assert os.getsid(b) == proc.pid
        identity = read_identity(proc.pid)
        assert identity is not None
        sampler = ProcessGroupSampler(identity, table=ProcessTable(max_age=0))
        first = sampler.sample()
        assert first is not None
        assert first.processes == 3
        assert {i.pid for i in sampler.known_processes()} == {proc.pid, b, c}
        assert first.ram_bytes > 64 * MIB  # both 32 MiB holders are counted

        runtime, recorder = make_runtime(tmp_path)
        async with running(runtime):
            announce(runtime, proc, 1)
            # The shared process table may be up to a second old: a later sample sees them.
            await recorder.wait_for(lambda e: e.ram_bytes > 64 * MIB)
            # C spins on one core (the server itself sleeps): a sample shows it, however busy
            # the host is.
            await recorder.wait_for(lambda e: e.cpu > 100 / (os.cpu_count() or 1) * 0.2)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
