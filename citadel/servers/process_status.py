"""Publishing a server's lifecycle for the process actor: state, record, events, notifications.

``StatusPublisher.transition`` is the only way the process actor changes a server's state: it
updates `ServerState`, persists the `LifecycleRecord` and publishes ``serverStatus`` (every one
with a new ``seq``, one more than the last, also when the status repeats, e.g. ``crashed`` again
after a failed restart) and, where asked, a ``notification``. An automatic restart is planned
first (the actor's `RestartPlanner`), so the event and the notification carry the real
``restartIn``. Events, records and notifications leave through one ordered `persistence.Outbox`
drained by one task, so the actor never waits on the broadcaster or the store: the store actor
writes the record before its event, and numbers each notification (host-wide unique ids, kept
across restarts) before it is published. The outbox outlives the actor's crashes. ``system``
writes a line to the server's log (the logs actor); ``status_view`` answers
``GET /api/servers/{id}/status``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import anyio

from actors import ActorError
from citadel.messages import (
    LogLevel,
    ServerStatus,
    ServerStatusEvent,
    Severity,
    utc_timestamp,
)
from citadel.messages.rest import ServerStatusView
from citadel.servers.messages import Notice, SystemLog
from citadel.servers.persistence import Outbox, Persist
from citadel.servers.process_memory import ProcessMemory
from citadel.servers.runtime import LOGS, LifecycleRecord, ServerRuntime, ServerSnapshot

log = logging.getLogger("citadel.process")

# --- defaults --------------------------------------------------------------------------------
NOTIFICATION_TYPE: Final = "server.lifecycle"
# -----------------------------------------------------------------------------------------------


class StatusPublisher:
    """Changes and publishes one server's status for its process actor (see the module)."""

    def __init__(
        self,
        runtime: ServerRuntime,
        memory: ProcessMemory,
        outbox: Outbox,
        *,
        plan_restart: Callable[[float], float | None],
        wall_clock: Callable[[], float],
    ) -> None:
        self.runtime = runtime
        self.memory = memory
        self._outbox = outbox
        self._plan_restart = plan_restart
        self._wall = wall_clock

    def transition(
        self,
        status: ServerStatus,
        *,
        reason: str,
        exit_code: int | None = None,
        signal: str | None = None,
        notify: tuple[Severity, str] | None = None,
        plan_restart: bool = False,
        uptime: float = 0.0,
        bump: bool = True,
        **changes: Any,
    ) -> None:
        """Change the state, persist the record, publish ``serverStatus`` and a notification.

        The restart is planned first, so the event and the notification carry the real
        ``restartIn``. ``bump=False`` publishes the current status with the current seq (only
        for the first event after a Citadel start, which repeats what the last one published).
        """
        runtime, memory = self.runtime, self.memory
        restart_in = self._plan_restart(uptime) if plan_restart else None
        if bump:
            changes["status"] = status
        snapshot = runtime.state.update(**changes)
        self._outbox.put_nowait(Persist(self._record(snapshot)))
        event = ServerStatusEvent(
            server_id=runtime.id,
            status=snapshot.status,
            seq=snapshot.seq,
            timestamp=utc_timestamp(self._wall()),
            reason=reason,
            exit_code=exit_code,
            signal=signal,
            restart_in=None if restart_in is None else round(restart_in, 3),
        )
        memory.last_event = event
        self._outbox.put_nowait(event)
        if plan_restart and restart_in is None:
            limit = runtime.config.max_restarts_per_hour
            self._notify(
                "error",
                "Server given up",
                f"{reason}; {limit} automatic restarts within an hour: not restarting again "
                "until an operator starts it",
            )
        elif notify is not None:
            severity, title = notify
            message = (
                reason if restart_in is None else f"{reason}; restarting in {restart_in:.0f} s"
            )
            self._notify(severity, title, message)

    def _record(self, snapshot: ServerSnapshot) -> LifecycleRecord:
        return LifecycleRecord(
            seq=snapshot.seq,
            status=snapshot.status,
            ready=snapshot.ready,
            run=None if snapshot.exited else snapshot.run,
            restart_pending=self.memory.restart_at is not None,
        )

    def notify(self, severity: Severity, title: str, message: str) -> None:
        """A ``notification`` about this server that goes with no status change."""
        self._notify(severity, title, message)

    def _notify(self, severity: Severity, title: str, message: str) -> None:
        self._outbox.put_nowait(
            Notice(
                server_id=self.runtime.id,
                type=NOTIFICATION_TYPE,
                title=f"{self.runtime.config.name}: {title}",
                message=message,
                severity=severity,
                at=self._wall(),
            )
        )

    def system(self, level: LogLevel, message: str) -> None:
        """A line in the server's log (``source`` system), through the logs actor."""
        logs = self.runtime.sibling(LOGS)
        if logs is not None:
            try:
                logs.cast_nowait(SystemLog(level, message))
            except ActorError:  # the logs actor is down or full: the line is not essential
                log.info("%s: %s", self.runtime.id, message)

    def status_view(self) -> ServerStatusView:
        """``GET /api/servers/{id}/status``."""
        snapshot, memory = self.runtime.state.current, self.memory
        run = snapshot.run if not snapshot.exited else None
        uptime = None
        if run is not None:
            uptime = max(0.0, self._wall() - run.started_at)
        restart_in = None
        if memory.restart_at is not None:
            restart_in = max(0.0, memory.restart_at - anyio.current_time())
        last = memory.last_event
        return ServerStatusView(
            server_id=self.runtime.id,
            status=snapshot.status,
            seq=snapshot.seq,
            pid=None if run is None else run.pid,
            uptime=uptime,
            restart_count=memory.restart_count,
            restart_in=restart_in,
            reason=None if last is None else last.reason,
        )
