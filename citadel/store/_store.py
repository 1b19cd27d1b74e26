"""The ``Store``: Citadel's durable state in one SQLite file, behind typed methods."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import msgspec

from citadel.auth._names import check_username
from citadel.auth.permissions import BUILTIN_ROLES, unknown_permissions
from citadel.config import ServerConfig
from citadel.files import PRIVATE_MODE
from citadel.store._errors import Conflict, StoreError
from citadel.store._records import AuditEntry, Ban, Notification, Role, StoredServer, User
from citadel.store._schema import MIGRATIONS, migrate

DB_FILENAME: Final = "citadel.sqlite3"
BUSY_TIMEOUT_MS: Final = 5000
DEFAULT_LIST_LIMIT: Final = 100

_USER_COLUMNS: Final = "id, username, password_hash, role, tokens_valid_after, created_at, disabled"
_BAN_COLUMNS: Final = "id, server_id, guid, ip, reason, minutes, expires_at, created_by, created_at"
_NOTIFICATION_COLUMNS: Final = "id, ts, server_id, type, title, message, severity"
_SERVER_DECODER: Final = msgspec.json.Decoder(ServerConfig)
_DETAIL_DECODER: Final = msgspec.json.Decoder(dict[str, Any])


def _user(row: sqlite3.Row) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        role=row["role"],
        tokens_valid_after=row["tokens_valid_after"],
        created_at=row["created_at"],
        disabled=bool(row["disabled"]),
    )


def _role(row: sqlite3.Row) -> Role:
    servers = row["servers"]
    return Role(
        name=row["name"],
        permissions=tuple(json.loads(row["permissions"])),
        servers=None if servers is None else tuple(json.loads(servers)),
        builtin=bool(row["builtin"]),
    )


def _fields(row: sqlite3.Row) -> dict[str, Any]:
    # sqlite3.Row iterates over values, not keys.
    return dict(zip(row.keys(), row, strict=True))


def _ban(row: sqlite3.Row) -> Ban:
    return Ban(**_fields(row))


def _notification(row: sqlite3.Row) -> Notification:
    return Notification(**_fields(row))


class Store:
    """Citadel's SQLite store: users, roles, revoked tokens, audit, servers, bans, notifications.

    One connection in WAL mode. The app runs every call on one worker thread (the single
    writer); a lock additionally serialises calls, so using it from another thread is safe,
    just not concurrent. Methods take an optional ``now`` (Unix seconds) so tests control time.

    Example:
        >>> with Store.open(tmp_dir) as store:  # doctest: +SKIP
        ...     store.create_user("admin", hash_password("pw"), "admin")
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        migrations: Sequence[str] = MIGRATIONS,
    ) -> None:
        """Open (creating if needed) and migrate the database at ``path``."""
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.RLock()
        self._commits = 0
        try:
            _make_private(self.path)
        except OSError as exc:
            raise StoreError(f"{self.path}: {exc.strerror or exc}") from exc
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so migrations and multi-row
        # changes are exactly one transaction each.
        try:
            self._conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self.schema_version = migrate(self._conn, migrations)
            self._seed_builtin_roles()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(f"{self.path}: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open(cls, data_dir: str | Path, *, clock: Callable[[], float] = time.time) -> Store:
        """Open the store file inside ``data_dir`` (created with mode 0700 if missing)."""
        directory = Path(data_dir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(directory / DB_FILENAME, clock=clock)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _now(self, now: float | None) -> float:
        return float(self._clock() if now is None else now)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; integrity errors become ``Conflict``."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except sqlite3.IntegrityError as exc:
                self._conn.execute("ROLLBACK")
                raise Conflict(str(exc)) from exc
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self._commits += 1

    def revision(self) -> tuple[int, int]:
        """A marker that moves whenever anything is committed to the file, by anyone.

        ``PRAGMA data_version`` moves when *another* connection commits (another process such
        as ``citadel user passwd``, in WAL mode), and a counter of this connection's own
        commits covers the rest. Costs a few microseconds: cheap enough to ask on every token
        check, so a cache keyed on it is never stale.
        """
        with self._lock:
            row = self._conn.execute("PRAGMA data_version").fetchone()
            return int(row[0]), self._commits

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def _seed_builtin_roles(self) -> None:
        # Re-written on every open so built-in roles always match this version of the code.
        with self._tx() as conn:
            for name, (permissions, servers) in BUILTIN_ROLES.items():
                conn.execute(
                    "INSERT INTO roles (name, permissions, servers, builtin) VALUES (?, ?, ?, 1)"
                    " ON CONFLICT(name) DO UPDATE SET permissions = excluded.permissions,"
                    " servers = excluded.servers, builtin = 1",
                    (name, json.dumps(permissions), _json_or_null(servers)),
                )

    # ------------------------------------------------------------------ users

    def create_user(
        self, username: str, password_hash: str, role: str, *, now: float | None = None
    ) -> User:
        """Create a user; tokens are valid from its creation on.

        Raises:
            Conflict: The username is taken or the role does not exist.
            ValueError: The username breaks the rule of `citadel.auth.check_username`.
        """
        check_username(username)
        at = self._now(now)
        with self._tx() as conn:
            # Names are ASCII (check_username), so NOCASE is exact: "Alice" beside "alice"
            # would be two accounts an audit reader or a colleague cannot tell apart.
            taken = conn.execute(
                "SELECT username FROM users WHERE username = ? COLLATE NOCASE", (username,)
            ).fetchone()
            if taken is not None:
                raise Conflict(f"user {taken[0]!r} already exists (names ignore case)")
            cursor = conn.execute(
                "INSERT INTO users (username, password_hash, role, tokens_valid_after,"
                " created_at, disabled) VALUES (?, ?, ?, ?, ?, 0)",
                (username, password_hash, role, at, at),
            )
            user_id = cursor.lastrowid
        user = self.get_user_by_id(int(user_id or 0))
        if user is None:  # pragma: no cover - we just inserted it under the lock
            raise StoreError("created user vanished")
        return user

    def get_user(self, username: str) -> User | None:
        """Return the user called ``username``, or None."""
        row = self._one(f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", (username,))
        return None if row is None else _user(row)

    def get_user_by_id(self, user_id: int) -> User | None:
        """Return the user with this id, or None."""
        row = self._one(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
        return None if row is None else _user(row)

    def list_users(self) -> list[User]:
        """Return every user, by id."""
        return [_user(r) for r in self._all(f"SELECT {_USER_COLUMNS} FROM users ORDER BY id")]

    def count_users(self) -> int:
        """Return how many users exist (first start creates ``admin`` when zero)."""
        row = self._one("SELECT COUNT(*) FROM users")
        return int(row[0]) if row else 0

    def set_password(
        self, username: str, password_hash: str, *, now: float | None = None
    ) -> User | None:
        """Change a password and revoke every token issued before now.

        Tokens issued after this call are valid at once (the cutoff is the change time, not
        a token lifetime later).
        """
        at = self._now(now)
        with self._tx() as conn:
            conn.execute(
                "UPDATE users SET password_hash = ?, tokens_valid_after = ? WHERE username = ?",
                (password_hash, at, username),
            )
        return self.get_user(username)

    def revoke_user_tokens(self, username: str, *, now: float | None = None) -> User | None:
        """Refuse every token of this user issued before now ("log out everywhere")."""
        at = self._now(now)
        with self._tx() as conn:
            conn.execute(
                "UPDATE users SET tokens_valid_after = ? WHERE username = ?", (at, username)
            )
        return self.get_user(username)

    def set_role(self, username: str, role: str) -> User | None:
        """Give a user another role.

        Raises:
            Conflict: The role does not exist.
        """
        with self._tx() as conn:
            conn.execute("UPDATE users SET role = ? WHERE username = ?", (role, username))
        return self.get_user(username)

    def set_disabled(self, username: str, disabled: bool) -> User | None:
        """Disable or re-enable a user (a disabled user's tokens are refused)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE users SET disabled = ? WHERE username = ?", (int(disabled), username)
            )
        return self.get_user(username)

    def delete_user(self, username: str) -> bool:
        """Delete a user; True if one was deleted."""
        with self._tx() as conn:
            return conn.execute("DELETE FROM users WHERE username = ?", (username,)).rowcount > 0

    # ------------------------------------------------------------------ roles

    def get_role(self, name: str) -> Role | None:
        """Return the role called ``name``, or None."""
        row = self._one("SELECT * FROM roles WHERE name = ?", (name,))
        return None if row is None else _role(row)

    def list_roles(self) -> list[Role]:
        """Return every role, built-ins first, then by name."""
        return [_role(r) for r in self._all("SELECT * FROM roles ORDER BY builtin DESC, name")]

    def save_role(
        self, name: str, permissions: Sequence[str], servers: Sequence[str] | None
    ) -> Role:
        """Create or replace a custom role.

        Raises:
            Conflict: ``name`` is a built-in role.
            ValueError: An unknown permission.
        """
        unknown = unknown_permissions(permissions)
        if unknown:
            raise ValueError(f"unknown permissions: {', '.join(unknown)}")
        if name in BUILTIN_ROLES:
            raise Conflict(f"role {name!r} is built in")
        perms = sorted(set(permissions))
        scope = None if servers is None else sorted(set(servers))
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO roles (name, permissions, servers, builtin) VALUES (?, ?, ?, 0)"
                " ON CONFLICT(name) DO UPDATE SET permissions = excluded.permissions,"
                " servers = excluded.servers",
                (name, json.dumps(perms), _json_or_null(scope)),
            )
        return Role(
            name=name,
            permissions=tuple(perms),
            servers=None if scope is None else tuple(scope),
            builtin=False,
        )

    def delete_role(self, name: str) -> bool:
        """Delete a custom role; True if one was deleted.

        Raises:
            Conflict: ``name`` is built in, or users still hold it.
        """
        if name in BUILTIN_ROLES:
            raise Conflict(f"role {name!r} is built in")
        with self._tx() as conn:
            return conn.execute("DELETE FROM roles WHERE name = ?", (name,)).rowcount > 0

    # ------------------------------------------------------------------ revoked tokens

    def revoke_token(self, jti: str, expires_at: float) -> None:
        """Revoke one token until its own expiry (after which it is refused anyway).

        Revoking twice keeps the later expiry. Never drops a revocation silently: an expiry
        that SQLite cannot hold as a number (NaN would become NULL) is refused loudly.

        Raises:
            ValueError: ``expires_at`` is not a finite number.
        """
        if not math.isfinite(expires_at):
            raise ValueError(f"a revocation needs a finite expiry, got {expires_at!r}")
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?)"
                " ON CONFLICT(jti) DO UPDATE SET"
                " expires_at = max(expires_at, excluded.expires_at)",
                (jti, float(expires_at)),
            )

    def is_revoked(self, jti: str) -> bool:
        """Return whether ``jti`` is in the revoked set."""
        return self._one("SELECT 1 FROM revoked_tokens WHERE jti = ?", (jti,)) is not None

    def purge_revoked(self, *, now: float | None = None) -> int:
        """Forget revocations of tokens that have expired; returns how many rows went."""
        at = self._now(now)
        with self._tx() as conn:
            return conn.execute("DELETE FROM revoked_tokens WHERE expires_at <= ?", (at,)).rowcount

    # ------------------------------------------------------------------ audit

    def add_audit(
        self,
        *,
        user: str | None,
        ip: str | None,
        method: str,
        path: str,
        status: int,
        detail: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> int:
        """Record one API request; returns the entry id."""
        encoded = None if detail is None else msgspec.json.encode(detail).decode()
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT INTO audit (ts, user, ip, method, path, status, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self._now(now), user, ip, method, path, status, encoded),
            )
            return int(cursor.lastrowid or 0)

    def list_audit(
        self, *, limit: int = DEFAULT_LIST_LIMIT, before_id: int | None = None
    ) -> list[AuditEntry]:
        """Return audit entries, newest first (page with ``before_id``)."""
        rows = self._all(
            "SELECT * FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before_id if before_id is not None else 2**62, limit),
        )
        return [
            AuditEntry(
                id=r["id"],
                ts=r["ts"],
                user=r["user"],
                ip=r["ip"],
                method=r["method"],
                path=r["path"],
                status=r["status"],
                detail=None if r["detail"] is None else _DETAIL_DECODER.decode(r["detail"]),
            )
            for r in rows
        ]

    def purge_audit(self, older_than: float, *, limit: int | None = None) -> int:
        """Delete audit entries older than ``older_than``, the oldest ``limit`` at most.

        Returns how many went; call again while it returns ``limit`` to purge in short
        transactions that never hold the single writer for long.
        """
        with self._tx() as conn:
            if limit is None:
                return conn.execute("DELETE FROM audit WHERE ts < ?", (older_than,)).rowcount
            return conn.execute(
                "DELETE FROM audit WHERE id IN"
                " (SELECT id FROM audit WHERE ts < ? ORDER BY id LIMIT ?)",
                (older_than, limit),
            ).rowcount

    def cap_audit(self, max_rows: int, *, limit: int | None = None) -> int:
        """Delete the oldest audit entries beyond the newest ``max_rows`` (``limit`` at most).

        Returns how many went.
        """
        with self._tx() as conn:
            row = conn.execute(
                "SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?", (max_rows,)
            ).fetchone()
            if row is None:
                return 0
            return conn.execute(
                "DELETE FROM audit WHERE id IN"
                " (SELECT id FROM audit WHERE id <= ? ORDER BY id LIMIT ?)",
                (row[0], -1 if limit is None else limit),
            ).rowcount

    def count_audit(self) -> int:
        """Return how many audit entries are stored."""
        row = self._one("SELECT COUNT(*) FROM audit")
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ servers

    def add_server(self, config: ServerConfig, *, now: float | None = None) -> StoredServer:
        """Store an API-created server.

        Raises:
            Conflict: A server with this id is already stored.
        """
        at = self._now(now)
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO servers (id, config, created_at) VALUES (?, ?, ?)",
                (config.id, msgspec.json.encode(config).decode(), at),
            )
        return StoredServer(id=config.id, config=config, created_at=at)

    def update_server(self, config: ServerConfig) -> StoredServer | None:
        """Replace a stored server's configuration; None if it is not stored."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE servers SET config = ? WHERE id = ?",
                (msgspec.json.encode(config).decode(), config.id),
            )
        return self.get_server(config.id)

    def get_server(self, server_id: str) -> StoredServer | None:
        """Return a stored server, or None."""
        row = self._one("SELECT * FROM servers WHERE id = ?", (server_id,))
        return None if row is None else _server(row)

    def list_servers(self) -> list[StoredServer]:
        """Return every stored server, oldest first."""
        return [_server(r) for r in self._all("SELECT * FROM servers ORDER BY created_at, id")]

    def delete_server(self, server_id: str) -> bool:
        """Delete a stored server; True if one was deleted."""
        with self._tx() as conn:
            return conn.execute("DELETE FROM servers WHERE id = ?", (server_id,)).rowcount > 0

    # ------------------------------------------------------------------ running processes

    def save_run(self, server_id: str, run: bytes | None, *, now: float | None = None) -> None:
        """Remember (or forget, with ``None``) the process a server runs, for re-adoption."""
        with self._tx() as conn:
            if run is None:
                conn.execute("DELETE FROM server_runs WHERE server_id = ?", (server_id,))
            else:
                conn.execute(
                    "INSERT INTO server_runs (server_id, run, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT(server_id) DO UPDATE SET run = excluded.run,"
                    " updated_at = excluded.updated_at",
                    (server_id, run.decode(), self._now(now)),
                )

    def load_run(self, server_id: str) -> bytes | None:
        """The JSON of the process a server ran when last seen, or None."""
        row = self._one("SELECT run FROM server_runs WHERE server_id = ?", (server_id,))
        return None if row is None else str(row[0]).encode()

    def list_runs(self) -> list[tuple[str, bytes]]:
        """Every stored run record as (server id, JSON), by server id (also of servers gone)."""
        rows = self._all("SELECT server_id, run FROM server_runs ORDER BY server_id")
        return [(str(server_id), str(run).encode()) for server_id, run in rows]

    # ------------------------------------------------------------------ bans

    def add_ban(
        self,
        server_id: str,
        *,
        guid: str | None = None,
        ip: str | None = None,
        reason: str = "",
        minutes: int | None = None,
        created_by: str | None = None,
        now: float | None = None,
    ) -> Ban:
        """Record a ban by GUID and/or IP; ``minutes`` None (or 0, as BattlEye) is permanent.

        Raises:
            ValueError: Neither ``guid`` nor ``ip`` was given, or ``minutes`` is negative.
        """
        if guid is None and ip is None:
            raise ValueError("a ban needs a guid or an ip")
        if minutes is not None and minutes < 0:
            raise ValueError("ban minutes must not be negative")
        if minutes == 0:
            minutes = None
        at = self._now(now)
        expires = None if minutes is None else at + minutes * 60
        with self._tx() as conn:
            cursor = conn.execute(
                f"INSERT INTO bans ({_BAN_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?)",
                (server_id, guid, ip, reason, minutes, expires, created_by, at),
            )
            ban_id = int(cursor.lastrowid or 0)
        return Ban(
            id=ban_id,
            server_id=server_id,
            guid=guid,
            ip=ip,
            reason=reason,
            minutes=minutes,
            expires_at=expires,
            created_by=created_by,
            created_at=at,
        )

    def list_bans(
        self, server_id: str, *, now: float | None = None, include_expired: bool = False
    ) -> list[Ban]:
        """Return a server's bans, oldest first; expired ones only when asked."""
        if include_expired:
            rows = self._all(
                f"SELECT {_BAN_COLUMNS} FROM bans WHERE server_id = ? ORDER BY id", (server_id,)
            )
        else:
            rows = self._all(
                f"SELECT {_BAN_COLUMNS} FROM bans WHERE server_id = ?"
                " AND (expires_at IS NULL OR expires_at > ?) ORDER BY id",
                (server_id, self._now(now)),
            )
        return [_ban(r) for r in rows]

    def delete_ban(self, ban_id: int) -> bool:
        """Delete a ban; True if one was deleted."""
        with self._tx() as conn:
            return conn.execute("DELETE FROM bans WHERE id = ?", (ban_id,)).rowcount > 0

    def purge_expired_bans(
        self, *, now: float | None = None, kept_for: float = 0.0, limit: int | None = None
    ) -> int:
        """Delete bans that expired at least ``kept_for`` seconds before ``now``.

        A permanent ban (no expiry) and a ban still in force at ``now`` are never deleted:
        ``kept_for`` may not be negative. ``limit`` bounds the rows of one call (oldest expiry
        first); returns how many went.

        Raises:
            ValueError: ``kept_for`` is negative (or not a number).
        """
        if not kept_for >= 0:
            raise ValueError("kept_for must not be negative")
        cutoff = self._now(now) - kept_for
        with self._tx() as conn:
            return conn.execute(
                "DELETE FROM bans WHERE id IN (SELECT id FROM bans"
                " WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at, id"
                " LIMIT ?)",
                (cutoff, -1 if limit is None else limit),
            ).rowcount

    # ------------------------------------------------------------------ notifications

    def add_notification(
        self,
        *,
        server_id: str | None,
        type: str,
        title: str,
        message: str,
        severity: str,
        now: float | None = None,
    ) -> Notification:
        """Store a notification and return it with its id (the event carries that id)."""
        at = self._now(now)
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT INTO notifications (ts, server_id, type, title, message, severity)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (at, server_id, type, title, message, severity),
            )
            note_id = int(cursor.lastrowid or 0)
        return Notification(
            id=note_id,
            ts=at,
            server_id=server_id,
            type=type,
            title=title,
            message=message,
            severity=severity,
        )

    def list_notifications(
        self, *, server_id: str | None = None, limit: int = DEFAULT_LIST_LIMIT
    ) -> list[Notification]:
        """Return notifications newest first; only one server's when ``server_id`` is given."""
        if server_id is None:
            rows = self._all(
                f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications ORDER BY id DESC LIMIT ?",
                (limit,),
            )
        else:
            rows = self._all(
                f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE server_id = ?"
                " ORDER BY id DESC LIMIT ?",
                (server_id, limit),
            )
        return [_notification(r) for r in rows]

    def delete_notification(self, notification_id: int) -> bool:
        """Delete one notification; True if one was deleted."""
        with self._tx() as conn:
            return (
                conn.execute("DELETE FROM notifications WHERE id = ?", (notification_id,)).rowcount
                > 0
            )

    def purge_notifications(self, older_than: float, *, limit: int | None = None) -> int:
        """Delete notifications older than ``older_than``, the oldest ``limit`` at most.

        Returns how many went. Ids are never reused (``AUTOINCREMENT``), also after a purge.
        """
        with self._tx() as conn:
            return conn.execute(
                "DELETE FROM notifications WHERE id IN"
                " (SELECT id FROM notifications WHERE ts < ? ORDER BY id LIMIT ?)",
                (older_than, -1 if limit is None else limit),
            ).rowcount

    def cap_notifications(self, max_rows: int, *, limit: int | None = None) -> int:
        """Delete the oldest notifications beyond the newest ``max_rows`` (``limit`` at most).

        Returns how many went.
        """
        with self._tx() as conn:
            row = conn.execute(
                "SELECT id FROM notifications ORDER BY id DESC LIMIT 1 OFFSET ?", (max_rows,)
            ).fetchone()
            if row is None:
                return 0
            return conn.execute(
                "DELETE FROM notifications WHERE id IN"
                " (SELECT id FROM notifications WHERE id <= ? ORDER BY id LIMIT ?)",
                (row[0], -1 if limit is None else limit),
            ).rowcount

    def count_notifications(self) -> int:
        """Return how many notifications are stored."""
        row = self._one("SELECT COUNT(*) FROM notifications")
        return int(row[0]) if row else 0


def _make_private(path: Path) -> None:
    """Create the database file 0600 (it holds password hashes), and tighten an older one.

    SQLite gives the ``-wal`` and ``-shm`` files the mode of the database file, so creating
    the file ourselves first, whatever the umask and the data dir's mode, makes all three
    the owner's alone. Files left 0644 by an older Citadel are tightened on open.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), PRIVATE_MODE)
    os.close(fd)
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(file.stat().st_mode) & 0o077:
                file.chmod(PRIVATE_MODE)


def _server(row: sqlite3.Row) -> StoredServer:
    return StoredServer(
        id=row["id"], config=_SERVER_DECODER.decode(row["config"]), created_at=row["created_at"]
    )


def _json_or_null(values: Sequence[str] | None) -> str | None:
    return None if values is None else json.dumps(list(values))
