"""The exceptions of the actors library.

::

    ActorError
     ├── MailboxFull               the mailbox had no room and the policy says fail
     ├── ActorExited               the peer is not alive: it crashed, stopped, or is restarting
     ├── ActorKilled               an actor was killed on purpose (``Address.kill``): a crash
     ├── CallTimeout               no reply within the call's timeout (a late reply is discarded)
     ├── NameTaken                 a registry name is already in use
     ├── StartFailed               a child could not be started (its start raised)
     ├── RestartIntensityExceeded  too many restarts in the window: the supervisor gave up
     ├── TooManyChildren           a dynamic supervisor is at ``max_children``
     └── UnknownChild              no child with that id under this supervisor
"""

from __future__ import annotations


class ActorError(Exception):
    """Root of every error raised by the actors library."""


class MailboxFull(ActorError):
    """The mailbox is at capacity and its overflow policy refuses the message."""


class ActorExited(ActorError):
    """The actor is not alive: it crashed, was stopped, or is waiting to be restarted.

    Attributes:
        name: The actor's name.
        reason: Why it is not alive, e.g. ``"restarting"``, ``"stopped"``, or the crash.
    """

    def __init__(self, name: str, reason: object) -> None:
        super().__init__(f"actor {name!r} is not alive: {reason}")
        self.name = name
        self.reason = reason


class ActorKilled(ActorError):
    """Raised inside an actor killed with ``Address.kill``; its supervisor sees a crash."""


class CallTimeout(ActorError):
    """A call got no reply within its timeout."""


class NameTaken(ActorError):
    """A registry name is already bound to a live actor."""


class StartFailed(ActorError):
    """A child's start raised; the child is not running."""


class RestartIntensityExceeded(ActorError):
    """More restarts than ``intensity`` within ``period``: the supervisor stopped."""


class UnknownChild(ActorError):
    """The supervisor has no child with that id."""


class TooManyChildren(ActorError):
    """The supervisor already has ``max_children`` children."""
