"""The ``metrics`` actor of one game server: a periodic cpu / ram / players / fps sample.

While a run exists and its process has not exited, it samples everything that belongs to the
server - its process group and session (members re-parented to init included) and its
descendants - every ``config.metrics_interval`` seconds with `ProcessGroupSampler` (the first
sample of a run only primes the cpu counters), adds the player count from the rcon actor's facts
and the fps from the logs actor's facts, publishes a ``metrics`` event and appends it to
``runtime.metrics_history`` (this actor is that history's single writer).

Cost: one sample of a one-process tree is about 45 µs of psutil work; the children, group and
session indexes come from one ``/proc`` scan shared by every sampler and refreshed at most once
a second (about 1.3 ms on a host with ~130 processes), never a scan per server. It runs inline
on the event loop: a thread hop would cost about as much as the sample. A process that vanished
between samples ends the sampling of that run quietly; the process actor will report the exit.
A dead but unreaped root (a zombie: the process actor keeps it until it has cleaned up the
group) shows zero RSS and is skipped.
"""

from __future__ import annotations

import time
from typing import Final

import anyio
import msgspec

from actors import Actor, ChildSpec, Restart
from citadel.messages import MetricsEvent, utc_timestamp
from citadel.servers.runtime import METRICS, RunInfo, ServerRuntime, ServerSnapshot
from citadel.servers.sampler import GroupSample, ProcessGroupSampler, ProcessTable

__all__ = [
    "MetricsActor",
    "MetricsStatistics",
    "build_metrics_event",
    "should_sample",
    "spec",
]

# --- defaults -------------------------------------------------------------------------------
#: Digits kept for cpu and ram percentages and uptime (the wire needs no more).
PERCENT_DIGITS: Final = 2
UPTIME_DIGITS: Final = 1
# ---------------------------------------------------------------------------------------------


def should_sample(snapshot: ServerSnapshot) -> bool:
    """Whether ``snapshot`` names a run whose process is (as far as we know) alive."""
    return snapshot.run is not None and not snapshot.exited


def build_metrics_event(
    server_id: str,
    sample: GroupSample,
    *,
    players: int,
    fps: float | None,
    uptime: float,
    timestamp: str,
) -> MetricsEvent:
    """Build the ``metrics`` event of one sample (percentages clamped to 0-100, rounded)."""
    cpu = sample.cpu_percent_of_host or 0.0
    return MetricsEvent(
        server_id=server_id,
        cpu=round(min(100.0, max(0.0, cpu)), PERCENT_DIGITS),
        ram=round(min(100.0, max(0.0, sample.ram_percent_of_host)), PERCENT_DIGITS),
        players=max(0, players),
        fps=fps,
        timestamp=timestamp,
        ram_bytes=max(0, sample.ram_bytes),
        uptime=round(max(0.0, uptime), UPTIME_DIGITS),
    )


class MetricsStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one incarnation; ``sampling`` is the incarnation of the run being sampled."""

    sampling: int | None
    samples: int
    published: int
    vanished: int
    skipped: int
    sample_seconds: float


class MetricsActor(Actor[object]):
    """Samples the server's process tree while it runs (see module docstring).

    Args:
        runtime: The server's shared runtime.
        table: The shared process table (tests may pass their own).
    """

    def __init__(self, runtime: ServerRuntime, *, table: ProcessTable | None = None) -> None:
        self.runtime = runtime
        self._table = table
        self._sampling: int | None = None
        self._samples = 0
        self._published = 0
        self._vanished = 0
        self._skipped = 0
        self._sample_seconds = 0.0

    def statistics(self) -> MetricsStatistics:
        """Return the counters of this incarnation."""
        return MetricsStatistics(
            sampling=self._sampling,
            samples=self._samples,
            published=self._published,
            vanished=self._vanished,
            skipped=self._skipped,
            sample_seconds=self._sample_seconds,
        )

    async def on_start(self) -> None:
        self.start_soon(self._follow_state)

    async def handle(self, message: object) -> None:
        """The actor takes no messages; anything sent is ignored."""

    async def _follow_state(self) -> None:
        state = self.runtime.state
        snapshot = state.current
        while True:
            run = snapshot.run
            if run is not None and should_sample(snapshot):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self._sample_run, run)
                    while True:
                        snapshot = await state.wait_changed(snapshot.version)
                        current = snapshot.run
                        if not (
                            should_sample(snapshot)
                            and current is not None
                            and current.incarnation == run.incarnation
                        ):
                            break
                    tasks.cancel_scope.cancel()
                self._sampling = None
                continue
            snapshot = await state.wait_changed(snapshot.version)

    def _sample(self, sampler: ProcessGroupSampler) -> GroupSample | None:
        began = time.perf_counter()
        sample = sampler.sample()
        self._sample_seconds += time.perf_counter() - began
        self._samples += 1
        return sample

    async def _sample_run(self, run: RunInfo) -> None:
        self._sampling = run.incarnation
        sampler = ProcessGroupSampler(run.identity, marker=run.marker, table=self._table)
        if self._sample(sampler) is None:  # priming; None: gone already (or not that process)
            self._vanished += 1
            self._sampling = None
            return
        interval = self.runtime.config.metrics_interval
        due = anyio.current_time()
        while True:
            due += interval
            now = anyio.current_time()
            if due < now:  # fell behind (a suspended host): skip the missed beats
                due = now + interval
            await anyio.sleep_until(due)
            sample = self._sample(sampler)
            if sample is None:
                self._vanished += 1
                self._sampling = None
                return
            if sample.ram_bytes == 0:
                # Every live process has resident pages: this is a zombie (dead, not yet
                # reaped by the process actor, which will report the exit). Not a sample.
                self._skipped += 1
                continue
            event = build_metrics_event(
                self.runtime.id,
                sample,
                players=len(self.runtime.rcon.players),
                fps=self.runtime.logs.fps,
                uptime=time.time() - run.started_at,
                timestamp=utc_timestamp(),
            )
            self.runtime.metrics_history.append(event)
            self._published += 1
            await self.runtime.publish(event)


def spec(runtime: ServerRuntime) -> ChildSpec:
    """The child spec of a server's metrics actor (permanent)."""
    return ChildSpec(
        id=METRICS,
        start=lambda: MetricsActor(runtime),
        restart=Restart.PERMANENT,
        name=runtime.child_name(METRICS),
    )
