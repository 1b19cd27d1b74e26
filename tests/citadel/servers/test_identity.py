"""Identity and adoption: pid + create time + command line or run marker; pidfd exit of a
non-child."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import msgspec
import pytest

from citadel.servers.handles import ADOPTED_EXIT_NOTE, ExitStatus
from citadel.servers.identity import (
    ProcessIdentity,
    matches,
    read_identity,
    same_process,
    same_start,
)
from citadel.servers.ladder import stop_ladder
from citadel.servers.sampler import ProcessGroupSampler
from citadel.servers.spawn import adopt, open_game_process
from tests.citadel.servers.conftest import Collector, Reaper, alive, detached

pytestmark = pytest.mark.anyio


def test_same_process_compares_all_three() -> None:
    base = ProcessIdentity(10, 1000.0, ("DayZServer", "-port=2302"))
    assert same_process(base, base)
    assert same_process(base, msgspec.structs.replace(base, create_time=1000.9))  # btime wobble
    assert not same_process(base, msgspec.structs.replace(base, create_time=1010.0))
    assert not same_process(base, msgspec.structs.replace(base, pid=11))
    assert not same_process(base, msgspec.structs.replace(base, cmdline=("DayZServer",)))
    assert same_start(base, msgspec.structs.replace(base, cmdline=()))


def test_a_changed_command_line_is_the_same_process_only_with_the_runs_marker() -> None:
    # A /bin/sh wrapper recorded before its exec; the same pid and start running the game.
    recorded = ProcessIdentity(10, 1000.0, ("/bin/sh", "DayZServer", "-port=2302"))
    now = ProcessIdentity(10, 1000.4, ("/srv/dayz/DayZServer_x64", "-port=2302"))
    assert not same_process(recorded, now)
    assert same_process(recorded, now, carries_marker=True)
    # The marker never makes up for a different start or pid (a recycled number).
    assert not same_process(
        recorded, msgspec.structs.replace(now, create_time=1010.0), carries_marker=True
    )
    assert not same_process(recorded, msgspec.structs.replace(now, pid=11), carries_marker=True)


def test_identity_round_trips_through_json() -> None:
    identity = ProcessIdentity(10, 1733250991.37, ("DayZServer", "-config=serverDZ.cfg", "é"))
    decoded = msgspec.json.decode(msgspec.json.encode(identity), type=ProcessIdentity)
    assert decoded == identity
    with pytest.raises(AttributeError):
        identity.pid = 11  # type: ignore[misc]  # frozen


def test_own_identity_matches_and_a_gone_pid_does_not() -> None:
    me = read_identity(os.getpid())
    assert me is not None
    assert me.cmdline == tuple(sys.argv) or me.cmdline  # whatever the kernel says, non-empty
    assert matches(me)
    assert not matches(msgspec.structs.replace(me, create_time=me.create_time - 100))
    assert not matches(msgspec.structs.replace(me, cmdline=("DayZServer",)))


# A wrapper that waits for the test (a FIFO) before it execs the "game", so its recorded
# identity is the shell's for sure; the game says "game" once it runs.
WRAPPER = """#!/bin/sh
read go < "$1"
exec {python} -c 'import time; print("game", flush=True); time.sleep(60)'
"""


async def test_a_wrapper_that_execs_is_recognised_by_its_marker(
    tmp_path: Path, reaper: Reaper
) -> None:
    wrapper = tmp_path / "DayZServer"
    wrapper.write_text(WRAPPER.format(python=sys.executable))
    wrapper.chmod(0o755)
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    collector = Collector()
    with anyio.fail_after(5):
        async with open_game_process(
            [str(wrapper), str(fifo)], cwd=tmp_path, on_line=collector, marker="run-1"
        ) as process:
            recorded = reaper.track(process.identity)
            assert recorded.cmdline == ("/bin/sh", str(wrapper), str(fifo))
            await anyio.Path(fifo).write_text("go\n")
            await collector.wait_for("game")  # exec'd: same pid, new command line
            assert read_identity(recorded.pid) != recorded
            assert matches(recorded, "run-1")
            assert not matches(recorded), "the command line alone no longer matches"
            assert not matches(recorded, "run-2"), "another run's marker does not count"
            # Adoption and the metrics sampler recognise it by the marker.
            adopted = adopt(recorded, "run-1")
            assert adopted is not None
            await adopted.aclose()
            assert adopt(recorded, "run-2") is None
            assert ProcessGroupSampler(recorded, marker="run-1").sample() is not None
            assert ProcessGroupSampler(recorded).sample() is None
            # Refreshed once settled: the command line is what runs now, the start unchanged.
            refreshed = process.refresh_identity()
            assert refreshed.cmdline[0] == sys.executable
            assert refreshed.create_time == recorded.create_time
            assert process.identity == refreshed
            assert matches(refreshed)


async def test_refresh_identity_keeps_the_identity_of_an_exited_process(tmp_path: Path) -> None:
    with anyio.fail_after(5):
        async with open_game_process([sys.executable, "-c", "pass"], cwd=tmp_path) as process:
            before = process.identity
            await process.wait()
            assert process.refresh_identity() == before


async def test_adopted_process_exit_seen_through_pidfd(tmp_path: Path, reaper: Reaper) -> None:
    identity = await detached(reaper)
    stored = msgspec.json.encode(identity)  # as the app keeps it in SQLite across a restart
    adopted = adopt(msgspec.json.decode(stored, type=ProcessIdentity))
    assert adopted is not None
    async with adopted:
        assert adopted.pgid == identity.pid
        assert not await adopted.wait_exit(0.05)
        os.kill(identity.pid, signal.SIGKILL)
        with anyio.fail_after(1):
            status = await adopted.wait()
    assert status == ExitStatus(None, None, ADOPTED_EXIT_NOTE)
    assert not alive(identity)
    assert adopt(identity) is None  # gone (a zombie of init's now)


async def test_adopt_refuses_a_different_process(reaper: Reaper) -> None:
    identity = await detached(reaper)
    assert adopt(msgspec.structs.replace(identity, create_time=identity.create_time - 100)) is None
    assert adopt(msgspec.structs.replace(identity, cmdline=(*identity.cmdline, "-x"))) is None
    assert adopt(msgspec.structs.replace(identity, pid=identity.pid + 100_000_000)) is None
    assert alive(identity)  # looked at, never touched


async def test_stop_ladder_on_an_adopted_process(reaper: Reaper) -> None:
    identity = await detached(reaper, "ignore-term")
    adopted = adopt(identity)
    assert adopted is not None
    with anyio.fail_after(3):
        async with adopted:
            outcome = await stop_ladder(adopted, graceful=None, kill_timeout=0.3)
    assert outcome.step == "sigkill"
    assert outcome.status == ExitStatus(None, None, ADOPTED_EXIT_NOTE)
    assert not alive(identity)
