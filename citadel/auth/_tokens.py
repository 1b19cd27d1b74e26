"""JWTs: issuing them at login and verifying them on every request and socket re-check.

A token is refused when it is missing, malformed, signed with another algorithm or key,
expired, revoked (its ``jti`` was logged out, or it was issued before the user's
``tokens_valid_after`` cutoff, which moves on password change), or its user is unknown or
disabled. The cutoff and the cleanup of revoked rows are separate: a revoked row lives until
the token's own ``exp``; the cutoff only ever refuses tokens issued *before* it, so a token
issued a moment after a password change works at once.

``iat`` and ``exp`` are numbers (RFC 7519 NumericDate; fractions kept, so a cutoff set in the
same second as a login is still ordered correctly). The verifier refuses as ``malformed`` any
that is not finite (JSON's ``NaN``/``Infinity``), and any token claiming a lifetime longer than
``MAX_TOKEN_TTL``: no token lives forever, whoever minted it.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Final, Literal

import jwt
import msgspec

from citadel.auth.permissions import allows

if TYPE_CHECKING:
    from citadel.store import Role, Store, User

ALGORITHM: Final = "HS256"
DEFAULT_TOKEN_TTL: Final = 8 * 3600.0
"""Lifetime of a login token (``POST /api/auth/login``)."""
DEFAULT_SCRIPT_TOKEN_TTL: Final = 3600.0
"""Default lifetime of a token minted by ``citadel token``."""
MAX_TOKEN_TTL: Final = 365 * 86400.0
"""No token may live longer than a year (issuer and verifier both enforce it)."""
IAT_LEEWAY: Final = 60.0
MAX_CACHED: Final = 10_000
"""Users (and roles) kept in the verifier's cache at most."""
MAX_TOKEN_LENGTH: Final = 4096
REQUIRED_CLAIMS: Final = ("sub", "role", "iat", "exp", "jti")

AuthReason = Literal[
    "missing",
    "malformed",
    "bad_signature",
    "expired",
    "revoked",
    "unknown_user",
    "disabled",
    "alg_not_allowed",
]


class AuthError(Exception):
    """A token was refused; ``reason`` is a short machine string (see ``AuthReason``)."""

    def __init__(self, reason: AuthReason) -> None:
        super().__init__(reason)
        self.reason: AuthReason = reason


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling, and what their role lets them do (``servers`` None = every server)."""

    user: str
    role: str
    permissions: frozenset[str]
    servers: frozenset[str] | None
    jti: str
    exp: float

    def can(self, permission: str, server_id: str | None = None) -> bool:
        """Return whether this principal may use ``permission`` (on ``server_id``)."""
        return allows(self.permissions, self.servers, permission, server_id)


class IssuedToken(msgspec.Struct, frozen=True, kw_only=True):
    """A freshly signed token and the claims a caller may want to keep."""

    token: str
    jti: str
    issued_at: float
    expires_at: float


class _Claims(msgspec.Struct, frozen=True):
    sub: Annotated[str, msgspec.Meta(min_length=1)]
    role: str
    iat: float
    exp: float
    jti: Annotated[str, msgspec.Meta(min_length=1)]


class TokenIssuer:
    """Signs login tokens (HS256) with a fixed lifetime."""

    def __init__(
        self,
        secret: bytes,
        *,
        ttl: float = DEFAULT_TOKEN_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create an issuer for ``secret``; ``clock`` returns Unix seconds.

        Raises:
            ValueError: ``ttl`` is not a finite number of seconds in (0, ``MAX_TOKEN_TTL``].
        """
        check_ttl(ttl)
        self._secret = secret
        self._ttl = ttl
        self._clock = clock

    def issue(self, user: User) -> IssuedToken:
        """Sign a token for ``user``.

        ``iat`` is a float with full precision and never earlier than the user's cutoff, so a
        token issued right after a password change (even if the wall clock stepped back) is
        never mistaken for one issued before it.
        """
        issued_at = max(self._clock(), user.tokens_valid_after)
        expires_at = issued_at + self._ttl
        jti = secrets.token_urlsafe(16)
        claims = {
            "sub": user.username,
            "role": user.role,
            "iat": issued_at,
            "exp": expires_at,
            "jti": jti,
        }
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM)
        return IssuedToken(token=token, jti=jti, issued_at=issued_at, expires_at=expires_at)


def check_ttl(ttl: float) -> float:
    """Return ``ttl`` if it is a usable token lifetime, else raise ``ValueError`` saying why."""
    if not (isinstance(ttl, int | float) and math.isfinite(ttl) and 0 < ttl <= MAX_TOKEN_TTL):
        raise ValueError(
            f"a token lifetime must be a number of seconds above 0 and at most "
            f"{MAX_TOKEN_TTL:.0f} (a year), got {ttl!r}"
        )
    return float(ttl)


class _RoleGrant(msgspec.Struct, frozen=True):
    permissions: frozenset[str]
    servers: frozenset[str] | None


_NO_GRANT: Final = _RoleGrant(frozenset(), frozenset())


class TokenVerifier:
    """Verifies tokens against the secret and the store, cheaply enough for every request.

    Users and roles are cached until the store changes: every check first asks the store for
    its revision (`Store.revision`, a few microseconds), which moves with any commit, also one
    made by another process on the same file (``citadel user passwd`` while the server runs).
    So a password change, a disabled user or an edited role is seen by the very next check,
    never a cache lifetime later. Revocation by ``jti`` always asks the store (a primary-key
    lookup).

    Example:
        >>> principal = verifier.verify(token)  # doctest: +SKIP
        >>> principal.can("server.start", "alpha")  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        secret: bytes,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create a verifier for ``secret`` backed by ``store``."""
        self._secret = secret
        self._store = store
        self._clock = clock
        self._revision: tuple[int, int] | None = None
        self._users: dict[str, User | None] = {}
        self._roles: dict[str, _RoleGrant] = {}

    def verify(self, token: str | bytes | None) -> Principal:
        """Return the principal a token names, or raise ``AuthError`` with the reason.

        Raises:
            AuthError: ``missing``, ``malformed``, ``alg_not_allowed``, ``bad_signature``,
                ``expired``, ``revoked``, ``unknown_user`` or ``disabled``.
        """
        claims = self._decode(token)
        now = self._clock()
        if not (math.isfinite(claims.iat) and math.isfinite(claims.exp)):
            raise AuthError("malformed")
        if claims.exp <= now:
            raise AuthError("expired")
        if (
            claims.iat > now + IAT_LEEWAY
            or claims.iat > claims.exp
            or claims.exp - claims.iat > MAX_TOKEN_TTL
        ):
            raise AuthError("malformed")
        if self._store.is_revoked(claims.jti):
            raise AuthError("revoked")
        self._follow_store()
        user = self._user(claims.sub)
        if user is None:
            raise AuthError("unknown_user")
        if user.disabled:
            raise AuthError("disabled")
        if claims.iat < user.tokens_valid_after:
            raise AuthError("revoked")
        grant = self._grant(user.role)
        return Principal(
            user=user.username,
            role=user.role,
            permissions=grant.permissions,
            servers=grant.servers,
            jti=claims.jti,
            exp=claims.exp,
        )

    def revoke(self, principal: Principal) -> None:
        """Log one token out: it is refused from now until it expires."""
        self._store.revoke_token(principal.jti, principal.exp)

    def invalidate_user(self, username: str) -> None:
        """Forget the cached user (the cache also follows the store by itself)."""
        self._users.pop(username, None)

    def invalidate_roles(self) -> None:
        """Forget every cached role (the cache also follows the store by itself)."""
        self._roles.clear()

    def _decode(self, token: str | bytes | None) -> _Claims:
        if not token:
            raise AuthError("missing")
        if isinstance(token, bytes):
            try:
                token = token.decode("ascii")
            except UnicodeDecodeError:
                raise AuthError("malformed") from None
        if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise AuthError("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthError("malformed") from None
        if header.get("alg") != ALGORITHM:
            raise AuthError("alg_not_allowed")
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                # Time claims are checked by us against the injected clock.
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise AuthError("bad_signature") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError("alg_not_allowed") from None
        except jwt.InvalidTokenError:
            raise AuthError("malformed") from None
        try:
            return msgspec.convert(payload, _Claims)
        except msgspec.ValidationError:
            raise AuthError("malformed") from None

    def _follow_store(self) -> None:
        # Any commit, by this process or another, may have changed a user or a role.
        revision = self._store.revision()
        if revision != self._revision:
            self._users.clear()
            self._roles.clear()
            self._revision = revision

    def _user(self, username: str) -> User | None:
        if username in self._users:
            return self._users[username]
        if len(self._users) >= MAX_CACHED:
            self._users.clear()  # names come from signed tokens; this only bounds a flood
        user = self._users[username] = self._store.get_user(username)
        return user

    def _grant(self, role_name: str) -> _RoleGrant:
        cached = self._roles.get(role_name)
        if cached is not None:
            return cached
        if len(self._roles) >= MAX_CACHED:
            self._roles.clear()
        role = self._store.get_role(role_name)
        grant = self._roles[role_name] = _NO_GRANT if role is None else _grant_of(role)
        return grant


def _grant_of(role: Role) -> _RoleGrant:
    return _RoleGrant(
        permissions=frozenset(role.permissions),
        servers=None if role.servers is None else frozenset(role.servers),
    )
