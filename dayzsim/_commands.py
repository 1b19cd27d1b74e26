"""RCON command lines parsed into tagged Structs by one pure function, :func:`parse_command`."""

from __future__ import annotations

import msgspec


class Keepalive(msgspec.Struct, frozen=True, tag="keepalive"):
    """The empty command: answered with an empty reply."""


class Players(msgspec.Struct, frozen=True, tag="players"):
    """``players``."""


class Admins(msgspec.Struct, frozen=True, tag="admins"):
    """``admins``."""


class Bans(msgspec.Struct, frozen=True, tag="bans"):
    """``bans``."""


class Say(msgspec.Struct, frozen=True, tag="say"):
    """``say -1 <text>`` (everyone) or ``say <n> <text>`` (one player)."""

    slot: int
    text: str


class Kick(msgspec.Struct, frozen=True, tag="kick"):
    """``kick <n> [reason]``."""

    slot: int
    reason: str


class BanPlayer(msgspec.Struct, frozen=True, tag="ban"):
    """``ban <n> [minutes] [reason]``; ``minutes`` None or 0 = permanent."""

    slot: int
    minutes: int | None
    reason: str


class AddBan(msgspec.Struct, frozen=True, tag="addBan"):
    """``addBan <GUID|IP> [minutes] [reason]``."""

    target: str
    minutes: int | None
    reason: str


class RemoveBan(msgspec.Struct, frozen=True, tag="removeBan"):
    """``removeBan <index>``."""

    index: int


class LoadBans(msgspec.Struct, frozen=True, tag="loadBans"):
    """``loadBans``: re-read ``bans.txt``."""


class WriteBans(msgspec.Struct, frozen=True, tag="writeBans"):
    """``writeBans``: write ``bans.txt``."""


class Lock(msgspec.Struct, frozen=True, tag="lock"):
    """``#lock``: no new players may join."""


class Unlock(msgspec.Struct, frozen=True, tag="unlock"):
    """``#unlock``."""


class Shutdown(msgspec.Struct, frozen=True, tag="shutdown"):
    """``#shutdown``: save and exit."""


class BadArguments(msgspec.Struct, frozen=True, tag="bad"):
    """A known command with arguments that do not parse; answered with an empty reply."""

    name: str


class Unknown(msgspec.Struct, frozen=True, tag="unknown"):
    """Anything else: answered ``Unknown command``."""

    text: str


Command = (
    Keepalive
    | Players
    | Admins
    | Bans
    | Say
    | Kick
    | BanPlayer
    | AddBan
    | RemoveBan
    | LoadBans
    | WriteBans
    | Lock
    | Unlock
    | Shutdown
    | BadArguments
    | Unknown
)

_SIMPLE: dict[str, Command] = {
    "players": Players(),
    "admins": Admins(),
    "bans": Bans(),
    "loadbans": LoadBans(),
    "writebans": WriteBans(),
    "#lock": Lock(),
    "#unlock": Unlock(),
    "#shutdown": Shutdown(),
}


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _minutes_and_reason(rest: str) -> tuple[int | None, str]:
    first, _, tail = rest.partition(" ")
    minutes = _int(first)
    if minutes is None:
        return None, rest.strip()
    return (minutes if minutes > 0 else None), tail.strip()


def parse_command(line: str) -> Command:
    """Parse one command line; the command word is case-insensitive, arguments are kept."""
    text = line.strip()
    if not text:
        return Keepalive()
    word, _, rest = text.partition(" ")
    name = word.lower()
    rest = rest.strip()
    if name in _SIMPLE:
        return _SIMPLE[name]
    if name in {"say", "kick", "ban"}:
        first, _, tail = rest.partition(" ")
        slot = _int(first)
        if slot is None or (name != "say" and slot < 0):
            return BadArguments(name)
        if name == "say":
            return Say(slot, tail.strip()) if tail.strip() else BadArguments(name)
        if name == "kick":
            return Kick(slot, tail.strip())
        minutes, reason = _minutes_and_reason(tail.strip())
        return BanPlayer(slot, minutes, reason)
    if name == "addban":
        target, _, tail = rest.partition(" ")
        if not target:
            return BadArguments(name)
        minutes, reason = _minutes_and_reason(tail.strip())
        return AddBan(target, minutes, reason)
    if name == "removeban":
        index = _int(rest)
        return RemoveBan(index) if index is not None and index >= 0 else BadArguments(name)
    return Unknown(text)
