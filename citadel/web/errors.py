"""One error shape for every failure: ``{"error": "<sentence>", "code": "<machine_code>"}``.

Litestar's own exceptions (validation, malformed JSON, 404, 405, 413) are mapped onto it, so a
client never sees a framework-specific body. Validation errors become 422 and name the field
path, in the words of the config file (`citadel.config.describe_problem`), for every body and
parameter: ``extra: unknown field``, ``rcon.port: expected int, got str``; a problem of the
body as a whole has no key (``expected object, got null``).
"""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from citadel.config import describe_problem
from citadel.messages.rest import ErrorBody

log = logging.getLogger("citadel.web")

_CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_field",
    429: "throttled",
    500: "internal",
    503: "unavailable",
}


def shown(value: str, limit: int = 80) -> str:
    """``value`` quoted for an error message, cut to ``limit`` characters: path ids are echoed,
    and a 10 kB id should not come back in full."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


#: Litestar's words when the client goes away before its body has arrived (a 500 there).
CLIENT_GONE: Final = "client disconnected prematurely"
#: The status that request is given instead: nginx's "client closed request".
CLIENT_CLOSED: Final = 499

NO_BODY: Final = "the request needs a JSON body ({} when every field is left out)"


class ApiError(Exception):
    """An error the API reports as it is: status, machine code, human sentence."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[bytes]:
    body = msgspec.json.encode(ErrorBody(error=message, code=code))
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _api_error(_: Request[Any, Any, Any], error: ApiError) -> Response[bytes]:
    return error_response(error.status, error.code, error.message, error.headers)


def _validation(_: Request[Any, Any, Any], error: ValidationException) -> Response[bytes]:
    problems = error.extra if isinstance(error.extra, list) else []
    parts = []
    for problem in problems:
        if isinstance(problem, dict):
            key = problem.get("key")
            message = str(problem.get("message", "invalid"))
            if key == "data" and message == "'data'":
                # Litestar's words for a request that has no body at all.
                return error_response(400, "bad_request", NO_BODY)
            # Litestar names the body itself "data" (also for an unknown field at its top).
            path = "" if key in (None, "data") else str(key)
            parts.append(describe_problem(path, message))
    if not problems:
        # Litestar raises ValidationException for undecodable JSON too: that is a 400.
        return error_response(400, "bad_request", f"the body is not valid JSON ({error.detail})")
    return error_response(422, "invalid_field", "; ".join(parts) or str(error.detail))


def _too_deep(_: Request[Any, Any, Any], error: RecursionError) -> Response[bytes]:
    # msgspec refuses JSON nested past its depth limit with a RecursionError.
    return error_response(400, "bad_request", "the body is not valid JSON (nested too deeply)")


def _http(_: Request[Any, Any, Any], error: HTTPException) -> Response[bytes]:
    status = error.status_code
    detail = str(error.detail) if error.detail else "request failed"
    if status == 500 and detail == CLIENT_GONE:
        # Nobody reads this answer; it is what the audit records: nothing failed here.
        return error_response(CLIENT_CLOSED, "client_closed", "the client closed the request")
    if status == 400 and detail.startswith("JSON is malformed"):
        detail = f"the body is not valid JSON ({detail.removeprefix('JSON is malformed: ')})"
    elif status == 400 and detail == "Input data was truncated":
        # msgspec's words for a cut-off body, and also for an unpaired surrogate escape.
        detail = (
            "the body is not valid JSON (it ends too early, or has an unpaired "
            "\\uD800-\\uDFFF escape)"
        )
    if status == 413:
        detail = "the request body is too large"
    return error_response(status, _CODES.get(status, "error"), detail, dict(error.headers or {}))


def _internal(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
    log.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=error)
    return error_response(500, "internal", "internal error; see the server log")


EXCEPTION_HANDLERS: Final = {
    ApiError: _api_error,
    ValidationException: _validation,
    HTTPException: _http,
    RecursionError: _too_deep,
    Exception: _internal,
}
