"""Which children a restart strategy touches."""

from __future__ import annotations

import pytest

from actors import Strategy
from actors._strategy import affected_children

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
