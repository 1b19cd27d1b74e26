"""Exact text shapes of RCON outputs, server messages and log lines (formats.md §1–2)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from dayzsim import _text
from dayzsim._identity import Identity, be_guid, dayz_id, identity
from dayzsim._world import Hit, PlayerView
from tests.dayzsim._harness import PLAYERS_ROW

SPEC_PLAYERS = """Players on server:
[#] [IP Address]:[Port] [Ping] [GUID] [Name]
--------------------------------------------------
0   203.0.113.10:2304     31   0123456789abcdef0123456789abcdef(OK) PlayerOne
1   198.51.100.22:2304    -1   fedcba9876543210fedcba9876543210(?) Player Two (Lobby)
3   192.0.2.7:2304        48   00112233445566778899aabbccddeeff(OK) Игрок_3
(3 players in total)"""

SPEC_BANS = """GUID Bans:
[#] [GUID] [Minutes left] [Reason]
----------------------------------------
0  0123456789abcdef0123456789abcdef perm Cheating
1  fedcba9876543210fedcba9876543210 1432 Toxic chat (24h)
2  00112233445566778899aabbccddeeff - Temp ban expired

IP Bans:
[#] [IP Address] [Minutes left] [Reason]
----------------------------------------------
3  198.51.100.22   perm Ban evasion"""


def test_players_output_reproduces_the_spec_example() -> None:
    rows = [
        _text.PlayerRow(
            0,
            "203.0.113.10",
            2304,
            31,
            "0123456789abcdef0123456789abcdef",
            True,
            "PlayerOne",
            False,
        ),
        _text.PlayerRow(
            1,
            "198.51.100.22",
            2304,
            -1,
            "fedcba9876543210fedcba9876543210",
            False,
            "Player Two",
            True,
        ),
        _text.PlayerRow(
            3, "192.0.2.7", 2304, 48, "00112233445566778899aabbccddeeff", True, "Игрок_3", False
        ),
    ]
    assert _text.players_output(rows) == SPEC_PLAYERS


def test_players_rows_parse_with_spec_regex() -> None:
    rows = [
        _text.PlayerRow(
            2,
            "192.0.2.7",
            2304,
            48,
            "00112233445566778899aabbccddeeff",
            True,
            "Big Name [TAG]",
            False,
        ),
        _text.PlayerRow(4, "203.0.113.255", 65535, -1, None, False, "Survivor (Lobby) Joe", True),
    ]
    lines = _text.players_output(rows).splitlines()
    first = PLAYERS_ROW.match(lines[3])
    second = PLAYERS_ROW.match(lines[4])
    assert first is not None
    assert second is not None
    assert first.groups() == (
        "2",
        "192.0.2.7",
        "2304",
        "48",
        "00112233445566778899aabbccddeeff",
        "OK",
        "Big Name [TAG]",
        None,
    )
    assert second.groups() == (
        "4",
        "203.0.113.255",
        "65535",
        "-1",
        "-",
        "?",
        "Survivor (Lobby) Joe",
        " (Lobby)",
    )
    assert lines[-1] == "(2 players in total)"


def test_empty_players() -> None:
    assert _text.players_output([]).splitlines()[-1] == "(0 players in total)"


def test_bans_output_reproduces_the_spec_example() -> None:
    now = 1_000_000.0
    bans = [
        _text.Ban("198.51.100.22", None, "Ban evasion"),
        _text.Ban("0123456789abcdef0123456789abcdef", None, "Cheating"),
        _text.Ban(
            "fedcba9876543210fedcba9876543210", int(now) + 1432 * 60 + 30, "Toxic chat (24h)"
        ),
        _text.Ban("00112233445566778899aabbccddeeff", int(now) - 5, "Temp ban expired"),
    ]
    assert _text.bans_output(bans, now) == SPEC_BANS


def test_bans_file_round_trip() -> None:
    bans = [
        _text.Ban("0123456789abcdef0123456789abcdef", None, "x y"),
        _text.Ban("192.0.2.1", 1234, ""),
    ]
    assert (
        _text.parse_bans_file(_text.format_bans_file(bans) + "garbage\n\n1.2.3.4 notanumber\n")
        == bans
    )


def test_admins_output() -> None:
    assert _text.admins_output([(0, "127.0.0.1", 50123)]) == (
        "Connected RCon admins:\n[#] [IP Address]:[Port]\n"
        "-----------------------------\n0 127.0.0.1:50123"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (4521.35, "4521.3"),
        (309.0, "309"),
        (2.3, "2.3"),
        (-0.05, "0"),
        (-12.78, "-12.7"),
        (10234.79, "10234.7"),
    ],
)
def test_pos_components_truncate(value: float, text: str) -> None:
    assert _text.coord(value) == text


def view(ident: Identity, x: float, z: float, alt: float, *, dead: bool = False) -> PlayerView:
    return PlayerView(ident=ident, slot=0, dpnid=2048123456, x=x, z=z, alt=alt, dead=dead)


def test_adm_lines() -> None:
    one, two = identity(0), identity(1)
    a = view(one, 4521.35, 10234.78, 312.44)
    b = view(two, 4490.1, 10201.2, 309.0)
    assert (
        _text.adm_prefix(a) == f'Player "PlayerOne" (id={one.dayz_id} pos=<4521.3, 10234.7, 312.4>)'
    )
    assert _text.adm_prefix(view(one, 1, 2, 3, dead=True)).startswith(
        'Player "PlayerOne" (DEAD) (id='
    )
    assert (
        _text.adm_disconnected(b) == f'Player "Player Two"(id={two.dayz_id}) has been disconnected'
    )
    assert _text.adm_chat(a, "meet: here") == f'Chat("PlayerOne"(id={one.dayz_id})): meet: here'
    hit = Hit(a, b, 63.4, "Torso", 12, 24.5612, "Bullet_762x39", "AKM", 44.913)
    assert _text.adm_hit(hit) == (
        f'Player "PlayerOne" (id={one.dayz_id} pos=<4521.3, 10234.7, 312.4>)[HP: 63.4] hit by '
        f'Player "Player Two" (id={two.dayz_id} pos=<4490.1, 10201.2, 309>) into Torso(12) for '
        "24.5612 damage (Bullet_762x39) with AKM from 44.913 meters "
    )
    assert _text.adm_player_list([]) == []
    block = _text.adm_player_list([a, b])
    assert block[0] == "##### PlayerList log: 2 players"
    assert block[-1] == "#####"


def test_file_names_and_times() -> None:
    at = dt.datetime(2024, 5, 1, 18, 30, 13, 457_900)
    assert _text.rpt_name(at) == "DayZServer_2024-05-01_18-30-13.RPT"
    assert _text.adm_name(at) == "DayZServer_2024_05_01_183013457.ADM"
    assert _text.script_name(at) == "script_2024-05-01_18-30-13.log"
    assert _text.rpt_time(at) == "18:30:13.457"
    assert _text.rpt_time(at.replace(hour=9)) == " 9:30:13.457"
    assert re.match(
        r"^\s?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?\s(.*)$", _text.rpt_time(at) + " x"
    )


def test_rpt_header_shape() -> None:
    at = dt.datetime(2024, 5, 1, 18, 30, 12)
    lines = _text.rpt_header("/srv/DayZServer", "./DayZServer -port=2302", at, at).splitlines()
    assert lines[1] == "== /srv/DayZServer"
    assert "Current time:  2024/05/01 18:30:12" in lines
    assert lines[-1].startswith("Version 1.")


def test_messages() -> None:
    p = PlayerView(ident=identity(0), slot=3, dpnid=1, x=0, z=0, alt=0)
    assert _text.msg_connected(p) == f"Player #3 PlayerOne ({p.ident.ip}:2304) connected"
    assert _text.msg_guid(p) == f"Player #3 PlayerOne - BE GUID: {p.ident.guid}"
    assert _text.msg_verified(p) == f"Verified GUID ({p.ident.guid}) of player #3 PlayerOne"
    assert _text.msg_kicked(p, "-", "Admin Kick", "Restarting") == (
        "Player #3 PlayerOne (-) has been kicked by BattlEye: Admin Kick (Restarting)"
    )
    assert _text.msg_say(0, "Global", "hi") == "RCon admin #0: (Global) hi"


def test_identity_derivations() -> None:
    assert len(be_guid(76561190000000001)) == 32
    assert len(dayz_id(76561190000000001)) == 44
    names = {identity(i).name for i in range(12)}
    assert {"Игрок_3", "Big Name [TAG]", "Player Two"} <= names
