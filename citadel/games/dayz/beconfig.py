"""BattlEye RCon config: render ``beserver_x64.cfg`` and write it safely before each start.

BattlEye reads ``<profile>/battleye/beserver_x64.cfg`` once at start and then works from a
runtime copy ``beserver_x64_active_<hex>.cfg``. A stale active copy left by a crash wins over
the base file, so it is deleted before writing new credentials; the file-name case differs
between versions, so both ``beserver_x64.cfg`` and ``BEServer_x64.cfg`` are written
(formats.md §2.9). Each file is written to a temporary sibling, fsynced, and renamed into
place, so the server never reads a half-written file. Files are created with mode 0600: they
hold the RCon password.

:func:`render_beserver_cfg` is pure; :func:`write_beserver_cfg` does blocking file I/O (call it
through ``anyio.to_thread.run_sync``).
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Final

from citadel.files import write_private

__all__ = [
    "BE_CONFIG_NAMES",
    "render_beserver_cfg",
    "write_beserver_cfg",
]

# --- defaults -------------------------------------------------------------------------------
BE_DIR_NAME: Final = "battleye"
BE_CONFIG_NAMES: Final = ("beserver_x64.cfg", "BEServer_x64.cfg")
"""Both spellings are written: BattlEye versions disagree on the case (Linux is case-sensitive)."""
DEFAULT_RCON_IP: Final = "127.0.0.1"
# ---------------------------------------------------------------------------------------------

_ACTIVE_RE: Final = re.compile(r"^beserver_x64_active_.*\.cfg$", re.IGNORECASE)


def render_beserver_cfg(password: str, port: int, ip: str = DEFAULT_RCON_IP) -> str:
    """Return the text of ``beserver_x64.cfg``.

    Raises:
        ValueError: the password is empty or contains whitespace or control characters (the
            file is whitespace-separated, so such a password would be cut or inject a line),
            the port is outside 1–65535, or ``ip`` is not an IP address.
    """
    if not password:
        raise ValueError("RCon password must not be empty")
    if any(ch.isspace() for ch in password):
        raise ValueError("RCon password must not contain spaces, tabs or newlines")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in password):
        raise ValueError("RCon password must not contain control characters")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"RCon port must be an integer in 1-65535, got {port!r}")
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise ValueError(f"RCon IP must be an IP address, got {ip!r}") from None
    return f"RConPassword {password}\nRConPort {port}\nRConIP {ip}\nRestrictRCon 0\n"


def write_beserver_cfg(
    profile_dir: str | os.PathLike[str],
    password: str,
    port: int,
    ip: str = DEFAULT_RCON_IP,
) -> tuple[Path, ...]:
    """Write the config into ``<profile_dir>/battleye/`` and delete stale active copies.

    Returns:
        The paths written.

    Raises:
        ValueError: invalid password, port or IP (see :func:`render_beserver_cfg`); nothing is
            touched on disk in that case.
        OSError: the directory or files could not be written.
    """
    text = render_beserver_cfg(password, port, ip)
    be_dir = Path(profile_dir) / BE_DIR_NAME
    be_dir.mkdir(parents=True, exist_ok=True)
    # Stale active copies first: if writing fails halfway, no old copy overrides new settings.
    for entry in be_dir.iterdir():
        if _ACTIVE_RE.match(entry.name) and entry.is_file():
            entry.unlink(missing_ok=True)
    data = text.encode("utf-8")
    written: list[Path] = []
    for name in BE_CONFIG_NAMES:
        path = be_dir / name
        write_private(path, data)
        written.append(path)
    return tuple(written)
