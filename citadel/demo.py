"""``citadel serve --demo N``: N simulated DayZ servers, so a fresh machine shows everything.

Each demo server is an ordinary server entry: its executable is the bundled simulator
(``dayz-sim``, a real process speaking the real formats), its install dir lives in the data dir,
its game and RCON ports are chosen free. Nothing else in Citadel knows they are simulated.
The entries are kept in ``<data-dir>/demo/servers.json`` so a restarted Citadel finds (and
adopts) the same servers; asking for more demo servers adds new ones.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import sys
from collections.abc import Container
from pathlib import Path
from typing import Final

import msgspec

from citadel.config import RconConfig, ServerConfig
from citadel.files import write_private

DEMO_DIR: Final = "demo"
FIRST_GAME_PORT: Final = 2302
#: Simulated time runs at the real pace; a few players and vehicles move on each server.
DEMO_ENV: Final = {
    "DAYZSIM_TICK": "1",
    "DAYZSIM_START_DELAY": "3",
    "DAYZSIM_PLAYERS": "4",
    "DAYZSIM_STATS_TICKS": "5",
    "DAYZSIM_PLAYERLIST_TICKS": "30",
    "DAYZSIM_CHURN": "0.05",
}
SERVER_CFG: Final = 'hostname = "{name}";\nmaxPlayers = 60;\n'


def simulator_executable() -> str:
    """The ``dayz-sim`` entry point next to this Python (or on PATH)."""
    beside = Path(sys.executable).parent / "dayz-sim"
    if beside.exists():
        return str(beside)
    found = shutil.which("dayz-sim")
    if found is None:
        raise FileNotFoundError("the dayz-sim simulator is not installed (run scripts/setup)")
    return found


def free_udp_port(avoid: Container[int] = ()) -> int:
    """A UDP port free on loopback now and not in ``avoid`` (ports already handed out: a port
    probed free is released at once, so the kernel may offer it again)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in avoid:
            return port


def demo_servers(data_dir: Path, count: int) -> list[ServerConfig]:
    """The first ``count`` demo servers, created (files and all) where missing."""
    base = data_dir / DEMO_DIR
    index = base / "servers.json"
    known: list[ServerConfig] = []
    if index.exists():
        known = msgspec.json.decode(index.read_bytes(), type=list[ServerConfig])
    executable = simulator_executable()
    while len(known) < count:
        n = len(known) + 1
        install = base / f"demo-{n}"
        known.append(
            ServerConfig(
                id=f"demo-{n}",
                name=f"Demo {n}",
                install_dir=str(install),
                executable=executable,
                args=[
                    "-config=serverDZ.cfg",
                    f"-port={FIRST_GAME_PORT + 100 * n}",
                    "-profiles=profiles",
                    "-dologs",
                    "-adminlog",
                ],
                env={**DEMO_ENV, "DAYZSIM_SEED": str(n)},
                auto_start=True,
                rcon=RconConfig(
                    password=secrets.token_urlsafe(12),
                    port=free_udp_port({k.rcon.port for k in known if k.rcon is not None}),
                    host="127.0.0.1",
                ),
                # A simulator is up in seconds; the real server's five minutes are too patient.
                start_timeout=60.0,
                stop_timeout=15.0,
                hang_timeout=60.0,
            )
        )
    for config in known[:count]:
        install = Path(config.install_dir)
        (install / "profiles").mkdir(parents=True, exist_ok=True)
        cfg = install / "serverDZ.cfg"
        if not cfg.exists():
            cfg.write_text(SERVER_CFG.format(name=config.name))
    base.mkdir(parents=True, exist_ok=True)
    data = msgspec.json.format(msgspec.json.encode(known))
    if not index.exists() or index.read_bytes() != data:  # it holds RCon passwords: 0600
        write_private(index, data)
    return known[:count]
