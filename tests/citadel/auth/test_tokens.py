"""JWT issue and verify against a real store, in injected time: every refusal reason, and the
revocation semantics (logout, password change without the 8-hour lockout, cleanup)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citadel.auth import (
    DEFAULT_TOKEN_TTL,
    AuthError,
    Principal,
    TokenIssuer,
    TokenVerifier,
    check_credentials,
    hash_password,
)
from citadel.store import Role, Store, User

SECRET = b"s" * 32
OTHER_SECRET = b"o" * 32
T0 = 1_800_000_000.0


class Clock:
    """A settable clock shared by store, issuer and verifier."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(tmp_path, clock=clock) as s:
        yield s


@pytest.fixture
def issuer(clock: Clock) -> TokenIssuer:
    return TokenIssuer(SECRET, clock=clock)


@pytest.fixture
def verifier(store: Store, clock: Clock) -> TokenVerifier:
    return TokenVerifier(SECRET, store, clock=clock)


@pytest.fixture
def alice(store: Store) -> User:
    return store.create_user("alice", "h", "operator")


def _reason(verifier: TokenVerifier, token: str | bytes | None) -> str:
    with pytest.raises(AuthError) as info:
        verifier.verify(token)
    return info.value.reason


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def _claims(**overrides: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": "alice",
        "role": "operator",
        "iat": T0,
        "exp": T0 + 60,
        "jti": "j1",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_valid_token_gives_the_principal(
    issuer: TokenIssuer, verifier: TokenVerifier, alice: User
) -> None:
    issued = issuer.issue(alice)
    principal = verifier.verify(issued.token)
    assert principal == Principal(
        user="alice",
        role="operator",
        permissions=principal.permissions,
        servers=None,
        jti=issued.jti,
        exp=T0 + DEFAULT_TOKEN_TTL,
    )
    assert "server.restart" in principal.permissions
    assert principal.can("players.ban", "alpha")
    assert not principal.can("users.manage")
    assert verifier.verify(issued.token.encode()) == principal
    header = jwt.get_unverified_header(issued.token)
    assert header["alg"] == "HS256"
    claims = jwt.decode(
        issued.token,
        SECRET,
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert set(claims) == {"sub", "role", "iat", "exp", "jti"}


@pytest.mark.parametrize("token", [None, "", b""])
def test_missing(verifier: TokenVerifier, token: str | bytes | None) -> None:
    assert _reason(verifier, token) == "missing"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "a.b",
        "....",
        "eyJhbGciOiJIUzI1NiJ9.%%%.sig",
        b"\xff\xfe\xfd",
        "Ωmega.token.here",
        "x" * 10_000,
    ],
)
def test_garbage_is_malformed(verifier: TokenVerifier, token: str | bytes) -> None:
    assert _reason(verifier, token) == "malformed"


def test_alg_none_is_refused(verifier: TokenVerifier, alice: User) -> None:
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}."
    assert _reason(verifier, unsigned) == "alg_not_allowed"


def test_other_algorithms_are_refused(verifier: TokenVerifier, alice: User) -> None:
    hs512 = jwt.encode(_claims(), SECRET * 2, algorithm="HS512")
    assert _reason(verifier, hs512) == "alg_not_allowed"


def test_wrong_key_is_bad_signature(verifier: TokenVerifier, alice: User) -> None:
    forged = jwt.encode(_claims(), OTHER_SECRET, algorithm="HS256")
    assert _reason(verifier, forged) == "bad_signature"
    genuine = jwt.encode(_claims(), SECRET, algorithm="HS256")
    head, _body, sig = genuine.split(".")
    tampered_body = _b64(_claims(role="admin"))
    assert _reason(verifier, f"{head}.{tampered_body}.{sig}") == "bad_signature"


@pytest.mark.parametrize(
    "claims",
    [
        _claims(jti=None),
        _claims(sub=None),
        _claims(exp=None),
        _claims(iat=None),
        _claims(role=None),
        _claims(sub=42),
        _claims(exp="tomorrow"),
        _claims(iat=True),
        _claims(jti=""),
        _claims(iat=T0 + 3600),  # issued in the future
    ],
)
def test_signed_but_malformed_claims(
    verifier: TokenVerifier, alice: User, claims: dict[str, object]
) -> None:
    assert _reason(verifier, jwt.encode(claims, SECRET, algorithm="HS256")) == "malformed"


def test_expired(issuer: TokenIssuer, verifier: TokenVerifier, alice: User, clock: Clock) -> None:
    token = issuer.issue(alice).token
    clock.now = T0 + DEFAULT_TOKEN_TTL - 1
    verifier.verify(token)
    clock.now = T0 + DEFAULT_TOKEN_TTL
    assert _reason(verifier, token) == "expired"


def test_unknown_and_disabled_users(
    issuer: TokenIssuer, verifier: TokenVerifier, store: Store, alice: User
) -> None:
    token = issuer.issue(alice).token
    store.set_disabled("alice", True)
    verifier.invalidate_user("alice")
    assert _reason(verifier, token) == "disabled"
    store.delete_user("alice")
    verifier.invalidate_user("alice")
    assert _reason(verifier, token) == "unknown_user"
    ghost = jwt.encode(_claims(sub="ghost"), SECRET, algorithm="HS256")
    assert _reason(verifier, ghost) == "unknown_user"


def test_logout_revokes_only_that_token(
    issuer: TokenIssuer, verifier: TokenVerifier, alice: User
) -> None:
    first = issuer.issue(alice).token
    second = issuer.issue(alice).token
    verifier.revoke(verifier.verify(first))
    assert _reason(verifier, first) == "revoked"
    assert verifier.verify(second).user == "alice"


def test_password_change_revokes_older_tokens_but_not_newer_ones(
    issuer: TokenIssuer, verifier: TokenVerifier, store: Store, alice: User, clock: Clock
) -> None:
    old = issuer.issue(alice).token
    clock.now = T0 + 100
    changed = store.set_password("alice", "new-hash")
    assert changed is not None
    verifier.invalidate_user("alice")
    assert _reason(verifier, old) == "revoked"
    # Issued in the very same instant as the change: valid at once, not 8 hours later.
    fresh = issuer.issue(changed).token
    assert verifier.verify(fresh).user == "alice"
    clock.now = T0 + 101
    assert verifier.verify(fresh).user == "alice"
    clock.now = T0 + 100 + DEFAULT_TOKEN_TTL - 1
    assert verifier.verify(fresh).user == "alice"


def test_token_after_password_change_survives_a_clock_step_back(
    issuer: TokenIssuer, verifier: TokenVerifier, store: Store, alice: User, clock: Clock
) -> None:
    clock.now = T0 + 100
    changed = store.set_password("alice", "new-hash")
    assert changed is not None
    clock.now = T0 + 90  # NTP stepped the wall clock back
    fresh = issuer.issue(changed).token
    assert verifier.verify(fresh).user == "alice"


def test_cleanup_of_revoked_rows_happens_only_after_expiry(
    issuer: TokenIssuer, verifier: TokenVerifier, store: Store, alice: User, clock: Clock
) -> None:
    issued = issuer.issue(alice)
    verifier.revoke(verifier.verify(issued.token))
    clock.now = issued.expires_at - 1
    assert store.purge_revoked() == 0
    assert _reason(verifier, issued.token) == "revoked"
    clock.now = issued.expires_at
    assert store.purge_revoked() == 1
    # The row is gone, and the token is refused anyway.
    assert _reason(verifier, issued.token) == "expired"


def test_role_is_read_from_the_store_not_the_token(
    issuer: TokenIssuer, verifier: TokenVerifier, store: Store, alice: User
) -> None:
    token = issuer.issue(alice).token
    store.save_role("alpha-view", ["server.view"], ["alpha"])
    store.set_role("alice", "alpha-view")
    verifier.invalidate_user("alice")
    principal = verifier.verify(token)
    assert principal.role == "alpha-view"
    assert principal.servers == frozenset({"alpha"})
    assert principal.can("server.view", "alpha")
    assert not principal.can("server.view", "bravo")
    assert not principal.can("server.start", "alpha")
    store.save_role("alpha-view", ["server.view", "server.start"], ["alpha"])
    verifier.invalidate_roles()
    assert verifier.verify(token).can("server.start", "alpha")


class CountingStore(Store):
    """A real store that counts user and role lookups."""

    user_lookups = 0
    role_lookups = 0

    def get_user(self, username: str) -> User | None:
        self.user_lookups += 1
        return super().get_user(username)

    def get_role(self, name: str) -> Role | None:
        self.role_lookups += 1
        return super().get_role(name)


def test_verification_caches_users_and_roles_until_the_store_changes(
    tmp_path: Path, clock: Clock
) -> None:
    with CountingStore(tmp_path / "c.sqlite3", clock=clock) as store:
        user = store.create_user("alice", "h", "viewer")
        verifier = TokenVerifier(SECRET, store, clock=clock)
        token = TokenIssuer(SECRET, clock=clock).issue(user).token
        for _ in range(10):
            verifier.verify(token)
        clock.now += 3600  # no lifetime: an unchanged store keeps the cache warm
        verifier.verify(token)
        assert (store.user_lookups, store.role_lookups) == (1, 1)
        # A change through this connection is seen by the next check, without invalidation.
        store.set_disabled("alice", True)
        assert _reason(verifier, token) == "disabled"


def test_a_change_by_another_process_is_seen_by_the_next_check(
    tmp_path: Path, clock: Clock
) -> None:
    """``citadel user passwd`` writes through its own connection while the server runs."""
    with CountingStore(tmp_path / "c.sqlite3", clock=clock) as store:
        user = store.create_user("alice", "h", "viewer")
        verifier = TokenVerifier(SECRET, store, clock=clock)
        token = TokenIssuer(SECRET, clock=clock).issue(user).token
        verifier.verify(token)
        verifier.verify(token)
        assert store.user_lookups == 1  # cached
        clock.now += 1
        with Store(tmp_path / "c.sqlite3", clock=clock) as cli:
            cli.set_password("alice", "new-hash")
        assert _reason(verifier, token) == "revoked"
        with Store(tmp_path / "c.sqlite3", clock=clock) as cli:
            cli.save_role("narrow", ["server.view"], ["alpha"])
            cli.set_role("alice", "narrow")
        fresh = TokenIssuer(SECRET, clock=clock).issue(store.get_user("alice")).token  # type: ignore[arg-type]  # alice exists
        assert verifier.verify(fresh).servers == frozenset({"alpha"})


@pytest.mark.parametrize("ttl", [float("nan"), float("inf"), -float("inf"), 0, -1, 366 * 86400])
def test_issuer_refuses_unusable_lifetimes(ttl: float) -> None:
    with pytest.raises(ValueError, match="token lifetime"):
        TokenIssuer(SECRET, ttl=ttl)


def _raw_token(payload: str) -> str:
    """Sign a payload given as JSON text (PyJWT's own encoder would refuse nothing)."""
    header = _b64({"alg": "HS256", "typ": "JWT"})
    body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    signature = hmac.new(SECRET, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"


@pytest.mark.parametrize(
    ("iat", "exp"),
    [
        (str(T0), "NaN"),
        (str(T0), "Infinity"),
        ("NaN", str(T0 + 60)),
        ("-Infinity", str(T0 + 60)),
        (str(T0), "1e400"),
        (str(T0), str(T0 + 366 * 86400)),  # a lifetime over a year
    ],
)
def test_non_finite_or_endless_times_are_malformed(
    verifier: TokenVerifier, alice: User, iat: str, exp: str
) -> None:
    payload = f'{{"sub":"alice","role":"operator","iat":{iat},"exp":{exp},"jti":"j-nan"}}'
    assert _reason(verifier, _raw_token(payload)) == "malformed"


def test_revocation_is_never_dropped(store: Store, clock: Clock) -> None:
    with pytest.raises(ValueError, match="finite"):
        store.revoke_token("j-nan", float("nan"))
    store.revoke_token("j1", T0 + 10)
    store.revoke_token("j1", T0 + 100)  # revoked again: the later expiry wins
    store.revoke_token("j1", T0 + 50)
    clock.now = T0 + 60
    assert store.purge_revoked() == 0
    assert store.is_revoked("j1")


def test_check_credentials(store: Store) -> None:
    store.create_user("bob", hash_password("right"), "viewer")
    user = check_credentials(store, "bob", "right")
    assert user is not None
    assert user.username == "bob"
    assert check_credentials(store, "bob", "wrong") is None
    assert check_credentials(store, "nobody", "right") is None
    store.set_disabled("bob", True)
    assert check_credentials(store, "bob", "right") is None


@pytest.fixture(scope="module")
def fuzz_verifier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenVerifier]:
    with Store.open(tmp_path_factory.mktemp("fuzz")) as store:
        store.create_user("alice", "h", "admin")
        yield TokenVerifier(SECRET, store)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_fuzzed_tokens_only_raise_auth_error(
    fuzz_verifier: TokenVerifier, data: str | bytes
) -> None:
    with pytest.raises(AuthError):
        fuzz_verifier.verify(data)
