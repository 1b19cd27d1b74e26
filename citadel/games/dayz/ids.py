"""Player identifiers derived from a Steam64 id (formats.md §1.8).

DayZ and BattlEye each derive their own id from the player's Steam64 id, and neither can be
reversed: the ADM ``id=`` is URL-safe Base64 of SHA-256 over the decimal Steam64 string, the
BattlEye GUID (RCon ``players``) is MD5 over ``b"BE"`` + the Steam64 as 8 little-endian bytes.
Where the Steam64 id is known (a map mod's snapshot, the RPT ``steamID=`` line), both can be
computed and the RCon player linked to the DayZ one.

Example:
    >>> len(battleye_guid("76561190000000001") or "")
    32
    >>> battleye_guid("not a number") is None
    True
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

__all__ = ["battleye_guid", "dayz_player_id"]

_STEAM64_LIMIT: Final = 1 << 64


def _steam64(steam_id: str) -> int | None:
    text = steam_id.strip()
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value < _STEAM64_LIMIT else None


def battleye_guid(steam_id: str) -> str | None:
    """The BattlEye GUID (32 lowercase hex) of a Steam64 id; ``None`` if it is not one."""
    value = _steam64(steam_id)
    if value is None:
        return None
    return hashlib.md5(b"BE" + value.to_bytes(8, "little"), usedforsecurity=False).hexdigest()


def dayz_player_id(steam_id: str) -> str | None:
    """The DayZ player id (the ADM ``id=``) of a Steam64 id; ``None`` if it is not one."""
    value = _steam64(steam_id)
    if value is None:
        return None
    digest = hashlib.sha256(str(value).encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")
