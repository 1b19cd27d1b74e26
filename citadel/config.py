"""Citadel's configuration: a TOML file decoded into frozen msgspec Structs (DESIGN §5).

A server is described by the same ``ServerConfig`` in the file (``[[servers]]``) and in the body
of ``POST /api/servers``. Validation happens once, at load, and every problem is reported as a
``ConfigError`` whose message starts with the key path, e.g. ``servers[1].rcon.port: expected
int, got str``.

Paths: ``load_config`` resolves a relative ``citadel.data_dir`` and ``servers[].install_dir``
against the directory holding the config file (so ``citadel serve --config /etc/citadel.toml``
means the same thing from any working directory). ``executable`` and ``profile_dir`` stay
relative to ``install_dir``, as the game expects. ``rcon`` may be omitted: such a server gets no
RCON client, no ``#shutdown`` step in the stop ladder and no ``beserver_x64.cfg``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Final, Literal

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

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
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

    def __post_init__(self) -> None:
        # Relative to install_dir, or absolute; never climbing out of install_dir with "..".
        if ".." in Path(self.profile_dir).parts:
            raise ValueError(f"profile_dir: must not contain '..' (got {self.profile_dir!r})")


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
    r"^Object (?P<kind>contains unknown|missing required) field `(?P<f>.*)`$"
)


def describe_validation_error(error: msgspec.ValidationError, root: str = "") -> str:
    """Turn a msgspec validation error into ``<key path>: <problem>`` (for config and REST).

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
    field = _FIELD.match(what)
    if field:
        path = f"{path}.{field['f']}"
        what = "unknown field" if field["kind"] == "contains unknown" else "missing required key"
    else:
        what = what.replace("`", "")
        what = what[:1].lower() + what[1:]
    full = (root + path).lstrip(".") or "(root)"
    return f"{full}: {what}"


def _check_unique_ids(servers: list[ServerConfig]) -> None:
    seen: dict[str, int] = {}
    for index, server in enumerate(servers):
        if server.id in seen:
            raise ConfigError(
                f"servers[{index}].id: duplicate id {server.id!r} (also servers[{seen[server.id]}])"
            )
        seen[server.id] = index


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
        ConfigError: Invalid TOML, a wrong type or value, an unknown key, or a duplicate id.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}") from exc
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc
    _check_unique_ids(config.servers)
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


_SERVER_DECODER: Final = msgspec.json.Decoder(ServerConfig)


def decode_server_config(data: bytes | str) -> ServerConfig:
    """Decode a JSON ``ServerConfig`` (the body of ``POST /api/servers``).

    Raises:
        ConfigError: Not JSON, or invalid; the message names the key path.
    """
    try:
        return _SERVER_DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"(root): invalid JSON: {exc}") from exc
