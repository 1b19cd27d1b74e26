"""Invented player identities and the id derivations DayZ and BattlEye use (formats.md §1.8)."""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Final

import msgspec

STEAM64_BASE: Final = 76561190000000000  # below the real Steam64 range: never an account
CLIENT_PORT: Final = 2304
# Names that break naive parsers: spaces, brackets, "(Lobby)"-like text, a colon, non-ASCII.
FIRST_NAMES: Final = (
    "PlayerOne",
    "Player Two",
    "Игрок_3",
    "Big Name [TAG]",
    "Survivor (Lobby) Joe",
    "Mr: Colon",
    "Zoë the Medic",
    "李雷",
)
NAME_TEMPLATES: Final = ("Survivor_{k}", "Игрок_{k}", "Big Name [T{k}]", "Bandit {k}")
_IP_PREFIXES: Final = ("203.0.113", "198.51.100", "192.0.2")  # documentation ranges only


class Identity(msgspec.Struct, frozen=True):
    """Who a simulated player is: name, Steam64 and the ids derived from it, network address."""

    index: int
    name: str
    steam64: int
    guid: str
    dayz_id: str
    ip: str
    port: int


def be_guid(steam64: int) -> str:
    """BattlEye GUID: MD5 hex over ``b"BE"`` + the Steam64 as 8 little-endian bytes."""
    return hashlib.md5(b"BE" + struct.pack("<Q", steam64)).hexdigest()


def dayz_id(steam64: int) -> str:
    """DayZ player id: URL-safe Base64 of SHA-256 over the Steam64 decimal string."""
    digest = hashlib.sha256(str(steam64).encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


def player_name(index: int) -> str:
    """The deterministic name of the ``index``-th player to join in a run."""
    if index < len(FIRST_NAMES):
        return FIRST_NAMES[index]
    return NAME_TEMPLATES[index % len(NAME_TEMPLATES)].format(k=index)


def identity(index: int) -> Identity:
    """The full invented identity of the ``index``-th player to join in a run."""
    steam64 = STEAM64_BASE + index + 1
    ip = f"{_IP_PREFIXES[index % len(_IP_PREFIXES)]}.{1 + (index * 7) % 254}"
    return Identity(
        index=index,
        name=player_name(index),
        steam64=steam64,
        guid=be_guid(steam64),
        dayz_id=dayz_id(steam64),
        ip=ip,
        port=CLIENT_PORT,
    )
