"""The typed rows the store returns (frozen msgspec Structs; times are Unix seconds)."""

from __future__ import annotations

from typing import Any

import msgspec

from citadel.config import ServerConfig


class User(msgspec.Struct, frozen=True, kw_only=True):
    """A dashboard / API user.

    ``tokens_valid_after`` is the revocation cutoff: tokens issued (``iat``) before it are
    refused. It moves on password change, never on plain logout.
    """

    id: int
    username: str
    password_hash: str
    role: str
    tokens_valid_after: float
    created_at: float
    disabled: bool


class Role(msgspec.Struct, frozen=True, kw_only=True):
    """A named set of permissions over some servers (``servers`` None = every server)."""

    name: str
    permissions: tuple[str, ...]
    servers: tuple[str, ...] | None
    builtin: bool


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One audited API request."""

    id: int
    ts: float
    user: str | None
    ip: str | None
    method: str
    path: str
    status: int
    detail: dict[str, Any] | None


class StoredServer(msgspec.Struct, frozen=True, kw_only=True):
    """A server created through the API (file-configured servers are not stored)."""

    id: str
    config: ServerConfig
    created_at: float


class Ban(msgspec.Struct, frozen=True, kw_only=True):
    """A ban issued through Citadel; ``minutes``/``expires_at`` None means permanent."""

    id: int
    server_id: str
    guid: str | None
    ip: str | None
    reason: str
    minutes: int | None
    expires_at: float | None
    created_by: str | None
    created_at: float


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """A stored notification (``server_id`` None = host-wide)."""

    id: int
    ts: float
    server_id: str | None
    type: str
    title: str
    message: str
    severity: str
