"""Which children a restart strategy touches, as pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ._spec import RUNNING, STOPPED, ChildState, Restart, Strategy


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


@dataclass(frozen=True, slots=True)
class GroupRestart:
    """What a restart of one child does to its siblings (the result of `group_restart`).

    Attributes:
        stop: Running siblings to stop, in the order to stop them (reverse start order).
        remove: Those of ``stop`` that are temporary: removed once stopped, not restarted.
        group: The children to restart together, in start order (the failed child included).
    """

    stop: tuple[str, ...]
    remove: tuple[str, ...]
    group: tuple[str, ...]


def group_restart(
    strategy: Strategy,
    order: Sequence[str],
    failed: str,
    states: Mapping[str, ChildState],
    restarts: Mapping[str, Restart],
) -> GroupRestart:
    """Decide which siblings stop, which are removed and which restart with ``failed``.

    As in OTP's supervisor: running siblings are stopped in reverse start order, and restarted
    with ``failed`` whatever their restart type, except temporary ones, which end with the group
    and are removed. Siblings already waiting for a restart join the group. A sibling that is
    stopped (by `SupervisorRef.terminate_child`, or a transient child that ended normally) stays
    stopped; OTP would start it again, but an operator's stop wins here.

    Args:
        strategy: The supervisor's strategy.
        order: Its children's ids in start order.
        failed: The child being restarted.
        states: Each child's state; a child missing here is left alone.
        restarts: Each child's restart type.
    """
    stop: list[str] = []
    remove: list[str] = []
    group: list[str] = []
    for other in reversed(affected_children(strategy, order, failed)):
        state = states.get(other)
        if state is None:
            continue
        if other != failed:
            if state == STOPPED:
                continue
            if state == RUNNING:
                stop.append(other)
                if restarts[other] is Restart.TEMPORARY:
                    remove.append(other)
                    continue
        group.append(other)
    return GroupRestart(stop=tuple(stop), remove=tuple(remove), group=tuple(reversed(group)))
