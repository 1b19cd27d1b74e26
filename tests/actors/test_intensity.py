"""Restart intensity over a sliding window: the edges of the window and of the limit."""

from __future__ import annotations

from actors._intensity import add_restart, prune


def test_prune_keeps_only_the_half_open_window() -> None:
    # The window is (now - period, now]: a restart exactly ``period`` ago has left it.
    assert prune((0.0, 4.999, 5.0, 9.0, 10.0), now=10.0, period=5.0) == (9.0, 10.0)
    assert prune((0.0, 5.0, 5.001, 9.0, 10.0), now=10.0, period=5.0) == (5.001, 9.0, 10.0)


def test_restarts_up_to_intensity_are_allowed_and_the_next_is_refused() -> None:
    window: tuple[float, ...] = ()
    verdicts = []
    for now in (1.0, 2.0, 3.0, 4.0):
        window, allowed = add_restart(window, now, intensity=3, period=5.0)
        verdicts.append(allowed)
    assert verdicts == [True, True, True, False]
    assert window == (1.0, 2.0, 3.0, 4.0)


def test_restarts_spread_wider_than_the_period_are_always_allowed() -> None:
    window: tuple[float, ...] = ()
    for now in (0.0, 5.0, 10.0, 15.0, 20.0, 25.0):
        window, allowed = add_restart(window, now, intensity=1, period=5.0)
        assert allowed, now
        assert window == (now,)


def test_a_restart_exactly_period_later_no_longer_counts() -> None:
    window, allowed = add_restart((0.0,), 5.0, intensity=1, period=5.0)
    assert allowed
    assert window == (5.0,)


def test_a_restart_just_inside_the_period_still_counts() -> None:
    window, allowed = add_restart((0.0,), 4.999, intensity=1, period=5.0)
    assert not allowed
    assert window == (0.0, 4.999)


def test_zero_intensity_refuses_the_first_restart() -> None:
    window, allowed = add_restart((), 0.0, intensity=0, period=5.0)
    assert not allowed
    assert window == (0.0,)


def test_simultaneous_restarts_all_count() -> None:
    window: tuple[float, ...] = (7.0, 7.0)
    window, allowed = add_restart(window, 7.0, intensity=3, period=1.0)
    assert allowed
    window, allowed = add_restart(window, 7.0, intensity=3, period=1.0)
    assert not allowed
    assert len(window) == 4
