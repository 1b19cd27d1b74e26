"""Command line, environment and BattlEye/server config parsing."""

from __future__ import annotations

import pytest

from dayzsim._commands import (
    AddBan,
    BadArguments,
    BanPlayer,
    Keepalive,
    Kick,
    Players,
    RemoveBan,
    Say,
    Shutdown,
    Unknown,
    parse_command,
)
from dayzsim._config import (
    DEFAULT_TICK,
    BeConfig,
    parse_args,
    parse_be_config,
    parse_env,
    parse_server_cfg,
)


def test_dayz_command_line() -> None:
    args = parse_args(
        [
            "-config=serverDZ.cfg",
            "-port=2402",
            "-profiles=prof",
            "-BEpath=be",
            "-mod=@A;@B",
            "-serverMod=@S",
            "-dologs",
            "-adminlog",
            "-freezecheck",
            "-cpuCount=4",
            "junk",
            "--seed",
            "42",
        ]
    )
    assert (args.config, args.port, args.profiles, args.be_path) == (
        "serverDZ.cfg",
        2402,
        "prof",
        "be",
    )
    assert args.mods == ("@A", "@B")
    assert args.server_mods == ("@S",)
    assert args.dologs
    assert args.adminlog
    assert args.freezecheck
    assert args.seed == 42


def test_bad_values_fall_back() -> None:
    args = parse_args(["-port=abc", "--seed=x"])
    assert args.port == 2302
    assert args.seed == 0
    env = parse_env({"DAYZSIM_TICK": "nan", "DAYZSIM_PLAYERS": "-4", "DAYZSIM_CRASH_MODE": "boom"})
    assert env.tick == DEFAULT_TICK
    assert env.players == 0
    assert (env.crash_mode, env.crash_arg) == ("exit", "3")


def test_env_controls() -> None:
    env = parse_env(
        {
            "DAYZSIM_TICK": "0.05",
            "DAYZSIM_CRASH_AFTER": "1.5",
            "DAYZSIM_CRASH_MODE": "signal:SEGV",
            "DAYZSIM_IGNORE_SHUTDOWN": "1",
            "DAYZSIM_LOG_FLOOD": "500",
            "DAYZSIM_PLAYERS": "40",
        }
    )
    assert env.tick == 0.05
    assert env.crash_after == 1.5
    assert (env.crash_mode, env.crash_arg) == ("signal", "SEGV")
    assert env.ignore_shutdown
    assert env.log_flood == 500
    assert env.players == 40
    assert not env.rcon_refuse
    assert env.spawn_child is None
    assert env.hang_mode == "process"


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("1", "group"),
        ("yes", "group"),
        ("group", "group"),
        ("Stubborn", "stubborn"),
        ("setsid", "setsid"),
        (" daemon ", "daemon"),
        ("0", None),
        ("fork-bomb", None),
    ],
)
def test_spawn_child_modes(value: str, mode: str | None) -> None:
    assert parse_env({"DAYZSIM_SPAWN_CHILD": value}).spawn_child == mode


def test_hang_modes() -> None:
    assert parse_env({"DAYZSIM_HANG_MODE": "LOOP"}).hang_mode == "loop"
    assert parse_env({"DAYZSIM_HANG_MODE": "sometimes"}).hang_mode == "process"


def test_be_config() -> None:
    text = (
        "RConPassword s3cret pass\r\nrconport 2306\nRestrictRCon 1\n\x00garbage\nRConPort 99999\n"
    )
    assert parse_be_config(text) == BeConfig(password="s3cret pass", port=2306, restrict=True)
    assert parse_be_config("").ip == "127.0.0.1"


def test_server_cfg() -> None:
    cfg = parse_server_cfg(
        'hostname = "My Server"; // comment\nmaxPlayers = 10;\nclass Missions {\n'
    )
    assert cfg == {"hostname": "My Server", "maxPlayers": "10"}


def test_commands() -> None:
    assert parse_command("") == Keepalive()
    assert parse_command("PLAYERS") == Players()
    assert parse_command("say -1 hello  world") == Say(-1, "hello  world")
    assert parse_command("kick 3 bye now") == Kick(3, "bye now")
    assert parse_command("kick 3") == Kick(3, "")
    assert parse_command("kick x") == BadArguments("kick")
    assert parse_command("ban 2 60 toxic") == BanPlayer(2, 60, "toxic")
    assert parse_command("ban 2 toxic") == BanPlayer(2, None, "toxic")
    assert parse_command("ban 2 0 cheat") == BanPlayer(2, None, "cheat")
    assert parse_command("addBan 198.51.100.22 -1 evasion") == AddBan(
        "198.51.100.22", None, "evasion"
    )
    assert parse_command("removeBan 1") == RemoveBan(1)
    assert parse_command("removeBan -1") == BadArguments("removeban")
    assert parse_command("#shutdown") == Shutdown()
    assert parse_command("#restart") == Unknown("#restart")
    assert parse_command("\ufffd\x00") == Unknown("\ufffd\x00")
