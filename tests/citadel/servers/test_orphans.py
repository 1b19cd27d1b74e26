"""Runs of servers no longer in the fleet: stopped by the adoption rule, or left alone.

Real processes, detached as a killed Citadel leaves its servers (their own session, no parent
of ours); the records are what `RunStore` keeps across a restart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from citadel.messages import NotificationEvent
from citadel.servers.identity import ProcessIdentity
from citadel.servers.orphans import NOTIFICATION_TYPE, stop_orphaned_runs
from citadel.servers.persistence import MemoryRunStore, StoreRunStore
from citadel.servers.runtime import LifecycleRecord, RunInfo
from citadel.store import Store
from tests.citadel.servers.conftest import Reaper, Recorder, alive, detached

pytestmark = pytest.mark.anyio


def record_of(identity: ProcessIdentity, marker: str | None, tmp_path: Path) -> LifecycleRecord:
    run = RunInfo(
        incarnation=1,
        identity=identity,
        started_at=identity.create_time,
        profile_dir=str(tmp_path),
        marker=marker,
    )
    return LifecycleRecord(seq=5, status="running", ready=True, run=run)


#: A run that no longer exists: our own pid with a create time of 1970.
DEAD = ProcessIdentity(os.getpid(), 1.0, ("DayZServer",))


async def test_a_live_orphan_is_stopped_its_record_forgotten_and_admins_told(
    tmp_path: Path, reaper: Reaper, caplog: pytest.LogCaptureFixture
) -> None:
    orphan = await detached(reaper, marker="run-b")
    runs, recorder = MemoryRunStore(), Recorder()
    kept = record_of(DEAD, None, tmp_path)
    runs.records["alpha"] = kept  # configured: not the sweep's business, dead or alive
    runs.records["bravo"] = record_of(orphan, "run-b", tmp_path)
    with anyio.fail_after(10), caplog.at_level(logging.WARNING, "citadel.fleet"):
        outcomes = await stop_orphaned_runs(runs, {"alpha"}, recorder.publish, kill_timeout=2)
    assert outcomes == {"bravo": "stopped"}
    assert not alive(orphan)
    assert runs.records == {"alpha": kept}
    ((note_id, notice),) = runs.notices
    assert notice.server_id is None  # host-wide: admins only
    assert (notice.type, notice.severity) == (NOTIFICATION_TYPE, "warning")
    assert notice.title == "Orphaned server stopped"
    assert "'bravo'" in notice.message
    assert f"pid {orphan.pid}" in notice.message
    assert notice.message.endswith("(SIGTERM).")
    (event,) = recorder.published
    assert isinstance(event, NotificationEvent)
    assert (event.id, event.server_id, event.title) == (note_id, None, notice.title)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'bravo'" in w and f"pid {orphan.pid}" in w for w in warnings), warnings


async def test_an_orphan_ignoring_sigterm_is_killed_within_the_ladders_bounds(
    tmp_path: Path, reaper: Reaper
) -> None:
    orphan = await detached(reaper, "ignore-term", marker="run-b")
    runs = MemoryRunStore()
    runs.records["bravo"] = record_of(orphan, "run-b", tmp_path)
    with anyio.fail_after(5):
        outcomes = await stop_orphaned_runs(runs, (), Recorder().publish, kill_timeout=0.3)
    assert outcomes == {"bravo": "stopped"}
    assert not alive(orphan)
    assert runs.records == {}
    assert runs.notices[0][1].message.endswith("(SIGKILL).")


async def test_an_orphan_that_execd_is_recognised_by_its_marker(
    tmp_path: Path, reaper: Reaper
) -> None:
    # Recorded as its wrapper shell; runs as something else now, carrying the run's marker.
    orphan = await detached(reaper, marker="run-b")
    recorded = msgspec.structs.replace(orphan, cmdline=("/bin/sh", "DayZServer"))
    runs = MemoryRunStore()
    runs.records["bravo"] = record_of(recorded, "run-b", tmp_path)
    with anyio.fail_after(10):
        outcomes = await stop_orphaned_runs(runs, (), Recorder().publish, kill_timeout=2)
    assert outcomes == {"bravo": "stopped"}
    assert not alive(orphan)


async def test_a_process_that_cannot_be_recognised_is_left_alone_and_its_record_kept(
    tmp_path: Path, reaper: Reaper, caplog: pytest.LogCaptureFixture
) -> None:
    # The recorded pid and start, but neither the recorded command line nor the run's marker:
    # perhaps the server after an exec with a cleared environment, perhaps not. Never killed.
    process = await detached(reaper, marker="another-run")
    recorded = msgspec.structs.replace(process, cmdline=("/bin/sh", "DayZServer"))
    record = record_of(recorded, "run-b", tmp_path)
    runs = MemoryRunStore()
    runs.records["bravo"] = record
    with anyio.fail_after(10), caplog.at_level(logging.WARNING, "citadel.fleet"):
        outcomes = await stop_orphaned_runs(runs, (), Recorder().publish, kill_timeout=0.3)
    assert outcomes == {"bravo": "unrecognised"}
    assert alive(process)
    assert runs.records == {"bravo": record}, "kept: looked at again at the next start"
    ((_, notice),) = runs.notices
    assert (notice.server_id, notice.severity) == (None, "warning")
    assert notice.title == "Orphaned server not recognised"
    assert f"Pid {process.pid}" in notice.message
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'bravo'" in w and "not killing it" in w for w in warnings), warnings


async def test_a_dead_orphan_is_forgotten_and_what_carries_its_marker_killed(
    tmp_path: Path, reaper: Reaper
) -> None:
    # The recorded process is gone; a process of its run lives on (a game whose wrapper shell
    # died), found by the run's marker only. Another record holds no run at all.
    leftover = await detached(reaper, marker="run-c")
    runs = MemoryRunStore()
    runs.records["charlie"] = record_of(DEAD, "run-c", tmp_path)
    runs.records["delta"] = LifecycleRecord(seq=3, status="stopped")
    runs.records["echo"] = record_of(DEAD, "run-e", tmp_path)
    with anyio.fail_after(10):
        outcomes = await stop_orphaned_runs(runs, (), Recorder().publish)
    assert outcomes == {"charlie": "gone", "delta": "gone", "echo": "gone"}
    assert not alive(leftover)
    assert runs.records == {}
    ((_, notice),) = runs.notices  # only where something had to be killed
    assert notice.title == "Orphaned server's leftovers killed"
    assert f"[{leftover.pid}]" in notice.message


async def test_in_sqlite_the_stale_rows_go_and_the_notification_is_host_wide(
    tmp_path: Path, reaper: Reaper
) -> None:
    orphan = await detached(reaper, marker="run-b")
    with Store.open(tmp_path) as store:

        async def write(apply: Callable[[Store], Any]) -> Any:
            return apply(store)

        runs = StoreRunStore(store, write)
        await runs.save("alpha", record_of(DEAD, None, tmp_path))
        await runs.save("bravo", record_of(orphan, "run-b", tmp_path))
        store.save_run("garbled", b'{"not": "a record"}')
        assert set(await runs.load_all()) == {"alpha", "bravo", "garbled"}
        with anyio.fail_after(10):
            outcomes = await stop_orphaned_runs(runs, {"alpha"}, Recorder().publish)
        assert outcomes == {"bravo": "stopped", "garbled": "gone"}
        assert [server_id for server_id, _ in store.list_runs()] == ["alpha"]
        (stored,) = store.list_notifications()
        assert stored.server_id is None
        assert stored.title == "Orphaned server stopped"
    assert not alive(orphan)
