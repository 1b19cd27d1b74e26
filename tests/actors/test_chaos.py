"""Chaos: a tree of ~100 actors under random crashes for an hour of virtual time.

A seeded `random.Random` picks running workers (found through ``which_children``) and crashes
them at random intervals, sometimes several of one supervisor at once so that supervisors give
up and escalate. Afterwards the tree must be whole again, no supervisor may have restarted more
than its intensity allows within any window, every crash must have been answered, and leaving
the root must end every actor and every task.

Tasks are also counted while the tree runs: whenever everything is quiet, every restart-timer task
belongs to a restart that still waits (a timer whose restart was taken over by a group restart,
or cancelled by a stop, must be gone), and after the final quiet period the running tree has
exactly as many tasks as when it first started.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import pytest

from actors import (
    ActorExited,
    Address,
    Backoff,
    ChildInfo,
    ChildSpec,
    Report,
    ReportKind,
    Restart,
    RestartIntensityExceeded,
    Strategy,
    Supervisor,
    SupervisorRef,
    open_supervisor,
)
from actors._supervisor import TIMER_TASK
from actors.testing import Crash, Probe, ReportCapture
from tests.actors._support import bounded

pytestmark = pytest.mark.anyio


SEED = 20240611
INTENSITY = 3
PERIOD = 5.0
ROOT_INTENSITY = 50
DURATION = 3600.0
MAX_CRASHES = 250
BACKOFF = Backoff(base=0.5, cap=20.0, factor=2.0, jitter=0.2, reset_after=30.0)


def workers(count: int) -> list[ChildSpec]:
    # Permanent and transient workers both restart after a crash.
    return [
        ChildSpec(
            f"w{n}", start=Probe, restart=Restart.TRANSIENT if n % 3 == 0 else Restart.PERMANENT
        )
        for n in range(count)
    ]


def supervisor(
    strategy: Strategy, children: list[ChildSpec], jitter: Callable[[], float]
) -> Callable[[], Supervisor]:
    def start() -> Supervisor:
        return Supervisor(
            children,
            strategy=strategy,
            intensity=INTENSITY,
            period=PERIOD,
            backoff=BACKOFF,
            random=jitter,
        )

    return start


def tree(jitter: Callable[[], float]) -> list[ChildSpec]:
    """root -> s1..s5; s4 -> n1..n3; n2 -> deep: 94 workers under 9 supervisors."""

    def sup(child_id: str, strategy: Strategy, children: list[ChildSpec]) -> ChildSpec:
        return ChildSpec(child_id, start=supervisor(strategy, children, jitter))

    deep = sup("deep", Strategy.ONE_FOR_ONE, workers(10))
    nested = [
        sup("n1", Strategy.ONE_FOR_ONE, workers(10)),
        sup("n2", Strategy.ONE_FOR_ALL, [deep, *workers(5)]),
        sup("n3", Strategy.REST_FOR_ONE, workers(10)),
    ]
    return [
        sup("s1", Strategy.ONE_FOR_ONE, workers(20)),
        sup("s2", Strategy.ONE_FOR_ALL, workers(12)),
        sup("s3", Strategy.REST_FOR_ONE, workers(15)),
        sup("s4", Strategy.REST_FOR_ONE, nested),
        sup("s5", Strategy.ONE_FOR_ONE, workers(12)),
    ]


TOTAL_WORKERS = 94
SUPERVISOR_NAMES = {
    "root",
    *(f"root/s{n}" for n in range(1, 6)),
    *(f"root/s4/n{n}" for n in range(1, 4)),
    "root/s4/n2/deep",
}


@dataclass
class Walk:
    """One recursive look at the tree."""

    rows: list[tuple[str, ChildInfo]]  # (supervisor name, child)
    unreachable: int  # supervisors that were down while we looked
    refs: dict[str, SupervisorRef]  # the supervisors reached, by name

    def workers(self) -> list[ChildInfo]:
        return [info for _, info in self.rows if not info.supervisor]


async def walk(sup: SupervisorRef) -> Walk:
    result = Walk([], 0, {})

    async def visit(ref: SupervisorRef) -> None:
        try:
            children = await ref.which_children()
        except ActorExited:
            result.unreachable += 1
            return
        result.refs[ref.address.name] = ref
        for info in children:
            result.rows.append((ref.address.name, info))
            if info.supervisor and info.state == "running":
                await visit(SupervisorRef(info.address))

    await visit(sup)
    return result


async def check_timers(root: SupervisorRef) -> Walk:
    """At a quiet moment: one timer task per restart still waiting, none left over."""
    await anyio.wait_all_tasks_blocked()
    snapshot = await walk(root)
    pending = 0
    for ref in snapshot.refs.values():
        pending += (await ref.statistics()).pending_restarts
    timers = [t for t in anyio.get_running_tasks() if (t.name or "").startswith(TIMER_TASK)]
    assert len(timers) == pending, (len(timers), pending, anyio.current_time())
    return snapshot


def replaces(report: Report, name: str) -> bool:
    """Whether ``report`` restarted ``name`` or one of its ancestors (a fresh subtree)."""
    if report.kind is not ReportKind.RESTART:
        return False
    restarted = f"{report.supervisor}/{report.offender}"
    return name == restarted or name.startswith(restarted + "/")


def check_every_crash_answered(reports: list[Report], operator: list[tuple[int, str, str]]) -> None:
    """Every crash was followed by a restart of it (or of its supervisor), a give-up, or an
    operator's ``restart_child`` of it (``operator``: report index, supervisor, child)."""
    for index, crash in enumerate(reports):
        if crash.kind is not ReportKind.CRASH:
            continue
        later = reports[index + 1 :]
        answered = any(
            at > index and (name, child) == (crash.supervisor, crash.offender)
            for at, name, child in operator
        ) or any(
            (
                r.kind is ReportKind.RESTART
                and r.supervisor == crash.supervisor
                and r.offender == crash.offender
            )
            or (r.kind is ReportKind.GIVE_UP and r.supervisor == crash.supervisor)
            or replaces(r, crash.supervisor)
            for r in later
        )
        assert answered, f"unanswered {crash}"
        if isinstance(crash.reason, RestartIntensityExceeded):
            assert any(
                r.kind is ReportKind.ESCALATION
                and (r.supervisor, r.offender) == (crash.supervisor, crash.offender)
                for r in later
            ), f"no escalation after {crash}"


def check_intensity(reports: list[Report], name: str, intensity: int) -> int:
    """Check the sliding-window limit for every incarnation of supervisor ``name``.

    Returns how many times it gave up.
    """
    segments: list[list[float]] = [[]]
    give_ups = 0
    for report in reports:
        if replaces(report, name):
            segments.append([])
        elif report.supervisor != name:
            continue
        elif report.kind is ReportKind.RESTART_SCHEDULED:
            segments[-1].append(report.time)
        elif report.kind is ReportKind.GIVE_UP:
            # It gave up exactly when one more restart would have exceeded the limit.
            in_window = [t for t in segments[-1] if report.time - t < PERIOD]
            assert len(in_window) == intensity, (name, report.time, in_window)
            give_ups += 1
    for times in segments:
        for end in times:
            in_window = [t for t in times if 0 <= end - t < PERIOD]
            assert len(in_window) <= intensity, (name, end, in_window)
    return give_ups


@bounded
async def test_chaos_tree_recovers_and_respects_intensity() -> None:
    chaos = random.Random(SEED)
    capture = ReportCapture()
    seen: list[Address[object]] = []
    tasks_before = len(anyio.get_running_tasks())
    operator: list[tuple[int, str, str]] = []  # restart_child during a backoff
    casts = 0
    start = anyio.current_time()

    async with open_supervisor(
        tree(random.Random(SEED + 1).random),
        intensity=ROOT_INTENSITY,
        period=PERIOD,
        backoff=BACKOFF,
        reports=capture.bus,
    ) as root:
        first = await walk(root)
        assert len(first.workers()) == TOTAL_WORKERS
        assert len(first.rows) == TOTAL_WORKERS + len(SUPERVISOR_NAMES) - 1
        seen.extend(info.address for _, info in first.rows)
        await anyio.wait_all_tasks_blocked()
        tasks_running = len(anyio.get_running_tasks())

        while anyio.current_time() - start < DURATION and casts < MAX_CRASHES:
            await anyio.sleep(chaos.uniform(0.5, 50.0))
            snapshot = await walk(root)
            seen.extend(info.address for _, info in snapshot.rows)
            running = [w for w in snapshot.workers() if w.state == "running"]
            if not running:
                continue
            if chaos.random() < 0.1:
                # A burst: several workers of one supervisor at once, to provoke give-ups.
                victim_sup = chaos.choice(
                    [name for name, info in snapshot.rows if not info.supervisor]
                )
                targets = [
                    info
                    for name, info in snapshot.rows
                    if name == victim_sup and not info.supervisor and info.state == "running"
                ][: INTENSITY + 2]
            else:
                targets = [chaos.choice(running)]
            for info in targets:
                try:
                    info.address.cast_nowait(Crash())
                    casts += 1
                except ActorExited:
                    pass  # went down meanwhile (a sibling's group restart)
            quiet = await check_timers(root)
            waiting = [
                (name, info)
                for name, info in quiet.rows
                if not info.supervisor and info.state == "restarting"
            ]
            if waiting and chaos.random() < 0.3:
                # An operator restarts a worker now instead of waiting for its backoff: its
                # pending restart (and, alone in it, its timer) must end.
                name, info = chaos.choice(waiting)
                operator.append((len(capture.reports), name, info.id))
                await quiet.refs[name].restart_child(info.id)
                await check_timers(root)

        elapsed = anyio.current_time() - start
        await anyio.sleep(600.0)  # quiet: every pending backoff elapses
        final = await walk(root)
        assert final.unreachable == 0
        assert len(final.workers()) == TOTAL_WORKERS
        not_running = [
            (name, info.id, info.state) for name, info in final.rows if info.state != "running"
        ]
        assert not_running == []
        assert {name for name, _ in final.rows} == SUPERVISOR_NAMES
        for index, info in enumerate(final.workers()):
            assert await info.address.call(index) == index
        seen.extend(info.address for _, info in final.rows)
        await check_timers(root)
        assert len(anyio.get_running_tasks()) == tasks_running  # nothing leaked while running

    reports = capture.reports
    crashes = [r for r in reports if r.kind is ReportKind.CRASH]
    assert elapsed >= DURATION  # an hour of virtual time went by
    assert casts >= 50
    assert len(crashes) >= casts // 2
    check_every_crash_answered(reports, operator)
    assert len(operator) >= 5
    give_ups = sum(
        check_intensity(reports, name, ROOT_INTENSITY if name == "root" else INTENSITY)
        for name in SUPERVISOR_NAMES
    )
    assert all(r.supervisor != "root" for r in reports if r.kind is ReportKind.GIVE_UP)
    assert give_ups == len([r for r in reports if r.kind is ReportKind.GIVE_UP])
    assert give_ups >= 1  # the bursts did exercise escalation

    # No leaks: every address ever seen has ended, and no task outlived the tree.
    assert all(address.closed and not address.alive for address in seen)
    assert len(anyio.get_running_tasks()) == tasks_before
