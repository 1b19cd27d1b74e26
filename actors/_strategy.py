"""Which children a restart strategy touches, as a pure function."""

from __future__ import annotations

from collections.abc import Sequence

from ._spec import Strategy


def affected_children(strategy: Strategy, order: Sequence[str], failed: str) -> tuple[str, ...]:
    """Return the ids, in start order, that stop and restart because ``failed`` crashed.

    ``order`` is the supervisor's children in start order. The failed child is always included.
    The caller stops the others in reverse of the returned order and starts all in this order.
    """
    if strategy is Strategy.ONE_FOR_ONE or failed not in order:
        return (failed,)
    if strategy is Strategy.ONE_FOR_ALL:
        return tuple(order)
    index = order.index(failed)
    return tuple(order[index:])
