"""BattlEye RCon text: command outputs (``players``, ``admins``, ``bans``) and server messages.

Input is already-decoded text (the RCon client reassembles multi-packet replies as bytes and
decodes once with ``errors="replace"``, formats.md §2.4, §2.10). Every function here is pure and
total: rows that do not match are skipped, and an unrecognised server message becomes
:class:`Unknown`.

Lines are split on ``\\n`` only (a trailing ``\\r`` is stripped), never with ``str.splitlines``,
which would also break a player name at characters such as U+2028 or U+001C.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, Literal

import msgspec

__all__ = [
    "AdminLogin",
    "AdminSay",
    "Ban",
    "BeMaster",
    "Chat",
    "GuidVerified",
    "PlayerConnected",
    "PlayerDisconnected",
    "PlayerGuid",
    "PlayerKicked",
    "PlayerTable",
    "RconAdmin",
    "RconPlayer",
    "ServerMessage",
    "Unknown",
    "parse_admins",
    "parse_bans",
    "parse_players",
    "parse_server_message",
    "render_player_row",
]

_GUID: Final = r"[0-9a-fA-F]{32}"
_PLAYER_ROW_RE: Final = re.compile(
    r"^(\d+)\s+(\S+):(\d+)\s+(-?\d+)\s+(" + _GUID + r"|-)\((OK|\?)\)\s(.*?)(\s\(Lobby\))?$",
    re.DOTALL,
)
_PLAYERS_TOTAL_RE: Final = re.compile(r"^\((\d+) players? in total\)\s*$")
_ADMIN_ROW_RE: Final = re.compile(r"^(\d+)\s+(\S+):(\d+)\s*$")
_BAN_ROW_RE: Final = re.compile(r"^(\d+)\s+(\S+)\s+(perm|-|-?\d+)(?:\s(.*))?$", re.DOTALL)
_GUID_RE: Final = re.compile(r"^" + _GUID + r"$")

_ADMIN_LOGIN_RE: Final = re.compile(r"^RCon admin #(\d+) \((.+):(\d+)\) logged in\s*$")
_BE_MASTER_RE: Final = re.compile(r"^(Connected to|Disconnected from) BE Master")
# Greedy names below: a name is player-controlled, so the *last* occurrence of the fixed text
# is the real separator (a player cannot append text after it).
_CONNECTED_RE: Final = re.compile(r"^Player #(\d+) (.*) \(([^()\s]+):(\d+)\) connected\s*$")
_GUID_MSG_RE: Final = re.compile(
    r"^Player #(\d+) (.*) - (BE )?GUID: (" + _GUID + r")( \(unverified\))?\s*$"
)
_VERIFIED_RE: Final = re.compile(r"^Verified GUID \((" + _GUID + r")\) of player #(\d+) (.*)$")
_KICKED_RE: Final = re.compile(
    r"^Player #(\d+) (.*) \((" + _GUID + r"|-)\) has been kicked by BattlEye: (.*)$", re.DOTALL
)
_DISCONNECTED_RE: Final = re.compile(r"^Player #(\d+) (.*) disconnected\s*$")
_ADMIN_SAY_RE: Final = re.compile(r"^RCon admin #(\d+): \((Global|To .*?)\) (.*)$", re.DOTALL)
_CHAT_RE: Final = re.compile(r"^\(([A-Za-z]+)\) (.*)$", re.DOTALL)


def _lines(text: str) -> list[str]:
    return [line.removesuffix("\r") for line in text.split("\n")]


# --- command outputs -------------------------------------------------------------------------


class RconPlayer(msgspec.Struct, frozen=True, kw_only=True):
    """One row of ``players``. ``guid`` is ``None`` when BattlEye printed ``-``."""

    slot: int
    ip: str
    port: int
    ping: int
    guid: str | None
    verified: bool
    name: str
    lobby: bool


class PlayerTable(msgspec.Struct, frozen=True, kw_only=True):
    """The parsed ``players`` output; ``total`` is the footer count when present."""

    players: tuple[RconPlayer, ...]
    total: int | None


def parse_players(text: str) -> PlayerTable:
    """Parse a ``players`` reply; header, rule and unknown lines are skipped."""
    players: list[RconPlayer] = []
    total: int | None = None
    for line in _lines(text):
        if m := _PLAYER_ROW_RE.match(line):
            slot, ip, port, ping, guid, verified, name, lobby = m.groups()
            players.append(
                RconPlayer(
                    slot=int(slot),
                    ip=ip,
                    port=int(port),
                    ping=int(ping),
                    guid=None if guid == "-" else guid.lower(),
                    verified=verified == "OK",
                    name=name,
                    lobby=lobby is not None,
                )
            )
        elif m := _PLAYERS_TOTAL_RE.match(line):
            total = int(m.group(1))
    return PlayerTable(players=tuple(players), total=total)


def render_player_row(player: RconPlayer) -> str:
    """Render a row the way BattlEye prints it (used by the simulator and tests)."""
    guid = "-" if player.guid is None else player.guid
    status = "OK" if player.verified else "?"
    address = f"{player.ip}:{player.port}"
    lobby = " (Lobby)" if player.lobby else ""
    return f"{player.slot:<3} {address:<21} {player.ping:<4} {guid}({status}) {player.name}{lobby}"


class RconAdmin(msgspec.Struct, frozen=True, kw_only=True):
    """One row of ``admins``."""

    index: int
    ip: str
    port: int


def parse_admins(text: str) -> tuple[RconAdmin, ...]:
    """Parse an ``admins`` reply."""
    out: list[RconAdmin] = []
    for line in _lines(text):
        if m := _ADMIN_ROW_RE.match(line):
            out.append(RconAdmin(index=int(m.group(1)), ip=m.group(2), port=int(m.group(3))))
    return tuple(out)


class Ban(msgspec.Struct, frozen=True, kw_only=True):
    """One row of ``bans``. ``minutes`` is ``None`` for ``perm`` and for expired (``-``)."""

    index: int
    kind: Literal["guid", "ip"]
    id: str
    minutes: int | None
    perm: bool
    expired: bool
    reason: str


def parse_bans(text: str) -> tuple[Ban, ...]:
    """Parse a ``bans`` reply (GUID and IP sections share one running index)."""
    out: list[Ban] = []
    section: Literal["guid", "ip"] | None = None
    for line in _lines(text):
        stripped = line.strip()
        if stripped == "GUID Bans:":
            section = "guid"
            continue
        if stripped == "IP Bans:":
            section = "ip"
            continue
        m = _BAN_ROW_RE.match(line)
        if m is None:
            continue
        index, ident, left, reason = m.groups()
        kind = section or ("guid" if _GUID_RE.match(ident) else "ip")
        out.append(
            Ban(
                index=int(index),
                kind=kind,
                id=ident,
                minutes=None if left in ("perm", "-") else int(left),
                perm=left == "perm",
                expired=left == "-",
                reason=(reason or "").strip(),
            )
        )
    return tuple(out)


# --- server messages -------------------------------------------------------------------------


class AdminLogin(msgspec.Struct, frozen=True, kw_only=True, tag="admin_login"):
    """``RCon admin #n (ip:port) logged in``: the echo of a login, ours included."""

    admin: int
    ip: str
    port: int


class BeMaster(msgspec.Struct, frozen=True, kw_only=True, tag="be_master"):
    """``Connected to BE Master`` / ``Disconnected from BE Master``."""

    connected: bool


class PlayerConnected(msgspec.Struct, frozen=True, kw_only=True, tag="player_connected"):
    """``Player #n <name> (ip:port) connected``."""

    slot: int
    name: str
    ip: str
    port: int


class PlayerGuid(msgspec.Struct, frozen=True, kw_only=True, tag="player_guid"):
    """``Player #n <name> - BE GUID: <guid>`` (or the older ``- GUID: <guid> (unverified)``)."""

    slot: int
    name: str
    guid: str


class GuidVerified(msgspec.Struct, frozen=True, kw_only=True, tag="guid_verified"):
    """``Verified GUID (<guid>) of player #n <name>``."""

    slot: int
    name: str
    guid: str


class Chat(msgspec.Struct, frozen=True, kw_only=True, tag="chat"):
    """``(<Channel>) <name>: <text>`` from a player."""

    channel: str
    name: str
    text: str


class AdminSay(msgspec.Struct, frozen=True, kw_only=True, tag="admin_say"):
    """``RCon admin #n: (Global) <text>`` or ``(To <name>) <text>``."""

    admin: int
    channel: str
    text: str


class PlayerKicked(msgspec.Struct, frozen=True, kw_only=True, tag="player_kicked"):
    """``Player #n <name> (<guid>|-) has been kicked by BattlEye: <reason>``."""

    slot: int
    name: str
    guid: str | None
    reason: str


class PlayerDisconnected(msgspec.Struct, frozen=True, kw_only=True, tag="player_disconnected"):
    """``Player #n <name> disconnected``."""

    slot: int
    name: str


class Unknown(msgspec.Struct, frozen=True, kw_only=True, tag="unknown"):
    """A server message no rule matched."""

    text: str


ServerMessage = (
    AdminLogin
    | BeMaster
    | PlayerConnected
    | PlayerGuid
    | GuidVerified
    | Chat
    | AdminSay
    | PlayerKicked
    | PlayerDisconnected
    | Unknown
)


def _split_chat(body: str, known_names: Iterable[str]) -> tuple[str, str] | None:
    """Split ``<name>: <text>`` preferring the longest known name that fits."""
    best: str | None = None
    for name in known_names:
        if body.startswith(name + ": ") and (best is None or len(name) > len(best)):
            best = name
    if best is not None:
        return best, body[len(best) + 2 :]
    name, sep, text = body.partition(": ")
    return (name, text) if sep else None


def parse_server_message(text: str, known_names: Iterable[str] = ()) -> ServerMessage:
    """Classify one server message (type 0x02 text); never raises.

    Args:
        text: the decoded message.
        known_names: names of players currently on the server; used to split chat lines whose
            sender name itself contains ``": "``.
    """
    line = text.removesuffix("\r")
    if m := _ADMIN_LOGIN_RE.match(line):
        return AdminLogin(admin=int(m.group(1)), ip=m.group(2), port=int(m.group(3)))
    if m := _ADMIN_SAY_RE.match(line):
        return AdminSay(admin=int(m.group(1)), channel=m.group(2), text=m.group(3))
    if m := _BE_MASTER_RE.match(line):
        return BeMaster(connected=m.group(1) == "Connected to")
    if m := _VERIFIED_RE.match(line):
        return GuidVerified(slot=int(m.group(2)), name=m.group(3), guid=m.group(1).lower())
    if line.startswith("Player #"):
        if m := _KICKED_RE.match(line):
            guid = m.group(3)
            return PlayerKicked(
                slot=int(m.group(1)),
                name=m.group(2),
                guid=None if guid == "-" else guid.lower(),
                reason=m.group(4),
            )
        if m := _GUID_MSG_RE.match(line):
            return PlayerGuid(slot=int(m.group(1)), name=m.group(2), guid=m.group(4).lower())
        if m := _CONNECTED_RE.match(line):
            return PlayerConnected(
                slot=int(m.group(1)), name=m.group(2), ip=m.group(3), port=int(m.group(4))
            )
        if m := _DISCONNECTED_RE.match(line):
            return PlayerDisconnected(slot=int(m.group(1)), name=m.group(2))
    if m := _CHAT_RE.match(line):
        split = _split_chat(m.group(2), known_names)
        if split is not None:
            return Chat(channel=m.group(1), name=split[0], text=split[1])
    return Unknown(text=text)
