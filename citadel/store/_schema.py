"""The SQLite schema as forward-only migrations, and the function that applies them.

Migration *n* (1-based) moves the database from version n-1 to n. A migration is never edited
once released; a change is a new migration appended to ``MIGRATIONS``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

from citadel.store._errors import SchemaTooNew, StoreError

_V1: Final = """
CREATE TABLE roles (
    name TEXT PRIMARY KEY,
    permissions TEXT NOT NULL,          -- JSON list
    servers TEXT,                       -- JSON list, NULL = every server
    builtin INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL REFERENCES roles(name) ON UPDATE CASCADE,
    tokens_valid_after REAL NOT NULL,
    created_at REAL NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX revoked_tokens_expires ON revoked_tokens(expires_at);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    user TEXT,
    ip TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    detail TEXT                         -- JSON object or NULL
);
CREATE INDEX audit_ts ON audit(ts);
CREATE TABLE servers (
    id TEXT PRIMARY KEY,
    config TEXT NOT NULL,               -- JSON ServerConfig
    created_at REAL NOT NULL
);
CREATE TABLE bans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id TEXT NOT NULL,
    guid TEXT,
    ip TEXT,
    reason TEXT NOT NULL,
    minutes INTEGER,                    -- NULL = permanent
    expires_at REAL,
    created_by TEXT,
    created_at REAL NOT NULL,
    CHECK (guid IS NOT NULL OR ip IS NOT NULL)
);
CREATE INDEX bans_server ON bans(server_id);
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    server_id TEXT,
    type TEXT NOT NULL,
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    severity TEXT NOT NULL
);
CREATE INDEX notifications_ts ON notifications(ts);
"""

_V2: Final = """
CREATE TABLE server_runs (
    server_id TEXT PRIMARY KEY,
    run TEXT NOT NULL,                  -- JSON RunInfo: pid, create time, command line, ...
    updated_at REAL NOT NULL
) WITHOUT ROWID;
"""

MIGRATIONS: Final[tuple[str, ...]] = (_V1, _V2)
"""Every migration, in order; ``len(MIGRATIONS)`` is the current schema version."""


def schema_version(conn: sqlite3.Connection) -> int:
    """Return the schema version recorded in the database (0 for a fresh file)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        return 0
    return int(row[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS) -> int:
    """Bring the database up to ``len(migrations)``, one transaction per migration.

    The connection must be in autocommit mode (``isolation_level=None``) so the explicit
    ``BEGIN``/``COMMIT`` here are the only transactions.

    Returns:
        The version after migrating.

    Raises:
        SchemaTooNew: The file was written by a newer Citadel (downgrades are not supported).
        StoreError: A migration failed; the database stays at the last good version.
    """
    current = schema_version(conn)
    target = len(migrations)
    if current > target:
        raise SchemaTooNew(f"database schema version {current} is newer than supported {target}")
    for version in range(current + 1, target + 1):
        script = (
            f"BEGIN;\n{migrations[version - 1]}\nUPDATE schema_version SET version = {version};"
        )
        try:
            conn.executescript(script)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"migration to schema version {version} failed: {exc}") from exc
    return target
