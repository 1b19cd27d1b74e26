"""Retention in virtual time on a real SQLite file: old and surplus audit rows, expired
revocations, old and surplus notifications and long-expired bans go at start and then every
interval, in batches, through the store actor; bans in force and permanent bans stay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from actors import open_actor
from citadel.servers.rcon import bans_to_reapply
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


def _notify(store: Store, at: float, n: int = 1) -> None:
    for _ in range(n):
        store.add_notification(
            server_id="alpha", type="crash", title="t", message="m", severity="error", now=at
        )


def _report(**removed: int) -> PurgeReport:
    fields = dict.fromkeys(PurgeReport.__struct_fields__, 0)
    return PurgeReport(**(fields | removed))


async def _run_retention(
    store: Store, policy: RetentionPolicy, purges: int
) -> tuple[list[PurgeReport], int]:
    """Run the retention actor (wall clock T0 at its start) until ``purges`` purges are done."""
    reports: list[PurgeReport] = []
    purged = anyio.Event()
    start = anyio.current_time()

    def on_purge(report: PurgeReport) -> None:
        reports.append(report)
        if len(reports) == purges:
            purged.set()

    async with open_actor(StoreActor(store), name="store") as db:
        retention = Retention(
            db, policy, clock=lambda: T0 + anyio.current_time() - start, on_purge=on_purge
        )
        with anyio.fail_after(purges * policy.interval):
            async with open_actor(retention, name="retention"):
                await purged.wait()
                stats = retention.statistics()
    return reports, stats.purges


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
    reports, purges = await _run_retention(store, policy, purges=3)
    assert reports == [
        _report(audit_expired=25, audit_over_cap=1, revocations=1),  # at start
        _report(),  # a day later
        _report(audit_expired=1, revocations=1),  # two days later
    ]
    assert purges == 3
    assert store.count_audit() == 40
    assert not store.is_revoked("gone")
    assert not store.is_revoked("soon")
    assert store.is_revoked("later")


def test_notification_purge_and_cap_go_in_batches_and_ids_are_never_reused(store: Store) -> None:
    _notify(store, T0 - 10, 10)
    _notify(store, T0, 5)
    newest = [n.id for n in store.list_notifications(limit=4)]
    assert store.purge_notifications(T0, limit=3) == 3  # in batches, oldest first
    assert store.purge_notifications(T0) == 7
    assert store.cap_notifications(4, limit=0) == 0
    assert store.cap_notifications(4) == 1
    assert store.cap_notifications(4) == 0
    assert [n.id for n in store.list_notifications()] == newest
    assert store.cap_notifications(0) == 4
    assert store.count_notifications() == 0
    # AUTOINCREMENT: a notification's id (what its event carried) is never given out again.
    _notify(store, T0)
    assert store.list_notifications()[0].id > max(newest)


def test_a_ban_in_force_or_permanent_is_never_purged(store: Store) -> None:
    permanent = store.add_ban("alpha", guid="p" * 32, reason="cheat", now=T0 - 400 * DAY)
    in_force = store.add_ban("alpha", guid="f" * 32, minutes=60, now=T0 - 59 * 60)
    expired = store.add_ban("alpha", ip="192.0.2.1", minutes=60, now=T0 - 61 * 60)
    with pytest.raises(ValueError, match="negative"):
        store.purge_expired_bans(now=T0, kept_for=-1.0)
    with pytest.raises(ValueError, match="negative"):
        store.purge_expired_bans(now=T0, kept_for=float("nan"))
    with pytest.raises(ValueError, match="negative"):
        RetentionPolicy(ban_history=-DAY)
    assert store.purge_expired_bans(now=T0, kept_for=2 * 60) == 0  # expired 1 min ago: history
    assert store.purge_expired_bans(now=T0, kept_for=0.0, limit=0) == 0
    assert store.purge_expired_bans(now=T0, kept_for=0.0) == 1
    assert store.list_bans("alpha", include_expired=True) == [permanent, in_force]
    assert expired not in store.list_bans("alpha", include_expired=True)


async def test_old_notifications_and_long_expired_bans_go_bans_in_force_stay(
    store: Store,
) -> None:
    _notify(store, T0 - 31 * DAY, 15)  # past the age limit
    _notify(store, T0 - 29.5 * DAY, 2)  # one over the cap of 21; the other ages out later
    _notify(store, T0 - 1 * DAY, 20)
    day = 24 * 60
    permanent = store.add_ban("alpha", guid="a" * 32, reason="cheat", now=T0 - 400 * DAY)
    in_force = store.add_ban("alpha", guid="b" * 32, minutes=200 * day, now=T0 - 100 * DAY)
    store.add_ban("alpha", guid="c" * 32, minutes=day, now=T0 - 92 * DAY)  # expired 91 days ago
    store.add_ban("bravo", ip="192.0.2.9", minutes=day, now=T0 - 92 * DAY)  # the same
    store.add_ban("alpha", guid="d" * 32, minutes=day, now=T0 - 90.5 * DAY)  # 89.5 days ago
    recent = store.add_ban("alpha", ip="192.0.2.7", minutes=60, now=T0 - 2 * 3600)
    ending = store.add_ban("alpha", guid="e" * 32, minutes=day, now=T0 - 0.5 * DAY)
    policy = RetentionPolicy(
        notification_max_age=30 * DAY,
        notification_max_rows=21,
        ban_history=90 * DAY,
        interval=DAY,
        batch=7,
    )
    reports, purges = await _run_retention(store, policy, purges=3)
    assert reports == [
        _report(notifications_expired=15, notifications_over_cap=1, bans=2),  # at start
        _report(notifications_expired=1, bans=1),  # a day later
        _report(),  # two days later
    ]
    assert purges == 3
    assert store.count_notifications() == 20
    # Expired bans stay as history for 90 days; what is in force is untouched and is still
    # what the rcon actor re-applies after a connect.
    assert store.list_bans("alpha", include_expired=True) == [permanent, in_force, recent, ending]
    assert store.list_bans("bravo", include_expired=True) == []
    now = T0 + 2 * DAY
    assert store.list_bans("alpha", now=now) == [permanent, in_force]
    assert bans_to_reapply(store.list_bans("alpha", now=now), [], now) == [
        f"addBan {'a' * 32} 0 cheat",
        f"addBan {'b' * 32} {98 * day}",
    ]
