"""Messages between one server's actors (frozen msgspec Structs).

To the ``process`` actor (from the logs actor and REST):
`Ready`, `FatalStartError`, `StartServer`, `StopServer`, `RestartServer`, `GetStatus`.
To the ``rcon`` actor: `RconCommand` and `KickPlayer` (calls; the reply is `RconResult`),
`FindPlayer` (reply `PlayerLookup`).
To the ``logs`` actor: `ConsoleLines` (captured stdout/stderr of the current incarnation),
`SystemLog` (Citadel's own lifecycle lines).
Recent logs and metrics are read from the `ServerRuntime` histories, not asked for.
To the run store (``process.RunStore``): `Notice`, a lifecycle notification to be stored and
numbered before it is published.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from citadel.messages import LogLevel, Player, Severity


class Ready(msgspec.Struct, frozen=True):
    """The RPT of ``incarnation`` said ``Player connect enabled``."""

    incarnation: int


class FatalStartError(msgspec.Struct, frozen=True):
    """The game reported an error it cannot start past (e.g. a script compile failure)."""

    incarnation: int
    message: str


class StartServer(msgspec.Struct, frozen=True):
    """An operator's start (always accepted unless already running; resets the budget)."""

    by: str | None = None


class StopServer(msgspec.Struct, frozen=True):
    """An operator's stop (wins over a pending automatic restart)."""

    by: str | None = None


class RestartServer(msgspec.Struct, frozen=True):
    by: str | None = None


class GetStatus(msgspec.Struct, frozen=True):
    """Reply: ``citadel.messages.rest.ServerStatusView``."""


class Accepted(msgspec.Struct, frozen=True):
    """Reply to a lifecycle command: accepted (``ok``) or refused with the reason.

    ``failure`` is set when the command was carried out but the start it made could not even
    spawn the process (the server is then ``crashed`` with that reason).
    """

    ok: bool
    reason: str = ""
    failure: str | None = None


class RconCommand(msgspec.Struct, frozen=True):
    """Run one RCON command (validated by the caller); reply `RconResult`."""

    command: str
    timeout: float = 10.0


#: Why an RCON request failed (``RconResult.failure``); REST maps each to a status:
#: ``invalid`` the text cannot be sent (422); ``not_configured`` no ``rcon`` table and
#: ``not_connected`` the server is not running/ready (or stopped under the command) or its
#: login was rejected (409: retrying will not help until that changes); ``unavailable`` the
#: link is (re)connecting or dropped while the command was in flight - nothing is retried, try
#: again (503); ``no_reply`` no answer in time, the command may or may not have been applied
#: (504); ``bad_reply`` the answer was not what the command returns (502); ``gone`` the player
#: is no longer connected (404).
RconFailure = Literal[
    "invalid", "not_configured", "not_connected", "unavailable", "no_reply", "bad_reply", "gone"
]


class RconResult(msgspec.Struct, frozen=True):
    """The answer to an RCON request: the output, or an error sentence and its `RconFailure`."""

    ok: bool
    output: str = ""
    error: str = ""
    failure: RconFailure | None = None


class KickPlayer(msgspec.Struct, frozen=True):
    """Kick the connected player ``player_id`` (a ``Player.id``); reply `RconResult`.

    The rcon actor resolves the id against a fresh ``players`` answer right before it sends
    ``kick <slot>``: slots are reused, so the slot in an older list may be someone else's.
    ``timeout`` bounds each of the two commands.
    """

    player_id: str
    reason: str = ""
    timeout: float = 10.0


class FindPlayer(msgspec.Struct, frozen=True):
    """Resolve ``player_id`` against a fresh ``players`` answer; reply `PlayerLookup`."""

    player_id: str
    timeout: float = 10.0


class PlayerLookup(msgspec.Struct, frozen=True):
    """The player as the server lists it now (``None``: no longer connected), or why the
    ``players`` command failed (``result``)."""

    result: RconResult
    player: Player | None = None


class ConsoleLines(msgspec.Struct, frozen=True):
    """Console output of ``incarnation`` (stream ``stdout``/``stderr``)."""

    incarnation: int
    lines: tuple[tuple[Literal["stdout", "stderr"], str], ...]


class SystemLog(msgspec.Struct, frozen=True):
    """One of Citadel's own lifecycle lines about this server (source ``system``)."""

    level: LogLevel
    message: str


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    """A lifecycle notification before it has its id: the store numbers it (host-wide unique,
    kept across Citadel restarts), then it is published as a ``notification`` event.

    ``at`` is the wall-clock time (Unix seconds) it was raised.
    """

    server_id: str | None
    type: str
    title: str
    message: str
    severity: Severity
    at: float
