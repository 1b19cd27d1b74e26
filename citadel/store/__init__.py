"""Citadel's durable state: one SQLite file in the data dir, behind a typed ``Store``.

Tables: users, roles, revoked_tokens, audit, servers (API-created), bans, notifications, plus
``schema_version`` for forward-only migrations (see ``_schema.MIGRATIONS``).
"""

from __future__ import annotations

from citadel.store._errors import Conflict, SchemaTooNew, StoreError
from citadel.store._records import AuditEntry, Ban, Notification, Role, StoredServer, User
from citadel.store._schema import MIGRATIONS, migrate, schema_version
from citadel.store._store import DB_FILENAME, Store

__all__ = [
    "DB_FILENAME",
    "MIGRATIONS",
    "AuditEntry",
    "Ban",
    "Conflict",
    "Notification",
    "Role",
    "SchemaTooNew",
    "Store",
    "StoreError",
    "StoredServer",
    "User",
    "migrate",
    "schema_version",
]
