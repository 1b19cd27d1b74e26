"""Identity and adoption: pid + create time + command line; pidfd exit of a non-child."""

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
from citadel.servers.spawn import adopt
from tests.citadel.servers.conftest import Reaper, alive

pytestmark = pytest.mark.anyio

# Double fork: the grandchild leads its own session and group (as a server Citadel started
# before a restart would) and is no child of the test. It prints its pid, then lets go of the
# pipe so the launcher's output ends.
DETACH = r"""
import os, signal, sys, time
if os.fork() == 0:
    if os.fork() == 0:
        os.setsid()
        if "ignore-term" in sys.argv:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.write(1, f"{os.getpid()}\n".encode())
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        while True:
            time.sleep(60)
    os._exit(0)
os.wait()
"""


async def _detached(reaper: Reaper, *args: str) -> ProcessIdentity:
    with anyio.fail_after(5):
        result = await anyio.run_process([sys.executable, "-c", DETACH, *args])
    return reaper.track_pid(int(result.stdout))


def test_same_process_compares_all_three() -> None:
    base = ProcessIdentity(10, 1000.0, ("DayZServer", "-port=2302"))
    assert same_process(base, base)
    assert same_process(base, msgspec.structs.replace(base, create_time=1000.9))  # btime wobble
    assert not same_process(base, msgspec.structs.replace(base, create_time=1010.0))
    assert not same_process(base, msgspec.structs.replace(base, pid=11))
    assert not same_process(base, msgspec.structs.replace(base, cmdline=("DayZServer",)))
    assert same_start(base, msgspec.structs.replace(base, cmdline=()))


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


async def test_adopted_process_exit_seen_through_pidfd(tmp_path: Path, reaper: Reaper) -> None:
    identity = await _detached(reaper)
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
    identity = await _detached(reaper)
    assert adopt(msgspec.structs.replace(identity, create_time=identity.create_time - 100)) is None
    assert adopt(msgspec.structs.replace(identity, cmdline=(*identity.cmdline, "-x"))) is None
    assert adopt(msgspec.structs.replace(identity, pid=identity.pid + 100_000_000)) is None
    assert alive(identity)  # looked at, never touched


async def test_stop_ladder_on_an_adopted_process(reaper: Reaper) -> None:
    identity = await _detached(reaper, "ignore-term")
    adopted = adopt(identity)
    assert adopted is not None
    with anyio.fail_after(3):
        async with adopted:
            outcome = await stop_ladder(adopted, graceful=None, kill_timeout=0.3)
    assert outcome.step == "sigkill"
    assert outcome.status == ExitStatus(None, None, ADOPTED_EXIT_NOTE)
    assert not alive(identity)
