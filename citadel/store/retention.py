"""Retention: what the store forgets, and when (audit, revocations, notifications, bans).

Without it these tables grow for ever: every state-changing request adds an audit row, every
logout a revocation, every crash or give-up a notification, every timed ban a row that stays
after it expired. The `Retention` actor (a child of the root supervisor) purges once at start
and then every ``interval`` seconds, through the store actor (the single writer), in batches of
``batch`` rows so that no purge holds the writer for long:

* audit entries older than ``audit_max_age`` (90 days), and beyond the newest
  ``audit_max_rows`` (1,000,000, about 150 MB) whatever their age: a flood cannot fill the disk
  before the age limit applies;
* revocations whose token has expired (it is refused as expired anyway);
* notifications older than ``notification_max_age`` (30 days), and beyond the newest
  ``notification_max_rows`` (100,000, about 20 MB) whatever their age: a server flapping for
  weeks cannot fill the disk;
* timed bans that expired more than ``ban_history`` (90 days) ago. An expired ban is kept that
  long as history (who banned whom, why); a permanent ban, and a ban still in force, is never
  deleted (the rcon actor re-applies those after every connect), whatever the policy says.

Defaults are in one block below; `RetentionPolicy` overrides them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

import anyio
import msgspec

from actors import Actor, ActorExited, Address
from citadel.store._errors import StoreError
from citadel.store._store import Store
from citadel.store.actor import StoreOp, run_in_store

__all__ = ["PurgeReport", "Retention", "RetentionPolicy", "RetentionStatistics", "purge"]

log = logging.getLogger("citadel.retention")

# --- defaults -------------------------------------------------------------------------------
AUDIT_MAX_AGE: Final = 90 * 86400.0
AUDIT_MAX_ROWS: Final = 1_000_000
NOTIFICATION_MAX_AGE: Final = 30 * 86400.0
NOTIFICATION_MAX_ROWS: Final = 100_000
BAN_HISTORY: Final = 90 * 86400.0
PURGE_INTERVAL: Final = 3600.0
PURGE_BATCH: Final = 10_000
# ---------------------------------------------------------------------------------------------


class RetentionPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How long rows are kept, how many at most, and how often to purge.

    ``ban_history`` counts from a ban's expiry; it must not be negative (a ban in force is
    never purged).
    """

    audit_max_age: float = AUDIT_MAX_AGE
    audit_max_rows: int = AUDIT_MAX_ROWS
    notification_max_age: float = NOTIFICATION_MAX_AGE
    notification_max_rows: int = NOTIFICATION_MAX_ROWS
    ban_history: float = BAN_HISTORY
    interval: float = PURGE_INTERVAL
    batch: int = PURGE_BATCH

    def __post_init__(self) -> None:
        if not self.ban_history >= 0:
            raise ValueError("ban_history must not be negative: a ban in force is never purged")


class PurgeReport(msgspec.Struct, frozen=True, kw_only=True):
    """What one purge removed."""

    audit_expired: int
    audit_over_cap: int
    revocations: int
    notifications_expired: int
    notifications_over_cap: int
    bans: int

    def removed(self) -> int:
        """How many rows went, in all."""
        return (
            self.audit_expired
            + self.audit_over_cap
            + self.revocations
            + self.notifications_expired
            + self.notifications_over_cap
            + self.bans
        )


class RetentionStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Purges done since start and what the last one removed (None before the first)."""

    purges: int
    last: PurgeReport | None


async def purge(db: Address[StoreOp], policy: RetentionPolicy, now: float) -> PurgeReport:
    """Apply ``policy`` at wall-clock time ``now`` through the store actor ``db``."""

    async def drain(step: Callable[[Store], int]) -> int:
        total = 0
        while True:
            removed = await run_in_store(db, step)
            total += removed
            if removed < policy.batch:
                return total

    expired = await drain(lambda s: s.purge_audit(now - policy.audit_max_age, limit=policy.batch))
    over_cap = await drain(lambda s: s.cap_audit(policy.audit_max_rows, limit=policy.batch))
    revocations = await run_in_store(db, lambda s: s.purge_revoked(now=now))
    notes_expired = await drain(
        lambda s: s.purge_notifications(now - policy.notification_max_age, limit=policy.batch)
    )
    notes_over_cap = await drain(
        lambda s: s.cap_notifications(policy.notification_max_rows, limit=policy.batch)
    )
    bans = await drain(
        lambda s: s.purge_expired_bans(now=now, kept_for=policy.ban_history, limit=policy.batch)
    )
    return PurgeReport(
        audit_expired=expired,
        audit_over_cap=over_cap,
        revocations=revocations,
        notifications_expired=notes_expired,
        notifications_over_cap=notes_over_cap,
        bans=bans,
    )


class Retention(Actor[None]):
    """Purges the store by its `RetentionPolicy`: once at start, then every ``interval``.

    Args:
        db: The store actor.
        policy: What to keep.
        clock: Wall-clock Unix seconds (the age of rows); the interval runs on anyio's clock.
        on_purge: Called with each report (tests wait on it).
    """

    def __init__(
        self,
        db: Address[StoreOp],
        policy: RetentionPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        on_purge: Callable[[PurgeReport], None] | None = None,
    ) -> None:
        self._db = db
        self.policy = policy if policy is not None else RetentionPolicy()
        self._clock = clock
        self._on_purge = on_purge
        self._purges = 0
        self._last: PurgeReport | None = None

    async def on_start(self) -> None:
        self.start_soon(self._run)

    async def _run(self) -> None:
        while True:
            try:
                report = await purge(self._db, self.policy, self._clock())
            except (StoreError, ActorExited) as error:
                # A busy file or a restarting store: nothing is lost by trying next time,
                # and crashing here would only restart into the same trouble.
                log.warning(
                    "retention: purge failed, next try in %.0f s: %s", self.policy.interval, error
                )
                await anyio.sleep(self.policy.interval)
                continue
            self._purges += 1
            self._last = report
            if report.removed():
                log.info(
                    "retention: removed %d old and %d surplus audit entries, %d revocations,"
                    " %d old and %d surplus notifications, %d long-expired bans",
                    report.audit_expired,
                    report.audit_over_cap,
                    report.revocations,
                    report.notifications_expired,
                    report.notifications_over_cap,
                    report.bans,
                )
            if self._on_purge is not None:
                self._on_purge(report)
            await anyio.sleep(self.policy.interval)

    def statistics(self) -> RetentionStatistics:
        """Purges done by this incarnation and the last report."""
        return RetentionStatistics(purges=self._purges, last=self._last)
