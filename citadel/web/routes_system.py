"""Liveness, readiness and the audit log."""

from __future__ import annotations

from typing import Annotated, Any, Final

from litestar import Request, Response, get
from litestar.params import QueryParameter

from citadel.messages.rest import AuditView
from citadel.web.context import context_of
from citadel.web.guards import Caller, require
from citadel.web.views import audit_view

MAX_AUDIT_ID: Final = 2**63 - 1
"""SQLite's largest integer: a larger ``before`` is a 422, not an overflow deep in the store."""


@get("/healthz", media_type="application/json")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get("/readyz", media_type="application/json")
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Readiness: 200 once the supervision tree is up, else 503, with details."""
    ready, details = context_of(request).ready()
    return Response({"ready": ready, **details}, status_code=200 if ready else 503)


@get("/api/audit")
async def list_audit(
    request: Request[Any, Any, Any],
    principal: Caller,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    before: Annotated[int | None, QueryParameter(ge=1, le=MAX_AUDIT_ID)] = None,
) -> list[AuditView]:
    """The newest audited requests first; page with ``before=<id>`` (``users.manage``)."""
    require(principal, "users.manage")
    entries = context_of(request).store.list_audit(limit=limit, before_id=before)
    return [audit_view(e) for e in entries]


ROUTES = [healthz, readyz, list_audit]
