"""REST request and response bodies (DESIGN §4). camelCase on the wire, unknown fields refused.

Requests are decoded once at the edge with ``forbid_unknown_fields``; a violation becomes a
422 naming the field. Responses never carry secrets (no password hashes).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from citadel.messages._common import ServerId, ServerStatus

Username = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
NewPassword = Annotated[str, msgspec.Meta(min_length=8, max_length=1024)]
RoleName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{1,32}$")]


class _Request(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, rename="camel"
):
    pass


class _Response(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    pass


class ErrorBody(_Response, frozen=True):
    """Every error: a human sentence and a machine code."""

    error: str
    code: str


class LoginRequest(_Request, frozen=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Password


class UserView(_Response, frozen=True):
    """A user as the API shows it."""

    username: str
    role: str
    disabled: bool
    created_at: str


class LoginResponse(_Response, frozen=True):
    token: str
    expires_at: str
    user: UserView


class MeResponse(_Response, frozen=True):
    user: UserView
    permissions: list[str]
    servers: list[str] | None


class PasswordChange(_Request, frozen=True):
    current_password: Password
    new_password: NewPassword


class UserCreate(_Request, frozen=True):
    username: Username
    password: NewPassword
    role: RoleName


class UserUpdate(_Request, frozen=True):
    password: NewPassword | None = None
    role: RoleName | None = None
    disabled: bool | None = None


class RoleView(_Response, frozen=True):
    name: str
    permissions: list[str]
    servers: list[str] | None
    builtin: bool


class RoleCreate(_Request, frozen=True):
    name: RoleName
    permissions: list[str]
    servers: list[ServerId] | None = None


class RoleUpdate(_Request, frozen=True):
    permissions: list[str] | None = None
    servers: list[ServerId] | None = None
    all_servers: bool = False


class ServerView(_Response, frozen=True):
    id: str
    name: str
    game: str
    status: ServerStatus
    source: Literal["config", "api", "demo"]


class ServerStatusView(_Response, frozen=True):
    """``GET /api/servers/{id}/status``."""

    server_id: str
    status: ServerStatus
    seq: int
    pid: int | None = None
    uptime: float | None = None
    restart_count: int = 0
    restart_in: float | None = None
    reason: str | None = None


class AuditTallyView(_Response, frozen=True):
    """What a tallied audit row stands for: ``count`` anonymous refusals of one address, method
    and status between ``first`` and ``last``, with up to five of their paths."""

    count: int
    first: str
    last: str
    paths: list[str]


class AuditView(_Response, frozen=True):
    """One audit row; ``tally`` is set on a row that sums up anonymous refusals, else null."""

    id: int
    timestamp: str
    user: str | None
    ip: str | None
    method: str
    path: str
    status: int
    tally: AuditTallyView | None


class HealthView(_Response, frozen=True):
    status: Literal["ok", "starting", "stopping"]


RconText = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
Reason = Annotated[str, msgspec.Meta(max_length=200)]


class CommandAccepted(_Response, frozen=True):
    """A lifecycle command was accepted; progress arrives as ``serverStatus`` events."""

    accepted: bool
    status: ServerStatus


class CommandRequest(_Request, frozen=True):
    """The body of start, stop and restart: they take no options (no body, or ``{}``)."""


class KickRequest(_Request, frozen=True):
    reason: Reason = ""


class BanRequest(_Request, frozen=True):
    reason: Reason = ""
    minutes: Annotated[int, msgspec.Meta(ge=0, le=525_600)] | None = None


class BanView(_Response, frozen=True):
    id: int
    server_id: str
    guid: str | None
    ip: str | None
    reason: str
    minutes: int | None
    created_by: str | None
    created_at: str


class BanOutcome(BanView, frozen=True):
    """The answer to a ban of a connected player: the ban as applied and stored (``banned`` is
    always true; a ban RCON refused is an error and nothing is stored), and whether the kick
    that follows it worked (``kickError`` says why not: the ban stands either way)."""

    banned: bool
    kicked: bool
    kick_error: str | None = None


class RconRequest(_Request, frozen=True):
    command: RconText


class RconResponse(_Response, frozen=True):
    result: str


class MessageRequest(_Request, frozen=True):
    message: Annotated[str, msgspec.Meta(min_length=1, max_length=400)]
