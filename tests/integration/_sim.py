"""Server entries that run the real DayZ simulator, tuned to be quick."""

from __future__ import annotations

import itertools
import os
import signal
from pathlib import Path
from typing import Any

import psutil

from citadel.config import RconConfig, ServerConfig
from citadel.demo import free_udp_port, simulator_executable

#: Each entry its own ``-port=``: Citadel refuses two servers on one game port (the simulator
#: binds only RCON, but the API checks what the real game would bind).
_GAME_PORTS = itertools.count(2302, 10)

FAST_ENV = {
    "DAYZSIM_TICK": "0.2",
    "DAYZSIM_START_DELAY": "0.3",
    "DAYZSIM_PLAYERS": "3",
    "DAYZSIM_LOBBY_TICKS": "1",
    "DAYZSIM_STATS_TICKS": "2",
}


_RCON_PORTS: set[int] = set()


def _rcon_port() -> int:
    """A free UDP port never handed out before in this test run (two servers of one test must
    not get the same one: Citadel refuses that configuration)."""
    port = free_udp_port(_RCON_PORTS)
    _RCON_PORTS.add(port)
    return port


def sim_config(
    root: Path, server_id: str, env: dict[str, str] | None = None, **overrides: Any
) -> ServerConfig:
    """A server entry whose executable is the simulator, with short timeouts and backoff."""
    install = root / server_id
    (install / "profiles").mkdir(parents=True, exist_ok=True)
    (install / "serverDZ.cfg").write_text(f'hostname = "{server_id}";\nmaxPlayers = 60;\n')
    settings: dict[str, Any] = {
        "start_timeout": 30.0,
        "stop_timeout": 5.0,
        "kill_timeout": 2.0,
        "hang_timeout": 60.0,
        "metrics_interval": 1.0,
        "restart_backoff_base": 0.2,
        "restart_backoff_cap": 1.0,
        **overrides,
    }
    return ServerConfig(
        id=server_id,
        name=server_id.title(),
        install_dir=str(install),
        executable=simulator_executable(),
        args=["-config=serverDZ.cfg", f"-port={next(_GAME_PORTS)}", "-profiles=profiles"],
        env={**FAST_ENV, **(env or {})},
        rcon=RconConfig(password=f"pw-{server_id}", port=_rcon_port()),
        **settings,
    )


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead: this sandbox's init does not reap)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def kill_leftovers(root: Path) -> list[int]:
    """SIGKILL any simulator whose working directory is under ``root`` (test cleanup only)."""
    killed = []
    for process in psutil.process_iter(["pid", "cwd", "cmdline"]):
        try:
            cwd = process.info["cwd"] or ""
            if cwd.startswith(str(root)) and process.pid != os.getpid():
                os.kill(process.pid, signal.SIGKILL)
                killed.append(process.pid)
        except (psutil.Error, ProcessLookupError, TypeError):
            continue
    return killed
