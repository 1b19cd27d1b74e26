"""What the REST handlers need from the rest of Citadel, gathered in one object."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from litestar import Request

from actors import Address
from citadel.auth import LoginThrottle, Principal, TokenIssuer, TokenVerifier
from citadel.servers.fleet import Fleet
from citadel.store import Store
from citadel.store.actor import StoreOp
from citadel.web.audit import AuditTally


class AuthWatcher(Protocol):
    """Told when tokens, users or roles change, so open sockets are re-checked at once."""

    def auth_changed(self, username: str | None) -> None: ...


@dataclass
class ApiContext:
    """The services behind the REST API.

    Attributes:
        store: Read access (same thread; SQLite reads are microseconds).
        db: The store actor, the single writer.
        ready: Returns ``(ready, details)`` for ``/readyz``.
        audit_tally: Anonymous refusals waiting to be written (``citadel.web.audit``).
    """

    store: Store
    db: Address[StoreOp]
    issuer: TokenIssuer
    verifier: TokenVerifier
    throttle: LoginThrottle
    servers: Fleet
    auth_watcher: AuthWatcher
    ready: Callable[[], tuple[bool, dict[str, Any]]]
    clock: Callable[[], float] = field(default=time.time)
    audit_tally: AuditTally = field(default_factory=AuditTally)
    audit_failures: int = 0


def context_of(request: Request[Any, Any, Any]) -> ApiContext:
    ctx: ApiContext = request.app.state["citadel"]
    return ctx


def set_audit_user(request: Request[Any, Any, Any], principal: Principal | str) -> None:
    """Name who made this request in the audit log."""
    request.scope.setdefault("state", {})["audit_user"] = (
        principal if isinstance(principal, str) else principal.user
    )
