"""Structured reports: every crash, restart, give-up and mailbox drop becomes one.

Supervisors never log; they emit `Report` records to a `ReportBus`. The application subscribes
and turns them into notifications, logs or metrics. Subscribers are plain callables invoked
synchronously in the reporting task, so they must be quick and must not block; an exception in a
subscriber is caught and counted so that reporting can never take a supervisor down.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio


class ReportKind(enum.Enum):
    """What happened."""

    #: A child ended with an error. Context ``"running"``: it crashed by itself; ``"start"``:
    #: its start raised; ``"shutdown"``: its stop raised (``on_stop`` or its exit stack).
    CRASH = "crash"
    #: A child was restarted (context says after which delay).
    RESTART = "restart"
    #: A restart is scheduled after a backoff delay.
    RESTART_SCHEDULED = "restart_scheduled"
    #: A child did not stop within its shutdown timeout and was cancelled.
    SHUTDOWN_TIMEOUT = "shutdown_timeout"
    #: Restart intensity exceeded: the supervisor stops all children and exits with an error.
    GIVE_UP = "give_up"
    #: A supervisor's exit reached its parent as a crash (the parent's own report follows).
    ESCALATION = "escalation"
    #: A mailbox discarded a message (drop-oldest, or a fail-fast refusal).
    MAILBOX_DROP = "mailbox_drop"


@dataclass(frozen=True, slots=True)
class Report:
    """One structured report, in the spirit of OTP's supervisor reports.

    Attributes:
        kind: What happened.
        supervisor: Name of the supervisor (or of the actor, for mailbox reports).
        offender: Id of the child or actor concerned.
        reason: The exception or a short text.
        context: Free-form details (delay, attempt, dropped count, ...).
        time: ``anyio.current_time()`` when the report was made.
    """

    kind: ReportKind
    supervisor: str
    offender: str
    reason: object
    context: dict[str, object] = field(default_factory=dict)
    time: float = 0.0


Subscriber = Callable[[Report], None]


class ReportBus:
    """Fans reports out to subscribers."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self.subscriber_errors = 0

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` for every future report. Returns a function that unsubscribes."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def emit(
        self,
        kind: ReportKind,
        supervisor: str,
        offender: str,
        reason: object,
        **context: object,
    ) -> Report:
        """Build a report stamped with the current time and deliver it to every subscriber."""
        report = Report(kind, supervisor, offender, reason, context, anyio.current_time())
        for subscriber in tuple(self._subscribers):
            try:
                subscriber(report)
            except Exception:
                # A faulty observer must not break supervision; it is counted, not hidden.
                self.subscriber_errors += 1
        return report
