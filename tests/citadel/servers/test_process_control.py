"""Real processes: spawn, output, exit status, stop ladder, descendants, cancellation, metrics."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from citadel.servers.cleanup import ensure_no_descendants
from citadel.servers.handles import ExitStatus
from citadel.servers.identity import ProcessIdentity
from citadel.servers.ladder import stop_ladder
from citadel.servers.sampler import ProcessGroupSampler, ProcessTable
from citadel.servers.spawn import open_game_process, spawn
from tests.citadel.servers.conftest import Collector, Reaper, alive, python

pytestmark = pytest.mark.anyio

EXIT_3 = r"""
import sys
sys.stdout.write("first\r\nsecond\n")
sys.stdout.flush()
sys.stderr.buffer.write(b"bad \xff\xfe bytes\n")
sys.stderr.flush()
sys.stdout.write("last words without newline")
sys.exit(3)
"""

SLEEPER = r"""
import signal, sys, time
if "ignore-term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if "graceful" in sys.argv:
    def bye(signum, frame):
        print("bye", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGUSR1, bye)
print("ready", flush=True)
while True:
    time.sleep(60)
"""

# Forked processes share the pipe: one os.write per line keeps lines whole (< PIPE_BUF).
SAY = "def say(text):\n    os.write(1, (text + '\\n').encode())\n"

# parent -> child (ignores SIGTERM) -> grandchild (leaves the session and group with setsid).
TREE = (
    r"""
import os, signal, sys, time
"""
    + SAY
    + r"""
if os.fork() == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.fork() == 0:
        os.setsid()
        say(f"grandchild {os.getpid()} {os.getpgrp()}")
        while True:
            time.sleep(60)
    say(f"child {os.getpid()}")
    while True:
        time.sleep(60)
if "parent-ignores-term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if "parent-exits" in sys.argv:
    say("parent bye")
    sys.exit(0)
say("parent ready")
while True:
    time.sleep(60)
"""
)

# parent -> launcher (setsid, forks the daemon, exits) -> daemon (ignores SIGTERM, detaches its
# stdio): re-parented to init, in a session of its own. Neither the process group nor parent
# links lead to it; only the environment it inherited does.
DAEMON = (
    r"""
import os, signal, sys, time
"""
    + SAY
    + r"""
launcher = os.fork()
if launcher == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say(f"daemon {os.getpid()}")
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        while True:
            time.sleep(60)
    os._exit(0)
os.waitpid(launcher, 0)
say("parent ready")
while True:
    time.sleep(60)
"""
)

FLOOD = r"""
import os, signal, sys
n = int(sys.argv[1])
for start in range(0, n, 1000):
    sys.stdout.write("".join(f"line {i}\n" for i in range(start, min(n, start + 1000))))
sys.stdout.flush()
sys.stderr.write("x" * 100000 + "\nafter the long one\n")
sys.stderr.flush()
if "die" in sys.argv:
    os.kill(os.getpid(), signal.SIGKILL)
"""

BUSY = (
    r"""
import os
"""
    + SAY
    + r"""
if os.fork() == 0:
    say("child spinning")
    while True:
        pass
say("parent spinning")
while True:
    pass
"""
)


async def _tree_pids(collector: Collector, reaper: Reaper) -> tuple[int, int, int]:
    child = int((await collector.wait_for("child ")).split()[1])
    grandchild_line = (await collector.wait_for("grandchild ")).split()
    grandchild, grandchild_group = int(grandchild_line[1]), int(grandchild_line[2])
    reaper.track_pid(child)
    reaper.track_pid(grandchild)
    return child, grandchild, grandchild_group


async def test_exit_code_and_every_line_including_the_last(tmp_path: Path, reaper: Reaper) -> None:
    collector = Collector()
    with anyio.fail_after(5):
        async with await spawn(python(EXIT_3), cwd=tmp_path, on_line=collector) as process:
            reaper.track(process.identity)
            status = await process.wait()
            received_by_wait = collector.texts("stdout")
    assert status == ExitStatus(3, None)
    assert received_by_wait == ["first", "second", "last words without newline"]
    assert collector.texts("stderr") == ["bad \ufffd\ufffd bytes"]
    assert process.statistics().complete
    assert process.tail()[-1].text == collector.lines[-1].text


async def test_signal_from_outside_is_reported_by_name(tmp_path: Path, reaper: Reaper) -> None:
    collector = Collector()
    with anyio.fail_after(5):
        async with open_game_process(python(SLEEPER), cwd=tmp_path, on_line=collector) as process:
            reaper.track(process.identity)
            await collector.wait_for("ready")
            os.kill(process.pid, signal.SIGKILL)
            assert await process.wait() == ExitStatus(None, "SIGKILL")


async def test_flood_of_lines_all_received_then_killed(tmp_path: Path, reaper: Reaper) -> None:
    collector = Collector()
    lines = 20000
    with anyio.fail_after(10):
        async with await spawn(
            python(FLOOD, str(lines), "die"), cwd=tmp_path, on_line=collector, max_line_bytes=1000
        ) as process:
            reaper.track(process.identity)
            status = await process.wait()
            received_by_wait = collector.texts("stdout")  # before aclose could drain anything
    assert status == ExitStatus(None, "SIGKILL")
    assert received_by_wait == [f"line {i}" for i in range(lines)]
    stderr = [line for line in collector.lines if line.stream == "stderr"]
    assert [(line.text, line.truncated) for line in stderr] == [
        ("x" * 1000, True),
        ("after the long one", False),
    ]
    assert process.statistics().truncated_lines == 1


BACKLOG = r"""
import fcntl, sys
fcntl.fcntl(1, fcntl.F_SETPIPE_SZ, 1024 * 1024)
sys.stdout.write("".join(f"line {i}\n" for i in range(60000)))
sys.stdout.write("no newline at the end")
"""


async def test_output_still_in_the_pipe_at_exit_is_delivered(
    tmp_path: Path, reaper: Reaper
) -> None:
    collector = Collector()
    with anyio.fail_after(5):
        async with await spawn(python(BACKLOG), cwd=tmp_path, on_line=collector) as process:
            reaper.track(process.identity)
            # Nothing reads the pipe yet: let the exit happen first, watched on our own pidfd.
            pidfd = os.pidfd_open(process.pid)
            try:
                await anyio.wait_readable(pidfd)
            finally:
                os.close(pidfd)
            assert collector.lines == []
            assert await process.wait() == ExitStatus(0, None)
            received_by_wait = collector.texts("stdout")
    assert received_by_wait == [*(f"line {i}" for i in range(60000)), "no newline at the end"]


async def test_wait_exit_is_bounded_and_concurrent_waiters_agree(
    tmp_path: Path, reaper: Reaper
) -> None:
    collector = Collector()
    with anyio.fail_after(5):
        async with await spawn(python(SLEEPER), cwd=tmp_path, on_line=collector) as process:
            reaper.track(process.identity)
            assert not await process.wait_exit(0.1)  # drives the output meanwhile
            assert collector.texts() == ["ready"]
            results: list[ExitStatus] = []

            async def waiter() -> None:
                results.append(await process.wait())

            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(waiter)
                await anyio.wait_all_tasks_blocked()
                os.kill(process.pid, signal.SIGTERM)
    assert results == [ExitStatus(None, "SIGTERM")] * 3


async def test_output_held_by_an_escaped_descendant_does_not_block_wait(
    tmp_path: Path, reaper: Reaper
) -> None:
    collector = Collector()
    with anyio.fail_after(5):
        async with open_game_process(
            python(TREE, "parent-exits"), cwd=tmp_path, on_line=collector, drain_timeout=0.2
        ) as process:
            reaper.track(process.identity)
            child, grandchild, _ = await _tree_pids(collector, reaper)
            status = await process.wait()
            assert status == ExitStatus(0, None)
            assert "parent bye" in collector.texts()
            assert not process.statistics().complete  # the descendants hold the pipes
            # The parent is gone, so nothing is known through it: the child is found in the
            # group, the escaped grandchild as the child's descendant.
            killed = await ensure_no_descendants(process.identity, process.pgid, 1.0)
    assert killed == sorted([child, grandchild])
    assert not any(alive(identity) for identity in reaper.identities)


# --- the stop ladder ----------------------------------------------------------------------------


async def test_ladder_graceful_honoured(tmp_path: Path, reaper: Reaper) -> None:
    collector = Collector()
    with anyio.fail_after(5):
        async with open_game_process(
            python(SLEEPER, "graceful", "ignore-term"), cwd=tmp_path, on_line=collector
        ) as process:
            reaper.track(process.identity)
            await collector.wait_for("ready")

            async def shutdown() -> None:  # stands in for RCON #shutdown
                os.kill(process.pid, signal.SIGUSR1)

            outcome = await stop_ladder(
                process, graceful=shutdown, stop_timeout=2, kill_timeout=0.5
            )
            await process.wait()
    assert (outcome.step, outcome.status) == ("graceful", ExitStatus(0, None))
    assert outcome.killed_descendants == ()
    assert collector.texts()[-1] == "bye"


async def test_ladder_ignored_graceful_falls_to_sigterm(tmp_path: Path, reaper: Reaper) -> None:
    collector = Collector()
    asked = anyio.Event()

    async def ignored() -> None:
        asked.set()

    with anyio.fail_after(5):
        async with open_game_process(python(SLEEPER), cwd=tmp_path, on_line=collector) as process:
            reaper.track(process.identity)
            await collector.wait_for("ready")
            outcome = await stop_ladder(process, graceful=ignored, stop_timeout=0.2, kill_timeout=1)
    assert asked.is_set()
    assert (outcome.step, outcome.status) == ("sigterm", ExitStatus(None, "SIGTERM"))
    assert outcome.graceful_error is None


async def test_ladder_failing_graceful_goes_on_at_once(tmp_path: Path, reaper: Reaper) -> None:
    collector = Collector()

    async def not_connected() -> None:
        raise ConnectionError("rcon down")

    # stop_timeout is far beyond the fail_after bound: the ladder must not wait it out.
    with anyio.fail_after(3):
        async with open_game_process(python(SLEEPER), cwd=tmp_path, on_line=collector) as process:
            reaper.track(process.identity)
            await collector.wait_for("ready")
            outcome = await stop_ladder(
                process, graceful=not_connected, stop_timeout=60, kill_timeout=1
            )
    assert outcome.step == "sigterm"
    assert outcome.graceful_error == "ConnectionError: rcon down"


async def test_ladder_sigterm_ignored_ends_with_sigkill(tmp_path: Path, reaper: Reaper) -> None:
    collector = Collector()
    with anyio.fail_after(5):
        async with open_game_process(
            python(SLEEPER, "ignore-term"), cwd=tmp_path, on_line=collector
        ) as process:
            reaper.track(process.identity)
            await collector.wait_for("ready")
            outcome = await stop_ladder(process, graceful=None, kill_timeout=0.3)
    assert (outcome.step, outcome.status) == ("sigkill", ExitStatus(None, "SIGKILL"))


async def test_ladder_on_an_exited_process_says_exited(tmp_path: Path, reaper: Reaper) -> None:
    with anyio.fail_after(5):
        async with open_game_process(python(EXIT_3), cwd=tmp_path) as process:
            reaper.track(process.identity)
            await process.wait()
            outcome = await stop_ladder(process, graceful=None, kill_timeout=0.3)
    assert (outcome.step, outcome.status) == ("exited", ExitStatus(3, None))


async def test_ladder_sigterm_kills_the_descendants_left_behind(
    tmp_path: Path, reaper: Reaper
) -> None:
    collector = Collector()
    with anyio.fail_after(5):
        async with open_game_process(python(TREE), cwd=tmp_path, on_line=collector) as process:
            root = reaper.track(process.identity)
            await collector.wait_for("parent ready")
            child, grandchild, grandchild_group = await _tree_pids(collector, reaper)
            assert grandchild_group != process.pgid  # it escaped the group: killpg misses it
            outcome = await stop_ladder(process, graceful=None, kill_timeout=1)
            # Only when every writer of the pipes is gone does the output end.
            assert await process.wait() == ExitStatus(None, "SIGTERM")
    assert (outcome.step, outcome.status) == ("sigterm", ExitStatus(None, "SIGTERM"))
    # The child ignored SIGTERM; the grandchild escaped the group. Both had to be killed.
    assert outcome.killed_descendants == tuple(sorted([child, grandchild]))
    assert outcome.survivors == ()
    assert not any(alive(identity) for identity in reaper.identities)
    assert not alive(root)


async def test_ladder_sigkill_still_finds_the_escaped_grandchild(
    tmp_path: Path, reaper: Reaper
) -> None:
    collector = Collector()
    with anyio.fail_after(5):
        async with open_game_process(
            python(TREE, "parent-ignores-term"), cwd=tmp_path, on_line=collector
        ) as process:
            reaper.track(process.identity)
            await collector.wait_for("parent ready")
            child, grandchild, _ = await _tree_pids(collector, reaper)
            outcome = await stop_ladder(process, graceful=None, kill_timeout=0.3)
    assert outcome.step == "sigkill"
    assert grandchild in outcome.killed_descendants  # killpg cannot reach it
    assert set(outcome.killed_descendants) <= {child, grandchild}
    assert not any(alive(identity) for identity in reaper.identities)


async def _daemon_pid(collector: Collector, reaper: Reaper) -> int:
    await collector.wait_for("parent ready")
    daemon = int((await collector.wait_for("daemon ")).split()[1])
    reaper.track_pid(daemon)
    assert _parent_of(daemon) != 0
    assert os.getsid(daemon) == os.getpgid(daemon) != os.getpid()
    return daemon


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


async def test_a_double_forked_daemon_is_found_by_its_marker_only(
    tmp_path: Path, reaper: Reaper
) -> None:
    collector = Collector()
    with anyio.fail_after(10):
        async with open_game_process(
            python(DAEMON), cwd=tmp_path, on_line=collector, marker="run-1"
        ) as process:
            root = reaper.track(process.identity)
            daemon = await _daemon_pid(collector, reaper)
            assert process.pgid is not None
            assert os.getpgid(daemon) != process.pgid
            # The server dies (a crash): nothing links the daemon to it any more ...
            process.send_signal(signal.SIGKILL)
            await process.wait_exit(5)
            assert _parent_of(daemon) != root.pid
            # ... so group and parent links miss it ...
            assert daemon not in await ensure_no_descendants(root, process.pgid, 1.0)
            assert alive(reaper.identities[-1])
            # ... and the marker in its environment finds it.
            killed = await ensure_no_descendants(root, process.pgid, 1.0, marker="run-1")
    assert killed == [daemon]
    assert not any(alive(identity) for identity in reaper.identities)


async def test_the_ladder_and_the_close_use_the_marker(tmp_path: Path, reaper: Reaper) -> None:
    collector = Collector()
    with anyio.fail_after(10):
        async with open_game_process(python(DAEMON), cwd=tmp_path, on_line=collector) as plain:
            # Without a marker the ladder cannot know the daemon: it survives (the old gap).
            reaper.track(plain.identity)
            survivor = await _daemon_pid(collector, reaper)
            outcome = await stop_ladder(plain, graceful=None, kill_timeout=1)
        assert survivor not in outcome.killed_descendants
        assert alive(reaper.identities[-1])
        os.kill(survivor, signal.SIGKILL)

        collector = Collector()
        async with open_game_process(
            python(DAEMON), cwd=tmp_path, on_line=collector, marker="run-2"
        ) as process:
            assert process.marker == "run-2"
            reaper.track(process.identity)
            daemon = await _daemon_pid(collector, reaper)
            outcome = await stop_ladder(process, graceful=None, kill_timeout=1)
    assert outcome.step == "sigterm"
    assert daemon in outcome.killed_descendants
    assert not alive(reaper.identities[-1])


async def test_the_marker_never_reaches_another_run(tmp_path: Path, reaper: Reaper) -> None:
    with anyio.fail_after(10):
        other = await spawn(python(SLEEPER), cwd=tmp_path, marker="other-run")
        async with other:
            reaper.track(other.identity)
            process = await spawn(python(SLEEPER), cwd=tmp_path, marker="this-run")
            async with process:
                reaper.track(process.identity)
                process.send_signal(signal.SIGKILL)
                await process.wait_exit(5)
                killed = await ensure_no_descendants(
                    process.identity, process.pgid, 1.0, marker="this-run"
                )
            assert killed == []
            assert alive(other.identity)


# --- orphan safety ------------------------------------------------------------------------------


async def test_cancelling_the_supervisor_kills_the_whole_tree(
    tmp_path: Path, reaper: Reaper
) -> None:
    collector = Collector()
    with anyio.fail_after(5):
        with anyio.CancelScope() as scope:
            async with open_game_process(
                python(TREE, "parent-ignores-term"),
                cwd=tmp_path,
                on_line=collector,
                kill_timeout=1,
            ) as process:
                reaper.track(process.identity)
                await collector.wait_for("parent ready")
                await _tree_pids(collector, reaper)
                scope.cancel()
                await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert len(reaper.identities) == 3
    assert not any(alive(identity) for identity in reaper.identities)
    assert process.status == ExitStatus(None, "SIGKILL")


async def test_error_in_the_block_kills_the_process(tmp_path: Path, reaper: Reaper) -> None:
    collector = Collector()

    async def supervise() -> None:
        async with open_game_process(python(SLEEPER), cwd=tmp_path, on_line=collector) as process:
            reaper.track(process.identity)
            await collector.wait_for("ready")
            raise RuntimeError("boom")

    with anyio.fail_after(5), pytest.raises(RuntimeError, match="boom"):
        await supervise()
    assert not alive(reaper.identities[0])


async def test_spawn_of_a_missing_program_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await spawn([str(tmp_path / "no-such-server")], cwd=tmp_path)


# --- metrics ------------------------------------------------------------------------------------


async def test_sampler_measures_the_whole_tree(tmp_path: Path, reaper: Reaper) -> None:
    collector = Collector()
    with anyio.fail_after(5):
        async with open_game_process(python(BUSY), cwd=tmp_path, on_line=collector) as process:
            reaper.track(process.identity)
            await collector.wait_for("parent spinning")
            await collector.wait_for("child spinning")
            sampler = ProcessGroupSampler(process.identity, table=ProcessTable(max_age=0))
            first = sampler.sample()
            assert first is not None
            assert first.cpu_percent_of_host is None  # priming
            assert first.processes == 2
            assert first.ram_bytes > 1_000_000
            assert 0 < first.ram_percent_of_host < 100
            known = {identity.pid for identity in sampler.known_processes()}
            assert process.pid in known
            assert len(known) == 2
            child = (known - {process.pid}).pop()
            reaper.track_pid(child)
            await anyio.sleep(0.3)  # a measurement interval, not an ordering device
            second = sampler.sample()
            assert second is not None
            assert second.cpu_percent_of_host is not None
            # Two spinning processes: far above an idle tree on any host size.
            assert second.cpu_percent_of_host > 100 / (os.cpu_count() or 1) * 0.5
    assert sampler.sample() is None  # reaped: the root is gone
    assert not alive(ProcessIdentity(child, 0.0, ()))
