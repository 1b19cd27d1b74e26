"""Who may receive what: client scopes, outgoing events and the delivery rule.

Everything here is pure: the rule is a function of a client's scope and an event's kind and
server, so it is unit-tested without sockets or an event loop.
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = [
    "ALL_PERMISSIONS",
    "EVENT_PERMISSIONS",
    "FULL",
    "REDACTED",
    "ClientScope",
    "Outgoing",
    "may_receive",
    "select_variant",
]

ALL_PERMISSIONS: Final = "*"
"""The permission that stands for every permission."""

FULL: Final = 0
"""Variant index of an event's full payload."""
REDACTED: Final = 1
"""Variant index of an event's redacted payload."""

EVENT_PERMISSIONS: Final[dict[str, str]] = {
    "serverStatus": "server.view",
    "notification": "server.view",
    "updateProgress": "server.view",
    "backupCreated": "server.view",
    "backupRestore": "server.view",
    "dangerzoneProgress": "server.view",
    "hookResult": "server.view",
    "serverRemoved": "server.view",
    "players": "players.view",
    "mapData": "players.view",
    "log": "logs.view",
    "metrics": "metrics.view",
    "mods": "mods.view",
    "modInstallProgress": "mods.view",
}
"""The permission a client needs to receive a server-scoped event of each kind.

A kind missing from this table goes to admins only: a new event must be given a permission
here before ordinary roles see it (deny by default).
"""


class ClientScope(msgspec.Struct, frozen=True):
    """What one connected client may see.

    Attributes:
        servers: The server ids in scope, or ``None`` for every server.
        permissions: Permission names; ``"*"`` grants all of them.
        is_admin: Admins see every server, every kind and host-wide events.
    """

    servers: frozenset[str] | None
    permissions: frozenset[str]
    is_admin: bool = False

    def has(self, permission: str) -> bool:
        """Tell whether this scope holds ``permission`` (admins hold all)."""
        return (
            self.is_admin or permission in self.permissions or ALL_PERMISSIONS in self.permissions
        )


class Outgoing(msgspec.Struct, frozen=True):
    """One event to fan out, its JSON payload already encoded once.

    Attributes:
        name: The Socket.IO event name (``serverStatus``, ``log``, ...).
        server_id: The server the event is about, or ``None`` for a host-wide event.
        payload: The JSON document sent as the event's single argument.
        redacted: A variant of ``payload`` for clients lacking ``redact_unless``.
        redact_unless: The permission that entitles a client to the full ``payload``.
    """

    name: str
    server_id: str | None
    payload: bytes
    redacted: bytes | None = None
    redact_unless: str | None = None


def may_receive(scope: ClientScope, name: str, server_id: str | None) -> bool:
    """Apply the delivery rule: may a client with ``scope`` receive this event?

    Host-wide events (``server_id`` is ``None``) go to admins only. A server-scoped event goes
    to clients whose scope holds the server and whose permissions allow the kind.
    """
    if scope.is_admin:
        return True
    if server_id is None:
        return False
    if scope.servers is not None and server_id not in scope.servers:
        return False
    permission = EVENT_PERMISSIONS.get(name)
    return permission is not None and scope.has(permission)


def select_variant(scope: ClientScope, event: Outgoing) -> int | None:
    """Choose which body of ``event`` a client with ``scope`` gets, after the delivery rule.

    Returns:
        ``FULL`` or ``REDACTED``, or ``None`` when the client must not receive the event. An
        event that names ``redact_unless`` but carries no redacted body is withheld from
        clients lacking that permission (fail closed: there is nothing safe to send them).
    """
    if not may_receive(scope, event.name, event.server_id):
        return None
    if event.redact_unless is None or scope.has(event.redact_unless):
        return FULL
    return REDACTED if event.redacted is not None else None
