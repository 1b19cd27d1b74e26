"""The audit log of the REST API: who changed what, and a bounded record of anonymous refusals.

Every state-changing request (POST, PUT, PATCH, DELETE) is recorded with its final status.

* A request made by someone - a verified token's user, or a login attempt that reached the
  password check, under the name it tried - is one audit row, refused or not. Login attempts
  are few by construction: the throttle lets at most 5 per IP and per name through a window.
* A request nobody can be named for (no or a bad token, an unknown path, a body refused before
  the caller was known, a throttled login) is *tallied* instead: per client address, method and
  status, and written every ``flush_interval`` seconds as one row whose ``detail`` holds the
  count and a few of the paths. At most ``max_keys`` tallies are kept per interval; further
  addresses fold into one row with no address. So a flood of garbage is still on record, but
  costs at most ``max_keys + a few`` rows a minute, never one per request.

Bodies are never stored (they hold passwords).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

import anyio
import msgspec

from actors import Actor, ActorExited, Address, ExitKind
from citadel.store import StoreError
from citadel.store.actor import StoreOp, run_in_store

__all__ = ["AuditFlusher", "AuditTally", "TallyDetail", "TallyRow", "flush_tally", "read_tally"]

log = logging.getLogger("citadel.audit")

# --- defaults -------------------------------------------------------------------------------
FLUSH_INTERVAL: Final = 60.0
MAX_TALLY_KEYS: Final = 100
PATH_SAMPLES: Final = 5
MAX_PATH_LENGTH: Final = 200
# ---------------------------------------------------------------------------------------------


class TallyRow(msgspec.Struct, frozen=True, kw_only=True):
    """One audit row summing up anonymous refusals of one address, method and status."""

    ip: str | None
    method: str
    path: str
    status: int
    count: int
    paths: list[str]
    first: float
    last: float

    def detail(self) -> dict[str, Any]:
        """The row's ``detail`` column."""
        return {"count": self.count, "paths": self.paths, "first": self.first, "last": self.last}


class TallyDetail(msgspec.Struct, frozen=True, kw_only=True):
    """The ``detail`` of a tallied row, as read back (`TallyRow.detail` writes it)."""

    count: int
    paths: list[str]
    first: float
    last: float


def read_tally(user: str | None, detail: dict[str, Any] | None) -> TallyDetail | None:
    """The tally an audit row stands for, or None for a row someone made (or no tally).

    Only the tally's own fields are read: whatever else a ``detail`` holds (the RCON command
    of a named user's request) is never taken for one.
    """
    if user is not None or detail is None:
        return None
    try:
        return msgspec.convert(detail, TallyDetail)
    except msgspec.ValidationError:
        return None


@dataclass
class _Tally:
    count: int
    paths: list[str]
    first: float
    last: float
    last_path: str


class AuditTally:
    """Counts anonymous refusals until they are drained into audit rows (pure bookkeeping)."""

    def __init__(self, *, max_keys: int = MAX_TALLY_KEYS) -> None:
        """Keep at most ``max_keys`` distinct (address, method, status) tallies per drain."""
        self._max_keys = max_keys
        self._tallies: dict[tuple[str | None, str, int], _Tally] = {}

    def add(self, ip: str | None, method: str, path: str, status: int, *, now: float) -> None:
        """Count one refused request nobody can be named for."""
        key = (ip, method, status)
        if key not in self._tallies and len(self._tallies) >= self._max_keys:
            key = (None, method, status)  # the overflow row: "other addresses"
        path = path[:MAX_PATH_LENGTH]
        tally = self._tallies.get(key)
        if tally is None:
            self._tallies[key] = _Tally(count=1, paths=[path], first=now, last=now, last_path=path)
            return
        tally.count += 1
        tally.last = now
        tally.last_path = path
        if path not in tally.paths and len(tally.paths) < PATH_SAMPLES:
            tally.paths.append(path)

    def pending(self) -> int:
        """Requests counted since the last drain."""
        return sum(t.count for t in self._tallies.values())

    def drain(self) -> list[TallyRow]:
        """Return the tallies as rows and start counting afresh."""
        tallies, self._tallies = self._tallies, {}
        return [
            TallyRow(
                ip=ip,
                method=method,
                path=tally.last_path,
                status=status,
                count=tally.count,
                paths=tally.paths,
                first=tally.first,
                last=tally.last,
            )
            for (ip, method, status), tally in tallies.items()
        ]


async def flush_tally(db: Address[StoreOp], tally: AuditTally) -> int:
    """Write the tallied refusals as audit rows (one transaction); returns the rows written."""
    rows = tally.drain()
    if not rows:
        return 0

    def write(store: Any) -> int:
        for row in rows:
            store.add_audit(
                user=None,
                ip=row.ip,
                method=row.method,
                path=row.path,
                status=row.status,
                detail=row.detail(),
                now=row.last,
            )
        return len(rows)

    written: int = await run_in_store(db, write)
    return written


class AuditFlusher(Actor[None]):
    """Writes the `AuditTally` to the store every ``interval`` seconds, and once more at stop."""

    def __init__(
        self,
        db: Address[StoreOp],
        tally: AuditTally,
        *,
        interval: float = FLUSH_INTERVAL,
    ) -> None:
        self._db = db
        self._tally = tally
        self._interval = interval

    async def on_start(self) -> None:
        self.start_soon(self._run)

    async def _run(self) -> None:
        while True:
            await anyio.sleep(self._interval)
            pending = self._tally.pending()
            try:
                await flush_tally(self._db, self._tally)
            except (StoreError, ActorExited) as error:
                log.warning("audit: %d anonymous refusals not recorded: %s", pending, error)

    async def on_stop(self, kind: ExitKind) -> None:
        pending = self._tally.pending()
        try:
            await flush_tally(self._db, self._tally)
        except ActorExited:  # the store stopped first (it should not): say what is lost
            log.warning("audit: the store is gone; %d anonymous refusals not recorded", pending)
