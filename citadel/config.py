"""Citadel's configuration: a TOML file decoded into frozen msgspec Structs (DESIGN §5).

A server is described by the same ``ServerConfig`` in the file (``[[servers]]``) and in the body
of ``POST /api/servers``. Validation happens once, at load, and every problem is reported as a
``ConfigError`` whose message starts with the key path, e.g. ``servers[1].rcon.port: expected
int, got str``.

One validation for every way a server arrives (the file, ``POST``/``PATCH /api/servers``):
msgspec checks types and bounds, `check_server` what msgspec cannot express - what would only
fail at spawn (a NUL in a path or argument, an environment variable name that is empty or holds
``=``, an RCON password the BattlEye file cannot hold, an RCON host that is not an IP address)
and ``profile_dir`` climbing out of ``install_dir`` - and `server_conflict` what two servers
would share: a UDP port, or the profile directory. Its problems name the key path too
(``env["A=B"]: ...``, ``args[0]: ...``).

Paths: ``load_config`` resolves a relative ``citadel.data_dir`` and ``servers[].install_dir``
against the directory holding the config file (so ``citadel serve --config /etc/citadel.toml``
means the same thing from any working directory). ``executable`` and ``profile_dir`` stay
relative to ``install_dir``, as the game expects. ``rcon`` may be omitted: such a server gets no
RCON client, no ``#shutdown`` step in the stop ladder and no ``beserver_x64.cfg``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import msgspec

from citadel.messages import ServerId

# ----------------------------------------------------------------------------- defaults
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 3001
DEFAULT_DATA_DIR: Final = "citadel-data"
DEFAULT_PROFILE_DIR: Final = "profiles"
DEFAULT_STOP_TIMEOUT: Final = 60.0
DEFAULT_KILL_TIMEOUT: Final = 10.0
DEFAULT_START_TIMEOUT: Final = 300.0
DEFAULT_HANG_TIMEOUT: Final = 180.0
DEFAULT_METRICS_INTERVAL: Final = 5.0
DEFAULT_RESTART_BACKOFF_BASE: Final = 5.0
DEFAULT_RESTART_BACKOFF_CAP: Final = 300.0
DEFAULT_RESTART_RESET_AFTER: Final = 600.0
DEFAULT_MAX_RESTARTS_PER_HOUR: Final = 10
#: The longest duration a key takes (30 days): a finite bound, so that JSON's ``1e400`` and
#: TOML's ``inf`` are refused by name instead of meaning "wait forever".
MAX_SECONDS: Final = 30 * 24 * 3600.0
#: How much of an offending key or value an error message shows.
MAX_SHOWN: Final = 40
NUL: Final = "\x00"

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=MAX_SECONDS)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class ConfigError(Exception):
    """The configuration is unreadable or invalid; the message names the bad key path."""


class RconConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the server's BattlEye RCON listens and its password (written to beserver_x64.cfg)."""

    password: NonEmpty
    port: Port
    host: NonEmpty = DEFAULT_HOST


class ServerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One game server: how to launch it and how to supervise it.

    Durations are seconds. ``restart_backoff_*`` shape the delay between automatic restarts
    after a crash (capped exponential with jitter, reset after ``restart_reset_after`` seconds
    of running); ``max_restarts_per_hour`` bounds automatic restarts before Citadel gives up.
    """

    id: ServerId
    name: NonEmpty
    install_dir: NonEmpty
    executable: NonEmpty
    game: Literal["dayz"] = "dayz"
    args: list[str] = msgspec.field(default_factory=list)
    env: dict[str, str] = msgspec.field(default_factory=dict)
    profile_dir: NonEmpty = DEFAULT_PROFILE_DIR
    auto_start: bool = False
    auto_restart: bool = True
    rcon: RconConfig | None = None
    stop_timeout: Seconds = DEFAULT_STOP_TIMEOUT
    kill_timeout: Seconds = DEFAULT_KILL_TIMEOUT
    start_timeout: Seconds = DEFAULT_START_TIMEOUT
    hang_timeout: Seconds = DEFAULT_HANG_TIMEOUT
    metrics_interval: Seconds = DEFAULT_METRICS_INTERVAL
    restart_backoff_base: Seconds = DEFAULT_RESTART_BACKOFF_BASE
    restart_backoff_cap: Seconds = DEFAULT_RESTART_BACKOFF_CAP
    restart_reset_after: Seconds = DEFAULT_RESTART_RESET_AFTER
    max_restarts_per_hour: Annotated[int, msgspec.Meta(ge=0)] = DEFAULT_MAX_RESTARTS_PER_HOUR


class CitadelSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``[citadel]`` table: where the supervisor listens and keeps its data."""

    host: NonEmpty = DEFAULT_HOST
    port: Port = DEFAULT_PORT
    data_dir: NonEmpty = DEFAULT_DATA_DIR


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole configuration file."""

    citadel: CitadelSettings = msgspec.field(default_factory=CitadelSettings)
    servers: list[ServerConfig] = msgspec.field(default_factory=list)


# msgspec messages look like "Expected `int`, got `str` - at `$.servers[1].rcon.port`".
_AT: Final = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_FIELD: Final = re.compile(
    r"^Object (?P<kind>contains unknown|missing required) field `(?P<f>.*)`$", re.DOTALL
)
#: Longest key name an error repeats as it is (a longer one, or one with a control character,
#: is shown quoted and cut: a client chose it).
MAX_KEY_SHOWN: Final = 64


def describe_problem(path: str, what: str) -> str:
    """``<key path>: <problem>`` from msgspec's words for one problem (for config and REST).

    The one translation of validation errors: the config file, ``POST``/``PATCH
    /api/servers`` and every other REST body (``citadel.web.errors``) name a key the same way.

    Args:
        path: Where the problem is, as msgspec gives it without the ``$`` (``.rcon.port``,
            ``servers[1]``); empty for the document itself.
        what: msgspec's message without its location (``Expected `int`, got `str```,
            ``Object contains unknown field `colour```).

    Returns:
        For example ``rcon.port: expected int, got str`` or ``colour: unknown field``; a
        problem of the whole document has no key (``expected object, got null``).
    """
    field = _FIELD.match(what)
    if field:
        path = f"{path}.{_key_shown(field['f'])}"
        what = "unknown field" if field["kind"] == "contains unknown" else "missing required key"
    else:
        what = what.replace("`", "")
        what = what[:1].lower() + what[1:]
    key = path.lstrip(".")
    return f"{key}: {what}" if key else what


def _key_shown(name: str) -> str:
    """A key name for an error: as it is, or JSON-quoted and cut (see `MAX_KEY_SHOWN`)."""
    if len(name) <= MAX_KEY_SHOWN and name.isprintable() and '"' not in name and name.strip():
        return name
    return _shown(name)


def describe_validation_error(error: msgspec.ValidationError, root: str = "") -> str:
    """Turn a msgspec validation error into ``<key path>: <problem>`` (see `describe_problem`).

    Args:
        error: The error raised by ``msgspec.convert`` / a decoder.
        root: A prefix for the path (e.g. ``"servers[2]"``); empty for the document root.

    Returns:
        For example ``servers[1].rcon.port: expected int, got str`` or
        ``servers[0].colour: unknown field``.
    """
    match = _AT.match(str(error))
    what = match["what"] if match else str(error)
    path = (match["path"] if match else None) or ""
    return describe_problem(root + path, what)


# -- what msgspec cannot check -----------------------------------------------------------------


def _shown(text: str) -> str:
    """``text`` quoted as JSON (control characters visible), cut to `MAX_SHOWN` characters."""
    cut = text[:MAX_SHOWN] + ("..." if len(text) > MAX_SHOWN else "")
    return msgspec.json.encode(cut).decode()


def _control_character(text: str) -> str | None:
    for char in text:
        if char < " " or char == "\x7f":
            return char
    return None


def _server_problem(config: ServerConfig, absolute_install_dir: bool) -> str | None:
    """The first problem of ``config`` that msgspec's types cannot express, as ``key: ...``."""
    nul = "must not contain NUL (U+0000)"
    char = _control_character(config.name)
    if char is not None:
        return f"name: must not contain control characters or line breaks (found U+{ord(char):04X})"
    for key in ("install_dir", "executable", "profile_dir"):
        if NUL in getattr(config, key):
            return f"{key}: {nul}"
    if absolute_install_dir and not Path(config.install_dir).is_absolute():
        return (
            f"install_dir: must be an absolute path (got {_shown(config.install_dir)}); only the "
            "config file defines relative paths, against its own directory"
        )
    # Relative to install_dir, or absolute; never climbing out of install_dir with "..".
    if ".." in Path(config.profile_dir).parts:
        return f"profile_dir: must not contain '..' (got {_shown(config.profile_dir)})"
    for index, arg in enumerate(config.args):
        if NUL in arg:
            return f"args[{index}]: {nul}"
        if arg[:6].lower() == "-port=" and _game_port(arg) is None:
            # DayZ would fall back to its default port: a clash nobody was warned of.
            return f"args[{index}]: -port= takes a port number 1-65535 (got {_shown(arg)})"
    for name, value in config.env.items():
        key = f"env[{_shown(name)}]"
        if not name:
            return f"{key}: a variable name must not be empty"
        if "=" in name:
            return f"{key}: a variable name must not contain '='"
        if NUL in name:
            return f"{key}: a variable name {nul}"
        if NUL in value:
            return f"{key}: {nul}"
    rcon = config.rcon
    if rcon is not None:
        # beserver_x64.cfg is "Key value" lines: such a password would be cut or add a line.
        if any(char.isspace() for char in rcon.password):
            return "rcon.password: must not contain spaces, tabs or line breaks"
        if _control_character(rcon.password) is not None:
            return "rcon.password: must not contain control characters"
        try:
            ipaddress.ip_address(rcon.host)
        except ValueError:
            return f"rcon.host: must be an IP address (got {_shown(rcon.host)})"
    return None


def check_server(
    config: ServerConfig, *, root: str = "", absolute_install_dir: bool = False
) -> None:
    """Refuse what msgspec's types let through but could never start (see the module doc).

    Args:
        config: A decoded server.
        root: A prefix for the key path (``"servers[2]"`` in the file).
        absolute_install_dir: Require an absolute ``install_dir`` (through the API, where no
            config file defines what a relative one is relative to).

    Raises:
        ConfigError: ``<key path>: <problem>``, e.g. ``env["A=B"]: a variable name must not
            contain '='`` or ``args[0]: must not contain NUL (U+0000)``.
    """
    problem = _server_problem(config, absolute_install_dir)
    if problem is not None:
        raise ConfigError(f"{root}.{problem}".lstrip("."))


# -- UDP ports two servers would both bind ------------------------------------------------------

#: DayZ's game port: ``-port=N`` on its command line (flags are case-insensitive).
_GAME_PORT: Final = re.compile(r"-port=([0-9]{1,5})", re.IGNORECASE)  # ASCII digits only


def _game_port(arg: str) -> int | None:
    """The port of a ``-port=N`` argument, None for any other argument or a bad number."""
    match = _GAME_PORT.fullmatch(arg)
    if match and 1 <= int(match[1]) <= 65535:
        return int(match[1])
    return None


class _Binding(msgspec.Struct, frozen=True):
    key: str  # where the config says so: "rcon.port", "args[1]"
    what: str  # "RCON port", "game port"
    host: str | None  # None: every address of the host
    port: int


def _bindings(config: ServerConfig) -> list[_Binding]:
    """The UDP ports ``config`` is known to bind: its ``-port=`` and its RCON port.

    Only what the config says: the Steam query port lives in ``serverDZ.cfg``, and a server
    without ``-port=`` takes the game's default, which Citadel does not guess.
    """
    found = []
    for index, arg in enumerate(config.args):
        port = _game_port(arg)
        if port is not None:
            found.append(_Binding(f"args[{index}]", "game port", None, port))
    if config.rcon is not None:
        found.append(_Binding("rcon.port", "RCON port", config.rcon.host, config.rcon.port))
    return found


def _same_address(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return True
    try:
        first, second = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return a == b
    return first.is_unspecified or second.is_unspecified or first == second


def _overlap(a: _Binding, b: _Binding) -> bool:
    return a.port == b.port and _same_address(a.host, b.host)


def port_conflict(config: ServerConfig, others: Iterable[tuple[str, ServerConfig]]) -> str | None:
    """The first UDP port ``config`` would bind that is bound already, as ``key: ...``.

    Two bindings overlap when their ports are equal and their addresses may be the same (equal,
    or either one every address: the game port, ``0.0.0.0``, ``::``). Both DayZ's game port and
    BattlEye's RCON port are UDP.

    Args:
        config: The server being added or changed.
        others: The other servers, each with how to name it (``"server 'alpha'"``).
    """
    mine = _bindings(config)
    for index, first in enumerate(mine):
        for second in mine[index + 1 :]:
            if _overlap(first, second):
                return (
                    f"{second.key}: UDP port {second.port} is also this server's {first.what} "
                    f"({first.key})"
                )
    for name, other in others:
        for theirs in _bindings(other):
            for binding in mine:
                if _overlap(binding, theirs):
                    return (
                        f"{binding.key}: UDP port {binding.port} is already the {theirs.what} "
                        f"of {name}"
                    )
    return None


def profile_path(config: ServerConfig) -> str:
    """The server's profile directory: ``profile_dir`` under ``install_dir`` (or absolute),
    normalised (``a/./b/`` is ``a/b``; symbolic links are not followed)."""
    return os.path.normpath(os.path.join(config.install_dir, config.profile_dir))


def server_conflict(config: ServerConfig, others: Iterable[tuple[str, ServerConfig]]) -> str | None:
    """What ``config`` would share with another server, as ``key: ...``, or None.

    A UDP port (`port_conflict`), or the profile directory: two servers writing their logs,
    ``battleye/`` config and position files into one directory overwrite each other's RCON
    settings and read each other's log lines.
    """
    others = list(others)
    conflict = port_conflict(config, others)
    if conflict is not None:
        return conflict
    mine = profile_path(config)
    for name, other in others:
        if profile_path(other) == mine:
            return f"profile_dir: the profile directory {_shown(mine)} is already that of {name}"
    return None


def _check_servers(servers: list[ServerConfig]) -> None:
    seen: dict[str, int] = {}
    for index, server in enumerate(servers):
        root = f"servers[{index}]"
        if server.id in seen:
            raise ConfigError(
                f"{root}.id: duplicate id {server.id!r} (also servers[{seen[server.id]}])"
            )
        seen[server.id] = index
        check_server(server, root=root)
        earlier = ((f"servers[{i}] ({s.id!r})", s) for i, s in enumerate(servers[:index]))
        conflict = server_conflict(server, earlier)
        if conflict is not None:
            raise ConfigError(f"{root}.{conflict}")


def _resolve(path: str, base: Path | None) -> str:
    if base is None or Path(path).is_absolute():
        return path
    return str(base / path)


def parse_config(text: str, base_dir: Path | None = None) -> Config:
    """Parse and validate configuration text.

    Args:
        text: TOML text.
        base_dir: Directory against which relative ``data_dir`` / ``install_dir`` resolve;
            ``None`` leaves them as written.

    Raises:
        ConfigError: Invalid TOML, a wrong type or value, an unknown key, a value no server
            could start with (`check_server`), a duplicate id, or a UDP port or profile
            directory two servers would share (`server_conflict`).
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}") from exc
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc
    _check_servers(config.servers)
    if base_dir is None:
        return config
    servers = [
        msgspec.structs.replace(s, install_dir=_resolve(s.install_dir, base_dir))
        for s in config.servers
    ]
    settings = msgspec.structs.replace(
        config.citadel, data_dir=_resolve(config.citadel.data_dir, base_dir)
    )
    return Config(citadel=settings, servers=servers)


def load_config(path: str | Path) -> Config:
    """Read, parse and validate a configuration file (relative paths resolve next to it).

    Raises:
        ConfigError: The file cannot be read or is invalid; the message names the file.
    """
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 (byte {exc.start})") from exc
    try:
        return parse_config(text, base_dir=file.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from exc


def convert_server_config(data: Any, *, absolute_install_dir: bool = False) -> ServerConfig:
    """Convert a decoded body (JSON builtins) into a checked ``ServerConfig``.

    Raises:
        ConfigError: Invalid; the message names the key path.
    """
    try:
        config = msgspec.convert(data, ServerConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc
    check_server(config, absolute_install_dir=absolute_install_dir)
    return config


_SERVER_DECODER: Final = msgspec.json.Decoder(ServerConfig)


def decode_server_config(data: bytes | str) -> ServerConfig:
    """Decode a JSON ``ServerConfig`` (the body of ``POST /api/servers``) and check it.

    Raises:
        ConfigError: Not JSON, or invalid; the message names the key path.
    """
    try:
        config = _SERVER_DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc}") from exc
    check_server(config)
    return config
