"""Turning stored records into API views."""

from __future__ import annotations

from citadel.messages import utc_timestamp
from citadel.messages.rest import AuditView, RoleView, UserView
from citadel.store import AuditEntry, Role, User


def user_view(user: User) -> UserView:
    return UserView(
        username=user.username,
        role=user.role,
        disabled=user.disabled,
        created_at=utc_timestamp(user.created_at),
    )


def role_view(role: Role) -> RoleView:
    return RoleView(
        name=role.name,
        permissions=list(role.permissions),
        servers=None if role.servers is None else list(role.servers),
        builtin=role.builtin,
    )


def audit_view(entry: AuditEntry) -> AuditView:
    return AuditView(
        id=entry.id,
        timestamp=utc_timestamp(entry.ts),
        user=entry.user,
        ip=entry.ip,
        method=entry.method,
        path=entry.path,
        status=entry.status,
    )
