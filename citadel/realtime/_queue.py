"""The per-client queue policy for a lagging client, as a pure class (no sockets, no clock).

A client that keeps up never touches this queue: the engine writes its frames straight to the
transport. Once the transport's buffer is full, frames wait here, and the policy decides what a
lagging client keeps:

* ``serverStatus`` (and every kind not listed below) is kept, in order: transitions are never
  lost;
* state kinds (``players``, ``metrics``, ``mapData``, ``mods``) coalesce to the latest value per
  (kind, server): a newer value replaces the pending one in its place;
* ``log`` lines beyond ``max_log_lines`` are dropped oldest-first, and the client is later handed
  one notice per server saying how many it lost, before the next frame;
* a client whose oldest pending frame is older than ``max_lag`` seconds, or whose queue holds
  more than ``max_bytes``, is hopeless: the verdict is ``DISCONNECT`` (it reconnects and gets a
  fresh snapshot).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from typing import Final, Generic, Protocol, TypeVar

import msgspec

__all__ = [
    "COALESCED_KINDS",
    "DEFAULT_MAX_LAG",
    "DEFAULT_MAX_LOG_LINES",
    "DEFAULT_MAX_QUEUED_BYTES",
    "ClientQueue",
    "QueueLimits",
    "Queueable",
    "Verdict",
]

DEFAULT_MAX_QUEUED_BYTES: Final = 1 << 20
DEFAULT_MAX_LOG_LINES: Final = 500
DEFAULT_MAX_LAG: Final = 30.0
LOG_KIND: Final = "log"
COALESCED_KINDS: Final = frozenset({"players", "metrics", "mapData", "mods"})
# Dead slots (dropped log lines) are swept out once they outnumber the live ones by this much,
# so a reader that never reads cannot grow the deque without bound between two verdicts.
_COMPACT_SLACK: Final = 64


class Queueable(Protocol):
    """What the policy needs to know about a queued frame."""

    @property
    def name(self) -> str:
        """The event kind."""
        ...

    @property
    def server_id(self) -> str | None:
        """The server the event is about, or ``None`` when host-wide."""
        ...

    @property
    def size(self) -> int:
        """Bytes the frame takes on the wire."""
        ...


T = TypeVar("T", bound=Queueable)


class QueueLimits(msgspec.Struct, frozen=True):
    """Bounds of one client's pending queue.

    Attributes:
        max_bytes: Queued bytes beyond which the client is disconnected.
        max_log_lines: Pending ``log`` lines kept; older ones are dropped.
        max_lag: Seconds the oldest pending frame may wait before the client is disconnected.
    """

    max_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    max_log_lines: int = DEFAULT_MAX_LOG_LINES
    max_lag: float = DEFAULT_MAX_LAG


class Verdict(enum.Enum):
    """What became of a pushed frame."""

    QUEUED = "queued"
    COALESCED = "coalesced"
    DISCONNECT = "disconnect"


class _Slot(Generic[T]):
    """A place in the queue; ``item`` is ``None`` once its log line was dropped."""

    __slots__ = ("item", "since")

    def __init__(self, item: T, since: float) -> None:
        self.item: T | None = item
        self.since = since


class ClientQueue(Generic[T]):
    """Pending frames of one lagging client, under the policy in the module docstring.

    Args:
        limits: The bounds.
        drop_notice: Builds the frame telling a client how many log lines of a server it lost.

    Example:
        >>> q = ClientQueue(QueueLimits(max_log_lines=1), notice)   # doctest: +SKIP
        >>> q.push(log_a, now=0.0); q.push(log_b, now=0.0)          # doctest: +SKIP
        >>> q.pop()   # the notice "1 log lines dropped", then log_b  # doctest: +SKIP
    """

    def __init__(self, limits: QueueLimits, drop_notice: Callable[[str | None, int], T]) -> None:
        self._limits = limits
        self._drop_notice = drop_notice
        self._slots: deque[_Slot[T]] = deque()
        self._latest: dict[tuple[str, str | None], _Slot[T]] = {}
        self._logs: deque[_Slot[T]] = deque()
        self._dropped: dict[str | None, int] = {}
        self._live = 0
        self._bytes = 0
        self.coalesced = 0
        """Frames replaced by a newer value of the same kind and server."""
        self.dropped_logs = 0
        """Log lines dropped because the client lagged."""

    def __len__(self) -> int:
        """Count pending frames, notices included."""
        return self._live + len(self._dropped)

    @property
    def queued_bytes(self) -> int:
        """Bytes of the pending frames."""
        return self._bytes

    def push(self, item: T, now: float) -> Verdict:
        """Queue ``item`` under the policy; ``now`` is a monotonic time in seconds."""
        kind = item.name
        if kind in COALESCED_KINDS:
            key = (kind, item.server_id)
            slot = self._latest.get(key)
            if slot is not None and slot.item is not None:
                # Replace in place: the newer state takes the older one's turn, so a lagging
                # client is no further behind than before; its age stays the older one's.
                self._bytes += item.size - slot.item.size
                slot.item = item
                self.coalesced += 1
                return self._judge(now, Verdict.COALESCED)
            slot = _Slot(item, now)
            self._latest[key] = slot
        else:
            slot = _Slot(item, now)
            if kind == LOG_KIND:
                self._logs.append(slot)
                if len(self._logs) > self._limits.max_log_lines:
                    self._drop_oldest_log()
        self._slots.append(slot)
        self._live += 1
        self._bytes += item.size
        return self._judge(now, Verdict.QUEUED)

    def pop(self) -> T | None:
        """Take the next frame to send, or ``None`` when nothing is pending.

        Notices of dropped log lines come first: they describe a gap that lies before
        everything still queued.
        """
        if self._dropped:
            server_id, count = next(iter(self._dropped.items()))
            del self._dropped[server_id]
            return self._drop_notice(server_id, count)
        while self._slots:
            slot = self._slots.popleft()
            item = slot.item
            if item is None:
                continue
            slot.item = None
            self._live -= 1
            self._bytes -= item.size
            if item.name == LOG_KIND:
                # Logs leave in order, so the popped line is the oldest one tracked.
                self._logs.popleft()
            elif item.name in COALESCED_KINDS:
                del self._latest[(item.name, item.server_id)]
            return item
        return None

    def check(self, now: float) -> Verdict:
        """Judge the queue without pushing (for a periodic sweep)."""
        return self._judge(now, Verdict.QUEUED)

    def retain(self, keep: Callable[[T], bool]) -> int:
        """Drop every pending frame (and drop notice) for which ``keep`` is false.

        Used when a client's scope narrows: frames queued under the old scope may name servers
        or carry fields (IPs) the client may no longer see. Order of the rest is unchanged.
        Removed log lines are not counted as dropped: the client may no longer see them, so
        it is not told about them either.

        Returns:
            How many frames were removed, notices included.
        """
        removed = 0
        for slot in self._slots:
            item = slot.item
            if item is None or keep(item):
                continue
            slot.item = None
            self._live -= 1
            self._bytes -= item.size
            removed += 1
            if item.name in COALESCED_KINDS:
                del self._latest[(item.name, item.server_id)]
        if removed:
            self._slots = deque(s for s in self._slots if s.item is not None)
            self._logs = deque(s for s in self._logs if s.item is not None)
        for server_id, count in list(self._dropped.items()):
            # Rare (a rescope): building the notice is the honest way to ask the predicate.
            if not keep(self._drop_notice(server_id, count)):
                del self._dropped[server_id]
                removed += 1
        return removed

    def clear(self) -> None:
        """Forget everything pending (the client is going away)."""
        self._slots.clear()
        self._latest.clear()
        self._logs.clear()
        self._dropped.clear()
        self._live = 0
        self._bytes = 0

    def _judge(self, now: float, ok: Verdict) -> Verdict:
        if self._bytes > self._limits.max_bytes:
            return Verdict.DISCONNECT
        for slot in self._slots:
            # The first live slot is the oldest pending frame; dead ones precede it at most
            # _COMPACT_SLACK + live times, so this loop is bounded.
            if slot.item is not None:
                if now - slot.since > self._limits.max_lag:
                    return Verdict.DISCONNECT
                break
        return ok

    def _drop_oldest_log(self) -> None:
        slot = self._logs.popleft()
        item = slot.item
        if item is None:  # pragma: no cover - logs deque holds live slots only
            return
        slot.item = None
        self._live -= 1
        self._bytes -= item.size
        self.dropped_logs += 1
        self._dropped[item.server_id] = self._dropped.get(item.server_id, 0) + 1
        dead = len(self._slots) - self._live
        if dead > self._live + _COMPACT_SLACK:
            self._slots = deque(s for s in self._slots if s.item is not None)
