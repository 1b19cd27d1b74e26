"""Authentication and authorisation: passwords, JWTs, permissions and login throttling.

AuthError (a token was refused; ``reason`` in ``AuthReason``)
SecretError (the JWT secret cannot be loaded or created)

Typical wiring::

    secret = load_jwt_secret(data_dir)
    issuer = TokenIssuer(secret)
    verifier = TokenVerifier(secret, store)
    user = check_credentials(store, username, password)      # login
    token = issuer.issue(user).token
    principal = verifier.verify(token)                       # every request / socket re-check
    principal.can("server.start", "alpha")
"""

from __future__ import annotations

from citadel.auth._credentials import check_credentials
from citadel.auth._names import USERNAME_PATTERN, check_username
from citadel.auth._passwords import (
    hash_password,
    needs_rehash,
    verify_password,
    verify_password_or_dummy,
)
from citadel.auth._secret import SECRET_ENV, SECRET_FILENAME, SecretError, load_jwt_secret
from citadel.auth._throttle import LoginThrottle, ThrottleStatistics
from citadel.auth._tokens import (
    ALGORITHM,
    DEFAULT_SCRIPT_TOKEN_TTL,
    DEFAULT_TOKEN_TTL,
    MAX_TOKEN_TTL,
    AuthError,
    AuthReason,
    IssuedToken,
    Principal,
    TokenIssuer,
    TokenVerifier,
    check_ttl,
)
from citadel.auth.permissions import (
    ALL,
    BUILTIN_ROLES,
    PERMISSIONS,
    Permission,
    allows,
    missing_grants,
)

__all__ = [
    "ALGORITHM",
    "ALL",
    "BUILTIN_ROLES",
    "DEFAULT_SCRIPT_TOKEN_TTL",
    "DEFAULT_TOKEN_TTL",
    "MAX_TOKEN_TTL",
    "PERMISSIONS",
    "SECRET_ENV",
    "SECRET_FILENAME",
    "USERNAME_PATTERN",
    "AuthError",
    "AuthReason",
    "IssuedToken",
    "LoginThrottle",
    "Permission",
    "Principal",
    "SecretError",
    "ThrottleStatistics",
    "TokenIssuer",
    "TokenVerifier",
    "allows",
    "check_credentials",
    "check_ttl",
    "check_username",
    "hash_password",
    "load_jwt_secret",
    "missing_grants",
    "needs_rehash",
    "verify_password",
    "verify_password_or_dummy",
]
