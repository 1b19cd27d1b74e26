"""Permissions, the built-in roles and the pure rule that decides what a role may do.

This module imports nothing from Citadel, so the store can seed roles from it without an
import cycle.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

Permission = Literal[
    "server.view",
    "server.start",
    "server.stop",
    "server.restart",
    "server.rcon",
    "players.view",
    "players.kick",
    "players.ban",
    "logs.view",
    "metrics.view",
    "mods.view",
    "mods.install",
    "backups.manage",
    "hooks.manage",
    "users.manage",
    "*",
]

ALL: Final = "*"
"""The wildcard permission: everything, including permissions added later."""

PERMISSIONS: Final[tuple[str, ...]] = (
    "server.view",
    "server.start",
    "server.stop",
    "server.restart",
    "server.rcon",
    "players.view",
    "players.kick",
    "players.ban",
    "logs.view",
    "metrics.view",
    "mods.view",
    "mods.install",
    "backups.manage",
    "hooks.manage",
    "users.manage",
    ALL,
)
"""Every permission a role may hold, in documentation order."""

_VIEWER: Final = ("server.view", "players.view", "logs.view", "metrics.view", "mods.view")

BUILTIN_ROLES: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]]] = {
    "admin": ((ALL,), None),
    "operator": (
        (
            "server.view",
            "server.start",
            "server.stop",
            "server.restart",
            "server.rcon",
            "players.view",
            "players.kick",
            "players.ban",
            "logs.view",
            "metrics.view",
            "mods.view",
            "backups.manage",
        ),
        None,
    ),
    "viewer": (_VIEWER, None),
}
"""Built-in roles: name -> (permissions, servers or None for every server). Not editable."""


def unknown_permissions(permissions: Iterable[str]) -> list[str]:
    """Return the entries of ``permissions`` that are not in ``PERMISSIONS`` (sorted)."""
    return sorted(set(permissions) - set(PERMISSIONS))


def allows(
    permissions: frozenset[str],
    servers: frozenset[str] | None,
    permission: str,
    server_id: str | None = None,
) -> bool:
    """Decide whether a role with these grants may use ``permission`` (on ``server_id``).

    Args:
        permissions: The role's permissions; ``"*"`` grants all.
        servers: The servers in the role's scope, or ``None`` for every server.
        permission: The permission asked for.
        server_id: The server acted on; ``None`` for host-wide actions, which a role limited to
            some servers is never allowed (it could otherwise reach servers outside its scope).

    Returns:
        True when both the permission and the server scope allow it.
    """
    if ALL not in permissions and permission not in permissions:
        return False
    if servers is None:
        return True
    return server_id is not None and server_id in servers


def missing_grants(
    holder_permissions: frozenset[str],
    holder_servers: frozenset[str] | None,
    permissions: Iterable[str],
    servers: Iterable[str] | None,
) -> list[str]:
    """List what a role with ``permissions`` over ``servers`` grants beyond the holder's own.

    The rule against privilege escalation: whoever manages users and roles may only give out,
    edit or take away what they hold themselves. Empty means the holder covers the role.

    Args:
        holder_permissions: The acting principal's permissions (``"*"`` covers every one).
        holder_servers: The acting principal's scope, ``None`` for every server.
        permissions: The permissions of the role given, edited or taken away.
        servers: That role's scope, ``None`` for every server.

    Returns:
        Human phrases, e.g. ``["'*'", "'server.rcon'", "server 'bravo'", "every server"]``.
    """
    missing: list[str] = []
    if ALL not in holder_permissions:
        missing.extend(f"{p!r}" for p in sorted(set(permissions) - holder_permissions))
    if holder_servers is not None:
        if servers is None:
            missing.append("every server")
        else:
            missing.extend(f"server {s!r}" for s in sorted(set(servers) - holder_servers))
    return missing
