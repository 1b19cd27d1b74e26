"""Configuration: the DESIGN §5 example loads, defaults apply, and errors name the key path."""

from __future__ import annotations

import contextlib
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from citadel.config import (
    DEFAULT_MAX_RESTARTS_PER_HOUR,
    Config,
    ConfigError,
    ServerConfig,
    decode_server_config,
    load_config,
    parse_config,
)

EXAMPLE = """
[citadel]                          # optional; command-line flags win
host = "127.0.0.1"
port = 3001
data_dir = "citadel-data"

[[servers]]
id = "alpha"                       # [a-z0-9-]{1,32}, unique
name = "Alpha"
game = "dayz"
install_dir = "/srv/dayz/alpha"    # the working directory of the process
executable = "DayZServer"          # relative to install_dir, or absolute
args = ["-config=serverDZ.cfg", "-port=2302", "-profiles=profiles"]   # a list; never a shell line
profile_dir = "profiles"           # relative to install_dir: logs and battleye/ live here
auto_start = true
auto_restart = true

[servers.rcon]
host = "127.0.0.1"
port = 2306
password = "change-me"
"""

MINIMAL_SERVER = """
[[servers]]
id = "{id}"
name = "N"
install_dir = "/srv/x"
executable = "DayZServer"
"""


def test_design_example_loads() -> None:
    config = parse_config(EXAMPLE)
    assert config.citadel.port == 3001
    (alpha,) = config.servers
    assert alpha.id == "alpha"
    assert alpha.args == ["-config=serverDZ.cfg", "-port=2302", "-profiles=profiles"]
    assert alpha.auto_start is True
    assert alpha.rcon is not None
    assert alpha.rcon.port == 2306
    assert alpha.rcon.password == "change-me"


def test_defaults_for_operational_knobs() -> None:
    config = parse_config(MINIMAL_SERVER.format(id="a"))
    server = config.servers[0]
    assert (server.stop_timeout, server.kill_timeout, server.start_timeout) == (60, 10, 300)
    assert (server.hang_timeout, server.metrics_interval) == (180, 5)
    assert (server.restart_backoff_base, server.restart_backoff_cap) == (5, 300)
    assert server.restart_reset_after == 600
    assert server.max_restarts_per_hour == DEFAULT_MAX_RESTARTS_PER_HOUR == 10
    assert server.rcon is None
    assert server.game == "dayz"
    assert config.citadel.host == "127.0.0.1"


def test_empty_file_is_a_valid_empty_config() -> None:
    assert parse_config("") == Config()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            MINIMAL_SERVER.format(id="a")
            + MINIMAL_SERVER.format(id="b")
            + '[servers.rcon]\nport = "2306"\npassword = "p"\n',
            "servers[1].rcon.port: expected int, got str",
        ),
        (MINIMAL_SERVER.format(id="a") + "colour = 1\n", "servers[0].colour: unknown field"),
        ("[citadel]\nport = 0\n", "citadel.port: expected int >= 1"),
        ("[citadel]\nport = 70000\n", "citadel.port: expected int <= 65535"),
        ("nonsense = 1\n", "nonsense: unknown field"),
        ('[[servers]]\nname = "x"\ninstall_dir = "/"\nexecutable = "e"\n', "servers[0].id:"),
        (MINIMAL_SERVER.format(id="Has Space"), "servers[0].id: expected str matching"),
        (MINIMAL_SERVER.format(id="a" * 33), "servers[0].id: expected str matching"),
        (MINIMAL_SERVER.format(id="a") + 'args = "-port=1"\n', "servers[0].args: expected array"),
        (MINIMAL_SERVER.format(id="a") + 'game = "arma"\n', "servers[0].game:"),
        (MINIMAL_SERVER.format(id="a") + "stop_timeout = 0\n", "servers[0].stop_timeout:"),
        (MINIMAL_SERVER.format(id="a") + "[servers.rcon]\nport = 1\n", "servers[0].rcon.password"),
        ("[citadel\n", "invalid TOML"),
    ],
)
def test_errors_name_the_key_path(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value).startswith(message), str(info.value)


def test_duplicate_ids_are_rejected() -> None:
    text = MINIMAL_SERVER.format(id="a") + MINIMAL_SERVER.format(id="b")
    text += MINIMAL_SERVER.format(id="a")
    with pytest.raises(
        ConfigError, match=r"^servers\[2\]\.id: duplicate id 'a' \(also servers\[0\]\)"
    ):
        parse_config(text)


def test_load_config_resolves_relative_paths_next_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "citadel.toml"
    path.write_text(EXAMPLE.replace('"/srv/dayz/alpha"', '"servers/alpha"'), encoding="utf-8")
    config = load_config(path)
    assert config.citadel.data_dir == str(tmp_path / "citadel-data")
    assert config.servers[0].install_dir == str(tmp_path / "servers" / "alpha")
    # Relative to install_dir by design, so left alone.
    assert config.servers[0].executable == "DayZServer"
    assert config.servers[0].profile_dir == "profiles"


def test_load_config_keeps_absolute_paths(tmp_path: Path) -> None:
    path = tmp_path / "citadel.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    assert load_config(path).servers[0].install_dir == "/srv/dayz/alpha"


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        load_config(missing)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"port = \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"binary\.toml: not UTF-8"):
        load_config(binary)
    bad = tmp_path / "bad.toml"
    bad.write_text("[citadel]\nport = 'x'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: citadel\.port: expected int, got str"):
        load_config(bad)


def test_server_config_is_the_rest_body() -> None:
    server = parse_config(EXAMPLE).servers[0]
    assert decode_server_config(msgspec.json.encode(server)) == server
    with pytest.raises(ConfigError, match=r"^rcon\.port: expected int"):
        decode_server_config(
            b'{"id":"a","name":"A","install_dir":"/x","executable":"e",'
            b'"rcon":{"port":"1","password":"p"}}'
        )
    with pytest.raises(ConfigError, match="invalid JSON"):
        decode_server_config(b'{"id":')
    with pytest.raises(ConfigError):
        decode_server_config(b"\xff\xfe")


def test_structs_are_frozen() -> None:
    server = parse_config(MINIMAL_SERVER.format(id="a")).servers[0]
    assert isinstance(server, ServerConfig)
    with pytest.raises(AttributeError):
        server.id = "b"  # type: ignore[misc]


@given(st.text(max_size=300))
def test_arbitrary_text_only_raises_config_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_config(text)


@given(st.binary(max_size=300))
def test_arbitrary_json_body_only_raises_config_error(data: bytes) -> None:
    with contextlib.suppress(ConfigError):
        decode_server_config(data)


@pytest.mark.parametrize("profile_dir", ["../elsewhere", "profiles/../../tmp", "/srv/../etc"])
def test_profile_dir_never_climbs_out(profile_dir: str) -> None:
    body = (
        '{"id": "a", "name": "A", "install_dir": "/srv/a", "executable": "DayZServer", '
        f'"profile_dir": "{profile_dir}"}}'
    )
    with pytest.raises(ConfigError, match=r"profile_dir: must not contain '\.\.'"):
        decode_server_config(body)


def test_profile_dir_may_be_nested_or_absolute() -> None:
    for profile_dir in ("profiles/main", "/var/dayz/profiles"):
        body = (
            '{"id": "a", "name": "A", "install_dir": "/srv/a", "executable": "DayZServer", '
            f'"profile_dir": "{profile_dir}"}}'
        )
        assert decode_server_config(body).profile_dir == profile_dir
