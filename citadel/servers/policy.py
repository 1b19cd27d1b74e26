"""The process actor's decisions, as pure functions (no loop, no clock, no I/O).

* `decide_restart` - after a crash (or a failed automatic start): restart after which delay,
  or give up because the hourly budget is spent. DESIGN §2: jittered exponential backoff
  (defaults 5 s doubling to 300 s, reset after 10 min up), at most 10 automatic restarts per
  hour. Every automatic attempt counts, including one whose executable failed to spawn.
* `hang_verdict` - is a running server hung? Which evidence is trusted depends on what the
  server has shown it does (see the function; docs/operations.md "Hang").
* `adoption_plan` - a restarted Citadel found a run still alive: resume it as ``running``,
  ``starting`` (with what is left of its start timeout), or ``stopping``.

The actor applies the results; tests check the rules here without an event loop
(tests/citadel/servers/test_process_policy.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, Literal, NamedTuple

from actors import Backoff, add_restart, backoff_delay, next_attempt
from citadel.messages import ServerStatus

# --- defaults --------------------------------------------------------------------------------
RESTART_WINDOW: Final = 3600.0  # "at most N automatic restarts per hour"
RESTART_JITTER: Final = 0.2  # up to 20 % added to each backoff delay
# -----------------------------------------------------------------------------------------------


class RestartDecision(NamedTuple):
    """The outcome of `decide_restart`.

    Attributes:
        window: Times of the automatic restarts that count against the budget (the refused
            one is not recorded).
        attempt: The backoff attempt number (0 for the first restart after a stable run).
        delay: Seconds to wait before the restart, or None: give up.
    """

    window: tuple[float, ...]
    attempt: int
    delay: float | None


def restart_backoff(base: float, cap: float, reset_after: float) -> Backoff:
    """The backoff of automatic game-server restarts (jitter `RESTART_JITTER`)."""
    return Backoff(base=base, cap=cap, jitter=RESTART_JITTER, reset_after=reset_after)


def decide_restart(
    window: Sequence[float],
    attempt: int,
    *,
    now: float,
    uptime: float,
    backoff: Backoff,
    max_per_hour: int,
    random: Callable[[], float],
) -> RestartDecision:
    """Decide the next automatic restart after a crash at ``now``.

    Args:
        window: Times of earlier automatic restarts (as returned last time).
        attempt: The previous attempt number (-1 when there was none).
        now: The current time (same clock as ``window``).
        uptime: How long the crashed run was up (ready); at least ``backoff.reset_after``
            starts the backoff over. A start that failed has an uptime of 0.
        backoff: Delays (base, cap, factor, jitter, reset_after).
        max_per_hour: Automatic restarts allowed within `RESTART_WINDOW` seconds.
        random: Uniform source in [0, 1) for the jitter.
    """
    grown, allowed = add_restart(window, now, max_per_hour, RESTART_WINDOW)
    if not allowed:
        return RestartDecision(grown[:-1], attempt, None)
    attempt = next_attempt(backoff, attempt, uptime)
    return RestartDecision(grown, attempt, backoff_delay(backoff, attempt, random))


Evidence = Literal["log", "rcon", "none"]


class HangVerdict(NamedTuple):
    """The outcome of `hang_verdict`: which evidence was used and, if hung, why."""

    evidence: Evidence
    hung: bool
    reason: str = ""


def hang_verdict(
    *,
    now: float,
    timeout: float,
    since: float,
    last_log: float,
    logs_periodic: bool,
    rcon_heard: bool,
    last_rcon: float,
) -> HangVerdict:
    """Decide whether a running server is hung.

    * A server that logs periodically (it wrote ``Average server FPS`` in this run) is watched
      by its log alone: log silence past ``timeout`` means its game loop stopped, whatever RCON
      says (BattlEye may answer from another thread while the game loop is frozen).
    * Otherwise, a server whose RCON answered in this run is watched by RCON: hung when RCON
      *and* the log have both been silent past ``timeout`` (any line is a sign of life).
    * Otherwise there is no trustworthy heartbeat: a quiet server is not a hung one, so it is
      never killed for silence (the actor warns once).

    Args:
        now: Current time.
        timeout: ``hang_timeout``.
        since: When the run became ready (or was adopted): silence is counted from there.
        last_log: Time of the newest line from the game (any of its files).
        logs_periodic: Whether this run has written periodic lines (FPS).
        rcon_heard: Whether RCON is configured and answered in this run.
        last_rcon: Time of the newest RCON answer.
    """
    log_silence = now - max(since, last_log)
    if logs_periodic:
        if log_silence > timeout:
            return HangVerdict("log", True, f"hung: no log output for {log_silence:.0f} s")
        return HangVerdict("log", False)
    if rcon_heard:
        rcon_silence = now - max(since, last_rcon)
        if rcon_silence > timeout and log_silence > timeout:
            silence = min(rcon_silence, log_silence)
            return HangVerdict(
                "rcon", True, f"hung: no RCON answer and no log output for {silence:.0f} s"
            )
        return HangVerdict("rcon", False)
    return HangVerdict("none", False)


class AdoptionPlan(NamedTuple):
    """How to resume a run found alive after a Citadel restart.

    Attributes:
        status: ``running``, ``starting`` or ``stopping``.
        start_timeout_left: For ``starting``: seconds left of the start timeout, counted from
            the run's original start (0 means it has already expired).
    """

    status: ServerStatus
    start_timeout_left: float = 0.0


def adoption_plan(
    recorded: ServerStatus,
    *,
    ready: bool,
    started_at: float,
    now: float,
    start_timeout: float,
) -> AdoptionPlan:
    """Resume a live run: a stop in progress goes on, a ready run runs, else it is starting.

    Args:
        recorded: The status persisted before Citadel went down.
        ready: Whether the run is known to be ready (persisted, or found in its RPT).
        started_at: Wall-clock start of the run (Unix seconds).
        now: Wall clock now.
        start_timeout: The server's ``start_timeout``.
    """
    if recorded == "stopping":
        return AdoptionPlan("stopping")
    if ready:
        return AdoptionPlan("running")
    return AdoptionPlan("starting", max(0.0, start_timeout - max(0.0, now - started_at)))
