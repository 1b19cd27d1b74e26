"""BattlEye RCon (protocol v2) client over anyio UDP.

``open_rcon`` is one session (login until the link dies); ``run_forever`` keeps one up with
reconnect backoff. Packet layout, sequence rules and known server quirks: formats.md §2 and §5.
"""

from __future__ import annotations

from ._client import MessageCallback, RConClient, RConStatistics, open_rcon
from ._codec import encode_command_text, find_control_character, is_blank
from ._errors import CommandTimeout, LoginFailed, RConDisconnected, RConError, RConUnreachable
from ._reconnect import run_forever
from ._settings import RConSettings

__all__ = [
    "CommandTimeout",
    "LoginFailed",
    "MessageCallback",
    "RConClient",
    "RConDisconnected",
    "RConError",
    "RConSettings",
    "RConStatistics",
    "RConUnreachable",
    "encode_command_text",
    "find_control_character",
    "is_blank",
    "open_rcon",
    "run_forever",
]
