"""Bounded mailboxes with a per-actor (or per message kind) overflow policy.

A mailbox holds two lanes. The *control* lane (stop requests, exits of linked children) is
unbounded and always read first, so a full mailbox can always be stopped. The *ordinary* lane is
bounded by ``capacity``; what happens when it is full is the overflow policy:

* `Overflow.WAIT` - the sender waits for room (``cast``); ``cast_nowait`` raises `MailboxFull`.
* `Overflow.FAIL` - the sender gets `MailboxFull` at once.
* `Overflow.DROP_OLDEST` - the oldest queued *droppable* message is discarded to make room.
* `Overflow.COALESCE` - a queued message with the same coalescing key is replaced in place by
  the new one (latest value wins, position kept); a message with a new key is appended, dropping
  the oldest droppable message if full. Calls are never coalesced (a caller waits for its own
  reply).

A message is *droppable* when its own kind's policy is `Overflow.DROP_OLDEST` or
`Overflow.COALESCE`: a message sent under `Overflow.WAIT` or `Overflow.FAIL` was promised that it
is either queued or refused, never silently lost, so a droppable kind cannot evict it. When the
queue is full of messages that may not be dropped, the new droppable message is the one discarded
(reported as ``"dropped_newest"``; a call is refused with `MailboxFull` instead).

Every discarded message is counted in `MailboxStatistics` and reported (`ReportKind.MAILBOX_DROP`);
a discarded call fails its caller with `MailboxFull`.

Sending is a checkpoint, as with trio's and anyio's channels: `Mailbox.put` yields to the event
loop (and may raise on cancellation, before anything was queued) even when there is room, so a
producer looping on ``await cast(...)`` lets the consumer run.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

import anyio
import anyio.lowlevel

from . import _defaults
from ._exceptions import ActorExited, MailboxFull
from ._reports import ReportBus, ReportKind

T = TypeVar("T")


class Overflow(enum.Enum):
    """What a full mailbox does with a new message."""

    WAIT = "wait"
    FAIL = "fail"
    DROP_OLDEST = "drop_oldest"
    COALESCE = "coalesce"


_NO_KINDS: Final[Mapping[type, Overflow]] = {}


@dataclass(frozen=True, slots=True)
class MailboxPolicy:
    """Capacity and overflow behaviour of an actor's mailbox.

    Example: a broadcaster that keeps only the latest state per server but every log line::

        MailboxPolicy(
            capacity=10_000,
            overflow=Overflow.DROP_OLDEST,
            per_kind={StateChanged: Overflow.COALESCE},
            coalesce_key=lambda m: (m.kind, m.server_id),
        )

    Attributes:
        capacity: Most ordinary messages queued at once (at least 1).
        overflow: The policy for messages whose type is not in ``per_kind``.
        per_kind: Overflow policy by message type (exact type or a base class).
        coalesce_key: Key under which `Overflow.COALESCE` messages replace each other;
            a key of ``None`` means "do not coalesce this one".
    """

    capacity: int = _defaults.MAILBOX_CAPACITY
    overflow: Overflow = Overflow.WAIT
    per_kind: Mapping[type, Overflow] = field(default_factory=lambda: _NO_KINDS)
    coalesce_key: Callable[[Any], Hashable | None] | None = None

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("mailbox capacity must be at least 1")
        uses_coalesce = self.overflow is Overflow.COALESCE or any(
            policy is Overflow.COALESCE for policy in self.per_kind.values()
        )
        if uses_coalesce and self.coalesce_key is None:
            raise ValueError("Overflow.COALESCE needs a coalesce_key")

    def overflow_for(self, message: object) -> Overflow:
        """Return the overflow policy that applies to ``message``."""
        if self.per_kind:
            policy = self.per_kind.get(type(message))
            if policy is not None:
                return policy
            for kind, policy in self.per_kind.items():
                if isinstance(message, kind):
                    return policy
        return self.overflow


@dataclass(frozen=True, slots=True)
class MailboxStatistics:
    """A snapshot of a mailbox.

    Attributes:
        queued: Ordinary messages waiting.
        capacity: The bound on ``queued``.
        dropped: Messages discarded by drop-oldest (or by coalescing's fallback), including
            new droppable messages discarded because nothing queued could be.
        rejected: Messages refused with `MailboxFull`.
        coalesced: Messages replaced in place by a newer one with the same key.
        received: Ordinary messages accepted since the mailbox was created.
    """

    queued: int = 0
    capacity: int = 0
    dropped: int = 0
    rejected: int = 0
    coalesced: int = 0
    received: int = 0


class Reply:
    """The slot a call's reply goes to. Each call has its own, so a late reply cannot reach a
    later call: once the caller has given up (``abandoned``), resolving it is a no-op."""

    __slots__ = ("_done", "_error", "_value", "abandoned")

    def __init__(self) -> None:
        self._done = anyio.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self.abandoned = False

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def resolve(self, value: Any) -> None:
        if not self.abandoned and not self._done.is_set():
            self._value = value
            self._done.set()

    def fail(self, error: BaseException) -> None:
        if not self.abandoned and not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait(self) -> Any:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


class Envelope:
    """An ordinary message in a mailbox, with the reply slot of a call (or ``None``)."""

    __slots__ = ("droppable", "key", "message", "reply")

    def __init__(self, message: Any, reply: Reply | None = None) -> None:
        self.message = message
        self.reply = reply
        self.key: Hashable | None = None
        self.droppable = False  # set on enqueue: whether drop-oldest may discard it


class Mailbox(Generic[T]):
    """A bounded, single-consumer mailbox with a separate control lane.

    ``owner`` names the actor in reports. Control items (any object) bypass the bound.
    """

    def __init__(self, policy: MailboxPolicy, owner: str, reports: ReportBus | None = None) -> None:
        self.policy = policy
        self.owner = owner
        self._reports = reports
        self._queue: deque[Envelope] = deque()
        self._control: deque[object] = deque()
        self._index: dict[Hashable, Envelope] = {}
        self._getter: anyio.Event | None = None
        self._putters: deque[anyio.Event] = deque()
        self._low_water = policy.capacity // 2
        self._closed: BaseException | None = None
        self._dropped = 0
        self._rejected = 0
        self._coalesced = 0
        self._received = 0
        self._droppable = 0  # droppable envelopes in _queue

    @property
    def closed(self) -> bool:
        """Whether the incarnation reading this mailbox has ended (it refuses everything)."""
        return self._closed is not None

    # -- producers ------------------------------------------------------------------------

    def put_nowait(self, envelope: Envelope) -> None:
        """Enqueue without waiting, applying the overflow policy (WAIT behaves as FAIL)."""
        if self._closed is not None:
            raise self._closed
        overflow = self.policy.overflow_for(envelope.message)
        if overflow is Overflow.COALESCE and envelope.reply is None:
            key = self.policy.coalesce_key(envelope.message) if self.policy.coalesce_key else None
            if key is not None:
                queued = self._index.get(key)
                if queued is not None:
                    queued.message = envelope.message
                    self._coalesced += 1
                    return
                envelope.key = key
        droppable = overflow is Overflow.DROP_OLDEST or overflow is Overflow.COALESCE
        if len(self._queue) >= self.policy.capacity:
            if droppable:
                if not self._drop_oldest():
                    # Nothing queued may be dropped for it: the newcomer is the one lost.
                    envelope.key = None
                    self._dropped += 1
                    self._report("dropped_newest", envelope.message)
                    if envelope.reply is not None:
                        raise MailboxFull(
                            f"mailbox of {self.owner!r} is full ({self.policy.capacity}) "
                            "of messages that may not be dropped"
                        )
                    return
            else:
                self._rejected += 1
                self._report("rejected", envelope.message)
                raise MailboxFull(f"mailbox of {self.owner!r} is full ({self.policy.capacity})")
        envelope.droppable = droppable
        self._append(envelope)

    async def put(self, envelope: Envelope) -> None:
        """Enqueue, waiting for room when the policy is `Overflow.WAIT`.

        Always a checkpoint: it yields once before queueing, so a cancelled sender has queued
        nothing and a sender in a loop lets the consumer (and everyone else) run.
        """
        await anyio.lowlevel.checkpoint()
        if self.policy.overflow_for(envelope.message) is not Overflow.WAIT:
            self.put_nowait(envelope)
            return
        while len(self._queue) >= self.policy.capacity and self._closed is None:
            waiter = anyio.Event()
            self._putters.append(waiter)
            try:
                await waiter.wait()
            except BaseException:
                if waiter in self._putters:
                    self._putters.remove(waiter)
                elif waiter.is_set():
                    self._wake_putter()  # pass our wake-up on; we no longer want the room
                raise
        if self._closed is not None:
            raise self._closed
        self._append(envelope)

    def put_control(self, item: object) -> None:
        """Enqueue a control item; it is read before any ordinary message."""
        if self._closed is not None:
            return
        self._control.append(item)
        self._wake_getter()

    # -- the consumer ---------------------------------------------------------------------

    async def get(self) -> object:
        """Return the next control item if any, else the next `Envelope`; wait if empty."""
        while True:
            if self._control:
                await anyio.lowlevel.checkpoint()
                return self._control.popleft()
            if self._queue:
                # One checkpoint per message, as a memory object stream does: a busy actor must
                # not starve the tasks around it, and it stays cancellable.
                await anyio.lowlevel.checkpoint()
                if self._control:
                    continue
                if not self._queue:
                    continue
                envelope = self._queue.popleft()
                if envelope.key is not None:
                    del self._index[envelope.key]
                    envelope.key = None
                if envelope.droppable:
                    self._droppable -= 1
                # Wake a waiting sender only once the queue is half empty: senders then refill
                # in batches instead of ping-ponging with the consumer one message at a time.
                if self._putters and len(self._queue) <= self._low_water:
                    self._wake_putter()
                return envelope
            getter = self._getter = anyio.Event()
            try:
                await getter.wait()
            finally:
                self._getter = None

    def close(self, error: ActorExited) -> list[Envelope]:
        """Refuse further messages with ``error``; return what was still queued."""
        self._closed = error
        pending = list(self._queue)
        self._queue.clear()
        self._index.clear()
        self._droppable = 0
        self._control.clear()
        while self._putters:
            self._putters.popleft().set()
        return pending

    def queued_messages(self) -> tuple[object, ...]:
        """Return the ordinary messages waiting, oldest first (a snapshot)."""
        return tuple(envelope.message for envelope in self._queue)

    def statistics(self) -> MailboxStatistics:
        """Return a snapshot of the counters."""
        return MailboxStatistics(
            queued=len(self._queue),
            capacity=self.policy.capacity,
            dropped=self._dropped,
            rejected=self._rejected,
            coalesced=self._coalesced,
            received=self._received,
        )

    # -- internals ------------------------------------------------------------------------

    def _append(self, envelope: Envelope) -> None:
        self._queue.append(envelope)
        if envelope.key is not None:
            self._index[envelope.key] = envelope
        if envelope.droppable:
            self._droppable += 1
        self._received += 1
        self._wake_getter()

    def _drop_oldest(self) -> bool:
        """Discard the oldest droppable message; return ``False`` if none is queued."""
        if not self._droppable:
            return False
        if self._queue[0].droppable:  # the common case: one policy for the whole mailbox
            oldest = self._queue.popleft()
        else:
            oldest = next(e for e in self._queue if e.droppable)
            self._queue.remove(oldest)
        self._droppable -= 1
        if oldest.key is not None:
            del self._index[oldest.key]
            oldest.key = None
        self._dropped += 1
        if oldest.reply is not None:
            oldest.reply.fail(MailboxFull(f"call dropped from the full mailbox of {self.owner!r}"))
        self._report("dropped_oldest", oldest.message)
        return True

    def _report(self, what: str, message: object) -> None:
        if self._reports is not None:
            self._reports.emit(
                ReportKind.MAILBOX_DROP,
                self.owner,
                self.owner,
                what,
                message_type=type(message).__name__,
                dropped=self._dropped,
                rejected=self._rejected,
            )

    def _wake_getter(self) -> None:
        if self._getter is not None:
            self._getter.set()

    def _wake_putter(self) -> None:
        if self._putters:
            self._putters.popleft().set()
