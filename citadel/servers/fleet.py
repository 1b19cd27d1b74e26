"""The fleet: one supervisor per game server, under one dynamic supervisor.

::

    fleet (dynamic supervisor)
     └─ server "alpha" (one_for_one)
         ├─ logs      tails RPT / ADM / script log / console     (started first ...
         ├─ rcon      BattlEye RCON: players, commands
         ├─ metrics   cpu / ram / fps sampler
         ├─ map       player and vehicle positions
         └─ process   owns the OS process                        ... stopped first)

The process actor is last in start order so that it is the first to stop: its stop ladder can
still ask the rcon actor for ``#shutdown``, and the logs actor drains the last lines after the
exit. Siblings never wait for each other's messages; they watch the `ServerState` the process
actor writes.

`Fleet` is also what the REST API and the connect snapshot see (``ServerDirectory``).

`Fleet.start` first stops what a killed Citadel left running of servers that are no longer in
the fleet (`orphans`), then adds the servers: a run nobody would adopt is never left behind.

Changing a server's configuration (`Fleet.reconfigure`) is not a removal: its actors are
restarted around the same `ServerRuntime`, so its lifecycle (status, ``seq``, the last
``serverStatus`` with its reason, the persisted record) and its log and metrics history carry
over, and dashboards see no new ``serverStatus`` for it. Only `Fleet.remove` forgets a server
(and its record: created again, it starts over at seq 0 after a ``serverRemoved``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal

import anyio

from actors import (
    ActorError,
    Address,
    Backoff,
    ChildSpec,
    Registry,
    Restart,
    Strategy,
    Supervisor,
    SupervisorRef,
)
from citadel.config import ServerConfig
from citadel.messages import Event
from citadel.messages.rest import ServerStatusView, ServerView
from citadel.servers import logs, map, metrics, process, rcon
from citadel.servers.messages import Accepted, GetStatus, RestartServer, StartServer, StopServer
from citadel.servers.orphans import stop_orphaned_runs
from citadel.servers.persistence import RunStore, StoreRunStore
from citadel.servers.process_memory import release_memory
from citadel.servers.runtime import PROCESS, ServerRuntime

log = logging.getLogger("citadel.fleet")

__all__ = ["Fleet", "Source", "StoreRunStore", "server_spec", "server_supervisor"]

Source = Literal["config", "api", "demo"]
Command = StartServer | StopServer | RestartServer

SERVER_INTENSITY: Final = 10
SERVER_PERIOD: Final = 60.0
FLEET_INTENSITY: Final = 50
FLEET_PERIOD: Final = 60.0
STATUS_CALL_TIMEOUT: Final = 2.0
OUTBOX_FLUSH_TIMEOUT: Final = 15.0  # above the store retry limit (persistence.STORE_RETRY_LIMIT)
ACTOR_BACKOFF: Final = Backoff(base=0.05, cap=1.0, reset_after=30.0)


def server_supervisor(runtime: ServerRuntime, runs: RunStore) -> Supervisor:
    """The supervisor of one server's actors (see the module docstring for the order)."""
    return Supervisor(
        [
            logs.spec(runtime),
            rcon.spec(runtime),
            metrics.spec(runtime),
            map.spec(runtime),
            process.spec(runtime, runs),
        ],
        strategy=Strategy.ONE_FOR_ONE,
        intensity=SERVER_INTENSITY,
        period=SERVER_PERIOD,
        # A server's actors come back quickly: while its process actor waits to restart, no
        # one watches the game process (the library's default cap is 30 s).
        backoff=ACTOR_BACKOFF,
    )


def server_spec(runtime: ServerRuntime, runs: RunStore) -> ChildSpec:
    return ChildSpec(
        runtime.id,
        start=lambda: server_supervisor(runtime, runs),
        restart=Restart.PERMANENT,
        # Every server stops in parallel with its own bounded ladder; the whole subtree may
        # take as long as its process actor's shutdown.
        shutdown=process.spec(runtime, runs).shutdown + 5.0,
        name=f"server:{runtime.id}",
    )


class Fleet:
    """The servers Citadel supervises: add, remove, command, and describe them."""

    def __init__(
        self,
        registry: Registry,
        publish: Callable[[Event], Awaitable[bool]],
        runs: RunStore,
    ) -> None:
        self.registry = registry
        self.publish = publish
        self.runs = runs
        self.supervisor: SupervisorRef | None = None
        self.runtimes: dict[str, ServerRuntime] = {}
        self.sources: dict[str, Source] = {}
        #: Held by whoever adds, reconfigures or removes a server at run time (the REST API),
        #: from its checks to its last write: such changes happen one at a time.
        self.changes = anyio.Lock()

    def attach(self, address: Address[Any]) -> None:
        """Use the dynamic supervisor at ``address`` (started by the root)."""
        self.supervisor = SupervisorRef(address)

    async def start(self, servers: Sequence[tuple[ServerConfig, Source]]) -> None:
        """Citadel starts: stop the runs of servers that are gone, then add ``servers``.

        A run recorded for a server id not among ``servers`` (removed from the configuration
        while Citadel was down) would have no process actor to adopt it: `orphans` stops it
        first, bounded by its stop ladder, so no server starts beside it (it may hold the
        ports a server configured now binds) and nothing outlives Citadel unsupervised.
        """
        await stop_orphaned_runs(self.runs, {config.id for config, _ in servers}, self.publish)
        for config, source in servers:
            await self.add(config, source)

    async def add(self, config: ServerConfig, source: Source) -> None:
        """Create a server's runtime and start its supervisor."""
        if config.id in self.runtimes:
            raise ValueError(f"server {config.id!r} already exists")
        assert self.supervisor is not None
        runtime = ServerRuntime(config=config, registry=self.registry, publish=self.publish)
        self.runtimes[config.id] = runtime
        self.sources[config.id] = source
        try:
            await self.supervisor.start_child(server_spec(runtime, self.runs))
        except ActorError:
            del self.runtimes[config.id]
            del self.sources[config.id]
            raise

    async def remove(self, server_id: str) -> None:
        """Stop the server's game (its ladder), then its actors, and forget it.

        Its persisted lifecycle record goes too: a server created again under the same id
        starts over at seq 0.
        """
        assert self.supervisor is not None
        runtime = self.runtimes[server_id]
        await self._stop_and_wait(runtime, "the server is being removed")
        await self.supervisor.terminate_child(server_id)
        await self._release(runtime)
        await self.runs.save(server_id, None)
        self.runtimes.pop(server_id, None)
        self.sources.pop(server_id, None)

    async def reconfigure(self, config: ServerConfig, by: str) -> None:
        """Give the stopped server ``config.id`` the configuration ``config``.

        Its actors stop and start again with ``config``; its lifecycle carries over (see the
        module docstring), so a stopped or crashed server stays as it was, with the same
        ``seq`` and reason, and nothing is published. A pending automatic restart is cancelled
        first, as an operator's stop would (``stopped`` with ``by`` in its reason): a new
        configuration starts when an operator starts it, never by a timer set for the old one.
        """
        assert self.supervisor is not None
        runtime = self.runtimes[config.id]
        await self._stop_and_wait(runtime, by)
        await self.supervisor.terminate_child(config.id)
        # No actor of the server runs here: the runtime has no reader or writer to surprise.
        runtime.config = config
        await self.supervisor.start_child(server_spec(runtime, self.runs))

    async def command(self, server_id: str, command: Command) -> Accepted:
        """Send start/stop/restart to the server's process actor."""
        address = self.registry.whereis(f"{server_id}/{PROCESS}")
        if address is None or not address.alive:
            return Accepted(False, "the server's process actor is restarting; try again")
        result: Accepted = await address.call(command)
        return result

    async def stop_all(self) -> None:
        """Stop every server's game concurrently and wait until each has stopped."""
        async with anyio.create_task_group() as tg:
            for runtime in list(self.runtimes.values()):
                tg.start_soon(self._stop_and_wait, runtime, "citadel shutdown")

    async def close(self) -> None:
        """After the tree stopped: kill any game a cancelled actor left running, free queues."""
        for runtime in self.runtimes.values():
            await self._release(runtime)

    async def _stop_and_wait(self, runtime: ServerRuntime, by: str) -> None:
        if runtime.state.current.status != "stopped":
            try:
                # For a crashed server this cancels a pending automatic restart.
                await self.command(runtime.id, StopServer(by=by))
            except ActorError:
                return  # its process actor is gone; `close` kills what is left
            version = runtime.state.current.version
            while runtime.state.current.status not in ("stopped", "crashed"):
                version = (await runtime.state.wait_changed(version)).version
        memory = runtime.extras.get("process")
        if memory is not None and memory.outbox is not None:
            # The final record must reach SQLite (and the event the dashboards) before the
            # tree stops: the next Citadel starts from it.
            with anyio.move_on_after(OUTBOX_FLUSH_TIMEOUT):
                await memory.outbox.wait_flushed()

    async def _release(self, runtime: ServerRuntime) -> None:
        memory = runtime.extras.get("process")
        if memory is None:
            return
        handle = memory.process
        if handle is not None and not handle.exited:
            log.error("%s: killing pid %s left running at exit", runtime.id, handle.pid)
        await release_memory(memory)

    # -- ServerDirectory ------------------------------------------------------------------

    def list_servers(self) -> list[ServerView]:
        return [self._view(r) for r in self.runtimes.values()]

    def get_server(self, server_id: str) -> ServerView | None:
        runtime = self.runtimes.get(server_id)
        return None if runtime is None else self._view(runtime)

    async def server_status(self, server_id: str) -> ServerStatusView | None:
        runtime = self.runtimes.get(server_id)
        if runtime is None:
            return None
        address = runtime.sibling(PROCESS)
        if address is not None and address.alive:
            try:
                view: ServerStatusView = await address.call(GetStatus(), STATUS_CALL_TIMEOUT)
                return view
            except ActorError:
                pass  # fall back to the shared state below
        snapshot = runtime.state.current
        return ServerStatusView(server_id=server_id, status=snapshot.status, seq=snapshot.seq)

    def _view(self, runtime: ServerRuntime) -> ServerView:
        config = runtime.config
        return ServerView(
            id=config.id,
            name=config.name,
            game=config.game,
            status=runtime.state.current.status,
            source=self.sources.get(config.id, "config"),
        )
