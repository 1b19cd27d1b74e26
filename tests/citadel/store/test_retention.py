"""Retention in virtual time on a real SQLite file: old and surplus audit rows and expired
revocations go at start and then every interval, in batches, through the store actor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from actors import open_actor
from citadel.store import Store
from citadel.store.actor import StoreActor
from citadel.store.retention import PurgeReport, Retention, RetentionPolicy
from tests._virtual_time import VirtualTimeEventLoop

pytestmark = pytest.mark.anyio
T0 = 1_800_000_000.0
DAY = 86400.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    if request.param == "trio":
        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    return ("asyncio", {"loop_factory": VirtualTimeEventLoop})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path) as s:
        yield s


def _audit(store: Store, at: float, n: int = 1) -> None:
    for _ in range(n):
        store.add_audit(user="u", ip=None, method="POST", path="/p", status=200, now=at)


def test_cap_keeps_the_newest_rows(store: Store) -> None:
    _audit(store, T0, 10)
    newest = [e.id for e in store.list_audit(limit=4)]
    assert store.cap_audit(4, limit=3) == 3  # in batches
    assert store.cap_audit(4) == 3
    assert store.cap_audit(4) == 0
    assert [e.id for e in store.list_audit()] == newest
    assert store.purge_audit(T0 + 1, limit=3) == 3
    assert store.count_audit() == 1


async def test_purges_at_start_and_every_interval(store: Store) -> None:
    _audit(store, T0 - 91 * DAY, 25)  # past the age limit
    _audit(store, T0 - 89 * DAY, 2)  # one over the cap of 41; the other ages out later
    _audit(store, T0 - 1 * DAY, 40)
    store.revoke_token("gone", T0 - 1)
    store.revoke_token("soon", T0 + 1.5 * DAY)
    store.revoke_token("later", T0 + 30 * DAY)
    policy = RetentionPolicy(audit_max_age=90 * DAY, audit_max_rows=41, interval=DAY, batch=7)
    reports: list[PurgeReport] = []
    purged = anyio.Event()
    start = anyio.current_time()

    def on_purge(report: PurgeReport) -> None:
        reports.append(report)
        if len(reports) == 3:
            purged.set()

    async with open_actor(StoreActor(store), name="store") as db:
        retention = Retention(
            db,
            policy,
            clock=lambda: T0 + anyio.current_time() - start,
            on_purge=on_purge,
        )
        with anyio.fail_after(3 * DAY):
            async with open_actor(retention, name="retention"):
                await purged.wait()
                stats = retention.statistics()
    assert reports == [
        PurgeReport(audit_expired=25, audit_over_cap=1, revocations=1),  # at start
        PurgeReport(audit_expired=0, audit_over_cap=0, revocations=0),  # a day later
        PurgeReport(audit_expired=1, audit_over_cap=0, revocations=1),  # two days later
    ]
    assert stats.purges == 3
    assert store.count_audit() == 40
    assert not store.is_revoked("gone")
    assert not store.is_revoked("soon")
    assert store.is_revoked("later")
