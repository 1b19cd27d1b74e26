"""Mailbox overflow policies, per-kind policies, the control lane and statistics."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import (
    Actor,
    ActorExited,
    ExitKind,
    MailboxFull,
    MailboxPolicy,
    MailboxStatistics,
    Overflow,
    ReportKind,
    open_actor,
)
from actors.testing import Probe, ReportCapture
from tests.actors._support import bounded

pytestmark = pytest.mark.anyio


BLOCK = "block"


class Gated(Probe):
    """A probe that parks in `handle` on ``BLOCK`` until ``gate`` is set, so its mailbox fills."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = anyio.Event()
        self.entered = anyio.Event()
        self.stopped = anyio.Event()
        self.stop_kind: ExitKind | None = None

    async def handle(self, message: Any) -> Any:
        if message == BLOCK:
            self.entered.set()
            await self.gate.wait()
            return "unblocked"
        return await super().handle(message)

    async def on_stop(self, kind: ExitKind) -> None:
        self.stop_kind = kind
        self.stopped.set()


def gated(policy: MailboxPolicy) -> Gated:
    class _Gated(Gated):
        mailbox_policy = policy

    return _Gated()


async def block(actor: Gated, address: Any) -> None:
    """Park the actor in its handler: from here on, queued messages stay queued."""
    await address.cast(BLOCK)
    await actor.entered.wait()


class Tick:
    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"Tick({self.n})"


class FastTick(Tick):
    pass


def key(message: Any) -> Any:
    return message[0] if isinstance(message, tuple) else None


# -- policy validation (pure) -----------------------------------------------------------------


def test_policy_refuses_zero_capacity() -> None:
    with pytest.raises(ValueError, match="capacity"):
        MailboxPolicy(capacity=0)


@pytest.mark.parametrize(
    "kwargs",
    [{"overflow": Overflow.COALESCE}, {"per_kind": {Tick: Overflow.COALESCE}}],
)
def test_coalesce_needs_a_key(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="coalesce_key"):
        MailboxPolicy(**kwargs)


def test_overflow_for_exact_type_then_base_class_then_default() -> None:
    policy = MailboxPolicy(
        overflow=Overflow.FAIL,
        per_kind={Tick: Overflow.DROP_OLDEST, FastTick: Overflow.WAIT},
    )
    assert policy.overflow_for(FastTick(1)) is Overflow.WAIT
    assert policy.overflow_for(Tick(1)) is Overflow.DROP_OLDEST
    assert policy.overflow_for("text") is Overflow.FAIL
    inherited = MailboxPolicy(per_kind={Tick: Overflow.DROP_OLDEST})
    assert inherited.overflow_for(FastTick(1)) is Overflow.DROP_OLDEST
    assert inherited.overflow_for(3) is Overflow.WAIT


# -- WAIT -------------------------------------------------------------------------------------


@bounded
async def test_wait_blocks_the_sender_until_room_frees_then_proceeds() -> None:
    actor = gated(MailboxPolicy(capacity=2, overflow=Overflow.WAIT))
    sent = anyio.Event()
    async with open_actor(actor) as address, anyio.create_task_group() as tg:
        await block(actor, address)
        await address.cast("a")
        await address.cast("b")

        async def third() -> None:
            await address.cast("c")
            sent.set()

        tg.start_soon(third)
        await anyio.wait_all_tasks_blocked()
        assert not sent.is_set()
        assert address.statistics().queued == 2
        with pytest.raises(MailboxFull):
            address.cast_nowait("nowait")
        actor.gate.set()
        await sent.wait()
        await actor.wait_for_count(3)
    assert actor.log == ["a", "b", "c"]


@bounded
async def test_wait_also_applies_to_calls() -> None:
    actor = gated(MailboxPolicy(capacity=1, overflow=Overflow.WAIT))
    replies: list[Any] = []
    async with open_actor(actor) as address, anyio.create_task_group() as tg:
        await block(actor, address)
        await address.cast("a")

        async def ask() -> None:
            replies.append(await address.call("q", timeout=100))

        tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        assert replies == []
        assert address.statistics().queued == 1
        actor.gate.set()
    assert replies == ["q"]
    assert actor.log == ["a", "q"]


@bounded
async def test_a_cancelled_waiting_sender_does_not_take_the_room() -> None:
    actor = gated(MailboxPolicy(capacity=1, overflow=Overflow.WAIT))
    sent = anyio.Event()
    async with open_actor(actor) as address, anyio.create_task_group() as tg:
        await block(actor, address)
        await address.cast("a")
        scope = anyio.CancelScope()

        async def cancelled_sender() -> None:
            with scope:
                await address.cast("never")

        async def patient_sender() -> None:
            await address.cast("p")
            sent.set()

        tg.start_soon(cancelled_sender)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(patient_sender)
        await anyio.wait_all_tasks_blocked()
        scope.cancel()
        actor.gate.set()
        await sent.wait()
        await actor.wait_for_count(2)
    assert actor.log == ["a", "p"]


@bounded
async def test_a_sender_waiting_for_room_fails_when_the_actor_stops() -> None:
    actor = gated(MailboxPolicy(capacity=1, overflow=Overflow.WAIT))
    errors: list[BaseException] = []
    async with open_actor(actor) as address, anyio.create_task_group() as tg:
        await block(actor, address)
        await address.cast("a")

        async def sender() -> None:
            try:
                await address.cast("late")
            except ActorExited as error:
                errors.append(error)

        tg.start_soon(sender)
        await anyio.wait_all_tasks_blocked()
        actor.stop()
        actor.gate.set()
        await actor.stopped.wait()
    assert len(errors) == 1
    assert "late" not in actor.log


# -- FAIL -------------------------------------------------------------------------------------


@bounded
async def test_fail_raises_mailbox_full_counts_and_reports() -> None:
    capture = ReportCapture()
    actor = gated(MailboxPolicy(capacity=2, overflow=Overflow.FAIL))
    async with open_actor(actor, name="failer", reports=capture.bus) as address:
        await block(actor, address)
        await address.cast("a")
        address.cast_nowait("b")
        start = anyio.current_time()
        with pytest.raises(MailboxFull):
            await address.cast("c")
        with pytest.raises(MailboxFull):
            await address.call("d", timeout=10)
        assert anyio.current_time() == start  # refused at once, no waiting
        stats = address.statistics()
        assert (stats.queued, stats.rejected, stats.dropped) == (2, 2, 0)
        actor.gate.set()
        await actor.wait_for_count(2)
    assert actor.log == ["a", "b"]
    drops = capture.of_kind(ReportKind.MAILBOX_DROP)
    assert [r.reason for r in drops] == ["rejected", "rejected"]
    assert drops[0].offender == "failer"
    assert drops[0].context["message_type"] == "str"
    assert drops[1].context["rejected"] == 2


# -- DROP_OLDEST ------------------------------------------------------------------------------


@bounded
async def test_drop_oldest_discards_the_oldest_counts_and_reports() -> None:
    capture = ReportCapture()
    actor = gated(MailboxPolicy(capacity=2, overflow=Overflow.DROP_OLDEST))
    async with open_actor(actor, name="dropper", reports=capture.bus) as address:
        await block(actor, address)
        for message in ("a", "b", "c", "d"):
            await address.cast(message)
        stats = address.statistics()
        assert (stats.queued, stats.dropped, stats.rejected, stats.received) == (2, 2, 0, 5)
        actor.gate.set()
        await actor.wait_for_count(2)
    assert actor.log == ["c", "d"]
    drops = capture.of_kind(ReportKind.MAILBOX_DROP, offender="dropper")
    assert [r.reason for r in drops] == ["dropped_oldest", "dropped_oldest"]
    assert [r.context["dropped"] for r in drops] == [1, 2]


@bounded
async def test_a_dropped_call_fails_its_caller_with_mailbox_full() -> None:
    actor = gated(MailboxPolicy(capacity=1, overflow=Overflow.DROP_OLDEST))
    outcome: list[object] = []
    async with open_actor(actor) as address, anyio.create_task_group() as tg:
        await block(actor, address)

        async def ask() -> None:
            try:
                outcome.append(await address.call("question", timeout=100))
            except MailboxFull as error:
                outcome.append(error)

        tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        assert address.statistics().queued == 1
        start = anyio.current_time()
        await address.cast("newer")
        await anyio.wait_all_tasks_blocked()
        assert len(outcome) == 1
        assert isinstance(outcome[0], MailboxFull)
        assert anyio.current_time() == start
        actor.gate.set()
        await actor.wait_for_count(1)
    assert actor.log == ["newer"]


# -- COALESCE ---------------------------------------------------------------------------------


@bounded
async def test_coalesce_replaces_in_place_keeping_position() -> None:
    actor = gated(MailboxPolicy(capacity=10, overflow=Overflow.COALESCE, coalesce_key=key))
    async with open_actor(actor) as address:
        await block(actor, address)
        for message in (("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3), ("b", 2)):
            await address.cast(message)
        stats = address.statistics()
        assert (stats.queued, stats.coalesced, stats.dropped) == (3, 3, 0)
        actor.gate.set()
        await actor.wait_for_count(3)
    assert actor.log == [("a", 3), ("b", 2), ("c", 1)]


@bounded
async def test_coalesce_starts_afresh_once_the_queued_message_was_taken() -> None:
    actor = gated(MailboxPolicy(capacity=10, overflow=Overflow.COALESCE, coalesce_key=key))
    async with open_actor(actor) as address:
        await address.cast(("a", 1))
        await actor.wait_for_count(1)
        await block(actor, address)
        await address.cast(("a", 2))
        await address.cast(("a", 3))
        actor.gate.set()
        await actor.wait_for_count(2)
    assert actor.log == [("a", 1), ("a", 3)]


@bounded
async def test_calls_are_never_coalesced() -> None:
    actor = gated(MailboxPolicy(capacity=10, overflow=Overflow.COALESCE, coalesce_key=key))
    replies: list[Any] = []
    async with open_actor(actor) as address, anyio.create_task_group() as tg:
        await block(actor, address)

        async def ask(message: tuple[str, int]) -> None:
            replies.append(await address.call(message, timeout=100))

        await address.cast(("a", 0))
        tg.start_soon(ask, ("a", 1))
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(ask, ("a", 2))
        await anyio.wait_all_tasks_blocked()
        await address.cast(("a", 9))  # coalesces with the queued cast only
        assert address.statistics().queued == 3
        assert address.statistics().coalesced == 1
        actor.gate.set()
    assert sorted(replies) == [("a", 1), ("a", 2)]
    assert actor.log == [("a", 9), ("a", 1), ("a", 2)]


@bounded
async def test_coalesce_falls_back_to_drop_oldest_for_new_keys_and_none_keys() -> None:
    capture = ReportCapture()
    actor = gated(MailboxPolicy(capacity=2, overflow=Overflow.COALESCE, coalesce_key=key))
    async with open_actor(actor, reports=capture.bus) as address:
        await block(actor, address)
        await address.cast(("a", 1))
        await address.cast(("b", 1))
        await address.cast(("c", 1))  # new key, full: ("a", 1) is dropped
        await address.cast(("a", 2))  # "a" is gone from the index: appended, drops ("b", 1)
        await address.cast("no-key")  # key None: never coalesced, drops ("c", 1)
        stats = address.statistics()
        assert (stats.queued, stats.dropped, stats.coalesced) == (2, 3, 0)
        actor.gate.set()
        await actor.wait_for_count(2)
    assert actor.log == [("a", 2), "no-key"]
    assert len(capture.of_kind(ReportKind.MAILBOX_DROP)) == 3


# -- per-kind policies ------------------------------------------------------------------------


@bounded
async def test_per_kind_policies_apply_by_message_type() -> None:
    policy = MailboxPolicy(
        capacity=1,
        overflow=Overflow.FAIL,
        per_kind={Tick: Overflow.DROP_OLDEST},
    )
    actor = gated(policy)
    async with open_actor(actor) as address:
        await block(actor, address)
        await address.cast(Tick(1))
        await address.cast(FastTick(2))  # a Tick by inheritance: drops Tick(1)
        with pytest.raises(MailboxFull):
            await address.cast("text")  # the default policy: fail
        stats = address.statistics()
        assert (stats.dropped, stats.rejected) == (1, 1)
        actor.gate.set()
        await actor.wait_for_count(1)
    assert [type(m).__name__ for m in actor.log] == ["FastTick"]


@bounded
async def test_per_kind_coalesce_with_default_wait() -> None:
    policy = MailboxPolicy(
        capacity=3,
        per_kind={tuple: Overflow.COALESCE},
        coalesce_key=key,
    )
    actor = gated(policy)
    async with open_actor(actor) as address:
        await block(actor, address)
        await address.cast(("k", 1))
        await address.cast("x")
        await address.cast(("k", 2))
        assert address.statistics().coalesced == 1
        await address.cast("y")
        with pytest.raises(MailboxFull):
            address.cast_nowait("z")  # WAIT behaves as FAIL without waiting
        actor.gate.set()
        await actor.wait_for_count(3)
    assert actor.log == [("k", 2), "x", "y"]


# -- only droppable kinds are dropped ---------------------------------------------------------


def tick_key(message: Any) -> Any:
    return ("tick", message.n) if isinstance(message, Tick) else None


@pytest.mark.parametrize("protected", [Overflow.WAIT, Overflow.FAIL])
@pytest.mark.parametrize("dropper", [Overflow.DROP_OLDEST, Overflow.COALESCE])
@bounded
async def test_a_droppable_kind_evicts_only_droppable_messages(
    protected: Overflow, dropper: Overflow
) -> None:
    capture = ReportCapture()
    policy = MailboxPolicy(
        capacity=3, overflow=protected, per_kind={Tick: dropper}, coalesce_key=tick_key
    )
    actor = gated(policy)
    async with open_actor(actor, reports=capture.bus) as address:
        await block(actor, address)
        await address.cast("kept")  # the oldest, but sent under a no-loss policy
        await address.cast(Tick(1))
        await address.cast(Tick(2))
        await address.cast(Tick(3))  # full: Tick(1) goes, from behind "kept"
        await address.cast(Tick(4))  # full: Tick(2) goes
        stats = address.statistics()
        assert (stats.queued, stats.dropped, stats.rejected) == (3, 2, 0)
        actor.gate.set()
        await actor.wait_for_count(3)
    assert [repr(m) for m in actor.log] == ["'kept'", "Tick(3)", "Tick(4)"]
    drops = capture.of_kind(ReportKind.MAILBOX_DROP)
    assert [(r.reason, r.context["message_type"]) for r in drops] == [
        ("dropped_oldest", "Tick"),
        ("dropped_oldest", "Tick"),
    ]


@bounded
async def test_a_mailbox_full_of_undroppable_messages_drops_the_droppable_newcomer() -> None:
    capture = ReportCapture()
    policy = MailboxPolicy(capacity=2, per_kind={Tick: Overflow.DROP_OLDEST})  # default: WAIT
    actor = gated(policy)
    async with open_actor(actor, name="mixed", reports=capture.bus) as address:
        await block(actor, address)
        await address.cast("must-not-be-lost-1")
        await address.cast("must-not-be-lost-2")
        start = anyio.current_time()
        await address.cast(Tick(1))  # nothing may make room for it: it is the one dropped
        with pytest.raises(MailboxFull, match="may not be dropped"):
            await address.call(Tick(2), timeout=100)  # a call is refused, not lost silently
        assert anyio.current_time() == start  # neither waited
        stats = address.statistics()
        assert (stats.queued, stats.dropped, stats.received) == (2, 2, 3)
        actor.gate.set()
        await actor.wait_for_count(2)
    assert actor.log == ["must-not-be-lost-1", "must-not-be-lost-2"]
    drops = capture.of_kind(ReportKind.MAILBOX_DROP, offender="mixed")
    assert [(r.reason, r.context["message_type"]) for r in drops] == [
        ("dropped_newest", "Tick"),
        ("dropped_newest", "Tick"),
    ]


@bounded
async def test_a_coalescing_kind_dropped_from_the_middle_leaves_its_key_free() -> None:
    policy = MailboxPolicy(
        capacity=3, overflow=Overflow.FAIL, per_kind={tuple: Overflow.COALESCE}, coalesce_key=key
    )
    actor = gated(policy)
    async with open_actor(actor) as address:
        await block(actor, address)
        await address.cast("a")
        await address.cast(("k", 1))
        await address.cast(("j", 1))
        await address.cast(("m", 1))  # full: ("k", 1) is dropped from behind "a"
        await address.cast(("k", 2))  # "k" is no longer queued: appended, drops ("j", 1)
        await address.cast(("m", 2))  # coalesces with the queued ("m", 1)
        stats = address.statistics()
        assert (stats.queued, stats.dropped, stats.coalesced) == (3, 2, 1)
        actor.gate.set()
        await actor.wait_for_count(3)
    assert actor.log == ["a", ("m", 2), ("k", 2)]


# -- sending is a checkpoint ------------------------------------------------------------------


@bounded
async def test_a_sending_loop_lets_the_actor_run() -> None:
    # Every `await cast(...)` yields, even with room: a producer cannot starve its consumer
    # and make a drop-oldest mailbox discard nearly everything.
    actor = gated(MailboxPolicy(capacity=10, overflow=Overflow.DROP_OLDEST))
    async with open_actor(actor) as address:
        for n in range(10_000):
            await address.cast(n)
        stats = address.statistics()
        handled = len(actor.log)
    assert stats.dropped == 0
    assert handled + stats.queued == 10_000
    assert actor.log == list(range(handled))


@pytest.mark.parametrize("overflow", list(Overflow))
@bounded
async def test_a_cast_in_a_cancelled_scope_raises_and_sends_nothing(overflow: Overflow) -> None:
    policy = MailboxPolicy(capacity=5, overflow=overflow, coalesce_key=key)
    actor = gated(policy)
    async with open_actor(actor) as address:
        await block(actor, address)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await address.cast("never")
            pytest.fail("the cast must raise the cancellation")
        assert scope.cancelled_caught
        assert address.statistics().queued == 0
        actor.gate.set()
    assert actor.log == []


# -- the control lane -------------------------------------------------------------------------


@bounded
async def test_control_items_are_read_before_ordinary_messages() -> None:
    actor = gated(MailboxPolicy(capacity=5))
    async with open_actor(actor) as address:
        await block(actor, address)
        await address.cast("a")
        await address.cast("b")
        actor.post_control("ctl-1")
        actor.post_control("ctl-2")
        actor.gate.set()
        await actor.wait_for_count(4)
    assert actor.log == ["ctl-1", "ctl-2", "a", "b"]


@bounded
async def test_control_lane_works_when_the_ordinary_lane_is_full() -> None:
    actor = gated(MailboxPolicy(capacity=1, overflow=Overflow.FAIL))
    async with open_actor(actor) as address:
        await block(actor, address)
        await address.cast("a")
        with pytest.raises(MailboxFull):
            await address.cast("b")
        for n in range(5):
            actor.post_control(f"ctl-{n}")  # unbounded: never refused
        actor.gate.set()
        await actor.wait_for_count(6)
    assert actor.log == [f"ctl-{n}" for n in range(5)] + ["a"]


@bounded
async def test_a_full_mailbox_can_always_be_stopped() -> None:
    actor = gated(MailboxPolicy(capacity=1, overflow=Overflow.FAIL))
    outcome: list[object] = []
    async with open_actor(actor) as address, anyio.create_task_group() as tg:
        await block(actor, address)

        async def ask() -> None:
            try:
                outcome.append(await address.call("queued-call", timeout=100))
            except ActorExited as error:
                outcome.append(error)

        tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(MailboxFull):
            await address.cast("refused")
        actor.stop()
        actor.gate.set()
        await actor.stopped.wait()
        assert not address.alive
        with pytest.raises(ActorExited):
            await address.cast("after")
    assert actor.stop_kind is ExitKind.NORMAL
    assert actor.log == []  # the stop was read before the queued call
    assert len(outcome) == 1
    assert isinstance(outcome[0], ActorExited)


@bounded
async def test_open_actor_exit_stops_an_actor_with_a_full_mailbox() -> None:
    actor = gated(MailboxPolicy(capacity=1, overflow=Overflow.FAIL))
    async with open_actor(actor) as address:
        await address.cast("a")
        await actor.wait_for_count(1)
        await block(actor, address)
        await address.cast("b")
        actor.gate.set()
        # Leaving the block posts a stop on the control lane: it is read before "b".
    assert actor.stop_kind is ExitKind.SHUTDOWN
    assert actor.log == ["a"]
    assert address.closed


# -- statistics -------------------------------------------------------------------------------


@bounded
async def test_statistics_snapshot_and_zeros_while_down() -> None:
    actor = gated(MailboxPolicy(capacity=3, overflow=Overflow.DROP_OLDEST))
    async with open_actor(actor) as address:
        assert address.statistics() == MailboxStatistics(capacity=3)
        await block(actor, address)
        for n in range(5):
            await address.cast(n)
        assert address.statistics() == MailboxStatistics(
            queued=3, capacity=3, dropped=2, rejected=0, coalesced=0, received=6
        )
        actor.gate.set()
        await actor.wait_for_count(3)
        assert address.statistics().queued == 0
    assert address.statistics() == MailboxStatistics()


class Plain(Actor[int]):
    async def handle(self, message: int) -> int:
        return message * 2


@bounded
async def test_default_policy_is_a_thousand_messages_with_wait() -> None:
    assert Plain.mailbox_policy == MailboxPolicy()
    async with open_actor(Plain()) as address:
        stats = address.statistics()
        assert stats.capacity == 1000
        assert await address.call(21) == 42
