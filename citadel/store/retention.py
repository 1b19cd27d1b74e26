"""Retention: what the store forgets, and when (the audit log and revoked tokens).

Without it both tables grow for ever: every state-changing request adds an audit row, every
logout a revocation. The `Retention` actor (a child of the root supervisor) purges once at start
and then every ``interval`` seconds, through the store actor (the single writer), in batches of
``batch`` rows so that no purge holds the writer for long:

* audit entries older than ``audit_max_age`` (90 days), and beyond the newest
  ``audit_max_rows`` (1,000,000, about 150 MB) whatever their age: a flood cannot fill the disk
  before the age limit applies;
* revocations whose token has expired (it is refused as expired anyway).

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
PURGE_INTERVAL: Final = 3600.0
PURGE_BATCH: Final = 10_000
# ---------------------------------------------------------------------------------------------


class RetentionPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How long audit entries are kept, how many at most, and how often to purge."""

    audit_max_age: float = AUDIT_MAX_AGE
    audit_max_rows: int = AUDIT_MAX_ROWS
    interval: float = PURGE_INTERVAL
    batch: int = PURGE_BATCH


class PurgeReport(msgspec.Struct, frozen=True, kw_only=True):
    """What one purge removed."""

    audit_expired: int
    audit_over_cap: int
    revocations: int


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
    return PurgeReport(audit_expired=expired, audit_over_cap=over_cap, revocations=revocations)


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
            if report.audit_expired or report.audit_over_cap or report.revocations:
                log.info(
                    "retention: removed %d old and %d surplus audit entries, %d revocations",
                    report.audit_expired,
                    report.audit_over_cap,
                    report.revocations,
                )
            if self._on_purge is not None:
                self._on_purge(report)
            await anyio.sleep(self.policy.interval)

    def statistics(self) -> RetentionStatistics:
        """Purges done by this incarnation and the last report."""
        return RetentionStatistics(purges=self._purges, last=self._last)
