"""Errors raised by the BattlEye RCon client.

The tree::

    RConError
     ├── LoginFailed        the server answered "wrong password"; do not retry until it changes
     ├── RConUnreachable    no answer to the login at all (RCon disabled, wrong port, not up yet)
     ├── RConDisconnected   the session is over (link dead, or closed by its owner)
     └── CommandTimeout     one command got no complete reply in time
"""

from __future__ import annotations


class RConError(Exception):
    """Root of every BattlEye RCon client error."""


class LoginFailed(RConError):
    """The server rejected the password.

    BattlEye blocks an IP after several failed logins, so the owner must not retry until the
    password changes.
    """


class RConUnreachable(RConError):
    """The server never answered the login within the bounded wait."""


class RConDisconnected(RConError):
    """The session ended; ``reason`` says why (link dead, closed by the owner)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CommandTimeout(RConError):
    """A command got no complete reply before its deadline or after every resend."""
