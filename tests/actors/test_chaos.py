"""Chaos: a tree of ~100 actors under random crashes for an hour of virtual time.

A seeded `random.Random` picks running workers (found through ``which_children``) and crashes
them at random intervals, sometimes several of one supervisor at once so that supervisors give
up and escalate. Afterwards the tree must be whole again, no supervisor may have restarted more
than its intensity allows within any window, every crash must have been answered, and leaving
the root must end every actor and every task.
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

    def workers(self) -> list[ChildInfo]:
        return [info for _, info in self.rows if not info.supervisor]


async def walk(sup: SupervisorRef) -> Walk:
    result = Walk([], 0)

    async def visit(ref: SupervisorRef) -> None:
        try:
            children = await ref.which_children()
        except ActorExited:
            result.unreachable += 1
            return
        for info in children:
            result.rows.append((ref.address.name, info))
            if info.supervisor and info.state == "running":
                await visit(SupervisorRef(info.address))

    await visit(sup)
    return result


def replaces(report: Report, name: str) -> bool:
    """Whether ``report`` restarted ``name`` or one of its ancestors (a fresh subtree)."""
    if report.kind is not ReportKind.RESTART:
        return False
    restarted = f"{report.supervisor}/{report.offender}"
    return name == restarted or name.startswith(restarted + "/")


def check_every_crash_answered(reports: list[Report]) -> None:
    for index, crash in enumerate(reports):
        if crash.kind is not ReportKind.CRASH:
            continue
        later = reports[index + 1 :]
        answered = any(
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

    reports = capture.reports
    crashes = [r for r in reports if r.kind is ReportKind.CRASH]
    assert elapsed >= DURATION  # an hour of virtual time went by
    assert casts >= 50
    assert len(crashes) >= casts // 2
    check_every_crash_answered(reports)
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
