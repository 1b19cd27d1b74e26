"""Supervisors in the spirit of OTP's supervisor suite: restart types, strategies, intensity,
escalation, backoff, shutdown, stable addresses, the registry and dynamic supervisors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from actors import (
    ActorError,
    ActorExited,
    ActorKilled,
    Address,
    Backoff,
    ChildSpec,
    DynamicSupervisor,
    ExitKind,
    NameTaken,
    Registry,
    Report,
    ReportKind,
    Restart,
    RestartIntensityExceeded,
    StartFailed,
    Strategy,
    Supervisor,
    SupervisorRef,
    TooManyChildren,
    UnknownChild,
    open_actor,
    open_supervisor,
)
from actors._spec import should_restart
from actors._strategy import affected_children
from actors._supervisor import TIMER_TASK
from actors.testing import Crash, Probe, ReportCapture, SequenceRandom
from tests.actors._support import bounded

pytestmark = pytest.mark.anyio


NOW = Backoff.none()


class Book:
    """Shared record of every incarnation of the children built from its specs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.starts: Counter[str] = Counter()
        self.fail_next: Counter[str] = Counter()
        self.stop_kinds: dict[str, ExitKind] = {}
        self.hanging = anyio.Event()

    def spec(self, child_id: str, **options: Any) -> ChildSpec:
        return ChildSpec(child_id, start=lambda: Worker(child_id, self), **options)


class Worker(Probe):
    """A probe that stops itself on ``"stop"``, hangs on ``"hang"``, and records its life."""

    def __init__(self, child_id: str, book: Book, *, hang_on_stop: bool = False) -> None:
        failure = None
        if book.fail_next[child_id] > 0:
            book.fail_next[child_id] -= 1
            failure = RuntimeError(f"{child_id} cannot start")
        super().__init__(fail_start=failure)
        self.child_id = child_id
        self.book = book
        self.hang_on_stop = hang_on_stop

    async def on_start(self) -> None:
        await super().on_start()
        self.book.starts[self.child_id] += 1
        self.book.events.append(("start", self.child_id))

    async def handle(self, message: Any) -> Any:
        if message == "stop":
            self.stop()
            return None
        if message == "hang":
            self.book.hanging.set()
            await anyio.sleep_forever()
        return await super().handle(message)

    async def on_stop(self, kind: ExitKind) -> None:
        self.book.events.append(("stop", self.child_id))
        self.book.stop_kinds[self.child_id] = kind
        if self.hang_on_stop:
            await anyio.sleep_forever()


async def address_of(sup: SupervisorRef, child_id: str) -> Any:
    for info in await sup.which_children():
        if info.id == child_id:
            return info.address
    raise AssertionError(f"no child {child_id!r}")


async def states(sup: SupervisorRef) -> dict[str, str]:
    return {info.id: info.state for info in await sup.which_children()}


def offenders(reports: list[Report]) -> list[str]:
    return [r.offender for r in reports]


# -- restart type x exit kind x strategy x sibling restart type -------------------------------

#: How b's incarnation ends: it stops itself (`Actor.stop`), `terminate_child` stops it, or it
#: raises. An actor cannot end itself with `ExitKind.SHUTDOWN`: that kind only ever comes from
#: its supervisor's stop, which never restarts (the pure `should_restart` table, which also has
#: OTP's self-``shutdown`` rows, is tested in test_spec.py).
EXITS = ["normal", "terminated", "error"]


@pytest.mark.parametrize("sibling", list(Restart), ids=lambda r: f"siblings-{r.value}")
@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("restart", list(Restart))
@pytest.mark.parametrize("exit_kind", EXITS)
@bounded
async def test_restart_type_by_exit_kind_by_strategy(
    strategy: Strategy, restart: Restart, exit_kind: str, sibling: Restart
) -> None:
    book = Book()
    capture = ReportCapture()
    order = ["a", "b", "c"]
    specs = [
        book.spec("a", restart=sibling),
        book.spec("b", restart=restart),
        book.spec("c", restart=sibling),
    ]
    async with open_supervisor(
        specs, strategy=strategy, backoff=NOW, intensity=10, reports=capture.bus
    ) as sup:
        address = await address_of(sup, "b")
        if exit_kind == "normal":
            await address.cast("stop")
        elif exit_kind == "terminated":
            await sup.terminate_child("b")
        else:
            await address.cast(Crash())
        kind = ExitKind.NORMAL if exit_kind == "normal" else ExitKind.ERROR
        # An explicit terminate_child never restarts, whatever the restart type.
        restarted = exit_kind != "terminated" and should_restart(restart, kind)
        group = affected_children(strategy, order, "b") if restarted else ()
        # OTP: running siblings in the group are stopped and restarted with b, permanent and
        # transient alike (the supervisor stopped them); temporary ones end and are removed.
        removed = [c for c in group if c != "b" and sibling is Restart.TEMPORARY]
        expected = [c for c in group if c not in removed]
        if restarted:
            await capture.wait_for(ReportKind.RESTART, count=len(expected))
        elif exit_kind == "error":
            await capture.wait_for(ReportKind.CRASH, offender="b")
        await anyio.wait_all_tasks_blocked()

        assert book.starts == Counter({c: 1 + (c in expected) for c in order})
        assert offenders(capture.of_kind(ReportKind.RESTART)) == expected
        assert offenders(capture.of_kind(ReportKind.CRASH)) == (
            ["b"] if exit_kind == "error" else []
        )
        current = await states(sup)
        present = [c for c in order if c not in removed]
        if restart is Restart.TEMPORARY:
            present.remove("b")  # a temporary child is removed however it ends
        b_state = "running" if restarted else "stopped"
        assert current == {c: b_state if c == "b" else "running" for c in present}
        for gone in removed:
            assert book.stop_kinds[gone] is ExitKind.SHUTDOWN
            assert (await address_of_or_none(sup, gone)) is None
        if restarted:
            assert await address.call("ping") == "ping"  # the same address reaches the new one
        else:
            with pytest.raises(ActorExited):
                await address.call("ping")


async def address_of_or_none(sup: SupervisorRef, child_id: str) -> Any:
    for info in await sup.which_children():
        if info.id == child_id:
            return info.address
    return None


@pytest.mark.parametrize("strategy", [Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE])
@pytest.mark.parametrize("how", ["terminated", "transient-ended-normally"])
@bounded
async def test_a_stopped_sibling_stays_stopped_through_a_group_restart(
    strategy: Strategy, how: str
) -> None:
    # OTP would start it again with the group; here an operator's stop (or a transient
    # child's normal end) stands until someone starts it.
    book = Book()
    capture = ReportCapture()
    restart = Restart.TRANSIENT if how.startswith("transient") else Restart.PERMANENT
    specs = [book.spec("a"), book.spec("b"), book.spec("c", restart=restart)]
    async with open_supervisor(
        specs, strategy=strategy, backoff=NOW, intensity=10, reports=capture.bus
    ) as sup:
        if how == "terminated":
            await sup.terminate_child("c")
        else:
            await (await address_of(sup, "c")).cast("stop")
            await anyio.wait_all_tasks_blocked()
        assert (await states(sup))["c"] == "stopped"
        crashed = "a" if strategy is Strategy.ONE_FOR_ALL else "b"
        await (await address_of(sup, crashed)).cast(Crash())
        restarted = ["a", "b"] if strategy is Strategy.ONE_FOR_ALL else ["b"]
        await capture.wait_for(ReportKind.RESTART, count=len(restarted))
        await anyio.wait_all_tasks_blocked()
        assert offenders(capture.of_kind(ReportKind.RESTART)) == restarted
        assert await states(sup) == {"a": "running", "b": "running", "c": "stopped"}
        assert book.starts["c"] == 1
        await sup.restart_child("c")  # it can still be started on purpose
        assert book.starts["c"] == 2


# -- order ------------------------------------------------------------------------------------


@bounded
async def test_children_start_in_order_and_stop_in_reverse_order() -> None:
    book = Book()
    specs = [book.spec(c) for c in "abcd"]
    async with open_supervisor(specs):
        assert book.events == [("start", c) for c in "abcd"]
        book.events.clear()
    assert book.events == [("stop", c) for c in "dcba"]
    assert set(book.stop_kinds.values()) == {ExitKind.SHUTDOWN}


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (Strategy.ONE_FOR_ONE, [("start", "b")]),
        (
            Strategy.ONE_FOR_ALL,
            [("stop", "d"), ("stop", "c"), ("stop", "a"), *[("start", c) for c in "abcd"]],
        ),
        (Strategy.REST_FOR_ONE, [("stop", "d"), ("stop", "c"), *[("start", c) for c in "bcd"]]),
    ],
)
@bounded
async def test_group_restart_stops_in_reverse_and_starts_in_order(
    strategy: Strategy, expected: list[tuple[str, str]]
) -> None:
    book = Book()
    capture = ReportCapture()
    specs = [book.spec(c) for c in "abcd"]
    async with open_supervisor(specs, strategy=strategy, backoff=NOW, reports=capture.bus) as sup:
        book.events.clear()
        await (await address_of(sup, "b")).cast(Crash())
        restarts = sum(1 for event, _ in expected if event == "start")
        await capture.wait_for(ReportKind.RESTART, count=restarts)
        await anyio.wait_all_tasks_blocked()
        assert book.events == expected


# -- intensity and escalation -----------------------------------------------------------------


@bounded
async def test_nested_supervisor_gives_up_and_the_parent_restarts_it() -> None:
    book = Book()
    capture = ReportCapture()

    def nested() -> Supervisor:
        return Supervisor([book.spec("w")], intensity=1, period=10.0, backoff=NOW)

    specs = [ChildSpec("nested", start=nested), book.spec("sibling")]
    async with open_supervisor(specs, backoff=NOW, intensity=5, reports=capture.bus) as root:
        nested_ref = SupervisorRef(await address_of(root, "nested"))
        worker = await address_of(nested_ref, "w")
        await worker.cast(Crash())
        await capture.wait_for(ReportKind.RESTART, offender="w")
        await worker.cast(Crash())  # the second restart within 10 s: over intensity 1

        [give_up] = await capture.wait_for(ReportKind.GIVE_UP)
        assert give_up.supervisor == "root/nested"
        assert give_up.offender == "w"
        assert isinstance(give_up.reason, RestartIntensityExceeded)
        [crash] = await capture.wait_for(ReportKind.CRASH, offender="nested")
        assert crash.supervisor == "root"
        assert isinstance(crash.reason, RestartIntensityExceeded)
        [escalation] = await capture.wait_for(ReportKind.ESCALATION, offender="nested")
        assert escalation.reason is crash.reason
        await capture.wait_for(ReportKind.RESTART, offender="nested")

        assert book.starts == Counter({"w": 3, "sibling": 1})  # 1 + restart + new subtree
        assert await states(root) == {"nested": "running", "sibling": "running"}
        [info] = [i for i in await root.which_children() if i.id == "nested"]
        assert info.supervisor
        assert info.restarts == 1
        assert worker.closed  # the old subtree's addresses ended with it
        fresh = await address_of(SupervisorRef(info.address), "w")
        assert fresh is not worker
        assert await fresh.call("hi") == "hi"
    kinds = [r.kind for r in capture.reports if r.offender in {"w", "nested"}]
    assert kinds.index(ReportKind.GIVE_UP) < kinds.index(ReportKind.ESCALATION)


@bounded
async def test_root_supervisor_giving_up_raises_out_of_open_supervisor() -> None:
    book = Book()
    capture = ReportCapture()
    specs = [book.spec("a"), book.spec("w")]
    addresses: list[Any] = []

    async def run() -> None:
        async with open_supervisor(
            specs, intensity=2, period=60.0, backoff=NOW, reports=capture.bus
        ) as sup:
            addresses.append(await address_of(sup, "w"))
            for n in range(3):
                await addresses[0].cast(Crash())
                if n < 2:
                    await capture.wait_for(ReportKind.RESTART, offender="w", count=n + 1)
            await anyio.sleep_forever()

    with pytest.raises(RestartIntensityExceeded):
        await run()
    [worker] = addresses
    assert len(capture.of_kind(ReportKind.GIVE_UP)) == 1
    assert len(capture.of_kind(ReportKind.CRASH, offender="w")) == 3
    assert book.stop_kinds == {"a": ExitKind.SHUTDOWN}  # the sibling was stopped cleanly
    assert worker.closed


@bounded
async def test_crashes_spread_wider_than_the_period_never_give_up() -> None:
    book = Book()
    capture = ReportCapture()
    async with open_supervisor(
        [book.spec("w")], intensity=1, period=10.0, backoff=NOW, reports=capture.bus
    ) as sup:
        worker = await address_of(sup, "w")
        for n in range(5):
            await worker.cast(Crash())
            await capture.wait_for(ReportKind.RESTART, count=n + 1)
            await anyio.sleep(10.0)
        stats = await sup.statistics()
    assert capture.of_kind(ReportKind.GIVE_UP) == []
    assert book.starts["w"] == 6
    assert stats.total_restarts == 5
    assert stats.restarts_in_window == 0


@bounded
async def test_a_child_whose_start_keeps_failing_until_the_supervisor_gives_up() -> None:
    book = Book()
    capture = ReportCapture()
    backoff = Backoff(base=1.0, factor=2.0, jitter=0.0)
    seen: list[dict[str, str]] = []
    t0 = anyio.current_time()

    async def run() -> None:
        async with open_supervisor(
            [book.spec("w"), book.spec("ok")],
            intensity=3,
            period=100.0,
            backoff=backoff,
            reports=capture.bus,
        ) as sup:
            book.fail_next["w"] = 100
            await (await address_of(sup, "w")).cast(Crash())
            for n in range(1, 4):
                await capture.wait_for(ReportKind.RESTART_SCHEDULED, count=n)
                seen.append(await states(sup))  # the supervisor answers between attempts
            await anyio.sleep_forever()

    with pytest.raises(RestartIntensityExceeded):
        await run()
    assert seen == [{"w": "restarting", "ok": "running"}] * 3
    start_crashes = [
        r for r in capture.of_kind(ReportKind.CRASH) if r.context["context"] == "start"
    ]
    assert [r.time - t0 for r in start_crashes] == pytest.approx([1.0, 3.0, 7.0])
    delays = [r.context["delay"] for r in capture.of_kind(ReportKind.RESTART_SCHEDULED)]
    assert delays == [1.0, 2.0, 4.0]
    assert len(capture.of_kind(ReportKind.GIVE_UP)) == 1
    assert book.starts["w"] == 1


@bounded
async def test_a_child_whose_start_keeps_failing_can_be_shut_down_cleanly() -> None:
    book = Book()
    capture = ReportCapture()
    backoff = Backoff(base=5.0, factor=1.0, jitter=0.0)
    async with open_supervisor(
        [book.spec("w")], intensity=1000, period=1.0, backoff=backoff, reports=capture.bus
    ) as sup:
        book.fail_next["w"] = 10**6
        await (await address_of(sup, "w")).cast(Crash())
        await capture.wait_for(ReportKind.CRASH, count=4)
        assert await states(sup) == {"w": "restarting"}
        left = anyio.current_time()
    assert anyio.current_time() == left  # no waiting for the pending attempt
    attempts = len(capture.of_kind(ReportKind.CRASH))
    await anyio.sleep(100.0)
    assert len(capture.of_kind(ReportKind.CRASH)) == attempts
    assert capture.of_kind(ReportKind.GIVE_UP) == []


@bounded
async def test_a_sibling_failing_to_start_during_a_group_restart() -> None:
    book = Book()
    capture = ReportCapture()
    specs = [book.spec(c) for c in "abc"]
    async with open_supervisor(
        specs, strategy=Strategy.ONE_FOR_ALL, backoff=NOW, intensity=5, reports=capture.bus
    ) as sup:
        book.fail_next["b"] = 1
        await (await address_of(sup, "a")).cast(Crash())
        await capture.wait_for(ReportKind.RESTART, offender="c")
        await anyio.wait_all_tasks_blocked()
        assert await states(sup) == dict.fromkeys("abc", "running")
        for child in "abc":
            assert await (await address_of(sup, child)).call(child) == child
    crashes = capture.of_kind(ReportKind.CRASH)
    assert [(r.offender, r.context["context"]) for r in crashes] == [
        ("a", "running"),
        ("b", "start"),
    ]
    # a restarted, b failed: the whole group went again.
    assert offenders(capture.of_kind(ReportKind.RESTART)) == ["a", "a", "b", "c"]
    assert book.starts == Counter({"a": 3, "b": 2, "c": 2})


# -- backoff ----------------------------------------------------------------------------------


@bounded
async def test_backoff_delays_observed_in_virtual_time() -> None:
    capture = ReportCapture()
    backoff = Backoff(base=2.0, factor=3.0, cap=100.0, jitter=0.0, reset_after=1000.0)
    async with open_supervisor(
        [ChildSpec("w", start=Probe)],
        intensity=10,
        period=1000.0,
        backoff=backoff,
        reports=capture.bus,
    ) as sup:
        worker = await address_of(sup, "w")
        gaps = []
        for n in range(4):
            crashed = anyio.current_time()
            await worker.cast(Crash())
            [*_, restart] = await capture.wait_for(ReportKind.RESTART, count=n + 1)
            gaps.append(restart.time - crashed)
    assert gaps == pytest.approx([2.0, 6.0, 18.0, 54.0])
    attempts = [r.context["attempt"] for r in capture.of_kind(ReportKind.RESTART)]
    assert attempts == [0, 1, 2, 3]


@bounded
async def test_backoff_jitter_comes_from_the_injected_random() -> None:
    capture = ReportCapture()
    backoff = Backoff(base=4.0, jitter=0.5, reset_after=1000.0)
    async with open_supervisor(
        [ChildSpec("w", start=Probe)],
        backoff=backoff,
        random=SequenceRandom(0.5, 0.25),
        reports=capture.bus,
        period=1.0,
    ) as sup:
        worker = await address_of(sup, "w")
        for n in range(2):
            await worker.cast(Crash())
            await capture.wait_for(ReportKind.RESTART, count=n + 1)
    delays = [r.context["delay"] for r in capture.of_kind(ReportKind.RESTART_SCHEDULED)]
    assert delays == pytest.approx([4.0 * 1.25, 8.0 * 1.125])


@bounded
async def test_backoff_resets_after_a_stable_period() -> None:
    capture = ReportCapture()
    backoff = Backoff(base=1.0, factor=2.0, jitter=0.0, reset_after=30.0)
    async with open_supervisor(
        [ChildSpec("w", start=Probe)], backoff=backoff, period=1.0, reports=capture.bus
    ) as sup:
        worker = await address_of(sup, "w")
        await worker.cast(Crash())
        await capture.wait_for(ReportKind.RESTART, count=1)
        await worker.cast(Crash())
        await capture.wait_for(ReportKind.RESTART, count=2)
        await anyio.sleep(30.0)  # stable for reset_after
        await worker.cast(Crash())
        await capture.wait_for(ReportKind.RESTART, count=3)
    delays = [r.context["delay"] for r in capture.of_kind(ReportKind.RESTART_SCHEDULED)]
    assert delays == [1.0, 2.0, 1.0]


@bounded
async def test_terminate_child_during_backoff_cancels_the_restart() -> None:
    book = Book()
    capture = ReportCapture()
    backoff = Backoff(base=10.0, jitter=0.0)
    async with open_supervisor([book.spec("w")], backoff=backoff, reports=capture.bus) as sup:
        worker = await address_of(sup, "w")
        await worker.cast(Crash())
        await capture.wait_for(ReportKind.RESTART_SCHEDULED)
        await sup.terminate_child("w")
        await anyio.sleep(100.0)  # well past the delay
        assert capture.of_kind(ReportKind.RESTART) == []
        assert book.starts["w"] == 1
        assert await states(sup) == {"w": "stopped"}
        with pytest.raises(ActorExited):
            await worker.call("x")
        # An explicit restart_child still works afterwards, on the same address.
        assert await sup.restart_child("w") is worker
        assert await worker.call("x") == "x"
        assert book.starts["w"] == 2


@bounded
async def test_supervisor_shutdown_during_backoff_restarts_nothing() -> None:
    book = Book()
    capture = ReportCapture()
    backoff = Backoff(base=10.0, jitter=0.0)
    specs = [book.spec("w"), book.spec("other")]
    async with open_supervisor(specs, backoff=backoff, reports=capture.bus) as sup:
        worker = await address_of(sup, "w")
        await worker.cast(Crash())
        await capture.wait_for(ReportKind.RESTART_SCHEDULED)
        left = anyio.current_time()
    assert anyio.current_time() == left
    await anyio.sleep(100.0)
    assert capture.of_kind(ReportKind.RESTART) == []
    assert book.starts == Counter({"w": 1, "other": 1})
    assert book.stop_kinds == {"other": ExitKind.SHUTDOWN}
    assert worker.closed


# -- explicit stops against pending restarts, and errors while stopping ---------------------


class GatedStop(Probe):
    """A probe whose `on_stop` waits for ``gate``: stopping it keeps its supervisor busy."""

    def __init__(self, gate: anyio.Event) -> None:
        super().__init__()
        self.gate = gate

    async def on_stop(self, kind: ExitKind) -> None:
        await self.gate.wait()


def timer_tasks() -> int:
    return sum(1 for task in anyio.get_running_tasks() if (task.name or "").startswith(TIMER_TASK))


@pytest.mark.parametrize("due", ["after-backoff", "at-once"])
@bounded
async def test_a_stop_requested_before_the_restart_falls_due_wins(due: str) -> None:
    # The supervisor is busy stopping "slow" when the operator asks it to stop "w", which is
    # waiting for its restart (after-backoff: the timer fires meanwhile; at-once: "w" crashes
    # after the request, with no backoff). The stop was asked first: "w" must not start again
    # (for a game server, that start is a process spawn).
    book = Book()
    capture = ReportCapture()
    gate = anyio.Event()
    backoff = Backoff(base=10.0, jitter=0.0) if due == "after-backoff" else NOW
    specs = [ChildSpec("slow", start=lambda: GatedStop(gate), shutdown=1000.0), book.spec("w")]
    async with open_supervisor(specs, backoff=backoff, reports=capture.bus) as sup:
        worker = await address_of(sup, "w")
        if due == "after-backoff":
            await worker.cast(Crash())
            await capture.wait_for(ReportKind.RESTART_SCHEDULED)
        stopped = anyio.Event()

        async def operator_stops_w() -> None:
            await sup.terminate_child("w")
            stopped.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.terminate_child, "slow")
            await anyio.wait_all_tasks_blocked()  # the supervisor waits for slow's on_stop
            tg.start_soon(operator_stops_w)
            await anyio.wait_all_tasks_blocked()  # the request waits in the mailbox
            if due == "after-backoff":
                await anyio.sleep(20.0)  # the restart falls due while the supervisor is busy
            else:
                await worker.cast(Crash())
                await anyio.wait_all_tasks_blocked()
            assert not stopped.is_set()
            gate.set()
        await capture.wait_for(ReportKind.CRASH, offender="w")
        assert book.starts["w"] == 1
        assert capture.of_kind(ReportKind.RESTART) == []
        assert await states(sup) == {"slow": "stopped", "w": "stopped"}
        assert (await sup.statistics()).pending_restarts == 0
        with pytest.raises(ActorExited) as caught:
            await worker.call("x")
        assert caught.value.reason == "stopped"
        assert await sup.restart_child("w") is worker  # an explicit start still works
        assert book.starts["w"] == 2


@bounded
async def test_terminate_child_during_backoff_ends_the_timer_task() -> None:
    capture = ReportCapture()
    backoff = Backoff(base=300.0, cap=300.0, jitter=0.0)
    async with open_supervisor(
        [probe_spec("w"), probe_spec("x")], backoff=backoff, reports=capture.bus
    ) as sup:
        await (await address_of(sup, "w")).cast(Crash())
        await capture.wait_for(ReportKind.RESTART_SCHEDULED)
        assert timer_tasks() == 1
        assert (await sup.statistics()).pending_restarts == 1
        await sup.terminate_child("w")
        await anyio.wait_all_tasks_blocked()
        assert timer_tasks() == 0  # not left asleep for 300 s
        assert (await sup.statistics()).pending_restarts == 0


@bounded
async def test_a_group_restart_that_takes_over_a_pending_restart_ends_its_timer() -> None:
    capture = ReportCapture()
    backoff = Backoff(base=100.0, cap=100.0, jitter=0.0)
    specs = [probe_spec(c) for c in "abc"]
    async with open_supervisor(
        specs, strategy=Strategy.REST_FOR_ONE, backoff=backoff, reports=capture.bus
    ) as sup:
        await (await address_of(sup, "b")).cast(Crash())  # b and c wait 100 s
        await capture.wait_for(ReportKind.RESTART_SCHEDULED)
        await anyio.sleep(50.0)
        await (await address_of(sup, "a")).cast(Crash())  # a, b and c now wait for a's timer
        await capture.wait_for(ReportKind.RESTART_SCHEDULED, count=2)
        await anyio.wait_all_tasks_blocked()
        assert timer_tasks() == 1
        assert (await sup.statistics()).pending_restarts == 1
        crashed = anyio.current_time()
        restarts = await capture.wait_for(ReportKind.RESTART, count=3)
        assert [r.time - crashed for r in restarts] == pytest.approx([100.0] * 3)
        assert offenders(restarts) == ["a", "b", "c"]
        await anyio.wait_all_tasks_blocked()
        assert timer_tasks() == 0


class FailingStop(Probe):
    """A probe whose stop raises: in `on_stop`, or in a cleanup on its exit stack."""

    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    async def on_start(self) -> None:
        if self.where == "exit_stack":
            self.exit_stack.push_async_callback(self._fail)

    async def on_stop(self, kind: ExitKind) -> None:
        if self.where == "on_stop":
            await self._fail()

    async def _fail(self) -> None:
        raise RuntimeError(f"{self.where} blew up")


@pytest.mark.parametrize("where", ["on_stop", "exit_stack"])
@pytest.mark.parametrize("how", ["terminate_child", "restart_child", "supervisor_shutdown"])
@bounded
async def test_an_error_while_stopping_is_reported(where: str, how: str) -> None:
    capture = ReportCapture()
    specs = [ChildSpec("w", start=lambda: FailingStop(where)), probe_spec("x")]
    async with open_supervisor(specs, reports=capture.bus) as sup:
        if how == "terminate_child":
            await sup.terminate_child("w")
            assert await states(sup) == {"w": "stopped", "x": "running"}
        elif how == "restart_child":
            await sup.restart_child("w")
            assert await states(sup) == {"w": "running", "x": "running"}
    # restart_child: the stop of the first incarnation, then the second one's at shutdown.
    crashes = capture.of_kind(ReportKind.CRASH)
    assert len(crashes) == (2 if how == "restart_child" else 1)
    for crash in crashes:
        assert crash.offender == "w"
        assert str(crash.reason) == f"{where} blew up"
        assert crash.context["context"] == "shutdown"
    assert capture.of_kind(ReportKind.RESTART) == []  # a stop asked for stays a stop


@bounded
async def test_a_sibling_crashing_while_the_group_is_being_stopped() -> None:
    # one_for_all: a crashes; while the supervisor waits for c to stop, b crashes by itself.
    # b's crash is reported, and b restarts once, with the group; the group restart counts
    # once towards the intensity (OTP: a shutdown_error, not a restart of its own).
    book = Book()
    capture = ReportCapture()
    gate = anyio.Event()
    specs = [
        book.spec("a"),
        book.spec("b"),
        ChildSpec("c", start=lambda: GatedStop(gate), shutdown=50.0),
    ]
    async with open_supervisor(
        specs,
        strategy=Strategy.ONE_FOR_ALL,
        backoff=Backoff(base=10.0, jitter=0.0),
        intensity=10,
        period=100.0,
        reports=capture.bus,
    ) as sup:
        rows = {info.id: info.address for info in await sup.which_children()}
        await rows["a"].cast(Crash())
        await anyio.wait_all_tasks_blocked()  # the supervisor waits for c's on_stop
        await rows["b"].cast(Crash(ValueError("b died meanwhile")))
        await anyio.wait_all_tasks_blocked()
        gate.set()
        await capture.wait_for(ReportKind.RESTART, count=3)
        crashes = capture.of_kind(ReportKind.CRASH)
        assert [(r.offender, r.context["context"]) for r in crashes] == [
            ("a", "running"),
            ("b", "running"),
        ]
        assert isinstance(crashes[1].reason, ValueError)
        assert offenders(capture.of_kind(ReportKind.RESTART)) == ["a", "b", "c"]
        assert len(capture.of_kind(ReportKind.RESTART_SCHEDULED)) == 1
        assert (await sup.statistics()).restarts_in_window == 1
        assert book.starts == Counter({"a": 2, "b": 2})
        for child in "abc":
            assert await rows[child].call(child) == child


@bounded
async def test_a_start_that_keeps_failing_without_backoff_gives_up_cleanly() -> None:
    # 2000 immediate attempts: no recursion (it once ended in RecursionError on trio).
    book = Book()
    capture = ReportCapture()

    async def run() -> None:
        async with open_supervisor(
            [book.spec("w")], intensity=2000, period=1000.0, backoff=NOW, reports=capture.bus
        ) as sup:
            book.fail_next["w"] = 10**6
            await (await address_of(sup, "w")).cast(Crash())
            await anyio.sleep_forever()

    with pytest.raises(RestartIntensityExceeded):
        await run()
    crashes = capture.of_kind(ReportKind.CRASH)
    assert len([c for c in crashes if c.context["context"] == "start"]) == 2000
    assert len(capture.of_kind(ReportKind.GIVE_UP)) == 1


@bounded
async def test_an_operators_stop_ends_a_start_failure_loop() -> None:
    book = Book()
    capture = ReportCapture()
    async with open_supervisor(
        [book.spec("w"), book.spec("x")],
        intensity=10_000,
        period=1.0,
        backoff=NOW,
        reports=capture.bus,
    ) as sup:
        book.fail_next["w"] = 10**9
        await (await address_of(sup, "w")).cast(Crash())
        await capture.wait_for(ReportKind.CRASH, offender="w", count=3)  # attempts under way
        await sup.terminate_child("w")  # gets in between two attempts
        attempts = len(capture.of_kind(ReportKind.CRASH))
        assert await states(sup) == {"w": "stopped", "x": "running"}
        await anyio.wait_all_tasks_blocked()
        assert len(capture.of_kind(ReportKind.CRASH)) == attempts  # no attempt after the stop
        assert (await sup.statistics()).pending_restarts == 0
    assert capture.of_kind(ReportKind.GIVE_UP) == []


@bounded
async def test_a_crashed_child_says_what_comes_next_before_its_supervisor_has_looked() -> None:
    capture = ReportCapture()
    gate = anyio.Event()
    specs = [
        ChildSpec("slow", start=lambda: GatedStop(gate), shutdown=100.0),
        probe_spec("temp", Restart.TEMPORARY),
        probe_spec("perm"),
    ]
    async with open_supervisor(specs, backoff=NOW, reports=capture.bus) as sup:
        temp, perm = await address_of(sup, "temp"), await address_of(sup, "perm")
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.terminate_child, "slow")  # the supervisor is busy
            await anyio.wait_all_tasks_blocked()
            await temp.cast(Crash())
            await perm.cast(Crash())
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(ActorExited) as caught:
                await temp.call("x")
            assert caught.value.reason == "crashed"  # a temporary child is not restarted
            with pytest.raises(ActorExited) as caught:
                await perm.call("x")
            assert caught.value.reason == "restarting"
            gate.set()
        await capture.wait_for(ReportKind.RESTART, offender="perm")
        assert temp.closed
        assert await perm.call("x") == "x"


# -- shutdown timeout -------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["handle", "on_stop"])
@bounded
async def test_shutdown_timeout_then_cancellation(where: str) -> None:
    book = Book()
    capture = ReportCapture()
    spec = ChildSpec(
        "stuck", start=lambda: Worker("stuck", book, hang_on_stop=where == "on_stop"), shutdown=3.0
    )
    async with open_supervisor([spec, book.spec("other")], reports=capture.bus) as sup:
        stuck = await address_of(sup, "stuck")
        if where == "handle":
            await stuck.cast("hang")
            await book.hanging.wait()  # else the stop, read first, would beat "hang"
        start = anyio.current_time()
        await sup.terminate_child("stuck")
        [report] = await capture.wait_for(ReportKind.SHUTDOWN_TIMEOUT, offender="stuck")
        assert report.time - start == pytest.approx(3.0)
        assert anyio.current_time() - start == pytest.approx(3.0)
        assert report.context["shutdown"] == 3.0
        assert await states(sup) == {"stuck": "stopped", "other": "running"}
    assert capture.of_kind(ReportKind.RESTART) == []


class SlowCleanup(Probe):
    """An actor whose async cleanup never ends; its plain cleanup records that it ran."""

    def __init__(self, cleaned: list[str], *, hang_in_on_stop: bool) -> None:
        super().__init__()
        self.cleaned = cleaned
        self.hang_in_on_stop = hang_in_on_stop

    async def on_start(self) -> None:
        self.exit_stack.callback(self.cleaned.append, "plain cleanup")
        self.exit_stack.push_async_callback(anyio.sleep_forever)  # runs first (last in)

    async def on_stop(self, kind: ExitKind) -> None:
        if self.hang_in_on_stop:
            await anyio.sleep_forever()


@pytest.mark.parametrize("hang_in_on_stop", [True, False], ids=["on_stop-hangs", "on_stop-quick"])
@pytest.mark.parametrize("runner", ["supervisor", "open_actor"])
@bounded
async def test_on_stop_and_the_exit_stack_share_one_shutdown_budget(
    runner: str, hang_in_on_stop: bool
) -> None:
    capture = ReportCapture()
    cleaned: list[str] = []

    def start() -> SlowCleanup:
        return SlowCleanup(cleaned, hang_in_on_stop=hang_in_on_stop)

    begin = anyio.current_time()
    if runner == "supervisor":
        spec = ChildSpec("w", start=start, shutdown=3.0)
        async with open_supervisor([spec], reports=capture.bus) as sup:
            begin = anyio.current_time()
            await sup.terminate_child("w")
            assert anyio.current_time() - begin == pytest.approx(3.0)  # not 3 + 3
            assert await states(sup) == {"w": "stopped"}
        [report] = capture.of_kind(ReportKind.SHUTDOWN_TIMEOUT)
        assert report.time - begin == pytest.approx(3.0)
    else:
        async with open_actor(start(), shutdown=3.0):
            begin = anyio.current_time()
        assert anyio.current_time() - begin == pytest.approx(3.0)
    assert cleaned == ["plain cleanup"]  # plain callbacks still run after the deadline


@bounded
async def test_supervisor_shutdown_waits_the_childs_shutdown_then_cancels() -> None:
    book = Book()
    capture = ReportCapture()
    spec = ChildSpec("stuck", start=lambda: Worker("stuck", book), shutdown=30.0)
    async with open_supervisor([book.spec("first"), spec], reports=capture.bus) as sup:
        await (await address_of(sup, "stuck")).cast("hang")
        await book.hanging.wait()
        start = anyio.current_time()
    assert anyio.current_time() - start == pytest.approx(30.0)
    assert offenders(capture.of_kind(ReportKind.SHUTDOWN_TIMEOUT)) == ["stuck"]
    assert book.stop_kinds == {"first": ExitKind.SHUTDOWN}


@bounded
async def test_a_child_that_stops_in_time_makes_no_timeout_report() -> None:
    book = Book()
    capture = ReportCapture()
    async with open_supervisor([book.spec("w", shutdown=3.0)], reports=capture.bus) as sup:
        start = anyio.current_time()
        await sup.terminate_child("w")
        assert anyio.current_time() == start
    assert capture.of_kind(ReportKind.SHUTDOWN_TIMEOUT) == []
    assert book.stop_kinds == {"w": ExitKind.SHUTDOWN}


# -- stable addresses and the registry --------------------------------------------------------


@bounded
async def test_the_address_is_stable_across_restarts() -> None:
    capture = ReportCapture()
    log: list[Any] = []
    specs = [ChildSpec("w", start=lambda: Probe(log=log))]
    async with open_supervisor(specs, backoff=NOW, reports=capture.bus) as sup:
        address = await address_of(sup, "w")
        await address.cast("before")
        await address.cast(Crash())
        await capture.wait_for(ReportKind.RESTART)
        assert await address_of(sup, "w") is address
        assert address.alive
        assert await address.call("after") == "after"
        [info] = await sup.which_children()
        assert info.restarts == 1
    assert log == ["before", "after"]
    assert address.closed


@bounded
async def test_kill_crashes_only_that_child_and_it_is_restarted() -> None:
    capture = ReportCapture()
    specs = [ChildSpec("a", start=Probe), ChildSpec("b", start=Probe)]
    async with open_supervisor(specs, backoff=NOW, reports=capture.bus) as sup:
        a, b = await address_of(sup, "a"), await address_of(sup, "b")
        a.kill("chaos")
        await capture.wait_for(ReportKind.RESTART, offender="a")
        [crash] = capture.of_kind(ReportKind.CRASH, offender="a")
        assert isinstance(crash.reason, ActorKilled)
        assert "chaos" in str(crash.reason)
        assert await a.call("again") == "again"
        assert capture.of_kind(ReportKind.CRASH, offender="b") == []
        assert await b.call("untouched") == "untouched"
    with pytest.raises(ActorExited):
        a.kill()


@bounded
async def test_registered_name_resolves_across_restarts_and_is_forgotten_on_delete() -> None:
    capture = ReportCapture()
    registry = Registry()
    specs = [ChildSpec("db", start=Probe, name="database"), ChildSpec("x", start=Probe, name="x")]
    async with open_supervisor(specs, registry=registry, backoff=NOW, reports=capture.bus) as sup:
        found = registry.whereis("database")
        assert found is not None
        address: Address[Any] = found
        assert address is await address_of(sup, "db")
        assert registry.names() == ["database", "x"]
        await address.cast(Crash())
        await capture.wait_for(ReportKind.RESTART)
        assert registry.whereis("database") == address
        assert await address.call(1) == 1
        await sup.terminate_child("db")
        assert registry.whereis("database") == address  # stopped, not deleted: still known
        await sup.delete_child("db")
        assert registry.whereis("database") is None
        assert address.closed
        assert registry.names() == ["x"]
    assert registry.names() == []


@bounded
async def test_name_taken_by_a_live_child() -> None:
    registry = Registry()
    async with open_supervisor(
        [ChildSpec("a", start=Probe, name="shared")], registry=registry
    ) as sup:
        with pytest.raises(NameTaken):
            await sup.start_child(ChildSpec("b", start=Probe, name="shared"))
        assert [i.id for i in await sup.which_children()] == ["a"]
        # Once the holder is gone for good the name is free again.
        await sup.terminate_child("a")
        await sup.delete_child("a")
        address = await sup.start_child(ChildSpec("b", start=Probe, name="shared"))
        assert registry.whereis("shared") is address


@bounded
async def test_duplicate_names_among_static_children_fail_the_start() -> None:
    specs = [ChildSpec("a", start=Probe, name="n"), ChildSpec("b", start=Probe, name="n")]
    with pytest.raises(NameTaken):
        async with open_supervisor(specs):
            pytest.fail("the supervisor must not start")


def test_duplicate_child_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Supervisor([ChildSpec("a", start=Probe), ChildSpec("a", start=Probe)])


@pytest.mark.parametrize(("intensity", "period"), [(-1, 5.0), (3, 0.0)])
def test_invalid_intensity_or_period_is_refused(intensity: int, period: float) -> None:
    with pytest.raises(ValueError, match="intensity"):
        Supervisor(intensity=intensity, period=period)


# -- dynamic supervisors ----------------------------------------------------------------------


def probe_spec(child_id: str, restart: Restart = Restart.PERMANENT) -> ChildSpec:
    return ChildSpec(child_id, start=Probe, restart=restart)


@bounded
async def test_dynamic_supervisor_start_child_and_max_children() -> None:
    capture = ReportCapture()
    dynamic = DynamicSupervisor(max_children=2, backoff=NOW)
    async with open_supervisor(supervisor=dynamic, reports=capture.bus) as sup:
        assert await sup.which_children() == []
        first = await sup.start_child(probe_spec("p1"))
        await sup.start_child(probe_spec("p2", Restart.TEMPORARY))
        with pytest.raises(TooManyChildren):
            await sup.start_child(probe_spec("p3"))
        assert await first.call("hi") == "hi"
        assert [i.id for i in await sup.which_children()] == ["p1", "p2"]
        counts = await sup.count_children()
        assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (2, 2, 0, 2)
        # A permanent child is restarted, on its stable address.
        await first.cast(Crash())
        await capture.wait_for(ReportKind.RESTART, offender="p1")
        assert await first.call("again") == "again"
        stats = await sup.statistics()
        assert (stats.children, stats.running, stats.total_restarts) == (2, 2, 1)
        assert (stats.restarts_in_window, stats.intensity, stats.period) == (1, 3, 5.0)


@bounded
async def test_dynamic_supervisor_removes_temporary_children_on_exit() -> None:
    capture = ReportCapture()
    async with open_supervisor(supervisor=DynamicSupervisor(), reports=capture.bus) as sup:
        temp = await sup.start_child(probe_spec("t", Restart.TEMPORARY))
        await sup.start_child(probe_spec("keep"))
        await temp.cast(Crash())
        await capture.wait_for(ReportKind.CRASH, offender="t")
        assert [i.id for i in await sup.which_children()] == ["keep"]
        assert temp.closed
        assert capture.of_kind(ReportKind.RESTART) == []
        # The freed id can be used again.
        await sup.start_child(probe_spec("t", Restart.TEMPORARY))
        assert (await sup.count_children()).specs == 2


@bounded
async def test_dynamic_supervisor_removes_a_transient_child_after_a_normal_exit() -> None:
    book = Book()
    async with open_supervisor(supervisor=DynamicSupervisor()) as sup:
        address = await sup.start_child(book.spec("tr", restart=Restart.TRANSIENT))
        closed = anyio.Event()
        address.on_close(lambda _: closed.set())
        await address.cast("stop")
        await closed.wait()
        assert await sup.which_children() == []
    assert book.starts["tr"] == 1


@bounded
async def test_dynamic_supervisor_terminate_child_removes_it() -> None:
    async with open_supervisor(supervisor=DynamicSupervisor()) as sup:
        address = await sup.start_child(probe_spec("p"))
        await sup.terminate_child("p")
        assert await sup.which_children() == []
        assert address.closed
        with pytest.raises(UnknownChild):
            await sup.terminate_child("p")


@bounded
async def test_start_child_whose_start_fails_is_not_kept() -> None:
    def broken() -> Probe:
        raise OSError("no resources")

    async with open_supervisor(supervisor=DynamicSupervisor()) as sup:
        with pytest.raises(StartFailed, match="no resources"):
            await sup.start_child(ChildSpec("b", start=broken))
        with pytest.raises(StartFailed, match="refused"):
            await sup.start_child(
                ChildSpec("c", start=lambda: Probe(fail_start=RuntimeError("refused")))
            )
        assert await sup.which_children() == []
        await sup.start_child(probe_spec("ok"))
        assert (await sup.count_children()).active == 1


@bounded
async def test_nested_supervisor_counts() -> None:
    specs = [
        ChildSpec("sub", start=lambda: Supervisor([probe_spec("x")])),
        probe_spec("w1"),
        probe_spec("w2"),
    ]
    async with open_supervisor(specs) as sup:
        counts = await sup.count_children()
        assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (3, 3, 1, 2)
        infos = await sup.which_children()
        assert [(i.id, i.supervisor, i.restart) for i in infos] == [
            ("sub", True, Restart.PERMANENT),
            ("w1", False, Restart.PERMANENT),
            ("w2", False, Restart.PERMANENT),
        ]


# -- restart_child / delete_child -------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        lambda sup: sup.terminate_child("nope"),
        lambda sup: sup.restart_child("nope"),
        lambda sup: sup.delete_child("nope"),
    ],
)
@bounded
async def test_unknown_child_errors(operation: Callable[[SupervisorRef], Any]) -> None:
    async with open_supervisor([probe_spec("a")]) as sup:
        with pytest.raises(UnknownChild):
            await operation(sup)
        assert await states(sup) == {"a": "running"}  # the supervisor lives on


@bounded
async def test_delete_of_a_running_child_is_refused() -> None:
    async with open_supervisor([probe_spec("a"), probe_spec("b")]) as sup:
        with pytest.raises(ActorError, match="terminate it first") as caught:
            await sup.delete_child("a")
        assert not isinstance(caught.value, UnknownChild)
        assert await states(sup) == {"a": "running", "b": "running"}
        await sup.terminate_child("a")
        await sup.delete_child("a")
        assert await states(sup) == {"b": "running"}
        with pytest.raises(UnknownChild):
            await sup.restart_child("a")


@bounded
async def test_delete_of_a_restarting_child_is_refused() -> None:
    capture = ReportCapture()
    backoff = Backoff(base=10.0, jitter=0.0)
    async with open_supervisor([probe_spec("a")], backoff=backoff, reports=capture.bus) as sup:
        await (await address_of(sup, "a")).cast(Crash())
        await capture.wait_for(ReportKind.RESTART_SCHEDULED)
        with pytest.raises(ActorError, match="restarting"):
            await sup.delete_child("a")


@bounded
async def test_restart_child_restarts_running_and_stopped_children() -> None:
    book = Book()
    async with open_supervisor([book.spec("a"), book.spec("b")]) as sup:
        address = await address_of(sup, "a")
        assert await sup.restart_child("a") is address
        assert book.starts["a"] == 2
        assert book.stop_kinds == {"a": ExitKind.SHUTDOWN}
        await sup.terminate_child("a")
        assert await states(sup) == {"a": "stopped", "b": "running"}
        assert await sup.restart_child("a") is address
        assert await states(sup) == {"a": "running", "b": "running"}
        assert await address.call("hi") == "hi"
        assert book.starts == Counter({"a": 3, "b": 1})


@bounded
async def test_restart_child_whose_start_fails_leaves_it_stopped() -> None:
    book = Book()
    async with open_supervisor([book.spec("a")]) as sup:
        await sup.terminate_child("a")
        book.fail_next["a"] = 1
        with pytest.raises(StartFailed):
            await sup.restart_child("a")
        assert await states(sup) == {"a": "stopped"}
        await sup.restart_child("a")
        assert await states(sup) == {"a": "running"}


@bounded
async def test_start_child_with_a_duplicate_id_is_refused() -> None:
    async with open_supervisor([probe_spec("a")]) as sup:
        with pytest.raises(ActorError, match="already present"):
            await sup.start_child(probe_spec("a"))
        assert [i.id for i in await sup.which_children()] == ["a"]


@bounded
async def test_group_siblings_are_restarting_during_the_backoff() -> None:
    capture = ReportCapture()
    backoff = Backoff(base=10.0, jitter=0.0)
    specs = [probe_spec("a"), probe_spec("b")]
    async with open_supervisor(
        specs, strategy=Strategy.ONE_FOR_ALL, backoff=backoff, reports=capture.bus
    ) as sup:
        sibling = await address_of(sup, "b")
        await (await address_of(sup, "a")).cast(Crash())
        await capture.wait_for(ReportKind.RESTART_SCHEDULED)
        assert await states(sup) == {"a": "restarting", "b": "restarting"}
        with pytest.raises(ActorExited) as caught:
            await sibling.call("x")
        assert caught.value.reason == "restarting"
        await capture.wait_for(ReportKind.RESTART, count=2)
        assert await sibling.call("x") == "x"
