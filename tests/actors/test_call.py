"""cast and call: replies, timeouts with late replies discarded, calls to actors that are down."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import (
    Actor,
    ActorExited,
    Address,
    Backoff,
    CallTimeout,
    ChildSpec,
    Registry,
    ReportKind,
    Restart,
    open_actor,
    open_supervisor,
)
from actors.testing import Crash, Probe, ReportCapture
from tests.actors._support import bounded

pytestmark = pytest.mark.anyio


class Slow(Actor[float]):
    """Sleeps ``message`` virtual seconds, then replies with the message it handled."""

    def __init__(self) -> None:
        self.handled: list[float] = []

    async def handle(self, message: float) -> tuple[str, float]:
        await anyio.sleep(message)
        self.handled.append(message)
        return ("reply", message)


class Gate(Actor[str]):
    def __init__(self) -> None:
        self.gate = anyio.Event()
        self.entered = anyio.Event()
        self.done: list[str] = []

    async def handle(self, message: str) -> str:
        self.entered.set()
        await self.gate.wait()
        self.done.append(message)
        return message.upper()


@bounded
async def test_cast_returns_without_waiting_for_the_handler() -> None:
    actor = Gate()
    async with open_actor(actor) as address:
        start = anyio.current_time()
        await address.cast("x")
        address.cast_nowait("y")
        assert actor.done == []
        assert anyio.current_time() == start
        await actor.entered.wait()
        assert actor.done == []  # the handler is still parked: cast did not wait for it
        actor.gate.set()
        assert await address.call("z") == "Z"
    assert actor.done == ["x", "y", "z"]


@bounded
async def test_call_returns_the_handlers_value() -> None:
    async with open_actor(Probe(reply=lambda m: m * 2)) as address:
        assert await address.call(21) == 42
        assert await address.call("ab") == "abab"


@bounded
async def test_call_timeout_raises_and_the_late_reply_is_discarded() -> None:
    actor = Slow()
    async with open_actor(actor) as address:
        start = anyio.current_time()
        with pytest.raises(CallTimeout):
            await address.call(10.0, timeout=1.0)
        assert anyio.current_time() - start == pytest.approx(1.0, abs=1e-6)
        # The actor is still busy with 10.0; this call queues behind it and must get its own
        # reply, not the late one for 10.0.
        assert await address.call(0.0, timeout=100.0) == ("reply", 0.0)
        assert anyio.current_time() - start == pytest.approx(10.0, abs=1e-6)
        assert actor.handled == [10.0, 0.0]  # the late reply was produced, and dropped


@bounded
async def test_default_call_timeout_is_five_seconds() -> None:
    async with open_actor(Slow()) as address:
        start = anyio.current_time()
        with pytest.raises(CallTimeout):
            await address.call(60.0)
        assert anyio.current_time() - start == pytest.approx(5.0, abs=1e-6)


@bounded
async def test_many_timed_out_calls_do_not_leak_replies_into_later_calls() -> None:
    actor = Slow()
    async with open_actor(actor) as address:
        for n in range(1, 4):
            with pytest.raises(CallTimeout):
                await address.call(float(n), timeout=0.5)
        assert await address.call(0.25, timeout=100.0) == ("reply", 0.25)


@bounded
async def test_calling_a_never_started_address_fails_at_once() -> None:
    address: Address[Any] = Address("nobody")
    start = anyio.current_time()
    with pytest.raises(ActorExited) as caught:
        await address.call("hello")
    with pytest.raises(ActorExited):
        await address.cast("hello")
    assert anyio.current_time() == start
    assert caught.value.name == "nobody"
    assert caught.value.reason == "not started"
    assert "not started" in str(caught.value)
    assert not address.alive
    assert not address.closed


@bounded
async def test_calling_a_child_still_in_on_start_fails_at_once() -> None:
    release = anyio.Event()

    class SlowStart(Probe):
        async def on_start(self) -> None:
            await release.wait()

    registry = Registry()
    done = anyio.Event()
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            specs = [ChildSpec("slow", start=SlowStart, name="slow")]
            async with open_supervisor(specs, registry=registry):
                await done.wait()

        tg.start_soon(run)
        await anyio.wait_all_tasks_blocked()
        address = registry.whereis("slow")
        assert address is not None
        start = anyio.current_time()
        with pytest.raises(ActorExited):
            await address.call("early", timeout=100.0)
        assert anyio.current_time() == start
        release.set()
        await anyio.wait_all_tasks_blocked()  # on_start returned; the actor waits for mail
        assert address.alive
        assert await address.call("later") == "later"
        done.set()


@bounded
async def test_calling_a_stopped_actor_fails_at_once() -> None:
    async with open_actor(Probe()) as address:
        assert await address.call(1) == 1
    start = anyio.current_time()
    with pytest.raises(ActorExited) as caught:
        await address.call(2)
    assert anyio.current_time() == start
    assert address.closed
    assert caught.value.reason == "ended for good"


@bounded
async def test_calling_a_restarting_child_fails_at_once() -> None:
    capture = ReportCapture()
    specs = [ChildSpec("w", start=Probe)]
    backoff = Backoff(base=10.0, jitter=0.0)
    async with open_supervisor(specs, reports=capture.bus, backoff=backoff) as sup:
        [info] = await sup.which_children()
        address = info.address
        await address.cast(Crash())
        await capture.wait_for(ReportKind.RESTART_SCHEDULED, offender="w")
        start = anyio.current_time()
        with pytest.raises(ActorExited) as caught:
            await address.call("hello", timeout=100.0)
        assert anyio.current_time() == start
        assert caught.value.reason == "restarting"
        await capture.wait_for(ReportKind.RESTART, offender="w")
        assert await address.call("again") == "again"


@bounded
async def test_calling_a_crashed_temporary_child_fails_at_once() -> None:
    capture = ReportCapture()
    specs = [ChildSpec("w", start=Probe, restart=Restart.TEMPORARY)]
    async with open_supervisor(specs, reports=capture.bus) as sup:
        [info] = await sup.which_children()
        await info.address.cast(Crash())
        await capture.wait_for(ReportKind.CRASH, offender="w")
        start = anyio.current_time()
        with pytest.raises(ActorExited):
            await info.address.call("hello", timeout=100.0)
        assert anyio.current_time() == start
        assert await sup.which_children() == []


@bounded
async def test_a_call_whose_handler_crashes_fails_with_actor_exited() -> None:
    capture = ReportCapture()
    error = ValueError("boom")
    async with open_supervisor([ChildSpec("w", start=Probe)], reports=capture.bus) as sup:
        [info] = await sup.which_children()
        with pytest.raises(ActorExited) as caught:
            await info.address.call(Crash(error), timeout=100.0)
        assert caught.value.reason is error
        [crash] = await capture.wait_for(ReportKind.CRASH, offender="w")
        assert crash.reason is error


@bounded
async def test_calls_queued_behind_a_crash_fail_with_actor_exited() -> None:
    class Crasher(Actor[str]):
        def __init__(self) -> None:
            self.gate = anyio.Event()
            self.entered = anyio.Event()

        async def handle(self, message: str) -> str:
            if message == "crash":
                self.entered.set()
                await self.gate.wait()
                raise RuntimeError("crash")
            return message

    instances: list[Crasher] = []

    def start() -> Crasher:
        instances.append(Crasher())
        return instances[-1]

    capture = ReportCapture()
    outcomes: list[object] = []
    backoff = Backoff(base=1.0, jitter=0.0)
    specs = [ChildSpec("w", start=start)]
    async with open_supervisor(specs, reports=capture.bus, backoff=backoff) as sup:
        [info] = await sup.which_children()
        async with anyio.create_task_group() as tg:

            async def ask(message: str) -> None:
                try:
                    outcomes.append(await info.address.call(message, timeout=100.0))
                except ActorExited as error:
                    outcomes.append(error)

            await info.address.cast("crash")
            await instances[0].entered.wait()
            for message in ("q1", "q2"):
                tg.start_soon(ask, message)
            await anyio.wait_all_tasks_blocked()
            crashed_at = anyio.current_time()
            instances[0].gate.set()
        assert anyio.current_time() == crashed_at  # failed at the crash, not at the timeout
        assert len(outcomes) == 2
        assert all(isinstance(o, ActorExited) for o in outcomes)
        await capture.wait_for(ReportKind.RESTART, offender="w")
        assert await info.address.call("q3") == "q3"


@bounded
async def test_an_exception_in_handle_crashes_an_unsupervised_actor() -> None:
    error = KeyError("lost")
    addresses: list[Address[Any]] = []

    async def run() -> None:
        async with open_actor(Probe()) as address:
            addresses.append(address)
            await address.cast(Crash(error))
            await anyio.sleep_forever()

    with pytest.raises(KeyError) as caught:
        await run()
    assert caught.value is error
    assert not addresses[0].alive
    assert addresses[0].closed


@bounded
async def test_an_exception_in_handle_during_a_call_crashes_the_actor_too() -> None:
    error = ValueError("bad")
    outcome: list[BaseException] = []

    async def run() -> None:
        async with open_actor(Probe()) as address:
            try:
                await address.call(Crash(error))
            except ActorExited as exited:
                outcome.append(exited)
            await anyio.sleep_forever()

    with pytest.raises(ValueError, match="bad"):
        await run()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ActorExited)
    assert outcome[0].reason is error


@bounded
async def test_an_exception_in_on_start_propagates_from_open_actor() -> None:
    with pytest.raises(OSError, match="no port"):
        async with open_actor(Probe(fail_start=OSError("no port"))):
            pytest.fail("the block must not run")
