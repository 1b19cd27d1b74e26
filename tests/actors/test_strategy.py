"""Which children a restart strategy touches, and what a group restart does to each sibling."""

from __future__ import annotations

import pytest

from actors import Restart, Strategy
from actors._spec import RESTARTING, RUNNING, STOPPED, ChildState
from actors._strategy import GroupRestart, affected_children, group_restart

ORDER = ("a", "b", "c", "d")


@pytest.mark.parametrize(
    ("strategy", "failed", "expected"),
    [
        (Strategy.ONE_FOR_ONE, "a", ("a",)),
        (Strategy.ONE_FOR_ONE, "c", ("c",)),
        (Strategy.ONE_FOR_ALL, "a", ORDER),
        (Strategy.ONE_FOR_ALL, "c", ORDER),
        (Strategy.ONE_FOR_ALL, "d", ORDER),
        (Strategy.REST_FOR_ONE, "a", ORDER),
        (Strategy.REST_FOR_ONE, "b", ("b", "c", "d")),
        (Strategy.REST_FOR_ONE, "d", ("d",)),
    ],
)
def test_affected_children_in_start_order(
    strategy: Strategy, failed: str, expected: tuple[str, ...]
) -> None:
    assert affected_children(strategy, ORDER, failed) == expected


@pytest.mark.parametrize("strategy", list(Strategy))
def test_the_failed_child_is_always_included(strategy: Strategy) -> None:
    for failed in ORDER:
        assert failed in affected_children(strategy, ORDER, failed)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_a_child_missing_from_the_order_affects_only_itself(strategy: Strategy) -> None:
    assert affected_children(strategy, ORDER, "zz") == ("zz",)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_a_single_child(strategy: Strategy) -> None:
    assert affected_children(strategy, ["only"], "only") == ("only",)


def test_result_is_a_tuple_even_for_a_list_order() -> None:
    result = affected_children(Strategy.ONE_FOR_ALL, list(ORDER), "b")
    assert isinstance(result, tuple)
    assert result == ORDER


P, T = Restart.PERMANENT, Restart.TEMPORARY


def plan(
    strategy: Strategy,
    failed: str,
    states: dict[str, ChildState],
    restarts: dict[str, Restart] | None = None,
) -> GroupRestart:
    """Plan a restart over ORDER; children are permanent unless ``restarts`` says otherwise."""
    kinds = dict.fromkeys(ORDER, P) | (restarts or {})
    return group_restart(strategy, ORDER, failed, states, kinds)


# The crashed child is already stopped when its supervisor plans the restart.
ALL_UP_B_DOWN: dict[str, ChildState] = {"a": RUNNING, "b": STOPPED, "c": RUNNING, "d": RUNNING}


def test_one_for_one_touches_no_sibling() -> None:
    assert plan(Strategy.ONE_FOR_ONE, "b", ALL_UP_B_DOWN) == GroupRestart(
        stop=(), remove=(), group=("b",)
    )


def test_one_for_all_stops_running_siblings_in_reverse_start_order() -> None:
    assert plan(Strategy.ONE_FOR_ALL, "b", ALL_UP_B_DOWN) == GroupRestart(
        stop=("d", "c", "a"), remove=(), group=ORDER
    )


def test_rest_for_one_stops_only_the_children_started_after_the_failed_one() -> None:
    assert plan(Strategy.REST_FOR_ONE, "b", ALL_UP_B_DOWN) == GroupRestart(
        stop=("d", "c"), remove=(), group=("b", "c", "d")
    )


def test_a_running_temporary_sibling_is_stopped_and_removed_not_restarted() -> None:
    result = plan(Strategy.ONE_FOR_ALL, "b", ALL_UP_B_DOWN, {"c": T})
    assert result == GroupRestart(stop=("d", "c", "a"), remove=("c",), group=("a", "b", "d"))


def test_a_stopped_sibling_stays_stopped() -> None:
    states: dict[str, ChildState] = {"a": STOPPED, "b": STOPPED, "c": STOPPED, "d": RUNNING}
    assert plan(Strategy.ONE_FOR_ALL, "b", states) == GroupRestart(
        stop=("d",), remove=(), group=("b", "d")
    )


def test_a_sibling_waiting_for_its_restart_joins_the_group_without_a_stop() -> None:
    states: dict[str, ChildState] = {"a": RUNNING, "b": STOPPED, "c": RESTARTING, "d": RUNNING}
    assert plan(Strategy.REST_FOR_ONE, "b", states) == GroupRestart(
        stop=("d",), remove=(), group=("b", "c", "d")
    )


@pytest.mark.parametrize("state", [RUNNING, RESTARTING, STOPPED])
@pytest.mark.parametrize("strategy", list(Strategy))
def test_the_failed_child_is_restarted_whatever_its_state_and_never_stopped_here(
    strategy: Strategy, state: ChildState
) -> None:
    states: dict[str, ChildState] = {**ALL_UP_B_DOWN, "b": state}
    result = plan(strategy, "b", states, {"b": T})
    assert "b" in result.group
    assert "b" not in result.stop
    assert "b" not in result.remove


def test_a_child_unknown_to_the_supervisor_is_left_alone() -> None:
    states: dict[str, ChildState] = {"b": STOPPED, "d": RUNNING}
    assert plan(Strategy.ONE_FOR_ALL, "b", states) == GroupRestart(
        stop=("d",), remove=(), group=("b", "d")
    )
