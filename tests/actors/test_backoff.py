"""Backoff schedule: exact delays with a scripted random source, cap, reset, overflow safety."""

from __future__ import annotations

import math

import pytest

from actors import Backoff
from actors._backoff import backoff_delay, next_attempt
from actors.testing import SequenceRandom


def _zero() -> float:
    return 0.0


def test_schedule_doubles_from_base_without_jitter() -> None:
    backoff = Backoff(base=0.5, cap=100.0, factor=2.0, jitter=0.0)
    delays = [backoff_delay(backoff, attempt, _zero) for attempt in range(5)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_jitter_lengthens_each_delay_by_the_scripted_fraction() -> None:
    backoff = Backoff(base=1.0, cap=100.0, factor=3.0, jitter=0.5)
    random = SequenceRandom(0.0, 0.5, 0.9)
    delays = [backoff_delay(backoff, attempt, random) for attempt in range(3)]
    assert delays == pytest.approx([1.0 * 1.0, 3.0 * 1.25, 9.0 * 1.45])


def test_jitter_never_shortens_the_first_delay() -> None:
    backoff = Backoff(base=2.0, cap=100.0, jitter=0.3)
    for value in (0.0, 0.25, 0.999):
        assert backoff_delay(backoff, 0, SequenceRandom(value)) >= 2.0


def test_cap_bounds_the_delay_jitter_included() -> None:
    backoff = Backoff(base=1.0, cap=10.0, factor=2.0, jitter=0.5)
    assert backoff_delay(backoff, 3, _zero) == 8.0
    assert backoff_delay(backoff, 3, SequenceRandom(0.2)) == pytest.approx(8.8)
    # Below the cap without jitter, beyond it with: the cap wins.
    assert backoff_delay(backoff, 3, SequenceRandom(0.9)) == 10.0
    assert backoff_delay(backoff, 4, _zero) == 10.0
    assert backoff_delay(backoff, 20, _zero) == 10.0
    assert backoff_delay(backoff, 20, SequenceRandom(0.5)) == 10.0


@pytest.mark.parametrize("r", [0.0, 0.5, 0.999])
def test_an_operators_cap_is_the_longest_wait(r: float) -> None:
    # Citadel's game-server defaults: 5 s doubling to 300 s, 20 % jitter.
    backoff = Backoff(base=5.0, cap=300.0, factor=2.0, jitter=0.2)
    delays = [backoff_delay(backoff, attempt, SequenceRandom(r)) for attempt in range(100)]
    assert max(delays) <= 300.0
    assert delays[6] == 300.0  # 5 * 2**6 = 320: capped, not 300 * 1.2 = 360
    assert delays[5] == pytest.approx(min(300.0, 160.0 * (1 + 0.2 * r)))


@pytest.mark.parametrize("attempt", [40, 63, 64, 1000, 10**9])
@pytest.mark.parametrize("factor", [2.0, 1e10, 1e300])
def test_huge_attempts_and_factors_give_the_cap_not_overflow(attempt: int, factor: float) -> None:
    backoff = Backoff(base=0.1, cap=30.0, factor=factor, jitter=0.0)
    delay = backoff_delay(backoff, attempt, _zero)
    assert delay == 30.0
    assert math.isfinite(delay)


def test_zero_base_restarts_at_once_whatever_the_attempt() -> None:
    backoff = Backoff.none()
    assert backoff.base == 0.0
    assert [backoff_delay(backoff, n, SequenceRandom(0.9)) for n in (0, 5, 100)] == [0, 0, 0]


def test_attempt_counter_grows_while_the_child_keeps_crashing_early() -> None:
    backoff = Backoff(reset_after=60.0)
    attempt = -1
    seen = []
    for _ in range(4):
        attempt = next_attempt(backoff, attempt, uptime=1.0)
        seen.append(attempt)
    assert seen == [0, 1, 2, 3]


def test_attempt_counter_resets_after_a_stable_period() -> None:
    backoff = Backoff(reset_after=60.0)
    assert next_attempt(backoff, 7, uptime=59.999) == 8
    assert next_attempt(backoff, 7, uptime=60.0) == 0
    assert next_attempt(backoff, 7, uptime=3600.0) == 0


def test_reset_brings_the_delay_back_to_base() -> None:
    backoff = Backoff(base=1.0, cap=100.0, factor=2.0, jitter=0.0, reset_after=10.0)
    attempt = next_attempt(backoff, 5, uptime=1.0)
    assert backoff_delay(backoff, attempt, _zero) == 64.0
    attempt = next_attempt(backoff, attempt, uptime=10.0)
    assert backoff_delay(backoff, attempt, _zero) == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": -1.0},
        {"cap": -1.0},
        {"jitter": -0.1},
        {"reset_after": -1.0},
        {"factor": 0.5},
    ],
)
def test_invalid_backoff_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)


def test_sequence_random_cycles_and_refuses_out_of_range_values() -> None:
    random = SequenceRandom(0.1, 0.2)
    assert [random() for _ in range(5)] == [0.1, 0.2, 0.1, 0.2, 0.1]
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        SequenceRandom(1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        SequenceRandom()
