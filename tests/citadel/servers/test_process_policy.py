"""The process actor's pure decisions: restart budget and backoff, hang verdict, adoption."""

from __future__ import annotations

import pytest

from citadel.config import (
    DEFAULT_MAX_RESTARTS_PER_HOUR,
    DEFAULT_RESTART_BACKOFF_BASE,
    DEFAULT_RESTART_BACKOFF_CAP,
    DEFAULT_RESTART_RESET_AFTER,
)
from citadel.servers.policy import (
    RESTART_JITTER,
    RESTART_WINDOW,
    AdoptionPlan,
    adoption_plan,
    decide_restart,
    hang_verdict,
    restart_backoff,
)

DEFAULT_BACKOFF = restart_backoff(
    DEFAULT_RESTART_BACKOFF_BASE, DEFAULT_RESTART_BACKOFF_CAP, DEFAULT_RESTART_RESET_AFTER
)


def no_jitter() -> float:
    return 0.0


def crash_loop(
    count: int, *, every: float, uptime: float = 0.0, start: float = 1000.0
) -> list[float | None]:
    """Delays decided for ``count`` crashes, one every ``every`` seconds after its restart."""
    window: tuple[float, ...] = ()
    attempt = -1
    now = start
    delays: list[float | None] = []
    for _ in range(count):
        window, attempt, delay = decide_restart(
            window,
            attempt,
            now=now,
            uptime=uptime,
            backoff=DEFAULT_BACKOFF,
            max_per_hour=DEFAULT_MAX_RESTARTS_PER_HOUR,
            random=no_jitter,
        )
        delays.append(delay)
        now += (delay or 0.0) + every
    return delays


def test_defaults_are_the_design_numbers() -> None:
    assert (DEFAULT_RESTART_BACKOFF_BASE, DEFAULT_RESTART_BACKOFF_CAP) == (5.0, 300.0)
    assert DEFAULT_RESTART_RESET_AFTER == 600.0
    assert DEFAULT_MAX_RESTARTS_PER_HOUR == 10
    assert RESTART_WINDOW == 3600.0


def test_backoff_doubles_from_5_s_to_the_300_s_cap_then_gives_up_after_10_in_an_hour() -> None:
    # Crashes right after each restart: the whole loop fits in an hour (1515 s of backoff).
    delays = crash_loop(11, every=1.0)
    assert delays == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0, 300.0, None]


def test_the_budget_is_a_sliding_hour() -> None:
    # One crash every 400 s: never more than 10 restarts in any hour, so never given up...
    assert None not in crash_loop(30, every=400.0, uptime=DEFAULT_RESTART_RESET_AFTER)
    # ... but 11 within the hour are refused, even with long uptimes (5 s delays).
    delays = crash_loop(11, every=100.0, uptime=DEFAULT_RESTART_RESET_AFTER)
    assert delays[:10] == [5.0] * 10
    assert delays[10] is None


def test_a_refused_restart_is_not_counted_and_the_window_slides_on() -> None:
    window = tuple(float(t) for t in range(10))
    refused = decide_restart(
        window,
        9,
        now=100.0,
        uptime=0.0,
        backoff=DEFAULT_BACKOFF,
        max_per_hour=10,
        random=no_jitter,
    )
    assert refused.delay is None
    assert refused.window == window
    assert refused.attempt == 9
    later = decide_restart(
        refused.window,
        refused.attempt,
        now=RESTART_WINDOW + 0.5,  # the first restart (t=0) left the hour
        uptime=0.0,
        backoff=DEFAULT_BACKOFF,
        max_per_hour=10,
        random=no_jitter,
    )
    assert later.delay == DEFAULT_RESTART_BACKOFF_CAP
    assert later.window == (*window[1:], RESTART_WINDOW + 0.5)


def test_ten_minutes_up_resets_the_backoff() -> None:
    window, attempt, delay = decide_restart(
        (),
        6,  # the last delay was the 300 s cap
        now=0.0,
        uptime=DEFAULT_RESTART_RESET_AFTER - 1,
        backoff=DEFAULT_BACKOFF,
        max_per_hour=10,
        random=no_jitter,
    )
    assert (attempt, delay) == (7, 300.0)
    _, attempt, delay = decide_restart(
        window,
        attempt,
        now=1.0,
        uptime=DEFAULT_RESTART_RESET_AFTER,
        backoff=DEFAULT_BACKOFF,
        max_per_hour=10,
        random=no_jitter,
    )
    assert (attempt, delay) == (0, 5.0)


def test_jitter_only_lengthens_by_at_most_a_fifth() -> None:
    _, _, longest = decide_restart(
        (),
        -1,
        now=0.0,
        uptime=0.0,
        backoff=DEFAULT_BACKOFF,
        max_per_hour=10,
        random=lambda: 0.999999,
    )
    assert longest is not None
    assert 5.0 < longest < 5.0 * (1 + RESTART_JITTER)


def test_zero_restarts_per_hour_never_restarts() -> None:
    assert (
        decide_restart(
            (), -1, now=0.0, uptime=0.0, backoff=DEFAULT_BACKOFF, max_per_hour=0, random=no_jitter
        ).delay
        is None
    )


# --- hang ---------------------------------------------------------------------------------------

TIMEOUT = 180.0


def verdict(
    *, log_silence: float, rcon_silence: float, logs_periodic: bool, rcon_heard: bool
) -> tuple[str, bool]:
    now = 10_000.0
    result = hang_verdict(
        now=now,
        timeout=TIMEOUT,
        since=0.0,
        last_log=now - log_silence,
        logs_periodic=logs_periodic,
        rcon_heard=rcon_heard,
        last_rcon=now - rcon_silence,
    )
    return result.evidence, result.hung


def test_a_server_that_logs_fps_is_hung_when_its_log_stops_even_if_rcon_answers() -> None:
    assert verdict(log_silence=181, rcon_silence=1, logs_periodic=True, rcon_heard=True) == (
        "log",
        True,
    )
    assert verdict(log_silence=179, rcon_silence=900, logs_periodic=True, rcon_heard=True) == (
        "log",
        False,
    )


def test_a_quiet_server_with_rcon_is_hung_only_when_rcon_and_log_are_both_silent() -> None:
    args = {"logs_periodic": False, "rcon_heard": True}
    assert verdict(log_silence=900, rcon_silence=181, **args) == ("rcon", True)
    assert verdict(log_silence=900, rcon_silence=100, **args) == ("rcon", False)
    assert verdict(log_silence=10, rcon_silence=900, **args) == ("rcon", False)


def test_a_quiet_server_without_rcon_is_never_killed_for_silence() -> None:
    assert verdict(log_silence=9000, rcon_silence=9000, logs_periodic=False, rcon_heard=False) == (
        "none",
        False,
    )


def test_silence_counts_from_readiness_and_the_reason_says_how_long() -> None:
    result = hang_verdict(
        now=1000.0,
        timeout=TIMEOUT,
        since=900.0,  # ready 100 s ago; old log lines do not count against it
        last_log=0.0,
        logs_periodic=True,
        rcon_heard=False,
        last_rcon=0.0,
    )
    assert not result.hung
    hung = hang_verdict(
        now=1090.0,
        timeout=TIMEOUT,
        since=900.0,
        last_log=0.0,
        logs_periodic=True,
        rcon_heard=False,
        last_rcon=0.0,
    )
    assert hung.hung
    assert hung.reason == "hung: no log output for 190 s"


# --- adoption -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recorded", "ready", "elapsed", "plan"),
    [
        ("running", True, 5000.0, AdoptionPlan("running")),
        ("starting", True, 20.0, AdoptionPlan("running")),  # became ready while Citadel was down
        ("starting", False, 3.0, AdoptionPlan("starting", 5.0)),  # counted from the real start
        ("starting", False, 30.0, AdoptionPlan("starting", 0.0)),  # already too late
        ("running", False, 3.0, AdoptionPlan("starting", 5.0)),  # readiness unknown: prove it
        ("stopping", True, 3.0, AdoptionPlan("stopping")),  # a stop in progress goes on
    ],
)
def test_adoption_resumes_the_recorded_state(
    recorded: str, ready: bool, elapsed: float, plan: AdoptionPlan
) -> None:
    now = 1_700_000_000.0
    assert (
        adoption_plan(
            recorded,  # type: ignore[arg-type]  # parametrized literal
            ready=ready,
            started_at=now - elapsed,
            now=now,
            start_timeout=8.0,
        )
        == plan
    )
