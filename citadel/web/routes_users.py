"""``/api/users`` and ``/api/roles``: administration (permission ``users.manage``).

No privilege escalation: a caller may only give out, change or take away what their own role
holds (`citadel.auth.permissions.missing_grants`). Creating a user with a role, changing a user
(password, role, disabled) or deleting one needs the caller to cover the user's current role and
the new one; creating, editing or deleting a role needs the caller to cover its permissions and
servers, before and after. So ``users.manage`` alone manages users up to its own powers, and only
an admin (``*`` on every server) can touch admins. Refusals are 403 and name what is lacking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from litestar import Request, delete, get, patch, post
from litestar.params import FromPath, JSONBody

from citadel.auth import Principal, hash_password
from citadel.auth.permissions import BUILTIN_ROLES, missing_grants, unknown_permissions
from citadel.messages.rest import RoleCreate, RoleUpdate, RoleView, UserCreate, UserUpdate, UserView
from citadel.store import Conflict, Store, User
from citadel.store.actor import run_in_store
from citadel.web.context import ApiContext, context_of
from citadel.web.errors import ApiError, shown
from citadel.web.guards import Caller, require
from citadel.web.views import role_view, user_view


def _admin(request: Request[Any, Any, Any], principal: Principal) -> ApiContext:
    require(principal, "users.manage")
    return context_of(request)


def _must_cover(
    principal: Principal,
    what: str,
    permissions: Sequence[str],
    servers: Sequence[str] | None,
) -> None:
    """Refuse (403) unless the caller holds every grant of ``permissions`` over ``servers``."""
    unknown = unknown_permissions(permissions)
    if unknown:  # a typo is a 422 for everyone, not a 403 for some
        raise ApiError(
            422, "invalid_field", f"permissions: unknown permissions: {', '.join(unknown)}"
        )
    missing = missing_grants(principal.permissions, principal.servers, permissions, servers)
    if missing:
        raise ApiError(
            403,
            "forbidden",
            f"{what} grants {', '.join(missing)}, which your role does not; "
            "you can only give out or change what you hold",
        )


def _must_cover_role(principal: Principal, store: Store, role_name: str, what: str) -> None:
    role = store.get_role(role_name)
    if role is not None:
        _must_cover(principal, f"{what} (role {role_name!r})", role.permissions, role.servers)


def _user_or_404(store: Store, username: str) -> User:
    user = store.get_user(username)
    if user is None:
        raise ApiError(404, "not_found", f"no user {shown(username)}")
    return user


def _role_exists(store: Store, role: str) -> None:
    if store.get_role(role) is None:
        raise ApiError(422, "invalid_field", f"role: no role {role!r}")


def _admins_left(store: Store, without: str) -> int:
    return sum(
        1
        for u in store.list_users()
        if u.username != without and not u.disabled and _is_admin_role(store, u.role)
    )


def _is_admin_role(store: Store, role_name: str) -> bool:
    role = store.get_role(role_name)
    return role is not None and "*" in role.permissions and role.servers is None


@get("/api/users")
async def list_users(request: Request[Any, Any, Any], principal: Caller) -> list[UserView]:
    ctx = _admin(request, principal)
    return [user_view(u) for u in ctx.store.list_users()]


@post("/api/users", status_code=201)
async def create_user(
    request: Request[Any, Any, Any], principal: Caller, data: JSONBody[UserCreate]
) -> UserView:
    ctx = _admin(request, principal)
    _role_exists(ctx.store, data.role)
    _must_cover_role(principal, ctx.store, data.role, "the new user's role")
    if ctx.store.get_user(data.username) is not None:
        raise ApiError(409, "conflict", f"user {data.username!r} already exists")
    password_hash = await anyio.to_thread.run_sync(hash_password, data.password)
    try:
        user = await run_in_store(
            ctx.db, lambda s: s.create_user(data.username, password_hash, data.role)
        )
    except Conflict as error:
        raise ApiError(409, "conflict", str(error)) from None
    return user_view(user)


@get("/api/users/{username:str}")
async def get_user(
    request: Request[Any, Any, Any], principal: Caller, username: FromPath[str]
) -> UserView:
    ctx = _admin(request, principal)
    return user_view(_user_or_404(ctx.store, username))


@patch("/api/users/{username:str}")
async def update_user(
    request: Request[Any, Any, Any],
    principal: Caller,
    username: FromPath[str],
    data: JSONBody[UserUpdate],
) -> UserView:
    """Change a user's password (revokes their older tokens), role or disabled flag."""
    ctx = _admin(request, principal)
    current = _user_or_404(ctx.store, username)
    _must_cover_role(principal, ctx.store, current.role, f"user {username!r}")
    if data.role is not None:
        _role_exists(ctx.store, data.role)
        _must_cover_role(principal, ctx.store, data.role, "the new role")
    losing_admin = (data.disabled is True and not current.disabled) or (
        data.role is not None and not _is_admin_role(ctx.store, data.role)
    )
    if (
        losing_admin
        and _is_admin_role(ctx.store, current.role)
        and _admins_left(ctx.store, without=username) == 0
    ):
        raise ApiError(409, "conflict", "this is the last enabled admin")
    password_hash = None
    if data.password is not None:
        password_hash = await anyio.to_thread.run_sync(hash_password, data.password)

    def apply(store: Store) -> User | None:
        if password_hash is not None:
            store.set_password(username, password_hash)
        if data.role is not None:
            store.set_role(username, data.role)
        if data.disabled is not None:
            store.set_disabled(username, data.disabled)
        return store.get_user(username)

    user = await run_in_store(ctx.db, apply)
    ctx.verifier.invalidate_user(username)
    ctx.auth_watcher.auth_changed(username)
    return user_view(_user_or_404(ctx.store, username) if user is None else user)


@delete("/api/users/{username:str}", status_code=204)
async def delete_user(
    request: Request[Any, Any, Any], principal: Caller, username: FromPath[str]
) -> None:
    ctx = _admin(request, principal)
    current = _user_or_404(ctx.store, username)
    _must_cover_role(principal, ctx.store, current.role, f"user {username!r}")
    if _is_admin_role(ctx.store, current.role) and _admins_left(ctx.store, without=username) == 0:
        raise ApiError(409, "conflict", "this is the last enabled admin")
    await run_in_store(ctx.db, lambda s: s.delete_user(username))
    ctx.verifier.invalidate_user(username)
    ctx.auth_watcher.auth_changed(username)


@get("/api/roles")
async def list_roles(request: Request[Any, Any, Any], principal: Caller) -> list[RoleView]:
    ctx = _admin(request, principal)
    return [role_view(r) for r in ctx.store.list_roles()]


async def _save_role(
    ctx: ApiContext, name: FromPath[str], permissions: list[str], servers: list[str] | None
) -> RoleView:
    try:
        role = await run_in_store(ctx.db, lambda s: s.save_role(name, permissions, servers))
    except Conflict as error:
        raise ApiError(409, "conflict", str(error)) from None
    except ValueError as error:
        raise ApiError(422, "invalid_field", f"permissions: {error}") from None
    ctx.verifier.invalidate_roles()
    ctx.auth_watcher.auth_changed(None)
    return role_view(role)


@post("/api/roles", status_code=201)
async def create_role(
    request: Request[Any, Any, Any], principal: Caller, data: JSONBody[RoleCreate]
) -> RoleView:
    ctx = _admin(request, principal)
    if data.name in BUILTIN_ROLES or ctx.store.get_role(data.name) is not None:
        raise ApiError(409, "conflict", f"role {data.name!r} already exists")
    _must_cover(principal, f"role {data.name!r}", data.permissions, data.servers)
    return await _save_role(ctx, data.name, data.permissions, data.servers)


@patch("/api/roles/{name:str}")
async def update_role(
    request: Request[Any, Any, Any],
    principal: Caller,
    name: FromPath[str],
    data: JSONBody[RoleUpdate],
) -> RoleView:
    """Change a custom role; open sockets of its users are re-scoped at once."""
    ctx = _admin(request, principal)
    role = ctx.store.get_role(name)
    if role is None:
        raise ApiError(404, "not_found", f"no role {shown(name)}")
    if role.builtin:
        raise ApiError(409, "conflict", f"role {name!r} is built in")
    _must_cover(principal, f"role {name!r}", role.permissions, role.servers)
    permissions = data.permissions if data.permissions is not None else list(role.permissions)
    servers: list[str] | None
    if data.all_servers:
        servers = None
    elif data.servers is not None:
        servers = data.servers
    else:
        servers = None if role.servers is None else list(role.servers)
    _must_cover(principal, f"the changed role {name!r}", permissions, servers)
    return await _save_role(ctx, name, permissions, servers)


@delete("/api/roles/{name:str}", status_code=204)
async def delete_role(
    request: Request[Any, Any, Any], principal: Caller, name: FromPath[str]
) -> None:
    ctx = _admin(request, principal)
    role = ctx.store.get_role(name)
    if role is None:
        raise ApiError(404, "not_found", f"no role {shown(name)}")
    _must_cover(principal, f"role {name!r}", role.permissions, role.servers)
    if any(u.role == name for u in ctx.store.list_users()):
        raise ApiError(409, "conflict", f"role {name!r} is still held by users")
    try:
        await run_in_store(ctx.db, lambda s: s.delete_role(name))
    except Conflict as error:
        raise ApiError(409, "conflict", str(error)) from None
    ctx.verifier.invalidate_roles()
    ctx.auth_watcher.auth_changed(None)


ROUTES = [
    list_users,
    create_user,
    get_user,
    update_user,
    delete_user,
    list_roles,
    create_role,
    update_role,
    delete_role,
]
