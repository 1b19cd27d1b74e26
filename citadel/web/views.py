"""Turning stored records into API views."""

from __future__ import annotations

from citadel.messages import utc_timestamp
from citadel.messages.rest import AuditTallyView, AuditView, RoleView, UserView
from citadel.store import AuditEntry, Role, User
from citadel.web.audit import read_tally


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
    """An audit row for the API: a tallied row says how many refusals it stands for."""
    tally = read_tally(entry.user, entry.detail)
    return AuditView(
        id=entry.id,
        timestamp=utc_timestamp(entry.ts),
        user=entry.user,
        ip=entry.ip,
        method=entry.method,
        path=entry.path,
        status=entry.status,
        tally=None
        if tally is None
        else AuditTallyView(
            count=tally.count,
            first=utc_timestamp(tally.first),
            last=utc_timestamp(tally.last),
            paths=tally.paths,
        ),
    )
