"""The pure permission rule and the built-in roles."""

from __future__ import annotations

from citadel.auth import ALL, BUILTIN_ROLES, PERMISSIONS, allows, missing_grants


def _grant(role: str) -> tuple[frozenset[str], frozenset[str] | None]:
    permissions, servers = BUILTIN_ROLES[role]
    return frozenset(permissions), None if servers is None else frozenset(servers)


def test_permission_list() -> None:
    assert PERMISSIONS[-1] == ALL
    assert len(PERMISSIONS) == len(set(PERMISSIONS)) == 16
    for permissions, _servers in BUILTIN_ROLES.values():
        assert set(permissions) <= set(PERMISSIONS)


def test_admin_may_do_everything_everywhere() -> None:
    perms, servers = _grant("admin")
    assert all(allows(perms, servers, p, "alpha") for p in PERMISSIONS)
    assert allows(perms, servers, "users.manage")


def test_operator_and_viewer() -> None:
    op, op_servers = _grant("operator")
    assert allows(op, op_servers, "server.restart", "alpha")
    assert allows(op, op_servers, "players.ban", "alpha")
    assert not allows(op, op_servers, "mods.install", "alpha")
    assert not allows(op, op_servers, "users.manage")
    viewer, viewer_servers = _grant("viewer")
    assert allows(viewer, viewer_servers, "logs.view", "alpha")
    assert not allows(viewer, viewer_servers, "server.start", "alpha")
    assert not allows(viewer, viewer_servers, "players.kick", "alpha")


def test_server_scope() -> None:
    perms = frozenset({"server.view"})
    scope = frozenset({"alpha"})
    assert allows(perms, scope, "server.view", "alpha")
    assert not allows(perms, scope, "server.view", "bravo")
    # A scoped role never gets host-wide actions.
    assert not allows(perms, scope, "server.view", None)
    assert not allows(frozenset({ALL}), scope, "users.manage")


def test_missing_grants_is_empty_only_when_the_holder_covers_the_role() -> None:
    admin = frozenset({"*"})
    manager = frozenset({"users.manage", "server.view", "logs.view"})
    assert missing_grants(admin, None, ["*"], None) == []
    assert missing_grants(manager, None, ["server.view", "logs.view"], ["alpha"]) == []
    assert missing_grants(manager, None, ["*"], None) == ["'*'"]
    assert missing_grants(manager, None, ["server.rcon", "server.view"], None) == ["'server.rcon'"]
    scoped = frozenset({"*"})
    assert missing_grants(scoped, frozenset({"alpha"}), ["server.view"], None) == ["every server"]
    assert missing_grants(scoped, frozenset({"alpha"}), ["server.view"], ["alpha", "bravo"]) == [
        "server 'bravo'"
    ]
