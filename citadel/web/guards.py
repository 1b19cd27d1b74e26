"""Bearer-token authentication and permission checks for REST handlers."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from citadel.auth import AuthError, Principal
from citadel.web.context import context_of, set_audit_user
from citadel.web.errors import ApiError

_REASONS = {
    "missing": "no bearer token; send 'Authorization: Bearer <token>'",
    "malformed": "the token is malformed",
    "bad_signature": "the token's signature is not valid",
    "alg_not_allowed": "the token's algorithm is not allowed",
    "expired": "the token has expired; log in again",
    "revoked": "the token was revoked; log in again",
    "unknown_user": "the token's user no longer exists",
    "disabled": "the user is disabled",
}


Caller = NamedDependency[Principal]
"""A handler parameter ``principal: Caller`` receives the verified caller (or the request is a
401 before the handler runs)."""


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """Litestar dependency: the verified caller, or a 401."""
    try:
        principal = context_of(request).verifier.verify(bearer_token(request))
    except AuthError as error:
        raise ApiError(
            401,
            "unauthorized",
            _REASONS.get(error.reason, "the token was refused"),
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None
    set_audit_user(request, principal)
    return principal


def require(principal: Principal, permission: str, server_id: str | None = None) -> None:
    """Raise 403 unless ``principal`` holds ``permission`` (on ``server_id``)."""
    if not principal.can(permission, server_id):
        where = f" on server {server_id!r}" if server_id else ""
        raise ApiError(403, "forbidden", f"your role lacks {permission!r}{where}")
