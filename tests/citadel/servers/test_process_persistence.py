"""The lifecycle record and notifications in a real SQLite file, and the ordered outbox."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from trio.testing import MockClock

from actors import ActorExited
from citadel.messages import NotificationEvent, ServerStatusEvent
from citadel.servers.identity import ProcessIdentity
from citadel.servers.messages import Notice
from citadel.servers.persistence import (
    STORE_RETRY_LIMIT,
    UNSTORED_NOTIFICATION_ID,
    MemoryRunStore,
    Outbox,
    Persist,
    StoreRunStore,
)
from citadel.servers.runtime import LifecycleRecord, RunInfo
from citadel.store import Store
from tests._virtual_time import VirtualTimeEventLoop
from tests.citadel.servers.conftest import Recorder

pytestmark = pytest.mark.anyio

RUN = RunInfo(
    incarnation=2,
    identity=ProcessIdentity(4242, 1_700_000_000.5, ("DayZServer", "-port=2302")),
    started_at=1_700_000_000.5,
    profile_dir="/srv/dayz/alpha/profiles",
    marker="0123abcd",
)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    if request.param == "trio":
        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    return ("asyncio", {"loop_factory": VirtualTimeEventLoop})


def notice(title: str, server_id: str = "alpha") -> Notice:
    return Notice(
        server_id=server_id,
        type="server.lifecycle",
        title=title,
        message="m",
        severity="info",
        at=1_700_000_000.0,
    )


def status(seq: int) -> ServerStatusEvent:
    return ServerStatusEvent(
        server_id="alpha", status="running", seq=seq, timestamp="2026-12-03T18:56:31.123Z"
    )


def direct(store: Store) -> Callable[[Callable[[Store], Any]], Any]:
    async def write(apply: Callable[[Store], Any]) -> Any:
        return apply(store)

    return write


async def test_records_and_notifications_survive_reopening_the_file(tmp_path: Path) -> None:
    record = LifecycleRecord(seq=12, status="running", ready=True, run=RUN)
    with Store.open(tmp_path) as store:
        runs = StoreRunStore(store, direct(store))
        await runs.save("alpha", record)
        ids = [
            await runs.add_notification(notice("a")),
            await runs.add_notification(notice("b", server_id="bravo")),
        ]
    with Store.open(tmp_path) as store:
        runs = StoreRunStore(store, direct(store))
        assert await runs.load("alpha") == record
        later = await runs.add_notification(notice("c"))
        await runs.save("alpha", None)
        assert await runs.load("alpha") is None
    assert len(set(ids)) == 2
    assert later > max(ids)  # never reused after a restart


async def test_an_older_citadels_bare_run_reads_as_running_of_unknown_readiness(
    tmp_path: Path,
) -> None:
    with Store.open(tmp_path) as store:
        store.save_run("alpha", msgspec.json.encode(RUN))
        store.save_run("bravo", b'{"not": "a run"}')
        runs = StoreRunStore(store, direct(store))
        assert await runs.load("alpha") == LifecycleRecord(
            seq=0, status="running", ready=False, run=RUN
        )
        assert await runs.load("bravo") is None


class GatedStore(MemoryRunStore):
    def __init__(self) -> None:
        super().__init__()
        self.gate = anyio.Event()

    async def save(self, server_id: str, record: LifecycleRecord | None) -> None:
        await self.gate.wait()
        await super().save(server_id, record)


async def test_the_outbox_stores_the_record_before_the_event_and_flushes() -> None:
    runs, recorder = GatedStore(), Recorder()
    outbox = Outbox("alpha")
    async with anyio.create_task_group() as tg:
        tg.start_soon(outbox.drain, runs, recorder.publish)
        outbox.put_nowait(Persist(LifecycleRecord(seq=1, status="running")))
        outbox.put_nowait(status(1))
        outbox.put_nowait(notice("running"))
        flushed = False

        async def flush() -> None:
            nonlocal flushed
            await outbox.wait_flushed()
            flushed = True

        tg.start_soon(flush)
        await anyio.sleep(1)
        assert recorder.published == []  # the event waits for its record
        assert not flushed
        runs.gate.set()
        with anyio.fail_after(1):
            await outbox.wait_flushed()
        tg.cancel_scope.cancel()
    outbox.close()
    assert runs.records["alpha"].seq == 1
    assert [type(e) for e in recorder.published] == [ServerStatusEvent, NotificationEvent]
    assert isinstance(recorder.published[1], NotificationEvent)
    assert recorder.published[1].id == 1


class FlakyStore(MemoryRunStore):
    """A store actor that is down for the first ``failures`` calls."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def add_notification(self, notice: Notice) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise ActorExited("store", "restarting")
        return await super().add_notification(notice)


async def test_a_restarting_store_is_retried_then_given_up_on() -> None:
    recorder = Recorder()
    outbox = Outbox("alpha")
    brief, long = FlakyStore(3), FlakyStore(10_000)
    async with anyio.create_task_group() as tg:
        tg.start_soon(outbox.drain, brief, recorder.publish)
        outbox.put_nowait(notice("stored after retries"))
        with anyio.fail_after(STORE_RETRY_LIMIT):
            await outbox.wait_flushed()
        tg.cancel_scope.cancel()
    async with anyio.create_task_group() as tg:
        tg.start_soon(outbox.drain, long, recorder.publish)
        start = anyio.current_time()
        outbox.put_nowait(notice("never stored"))
        with anyio.fail_after(STORE_RETRY_LIMIT * 2):
            await outbox.wait_flushed()
        waited = anyio.current_time() - start
        tg.cancel_scope.cancel()
    outbox.close()
    notes = [e for e in recorder.published if isinstance(e, NotificationEvent)]
    assert [(n.title, n.id) for n in notes] == [
        ("stored after retries", 1),
        ("never stored", UNSTORED_NOTIFICATION_ID),
    ]
    assert STORE_RETRY_LIMIT <= waited < STORE_RETRY_LIMIT + 2
