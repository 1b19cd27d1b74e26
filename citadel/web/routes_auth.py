"""``/api/auth``: login (throttled, constant-time failure), me, logout, own password."""

from __future__ import annotations

import math
from typing import Any

import anyio
from litestar import Request, get, post
from litestar.params import JSONBody

from citadel.auth import hash_password, verify_password_or_dummy
from citadel.messages import utc_timestamp
from citadel.messages.rest import LoginRequest, LoginResponse, MeResponse, PasswordChange
from citadel.store.actor import run_in_store
from citadel.web.context import context_of, set_audit_user
from citadel.web.errors import ApiError
from citadel.web.guards import Caller
from citadel.web.views import user_view


def client_ip(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None


@post("/api/auth/login", status_code=200)
async def login(request: Request[Any, Any, Any], data: JSONBody[LoginRequest]) -> LoginResponse:
    """Exchange a username and password for a token."""
    ctx = context_of(request)
    ip = client_ip(request)
    # Reserve the attempt before the slow hash, so concurrent guesses cannot all pass the
    # check before the first failure is recorded (see citadel.auth._throttle).
    wait = ctx.throttle.reserve(ip, data.username, now=ctx.clock())
    if wait > 0:
        seconds = math.ceil(wait)
        raise ApiError(
            429,
            "throttled",
            f"too many login attempts; try again in {seconds} s",
            {"Retry-After": str(seconds)},
        )
    # Only an attempt that reaches the password check is audited under the name it tried.
    set_audit_user(request, data.username)
    ok = False
    try:
        user = ctx.store.get_user(data.username)
        # scrypt costs tens of milliseconds: keep it off the event loop. Unknown users pay the
        # same price against a dummy hash, so timing does not reveal which names exist.
        ok = await anyio.to_thread.run_sync(
            verify_password_or_dummy, None if user is None else user.password_hash, data.password
        )
        ok = ok and user is not None and not user.disabled
    finally:
        if not ok:  # also when cancelled or failed: the reservation always ends
            ctx.throttle.record_failure(ip, data.username, now=ctx.clock())
    if user is None or not ok:
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    ctx.throttle.record_success(ip, data.username, now=ctx.clock())
    issued = ctx.issuer.issue(user)
    return LoginResponse(
        token=issued.token, expires_at=utc_timestamp(issued.expires_at), user=user_view(user)
    )


@get("/api/auth/me")
async def me(request: Request[Any, Any, Any], principal: Caller) -> MeResponse:
    """Who the token belongs to and what it may do."""
    user = context_of(request).store.get_user(principal.user)
    if user is None:
        raise ApiError(401, "unauthorized", "the token's user no longer exists")
    return MeResponse(
        user=user_view(user),
        permissions=sorted(principal.permissions),
        servers=None if principal.servers is None else sorted(principal.servers),
    )


@post("/api/auth/logout", status_code=204)
async def logout(request: Request[Any, Any, Any], principal: Caller) -> None:
    """Revoke the token used for this request (other sessions stay logged in)."""
    ctx = context_of(request)
    await run_in_store(ctx.db, lambda store: store.revoke_token(principal.jti, principal.exp))
    ctx.auth_watcher.auth_changed(principal.user)


@post("/api/auth/password", status_code=204)
async def change_own_password(
    request: Request[Any, Any, Any], principal: Caller, data: JSONBody[PasswordChange]
) -> None:
    """Change your own password; every token issued before now stops working."""
    ctx = context_of(request)
    user = ctx.store.get_user(principal.user)
    ok = await anyio.to_thread.run_sync(
        verify_password_or_dummy,
        None if user is None else user.password_hash,
        data.current_password,
    )
    if user is None or not ok:
        raise ApiError(403, "forbidden", "the current password is wrong")
    new_hash = await anyio.to_thread.run_sync(hash_password, data.new_password)
    await run_in_store(ctx.db, lambda store: store.set_password(principal.user, new_hash))
    ctx.verifier.invalidate_user(principal.user)
    ctx.auth_watcher.auth_changed(principal.user)


ROUTES = [login, me, logout, change_own_password]
