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
    RconConfig,
    ServerConfig,
    convert_server_config,
    decode_server_config,
    describe_problem,
    load_config,
    parse_config,
    port_conflict,
    server_conflict,
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
install_dir = "/srv/{id}"
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
    with pytest.raises(ConfigError, match=r"^profile_dir: must not contain '\.\.'"):
        decode_server_config(body)
    toml = MINIMAL_SERVER.format(id="a") + f'profile_dir = "{profile_dir}"\n'
    with pytest.raises(ConfigError, match=r"^servers\[0\]\.profile_dir: must not contain '\.\.'"):
        parse_config(toml)


def test_profile_dir_may_be_nested_or_absolute() -> None:
    for profile_dir in ("profiles/main", "/var/dayz/profiles"):
        body = (
            '{"id": "a", "name": "A", "install_dir": "/srv/a", "executable": "DayZServer", '
            f'"profile_dir": "{profile_dir}"}}'
        )
        assert decode_server_config(body).profile_dir == profile_dir


# -- what msgspec's types let through but no server could start with ---------------------------

SERVER = {"id": "a", "name": "A", "install_dir": "/srv/a", "executable": "DayZServer"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"env": {"A=B": "c"}}, "env[\"A=B\"]: a variable name must not contain '='"),
        ({"env": {"": "c"}}, 'env[""]: a variable name must not be empty'),
        ({"env": {"A\x00": "c"}}, 'env["A\\u0000"]: a variable name must not contain NUL'),
        ({"env": {"A": "x\x00y"}}, 'env["A"]: must not contain NUL (U+0000)'),
        ({"args": ["-port=1", "a\x00b"]}, "args[1]: must not contain NUL (U+0000)"),
        (
            {"args": ["-config=x", "-PORT=2402x"]},
            'args[1]: -port= takes a port number 1-65535 (got "-PORT=2402x")',
        ),
        ({"args": ["-port=0"]}, 'args[0]: -port= takes a port number 1-65535 (got "-port=0")'),
        ({"args": ["-port="]}, 'args[0]: -port= takes a port number 1-65535 (got "-port=")'),
        (  # fullwidth digits: Python's int() reads them, the game would not
            {"args": ["-port=\uff12\uff19\uff19\uff12"]},
            'args[0]: -port= takes a port number 1-65535 (got "-port=\uff12\uff19\uff19\uff12")',
        ),
        ({"install_dir": "/tmp\x00x"}, "install_dir: must not contain NUL (U+0000)"),
        ({"executable": "Day\x00Z"}, "executable: must not contain NUL (U+0000)"),
        ({"profile_dir": "p\x00"}, "profile_dir: must not contain NUL (U+0000)"),
        (
            {"name": "x\x00y"},
            "name: must not contain control characters or line breaks (found U+0000)",
        ),
        (
            {"name": "x\ny"},
            "name: must not contain control characters or line breaks (found U+000A)",
        ),
        (
            {"rcon": {"port": 2306, "password": "two words"}},
            "rcon.password: must not contain spaces, tabs or line breaks",
        ),
        (
            {"rcon": {"port": 2306, "password": "p", "host": "localhost"}},
            'rcon.host: must be an IP address (got "localhost")',
        ),
    ],
)
def test_values_that_could_never_start_are_refused_naming_the_key(
    change: dict[str, object], message: str
) -> None:
    body = {**SERVER, **change}
    with pytest.raises(ConfigError) as info:
        decode_server_config(msgspec.json.encode(body))
    assert str(info.value).startswith(message), str(info.value)
    with pytest.raises(ConfigError) as info:
        convert_server_config(body)
    assert str(info.value).startswith(message), str(info.value)
    toml = "[[servers]]\n" + "".join(
        f"{key} = {_toml(value)}\n" for key, value in body.items() if key != "rcon"
    )
    rcon = body.get("rcon")
    if isinstance(rcon, dict):
        toml += "[servers.rcon]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in rcon.items())
    with pytest.raises(ConfigError) as info:
        parse_config(toml)
    assert str(info.value).startswith(f"servers[0].{message}"), str(info.value)


def _toml(value: object) -> str:
    """A TOML literal (JSON's escapes are TOML's for these strings)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return msgspec.json.encode(value).decode()


def test_durations_are_finite() -> None:
    body = b'{"id":"a","name":"A","install_dir":"/x","executable":"e","stop_timeout":1e400}'
    with pytest.raises(ConfigError, match=r"^stop_timeout: number out of range$"):
        decode_server_config(body)
    with pytest.raises(ConfigError, match=r"^stop_timeout: expected float <= 2592000\.0$"):
        convert_server_config({**SERVER, "stop_timeout": float("inf")})  # JSON 1e400 at REST
    for text in ("inf", "1e400", "2592001"):
        with pytest.raises(ConfigError, match=r"^servers\[0\]\.hang_timeout: expected float <="):
            parse_config(MINIMAL_SERVER.format(id="a") + f"hang_timeout = {text}\n")
    assert parse_config(MINIMAL_SERVER.format(id="a") + "hang_timeout = 2592000\n")


def test_only_the_api_requires_an_absolute_install_dir() -> None:
    relative = {**SERVER, "install_dir": "relative/dir"}
    assert convert_server_config(relative).install_dir == "relative/dir"
    with pytest.raises(ConfigError, match=r"^install_dir: must be an absolute path"):
        convert_server_config(relative, absolute_install_dir=True)


def test_problems_of_the_document_itself_have_no_key() -> None:
    assert describe_problem("", "Expected `object`, got `null`") == "expected object, got null"
    assert describe_problem("", "Object contains unknown field `extra`") == "extra: unknown field"
    assert describe_problem(".rcon", "Object missing required field `port`") == (
        "rcon.port: missing required key"
    )
    with pytest.raises(ConfigError, match=r"^invalid JSON"):
        decode_server_config(b"{")


def test_a_key_a_client_made_up_is_shown_quoted_and_cut() -> None:
    """The key's name is the client's text: a line break or a 60 kB name is not echoed raw."""
    unknown = "Object contains unknown field `{}`"
    assert describe_problem("", unknown.format("a\nb")) == '"a\\nb": unknown field'
    assert describe_problem(".rcon", unknown.format("\x1b[31m")) == (
        'rcon."\\u001b[31m": unknown field'
    )
    long = describe_problem("", unknown.format("k" * 60_000))
    assert long == '"' + "k" * 40 + '...": unknown field'
    assert describe_problem("", unknown.format("two words")) == "two words: unknown field"


def _server(server_id: str, args: list[str], rcon: tuple[str, int] | None) -> ServerConfig:
    return ServerConfig(
        id=server_id,
        name=server_id,
        install_dir="/srv",
        executable="e",
        args=args,
        rcon=None if rcon is None else RconConfig(password="p", port=rcon[1], host=rcon[0]),
    )


@pytest.mark.parametrize(
    ("mine", "theirs", "conflict"),
    [
        # Same RCON port: same address, or either one every address.
        (
            (["-port=2402"], ("127.0.0.1", 2306)),
            ([], ("127.0.0.1", 2306)),
            "rcon.port: UDP port 2306 is already the RCON port of server 'b'",
        ),
        ((["-port=2402"], ("0.0.0.0", 2306)), ([], ("127.0.0.1", 2306)), "rcon.port:"),
        ((["-port=2402"], ("127.0.0.1", 2306)), ([], ("::", 2306)), "rcon.port:"),
        ((["-port=2402"], ("127.0.0.2", 2306)), ([], ("127.0.0.1", 2306)), None),
        # The game port binds every address; flags are case-insensitive.
        (
            (["-x", "-PORT=2302"], None),
            (["-port=2302"], None),
            "args[1]: UDP port 2302 is already the game port of server 'b'",
        ),
        (
            (["-port=2302"], None),
            ([], ("127.0.0.1", 2302)),
            "args[0]: UDP port 2302 is already the RCON port",
        ),
        ((["-port=2302"], None), (["-port=2303"], ("127.0.0.1", 2304)), None),
        # Within one server.
        (
            (["-port=2306"], ("127.0.0.1", 2306)),
            ([], None),
            "rcon.port: UDP port 2306 is also this server's game port (args[0])",
        ),
        # Not a port: not guessed.
        ((["-port=abc", "-port=0"], None), (["-port=2302"], None), None),
    ],
)
def test_udp_ports_two_servers_would_bind_conflict(
    mine: tuple[list[str], tuple[str, int] | None],
    theirs: tuple[list[str], tuple[str, int] | None],
    conflict: str | None,
) -> None:
    found = port_conflict(_server("a", *mine), [("server 'b'", _server("b", *theirs))])
    if conflict is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(conflict), found


def test_the_file_refuses_a_port_two_servers_would_bind() -> None:
    text = (
        MINIMAL_SERVER.format(id="a")
        + 'args = ["-port=2302"]\n[servers.rcon]\nport = 2306\npassword = "p"\n'
        + MINIMAL_SERVER.format(id="b")
        + 'args = ["-port=2402"]\n[servers.rcon]\nport = 2306\npassword = "q"\n'
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value) == (
        "servers[1].rcon.port: UDP port 2306 is already the RCON port of servers[0] ('a')"
    )
    assert (
        len(
            parse_config(
                text.replace('port = 2306\npassword = "q"', 'port = 2406\npassword = "q"')
            ).servers
        )
        == 2
    )


@pytest.mark.parametrize(
    ("mine", "theirs", "shared"),
    [
        (("/srv/dayz", "profiles"), ("/srv/dayz", "profiles"), True),
        (("/srv/dayz", "profiles/"), ("/srv/dayz/", "./profiles"), True),
        (("/srv/a", "/var/dayz/p"), ("/srv/b", "/var/dayz/p"), True),
        (("/srv/a", "../p"), ("/srv/b", "../p"), True),  # refused earlier by check_server
        (("/srv/dayz", "profiles_1"), ("/srv/dayz", "profiles_2"), False),  # one install, two
        (("/srv/a", "profiles"), ("/srv/b", "profiles"), False),
    ],
)
def test_two_servers_may_not_share_a_profile_directory(
    mine: tuple[str, str], theirs: tuple[str, str], shared: bool
) -> None:
    """Logs, ``battleye/`` and position files live there: shared, they would mix."""

    def server(server_id: str, install_dir: str, profile_dir: str) -> ServerConfig:
        return ServerConfig(
            id=server_id,
            name=server_id,
            install_dir=install_dir,
            executable="e",
            profile_dir=profile_dir,
        )

    found = server_conflict(server("a", *mine), [("server 'b'", server("b", *theirs))])
    if shared:
        assert found is not None
        assert found.startswith("profile_dir: the profile directory ")
        assert found.endswith(" is already that of server 'b'")
    else:
        assert found is None


def test_the_file_refuses_a_profile_directory_two_servers_would_share() -> None:
    text = MINIMAL_SERVER.format(id="a") + MINIMAL_SERVER.format(id="b").replace("/srv/b", "/srv/a")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value) == (
        'servers[1].profile_dir: the profile directory "/srv/a/profiles" is already that of '
        "servers[0] ('a')"
    )
