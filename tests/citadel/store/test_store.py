"""The SQLite store on a real file: migrations, re-open, and every table's typed methods."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from citadel.auth.permissions import BUILTIN_ROLES
from citadel.config import parse_config
from citadel.store import (
    DB_FILENAME,
    MIGRATIONS,
    Conflict,
    SchemaTooNew,
    Store,
    StoreError,
)

SERVER_TOML = """
[[servers]]
id = "alpha"
name = "Alpha"
install_dir = "/srv/alpha"
executable = "DayZServer"
args = ["-port=2302"]
[servers.rcon]
port = 2306
password = "pw"
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "data") as s:
        yield s


def test_fresh_file_is_migrated_and_seeded(tmp_path: Path) -> None:
    with Store.open(tmp_path / "data") as store:
        assert store.path == tmp_path / "data" / DB_FILENAME
        assert store.schema_version == len(MIGRATIONS)
        roles = {role.name: role for role in store.list_roles()}
        assert set(roles) == {"admin", "operator", "viewer"}
        for name, (permissions, servers) in BUILTIN_ROLES.items():
            assert roles[name].permissions == permissions
            assert roles[name].servers == servers
            assert roles[name].builtin
        assert roles["admin"].permissions == ("*",)
    conn = sqlite3.connect(tmp_path / "data" / DB_FILENAME)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(len(MIGRATIONS),)]
    finally:
        conn.close()


def test_reopen_keeps_data_and_does_not_reseed_twice(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.create_user("alice", "hash", "operator", now=10.0)
        store.save_role("alpha-ops", ["server.view", "server.start"], ["alpha"])
    with Store.open(tmp_path) as store:
        assert store.schema_version == len(MIGRATIONS)
        alice = store.get_user("alice")
        assert alice is not None
        assert alice.role == "operator"
        assert alice.created_at == 10.0
        assert [r.name for r in store.list_roles()] == ["admin", "operator", "viewer", "alpha-ops"]


def test_forward_migration_applies_only_new_steps(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    with Store(path) as store:
        store.create_user("alice", "hash", "viewer")
    extended = (*MIGRATIONS, "ALTER TABLE users ADD COLUMN email TEXT;")
    with Store(path, migrations=extended) as store:
        assert store.schema_version == len(MIGRATIONS) + 1
        assert store.get_user("alice") is not None
    conn = sqlite3.connect(path)
    try:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(users)")]
    finally:
        conn.close()
    assert "email" in columns
    # Opening the newer file with the older code refuses rather than guessing.
    with pytest.raises(SchemaTooNew):
        Store(path)


def test_failed_migration_rolls_back_to_last_good_version(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    Store(path).close()
    broken = (*MIGRATIONS, "CREATE TABLE half (x INTEGER); THIS IS NOT SQL;")
    with pytest.raises(StoreError, match=f"migration to schema version {len(broken)} failed"):
        Store(path, migrations=broken)
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
    conn = sqlite3.connect(path)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert "half" not in tables


def test_garbage_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    path.write_bytes(b"\x00\xffnot a database at all" * 100)
    with pytest.raises(StoreError):
        Store(path)
    with pytest.raises(StoreError):
        Store(tmp_path / "missing-dir" / DB_FILENAME)


def test_users(store: Store) -> None:
    alice = store.create_user("alice", "h1", "viewer", now=100.0)
    assert alice.tokens_valid_after == 100.0
    assert not alice.disabled
    with pytest.raises(Conflict):
        store.create_user("alice", "h2", "viewer")
    with pytest.raises(Conflict, match=r"^user 'alice' already exists \(names ignore case\)$"):
        store.create_user("ALice", "h2", "viewer")  # not a second, look-alike account
    with pytest.raises(Conflict):
        store.create_user("bob", "h", "no-such-role")
    assert store.count_users() == 1
    changed = store.set_password("alice", "h3", now=200.0)
    assert changed is not None
    assert (changed.password_hash, changed.tokens_valid_after) == ("h3", 200.0)
    again = store.revoke_user_tokens("alice", now=300.0)
    assert again is not None
    assert again.tokens_valid_after == 300.0
    with pytest.raises(Conflict):
        store.set_role("alice", "no-such-role")
    updated = store.set_role("alice", "operator")
    assert updated is not None
    assert updated.role == "operator"
    disabled = store.set_disabled("alice", True)
    assert disabled is not None
    assert disabled.disabled
    assert store.get_user_by_id(alice.id) == disabled
    assert store.list_users() == [disabled]
    assert store.set_password("nobody", "h") is None
    assert store.delete_user("alice")
    assert not store.delete_user("alice")
    assert store.get_user("alice") is None


def test_roles(store: Store) -> None:
    role = store.save_role("scoped", ["server.view", "server.view", "logs.view"], ["b", "a"])
    assert role.permissions == ("logs.view", "server.view")
    assert role.servers == ("a", "b")
    assert store.get_role("scoped") == role
    with pytest.raises(ValueError, match=r"unknown permissions: server\.explode"):
        store.save_role("bad", ["server.explode"], None)
    with pytest.raises(Conflict):
        store.save_role("admin", ["server.view"], None)
    with pytest.raises(Conflict):
        store.delete_role("viewer")
    store.create_user("carol", "h", "scoped")
    with pytest.raises(Conflict):
        store.delete_role("scoped")
    store.delete_user("carol")
    assert store.delete_role("scoped")
    assert store.get_role("scoped") is None


def test_revoked_tokens_and_cleanup(store: Store) -> None:
    store.revoke_token("jti-1", expires_at=1000.0)
    store.revoke_token("jti-1", expires_at=1000.0)  # idempotent
    store.revoke_token("jti-2", expires_at=2000.0)
    assert store.is_revoked("jti-1")
    assert not store.is_revoked("jti-3")
    assert store.purge_revoked(now=999.0) == 0
    assert store.is_revoked("jti-1")
    assert store.purge_revoked(now=1000.0) == 1
    assert not store.is_revoked("jti-1")
    assert store.is_revoked("jti-2")


def test_audit(store: Store) -> None:
    first = store.add_audit(
        user="alice", ip="192.0.2.7", method="POST", path="/api/x", status=202, now=1.0
    )
    second = store.add_audit(
        user=None,
        ip=None,
        method="GET",
        path="/api/y",
        status=401,
        detail={"code": "bad_token", "n": [1, 2]},
        now=2.0,
    )
    entries = store.list_audit()
    assert [e.id for e in entries] == [second, first]
    assert entries[0].detail == {"code": "bad_token", "n": [1, 2]}
    assert entries[1].detail is None
    assert [e.id for e in store.list_audit(before_id=second)] == [first]
    assert [e.id for e in store.list_audit(limit=1)] == [second]
    assert store.purge_audit(older_than=2.0) == 1
    assert [e.id for e in store.list_audit()] == [second]


def test_servers(store: Store) -> None:
    config = parse_config(SERVER_TOML).servers[0]
    stored = store.add_server(config, now=5.0)
    assert stored.config == config
    with pytest.raises(Conflict):
        store.add_server(config)
    assert store.get_server("alpha") == stored
    renamed = parse_config(SERVER_TOML.replace('"Alpha"', '"Alpha Two"')).servers[0]
    updated = store.update_server(renamed)
    assert updated is not None
    assert updated.config.name == "Alpha Two"
    assert updated.created_at == 5.0
    assert store.list_servers() == [updated]
    assert store.delete_server("alpha")
    assert store.get_server("alpha") is None
    assert store.update_server(renamed) is None


def test_bans(store: Store) -> None:
    with pytest.raises(ValueError, match="guid or an ip"):
        store.add_ban("alpha", reason="x")
    with pytest.raises(ValueError, match="negative"):
        store.add_ban("alpha", guid="g", minutes=-1)
    timed = store.add_ban("alpha", guid="0123", reason="spam", minutes=10, now=0.0)
    assert timed.expires_at == 600.0
    perm = store.add_ban("alpha", ip="192.0.2.7", minutes=0, created_by="alice", now=0.0)
    assert (perm.minutes, perm.expires_at) == (None, None)
    store.add_ban("bravo", guid="x", now=0.0)
    assert store.list_bans("alpha", now=599.0) == [timed, perm]
    assert store.list_bans("alpha", now=600.0) == [perm]
    assert len(store.list_bans("alpha", now=600.0, include_expired=True)) == 2
    assert store.purge_expired_bans(now=600.0) == 1
    assert store.delete_ban(perm.id)
    assert store.list_bans("alpha", include_expired=True) == []


def test_notifications(store: Store) -> None:
    a = store.add_notification(
        server_id="alpha", type="crash", title="t", message="m", severity="error", now=1.0
    )
    host = store.add_notification(
        server_id=None, type="host", title="t", message="m", severity="info", now=2.0
    )
    assert a.id != host.id
    assert store.list_notifications() == [host, a]
    assert store.list_notifications(server_id="alpha") == [a]
    assert store.list_notifications(limit=1) == [host]
    assert store.delete_notification(a.id)
    assert store.purge_notifications(older_than=3.0) == 1
    assert store.list_notifications() == []


def test_usable_from_another_thread(store: Store) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            store.create_user("threaded", "h", "viewer")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=5)
    assert not errors
    assert store.get_user("threaded") is not None


def test_server_runs_are_remembered_and_forgotten(tmp_path: Path) -> None:
    with Store(tmp_path / DB_FILENAME) as store:
        assert store.load_run("alpha") is None
        store.save_run("alpha", b'{"pid":1}')
        store.save_run("alpha", b'{"pid":2}')
        assert store.load_run("alpha") == b'{"pid":2}'
    with Store(tmp_path / DB_FILENAME) as store:
        assert store.load_run("alpha") == b'{"pid":2}'
        store.save_run("alpha", None)
        assert store.load_run("alpha") is None


def test_database_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    old_umask = os.umask(0o022)
    try:
        with Store.open(data) as store:
            store.create_user("alice", "h", "viewer")  # a write: -wal and -shm exist now
            names = [DB_FILENAME, f"{DB_FILENAME}-wal", f"{DB_FILENAME}-shm"]
            modes = {n: stat.S_IMODE((data / n).stat().st_mode) for n in names}
    finally:
        os.umask(old_umask)
    assert modes == dict.fromkeys(names, 0o600)


def test_an_older_world_readable_database_is_tightened_on_open(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.create_user("alice", "h", "viewer")
    (tmp_path / DB_FILENAME).chmod(0o644)
    with Store.open(tmp_path):
        assert stat.S_IMODE((tmp_path / DB_FILENAME).stat().st_mode) == 0o600
