"""Launch line, environment controls and BattlEye config: parsed by pure functions.

Everything the simulator can be told comes in through three doors, all parsed here without I/O:
DayZ's own command line (:func:`parse_args`), the ``DAYZSIM_*`` environment variables
(:func:`parse_env`) and BattlEye's ``beserver_x64.cfg`` (:func:`parse_be_config`). Unknown flags,
unparsable numbers and garbage lines are ignored, the way DayZ ignores what it does not know.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

# --- defaults -------------------------------------------------------------------------------------
DEFAULT_TICK: Final = 5.0  # seconds between simulation ticks (DAYZSIM_TICK)
DEFAULT_START_DELAY: Final = 2.0  # seconds from start to "Player connect enabled"
DEFAULT_PLAYERS: Final = 3  # target player count
DEFAULT_VEHICLES: Final = 3
DEFAULT_CHURN: Final = 0.02  # per-tick chance that one player leaves (and another joins)
DEFAULT_LOBBY_TICKS: Final = 2  # ticks a joining player spends in the lobby
DEFAULT_STATS_TICKS: Final = 6  # ticks between "Average server FPS" / "Players" lines
DEFAULT_PLAYERLIST_TICKS: Final = 60  # ticks between ADM PlayerList blocks (300 s at 5 s ticks)
DEFAULT_SCRIPT_ERROR_TICKS: Final = 60  # ticks between runtime script error blocks; 0 = never
DEFAULT_EVENT_CHANCE: Final = 0.05  # per-tick chance of a chat line and of a hit line
DEFAULT_GAME_PORT: Final = 2302
DEFAULT_RCON_IP: Final = "127.0.0.1"  # loopback only, unlike BattlEye's 0.0.0.0
DEFAULT_RCON_PART_SIZE: Final = 1000  # reply bytes per RCON datagram before splitting
DEFAULT_RCON_RESEND: Final = 2.0  # seconds between resends of an unacknowledged server message
DEFAULT_RCON_RESEND_LIMIT: Final = 5  # resends before the client is dropped
DEFAULT_RCON_TIMEOUT: Final = 45.0  # seconds of client silence before it is dropped
DEFAULT_MAX_PLAYERS: Final = 60
DEFAULT_SEED: Final = 0
CRASH_MODES: Final = ("exit", "signal", "abort")
#: ``DAYZSIM_SPAWN_CHILD`` values: where the child lives and whether SIGTERM ends it (see
#: docs/simulator.md). A true boolean (``1``) means ``group``.
CHILD_MODES: Final = ("group", "stubborn", "setsid", "daemon")
#: ``DAYZSIM_HANG_MODE`` values: ``process`` freezes everything, ``loop`` only the game loop.
HANG_MODES: Final = ("process", "loop")


class LaunchArgs(msgspec.Struct, frozen=True):
    """The DayZ command-line flags the simulator understands."""

    config: str = "serverDZ.cfg"
    port: int = DEFAULT_GAME_PORT
    profiles: str = "profiles"
    be_path: str | None = None
    mods: tuple[str, ...] = ()
    server_mods: tuple[str, ...] = ()
    dologs: bool = False
    adminlog: bool = False
    freezecheck: bool = False
    seed: int | None = None


class Controls(msgspec.Struct, frozen=True):
    """Behaviour and failure controls read from ``DAYZSIM_*`` environment variables."""

    tick: float = DEFAULT_TICK
    start_delay: float = DEFAULT_START_DELAY
    players: int = DEFAULT_PLAYERS
    vehicles: int = DEFAULT_VEHICLES
    churn: float = DEFAULT_CHURN
    lobby_ticks: int = DEFAULT_LOBBY_TICKS
    stats_ticks: int = DEFAULT_STATS_TICKS
    playerlist_ticks: int = DEFAULT_PLAYERLIST_TICKS
    script_error_ticks: int = DEFAULT_SCRIPT_ERROR_TICKS
    event_chance: float = DEFAULT_EVENT_CHANCE
    seed: int = DEFAULT_SEED
    crash_after: float | None = None
    crash_mode: str = "exit"
    crash_arg: str = "3"
    hang_after: float | None = None
    hang_mode: str = "process"
    ignore_shutdown: bool = False
    spawn_child: str | None = None  # one of CHILD_MODES, or None for no child
    rcon_refuse: bool = False
    rcon_garbage: bool = False
    rcon_part_size: int = DEFAULT_RCON_PART_SIZE
    rcon_resend: float = DEFAULT_RCON_RESEND
    rcon_resend_limit: int = DEFAULT_RCON_RESEND_LIMIT
    rcon_timeout: float = DEFAULT_RCON_TIMEOUT
    log_flood: float = 0.0
    script_compile_error: bool = False


class BeConfig(msgspec.Struct, frozen=True):
    """The BattlEye RCON settings (``RConPassword``, ``RConPort``, ``RConIP``)."""

    password: str | None = None
    port: int | None = None
    ip: str = DEFAULT_RCON_IP
    restrict: bool = False


def _to_int(text: str, default: int) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return default


def _to_float(text: str | None, default: float) -> float:
    if text is None:
        return default
    try:
        value = float(text.strip())
    except ValueError:
        return default
    return value if math.isfinite(value) else default


def _to_opt_float(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    value = _to_float(text, -1.0)
    return value if value >= 0 else None


def _to_bool(text: str | None) -> bool:
    return text is not None and text.strip().lower() in {"1", "true", "yes", "on"}


def _child_mode(text: str | None) -> str | None:
    if _to_bool(text):
        return "group"
    mode = (text or "").strip().lower()
    return mode if mode in CHILD_MODES else None


def _choice(text: str | None, choices: Sequence[str], default: str) -> str:
    value = (text or "").strip().lower()
    return value if value in choices else default


def _split_mods(value: str) -> tuple[str, ...]:
    return tuple(part for part in value.split(";") if part)


def parse_args(argv: Sequence[str]) -> LaunchArgs:
    """Parse a DayZ server command line (without the program name); unknown flags are ignored.

    Flags are matched case-insensitively, as DayZ does (``-BEpath`` and ``-bepath`` both work).
    ``--seed N`` / ``--seed=N`` is the simulator's own addition.
    """
    values: dict[str, object] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("--seed"):
            raw = arg.partition("=")[2] if "=" in arg else (args[i] if i < len(args) else "")
            if "=" not in arg:
                i += 1
            values["seed"] = _to_int(raw, DEFAULT_SEED)
            continue
        if not arg.startswith("-"):
            continue
        name, _, value = arg[1:].partition("=")
        key = name.lower()
        if key == "config" and value:
            values["config"] = value
        elif key == "port":
            values["port"] = _to_int(value, DEFAULT_GAME_PORT)
        elif key == "profiles" and value:
            values["profiles"] = value
        elif key == "bepath" and value:
            values["be_path"] = value
        elif key == "mod":
            values["mods"] = _split_mods(value)
        elif key == "servermod":
            values["server_mods"] = _split_mods(value)
        elif key in {"dologs", "adminlog", "freezecheck"}:
            values[key] = True
    return msgspec.convert(values, LaunchArgs)


def parse_env(env: Mapping[str, str]) -> Controls:
    """Read the ``DAYZSIM_*`` controls; bad values fall back to the defaults."""

    def get(name: str) -> str | None:
        return env.get(f"DAYZSIM_{name}")

    def count(name: str, default: int) -> int:
        raw = get(name)
        return max(0, _to_int(raw, default)) if raw is not None else default

    mode_text = (get("CRASH_MODE") or "exit:3").strip()
    mode, _, mode_arg = mode_text.partition(":")
    mode = mode.lower()
    if mode not in CRASH_MODES:
        mode, mode_arg = "exit", "3"
    if mode == "exit" and not mode_arg:
        mode_arg = "3"
    if mode == "signal" and not mode_arg:
        mode_arg = "SEGV"
    tick = _to_float(get("TICK"), DEFAULT_TICK)
    return Controls(
        tick=tick if tick > 0 else DEFAULT_TICK,
        start_delay=max(0.0, _to_float(get("START_DELAY"), DEFAULT_START_DELAY)),
        players=count("PLAYERS", DEFAULT_PLAYERS),
        vehicles=count("VEHICLES", DEFAULT_VEHICLES),
        churn=min(1.0, max(0.0, _to_float(get("CHURN"), DEFAULT_CHURN))),
        lobby_ticks=count("LOBBY_TICKS", DEFAULT_LOBBY_TICKS),
        stats_ticks=max(1, count("STATS_TICKS", DEFAULT_STATS_TICKS)),
        playerlist_ticks=max(1, count("PLAYERLIST_TICKS", DEFAULT_PLAYERLIST_TICKS)),
        script_error_ticks=count("SCRIPT_ERROR_TICKS", DEFAULT_SCRIPT_ERROR_TICKS),
        event_chance=min(1.0, max(0.0, _to_float(get("EVENT_CHANCE"), DEFAULT_EVENT_CHANCE))),
        seed=_to_int(get("SEED") or "", DEFAULT_SEED),
        crash_after=_to_opt_float(get("CRASH_AFTER")),
        crash_mode=mode,
        crash_arg=mode_arg,
        hang_after=_to_opt_float(get("HANG_AFTER")),
        hang_mode=_choice(get("HANG_MODE"), HANG_MODES, "process"),
        ignore_shutdown=_to_bool(get("IGNORE_SHUTDOWN")),
        spawn_child=_child_mode(get("SPAWN_CHILD")),
        rcon_refuse=_to_bool(get("RCON_REFUSE")),
        rcon_garbage=_to_bool(get("RCON_GARBAGE")),
        rcon_part_size=max(16, count("RCON_PART_SIZE", DEFAULT_RCON_PART_SIZE)),
        rcon_resend=max(0.01, _to_float(get("RCON_RESEND"), DEFAULT_RCON_RESEND)),
        rcon_resend_limit=count("RCON_RESEND_LIMIT", DEFAULT_RCON_RESEND_LIMIT),
        rcon_timeout=max(0.05, _to_float(get("RCON_TIMEOUT"), DEFAULT_RCON_TIMEOUT)),
        log_flood=max(0.0, _to_float(get("LOG_FLOOD"), 0.0)),
        script_compile_error=_to_bool(get("SCRIPT_COMPILE_ERROR")),
    )


def parse_be_config(text: str) -> BeConfig:
    """Parse ``beserver_x64.cfg`` text: ``Key value`` lines, keys case-insensitive."""
    values: dict[str, object] = {}
    for raw in text.splitlines():
        key, _, value = raw.strip().partition(" ")
        value = value.strip()
        lowered = key.lower()
        if lowered == "rconpassword" and value:
            values["password"] = value
        elif lowered == "rconport":
            port = _to_int(value, -1)
            if 0 < port < 65536:
                values["port"] = port
        elif lowered == "rconip" and value:
            values["ip"] = value
        elif lowered == "restrictrcon":
            values["restrict"] = value == "1"
    return msgspec.convert(values, BeConfig)


def parse_server_cfg(text: str) -> dict[str, str]:
    """Read the ``name = value;`` pairs of a ``serverDZ.cfg`` (top level only, quotes removed)."""
    result: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            continue
        result[key.strip()] = value.strip().rstrip(";").strip().strip('"')
    return result
