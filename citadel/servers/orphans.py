"""Runs no server owns any more: stopped when Citadel starts, never left behind.

A killed Citadel leaves its game servers running, and the next one adopts them from their
stored lifecycle records (``server_runs``, see `persistence`). A server that is gone from the
next Citadel's fleet meanwhile (its ``[[servers]]`` table deleted from the config file, fewer
``--demo`` servers) has no process actor to adopt its run: without this module the game would
live on unsupervised, holding its ports, and outlive even an orderly stop of Citadel.

`stop_orphaned_runs` runs before any server of the fleet starts (`Fleet.start`). For every
stored record whose server id is not in the fleet it applies the rules of adoption, never a
process name:

* the run is recognised alive (`spawn.adopt`: pid + create time + command line, or the run's
  marker ``CITADEL_RUN_ID``): it is stopped by the stop ladder without its RCON step
  (`ladder.stop_ladder`: SIGTERM to the process group, ``kill_timeout``, SIGKILL,
  ``kill_timeout``, then every leftover found by group, parent links and marker is SIGKILLed),
  with a WARNING in Citadel's log and a host-wide ``warning`` notification naming the server
  id and pid; then the record is deleted;
* the run is dead: whatever still carries its marker is killed, as for a configured server
  found dead (`cleanup.clear_dead_run`; a notification only if something was), and the
  record is deleted;
* a process with the run's pid and start time runs but shows neither the recorded command
  line nor the marker: it is not killed (it may not be the run). A WARNING and a notification
  say so, and the record is **kept**, so the next start looks again (and forgets it once that
  process is gone), and a server created again under that id starts no second copy beside it;
* processes of the run survived SIGKILL: an ERROR and a notification; the record is kept, to
  be tried again at the next start.

Orphans are handled concurrently; each is bounded by its ladder (``2 * kill_timeout`` plus
`cleanup.CLEANUP_TIMEOUT`). Their notifications go through an `persistence.Outbox` like every
lifecycle notification (stored first, numbered by the store, then published); ``serverId`` is
null, so they reach admins only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Final, Literal

import anyio

from citadel.messages import Event, Severity
from citadel.servers.cleanup import clear_dead_run
from citadel.servers.identity import MARKER_ENV
from citadel.servers.ladder import KILL_TIMEOUT, stop_ladder
from citadel.servers.messages import Notice
from citadel.servers.persistence import Outbox, Persist, RunStore
from citadel.servers.runtime import LifecycleRecord, RunInfo
from citadel.servers.spawn import adopt

log = logging.getLogger("citadel.fleet")

# --- defaults --------------------------------------------------------------------------------
NOTIFICATION_TYPE: Final = "server.orphaned"
# -----------------------------------------------------------------------------------------------

#: What became of one orphaned record: ``stopped`` (its run was alive and is stopped),
#: ``gone`` (nothing of it ran, or only marked leftovers, now killed), ``unrecognised`` and
#: ``survivors`` (record kept, see the module docstring).
Outcome = Literal["stopped", "gone", "unrecognised", "survivors"]

_STEPS: Final = {
    "exited": "it exited by itself meanwhile",
    "graceful": "RCON #shutdown",
    "sigterm": "SIGTERM",
    "sigkill": "SIGKILL",
}


async def stop_orphaned_runs(
    runs: RunStore,
    keep: Collection[str],
    publish: Callable[[Event], Awaitable[bool]],
    *,
    kill_timeout: float = KILL_TIMEOUT,
    wall_clock: Callable[[], float] = time.time,
) -> dict[str, Outcome]:
    """Settle every stored record of a server not in ``keep`` (see the module docstring).

    Returns what became of each such record, by server id.
    """
    records = await runs.load_all()
    orphans = {sid: record for sid, record in records.items() if sid not in keep}
    outcomes: dict[str, Outcome] = {}

    async def settle(server_id: str, record: LifecycleRecord | None) -> None:
        outcome, notice = await _settle(server_id, record, kill_timeout)
        outcomes[server_id] = outcome
        items: list[Notice | Persist] = []
        if notice is not None:
            severity, title, message = notice
            items.append(
                Notice(
                    server_id=None,
                    type=NOTIFICATION_TYPE,
                    title=title,
                    message=message,
                    severity=severity,
                    at=wall_clock(),
                )
            )
        if outcome in ("stopped", "gone"):
            items.append(Persist(None))
        await _deliver(server_id, items, runs, publish)

    async with anyio.create_task_group() as tg:
        for server_id, record in orphans.items():
            tg.start_soon(settle, server_id, record)
    return outcomes


async def _settle(
    server_id: str, record: LifecycleRecord | None, kill_timeout: float
) -> tuple[Outcome, tuple[Severity, str, str] | None]:
    """Stop or clear one orphaned run; its outcome and the notification to send, if any."""
    run = None if record is None else record.run
    if run is None:
        log.info("server %r is no longer configured; forgot its stored record", server_id)
        return "gone", None
    gone = f"server {server_id!r} is no longer configured"
    process = adopt(run.identity, run.marker)
    if process is None:
        return await _clear_dead(server_id, run, gone)
    log.warning(
        "%s, but its game server (pid %d) still runs, left by an earlier Citadel: stopping it "
        "(SIGTERM, then SIGKILL after %g s)",
        gone,
        run.pid,
        kill_timeout,
    )
    async with process:  # closing an adopted handle only releases its pidfd
        outcome = await stop_ladder(process, graceful=None, kill_timeout=kill_timeout)
    how = _STEPS[outcome.step]
    if outcome.killed_descendants:
        how += f"; killed {len(outcome.killed_descendants)} leftover process(es)"
    if outcome.survivors:
        survivors = list(outcome.survivors)
        log.error(
            "%s; its game server (pid %d) was stopped (%s), but processes survived SIGKILL: %s",
            gone,
            run.pid,
            how,
            survivors,
        )
        return "survivors", (
            "error",
            "Orphaned server survived SIGKILL",
            f"Server {server_id!r} is no longer configured, but its game server (pid "
            f"{run.pid}) still ran; Citadel stopped it ({how}), but processes {survivors} "
            "survived SIGKILL. Citadel tries again at its next start.",
        )
    log.warning("%s; stopped its game server (pid %d): %s", gone, run.pid, how)
    return "stopped", (
        "warning",
        "Orphaned server stopped",
        f"Server {server_id!r} is no longer configured, but its game server (pid {run.pid}) "
        f"still ran, left by an earlier Citadel; Citadel stopped it ({how}).",
    )


async def _clear_dead(
    server_id: str, run: RunInfo, gone: str
) -> tuple[Outcome, tuple[Severity, str, str] | None]:
    dead = await clear_dead_run(run.identity, run.marker)
    if dead.unrecognised:
        log.warning(
            "%s; pid %d, started with its recorded run, still runs but cannot be recognised "
            "as that server (its command line changed and it carries no %s): not killing it. "
            "Stop it yourself if it is that server; the record is kept until it is gone",
            gone,
            run.pid,
            MARKER_ENV,
        )
        return "unrecognised", (
            "warning",
            "Orphaned server not recognised",
            f"Server {server_id!r} is no longer configured. Pid {run.pid}, started with its "
            "last run, still runs but cannot be recognised as that server (its command line "
            f"changed and it carries no {MARKER_ENV}), so Citadel did not stop it. Stop it "
            "yourself if it is that server.",
        )
    if dead.survivors:
        log.error("%s; processes of its last run survived SIGKILL: %s", gone, list(dead.survivors))
        return "survivors", (
            "error",
            "Orphaned server survived SIGKILL",
            f"Server {server_id!r} is no longer configured; processes of its last run "
            f"{list(dead.survivors)} survived SIGKILL. Citadel tries again at its next start.",
        )
    if dead.killed:
        log.warning(
            "%s; its game server (pid %d) had exited, but left processes behind: killed %s",
            gone,
            run.pid,
            list(dead.killed),
        )
        return "gone", (
            "warning",
            "Orphaned server's leftovers killed",
            f"Server {server_id!r} is no longer configured; its last run (pid {run.pid}) had "
            f"exited, but left processes {list(dead.killed)} running. Citadel killed them.",
        )
    log.info("%s; its last run (pid %d) has ended; forgot its record", gone, run.pid)
    return "gone", None


async def _deliver(
    server_id: str,
    items: list[Notice | Persist],
    runs: RunStore,
    publish: Callable[[Event], Awaitable[bool]],
) -> None:
    """Store and publish ``items`` in order, with the retries of every lifecycle outbox."""
    if not items:
        return
    outbox = Outbox(server_id)
    for item in items:
        outbox.put_nowait(item)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(outbox.drain, runs, publish)
            await outbox.wait_flushed()
            tg.cancel_scope.cancel()
    finally:
        outbox.close()
