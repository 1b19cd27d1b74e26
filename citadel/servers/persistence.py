"""What the process actor keeps across Citadel restarts, and the ordered outbox that writes it.

* `RunStore` - where each server's `LifecycleRecord` (seq, status, readiness, the live run)
  and its lifecycle notifications are kept: `StoreRunStore` in Citadel's SQLite file through
  the store actor (the single writer), `MemoryRunStore` for tests.
* `Outbox` - one ordered queue per server for everything the process actor sends out: records
  to persist, ``serverStatus`` events, notices to number and publish. One task drains it, so
  the actor itself never waits on the broadcaster or the store (its hot path stays a
  ``send_nowait``). A record is written before the event it goes with, so the persisted seq is
  never behind what a dashboard saw. A notice is stored first and published with the store's
  id (unique host-wide, never reused - SQLite ``AUTOINCREMENT`` - so ids survive restarts).
  The queue and the item being delivered live outside the actor: after an actor crash the
  next incarnation delivers the interrupted item again (at least once for store writes,
  exactly once for events: a cast cannot be interrupted after it enqueued).
* A store actor that is restarting is retried with a short backoff for `STORE_RETRY_LIMIT`
  seconds; then the item is logged and skipped (a notice is then published with id
  `UNSTORED_NOTIFICATION_ID`, 0: it is in no list).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, TypeVar

import anyio
import anyio.abc
import msgspec

from actors import ActorError
from citadel.messages import Event, NotificationEvent, utc_timestamp
from citadel.servers.messages import Notice
from citadel.servers.runtime import LifecycleRecord, RunInfo
from citadel.store import Store, StoreError

log = logging.getLogger("citadel.process")
T = TypeVar("T")

# --- defaults --------------------------------------------------------------------------------
OUTBOX_SIZE: Final = 10_000
STORE_RETRY_BASE: Final = 0.05  # first pause when the store actor is down
STORE_RETRY_CAP: Final = 1.0  # longest pause
STORE_RETRY_LIMIT: Final = 10.0  # then the item is logged and skipped
UNSTORED_NOTIFICATION_ID: Final = 0
# -----------------------------------------------------------------------------------------------


class RunStore(Protocol):
    """Where lifecycle records and lifecycle notifications are kept across Citadel restarts."""

    async def save(self, server_id: str, record: LifecycleRecord | None) -> None:
        """Persist the server's record (None: forget the server)."""
        ...

    async def load(self, server_id: str) -> LifecycleRecord | None:
        """The last record saved for the server, if any."""
        ...

    async def load_all(self) -> dict[str, LifecycleRecord | None]:
        """Every stored record by server id, also of servers no longer configured (None:
        unreadable)."""
        ...

    async def add_notification(self, notice: Notice) -> int:
        """Store a notification; return its id (unique host-wide, never reused)."""
        ...


class MemoryRunStore:
    """A `RunStore` in memory (tests; a Citadel without persistence).

    Ids are unique among the servers sharing this store (the fleet shares one).
    """

    def __init__(self) -> None:
        self.records: dict[str, LifecycleRecord] = {}
        self.notices: list[tuple[int, Notice]] = []

    async def save(self, server_id: str, record: LifecycleRecord | None) -> None:
        if record is None:
            self.records.pop(server_id, None)
        else:
            self.records[server_id] = record

    async def load(self, server_id: str) -> LifecycleRecord | None:
        return self.records.get(server_id)

    async def load_all(self) -> dict[str, LifecycleRecord | None]:
        return dict(self.records)

    async def add_notification(self, notice: Notice) -> int:
        note_id = len(self.notices) + 1
        self.notices.append((note_id, notice))
        return note_id


class StoreRunStore:
    """A `RunStore` in Citadel's SQLite file; writes go through the store actor (``write``).

    The record is the JSON of a `LifecycleRecord` in the ``server_runs`` row of the server
    (a row written by an older Citadel holds a bare `RunInfo`: it reads as a running run of
    unknown readiness, seq 0). Notifications go to the ``notifications`` table.
    """

    def __init__(self, store: Store, write: Callable[[Callable[[Store], Any]], Awaitable[Any]]):
        self._store = store
        self._write = write

    async def save(self, server_id: str, record: LifecycleRecord | None) -> None:
        data = None if record is None else msgspec.json.encode(record)
        await self._write(lambda store: store.save_run(server_id, data))

    async def load(self, server_id: str) -> LifecycleRecord | None:
        data = self._store.load_run(server_id)
        return None if data is None else decode_record(server_id, data)

    async def load_all(self) -> dict[str, LifecycleRecord | None]:
        return {sid: decode_record(sid, data) for sid, data in self._store.list_runs()}

    async def add_notification(self, notice: Notice) -> int:
        stored = await self._write(
            lambda store: store.add_notification(
                server_id=notice.server_id,
                type=notice.type,
                title=notice.title,
                message=notice.message,
                severity=notice.severity,
                now=notice.at,
            )
        )
        return int(stored.id)


def decode_record(server_id: str, data: bytes) -> LifecycleRecord | None:
    """Read a stored record (or an older Citadel's bare run); None if unreadable."""
    try:
        return msgspec.json.decode(data, type=LifecycleRecord)
    except msgspec.ValidationError:
        pass  # perhaps the older shape, tried next
    try:
        run = msgspec.json.decode(data, type=RunInfo)
    except msgspec.ValidationError:
        log.warning("%s: ignoring an unreadable stored run", server_id)
        return None
    return LifecycleRecord(seq=0, status="running", ready=False, run=run)


class Persist(msgspec.Struct, frozen=True):
    """Outbox item: save this record (queued before the event it goes with); None forgets
    the server's record."""

    record: LifecycleRecord | None


class Outbox:
    """One server's ordered queue of records, events and notices (see the module docstring).

    Owned by the process actor's memory, so it outlives the actor's crashes; `drain` runs in
    the current incarnation and resumes with the interrupted item.
    """

    def __init__(self, server_id: str, size: int = OUTBOX_SIZE) -> None:
        self.server_id = server_id
        self._send, self._receive = anyio.create_memory_object_stream[Any](size)
        self.in_flight: Any = None
        self._pending = 0
        self._empty = anyio.Event()
        self._empty.set()

    def put_nowait(self, item: Persist | Notice | Event) -> None:
        """Queue ``item``; never waits (a full outbox drops it, with an error in the log)."""
        try:
            self._send.send_nowait(item)
        except anyio.WouldBlock:
            log.error("%s: outbox full; dropped %s", self.server_id, type(item).__name__)
            return
        if self._pending == 0:
            self._empty = anyio.Event()
        self._pending += 1

    async def wait_flushed(self) -> None:
        """Wait until everything queued so far has been delivered (records stored, events sent).

        Used before Citadel exits, so the record of the final ``stopped`` is on disk.
        """
        await self._empty.wait()

    async def drain(self, runs: RunStore, publish: Callable[[Event], Awaitable[bool]]) -> None:
        """Deliver items in order until the outbox is closed."""
        while True:
            if self.in_flight is None:
                try:
                    self.in_flight = await self._receive.receive()
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    return
            await self._deliver(self.in_flight, runs, publish)
            self.in_flight = None
            self._pending -= 1
            if self._pending == 0:
                self._empty.set()

    def close(self) -> None:
        self._send.close()
        self._receive.close()
        self.in_flight = None
        self._pending = 0
        self._empty.set()

    async def _deliver(
        self, item: Any, runs: RunStore, publish: Callable[[Event], Awaitable[bool]]
    ) -> None:
        if isinstance(item, Persist):
            await self._with_store(lambda: runs.save(self.server_id, item.record), "record")
        elif isinstance(item, Notice):
            note_id = await self._with_store(lambda: runs.add_notification(item), "notice")
            await publish(
                NotificationEvent(
                    id=UNSTORED_NOTIFICATION_ID if note_id is None else note_id,
                    server_id=item.server_id,
                    type=item.type,
                    title=item.title,
                    message=item.message,
                    severity=item.severity,
                    timestamp=utc_timestamp(item.at),
                )
            )
        else:
            await publish(item)

    async def _with_store(self, operation: Callable[[], Awaitable[T]], what: str) -> T | None:
        """Run a store operation, retrying while the store actor restarts (bounded)."""
        delay, deadline = STORE_RETRY_BASE, anyio.current_time() + STORE_RETRY_LIMIT
        while True:
            try:
                return await operation()
            except ActorError as error:  # the store actor is down or restarting
                if anyio.current_time() >= deadline:
                    log.error("%s: could not store a %s: %s", self.server_id, what, error)
                    return None
            except (StoreError, ValueError) as error:
                log.error("%s: the store refused a %s: %s", self.server_id, what, error)
                return None
            await anyio.sleep(delay)
            delay = min(delay * 2, STORE_RETRY_CAP)
