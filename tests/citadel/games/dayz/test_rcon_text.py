"""RCon text: formats.md §2.7 outputs, §2.8 server messages, bug case §5.1."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from citadel.games.dayz.rcon_text import (
    AdminLogin,
    AdminSay,
    Ban,
    BeMaster,
    Chat,
    GuidVerified,
    PlayerConnected,
    PlayerDisconnected,
    PlayerGuid,
    PlayerKicked,
    PlayerTable,
    RconAdmin,
    RconPlayer,
    Unknown,
    parse_admins,
    parse_bans,
    parse_players,
    parse_server_message,
    render_player_row,
)

G1 = "0123456789abcdef0123456789abcdef"
G2 = "fedcba9876543210fedcba9876543210"
G3 = "00112233445566778899aabbccddeeff"

PLAYERS = f"""\
Players on server:
[#] [IP Address]:[Port] [Ping] [GUID] [Name]
--------------------------------------------------
0   203.0.113.10:2304     31   {G1}(OK) PlayerOne
1   198.51.100.22:2304    -1   {G2}(?) Player Two (Lobby)
3   192.0.2.7:2304        48   {G3}(OK) Игрок_3
(3 players in total)"""

BANS = f"""\
GUID Bans:
[#] [GUID] [Minutes left] [Reason]
----------------------------------------
0  {G1} perm Cheating
1  {G2} 1432 Toxic chat (24h)
2  {G3} - Temp ban expired

IP Bans:
[#] [IP Address] [Minutes left] [Reason]
----------------------------------------------
3  198.51.100.22   perm Ban evasion"""


def test_players_example() -> None:
    assert parse_players(PLAYERS) == PlayerTable(
        players=(
            RconPlayer(
                slot=0,
                ip="203.0.113.10",
                port=2304,
                ping=31,
                guid=G1,
                verified=True,
                name="PlayerOne",
                lobby=False,
            ),
            RconPlayer(
                slot=1,
                ip="198.51.100.22",
                port=2304,
                ping=-1,
                guid=G2,
                verified=False,
                name="Player Two",
                lobby=True,
            ),
            RconPlayer(
                slot=3,
                ip="192.0.2.7",
                port=2304,
                ping=48,
                guid=G3,
                verified=True,
                name="Игрок_3",
                lobby=False,
            ),
        ),
        total=3,
    )


def test_players_crlf_and_empty_server() -> None:
    table = parse_players(PLAYERS.replace("\n", "\r\n"))
    assert [p.name for p in table.players] == ["PlayerOne", "Player Two", "Игрок_3"]
    empty = "Players on server:\n[#] [IP Address]:[Port] [Ping] [GUID] [Name]\n" + "-" * 50
    assert parse_players(empty + "\n(0 players in total)") == PlayerTable(players=(), total=0)


def test_bug_5_1_name_with_spaces_and_brackets() -> None:
    row = f"2   192.0.2.7:2304        48   {G3}(OK) Big Name [TAG]"
    assert parse_players(row).players == (
        RconPlayer(
            slot=2,
            ip="192.0.2.7",
            port=2304,
            ping=48,
            guid=G3,
            verified=True,
            name="Big Name [TAG]",
            lobby=False,
        ),
    )


def test_players_guid_dash_and_lobby_lookalike_names() -> None:
    rows = (
        "4   192.0.2.8:2304  -1  -(?) Someone (Lobby)\n"
        f"5   192.0.2.9:2304  12  {G1}(OK) Weird (Lobby) name\n"
        f"6   192.0.2.9:2305  12  {G1.upper()}(OK) (Lobby) (Lobby)\n"
    )
    players = parse_players(rows).players
    assert [(p.guid, p.name, p.lobby) for p in players] == [
        (None, "Someone", True),
        (G1, "Weird (Lobby) name", False),
        (G1, "(Lobby)", True),
    ]


def test_admins() -> None:
    text = "Connected RCon admins:\n[#] [IP Address]:[Port]\n-----------------------------\n"
    text += "0 127.0.0.1:50123\n1 192.0.2.1:4000"
    assert parse_admins(text) == (
        RconAdmin(index=0, ip="127.0.0.1", port=50123),
        RconAdmin(index=1, ip="192.0.2.1", port=4000),
    )


def test_bans_example() -> None:
    assert parse_bans(BANS) == (
        Ban(index=0, kind="guid", id=G1, minutes=None, perm=True, expired=False, reason="Cheating"),
        Ban(
            index=1,
            kind="guid",
            id=G2,
            minutes=1432,
            perm=False,
            expired=False,
            reason="Toxic chat (24h)",
        ),
        Ban(
            index=2,
            kind="guid",
            id=G3,
            minutes=None,
            perm=False,
            expired=True,
            reason="Temp ban expired",
        ),
        Ban(
            index=3,
            kind="ip",
            id="198.51.100.22",
            minutes=None,
            perm=True,
            expired=False,
            reason="Ban evasion",
        ),
    )


def test_bans_reason_with_anything() -> None:
    text = f"0  {G1} perm \ufffdmoj\ufffdibake 100% [x] perm -\n1  {G2} 5"
    bans = parse_bans(text)
    assert bans[0].reason == "\ufffdmoj\ufffdibake 100% [x] perm -"
    assert bans[1].reason == ""
    assert bans[1].minutes == 5


def test_server_message_catalogue() -> None:
    known = ["PlayerOne", "Player Two"]
    cases = [
        (
            "RCon admin #0 (127.0.0.1:50123) logged in",
            AdminLogin(admin=0, ip="127.0.0.1", port=50123),
        ),
        ("Connected to BE Master", BeMaster(connected=True)),
        (
            "Player #3 PlayerOne (203.0.113.10:2304) connected",
            PlayerConnected(slot=3, name="PlayerOne", ip="203.0.113.10", port=2304),
        ),
        (f"Player #3 PlayerOne - BE GUID: {G1}", PlayerGuid(slot=3, name="PlayerOne", guid=G1)),
        (
            f"Player #3 PlayerOne - GUID: {G1} (unverified)",
            PlayerGuid(slot=3, name="PlayerOne", guid=G1),
        ),
        (
            f"Verified GUID ({G1}) of player #3 PlayerOne",
            GuidVerified(slot=3, name="PlayerOne", guid=G1),
        ),
        (
            "(Global) PlayerOne: see you: north gate",
            Chat(channel="Global", name="PlayerOne", text="see you: north gate"),
        ),
        (
            "RCon admin #0: (Global) Server restart in 5 minutes",
            AdminSay(admin=0, channel="Global", text="Server restart in 5 minutes"),
        ),
        (
            "RCon admin #1: (To Player Two) hello (there)",
            AdminSay(admin=1, channel="To Player Two", text="hello (there)"),
        ),
        (
            f"Player #3 PlayerOne ({G1}) has been kicked by BattlEye: Admin Kick (Restarting)",
            PlayerKicked(slot=3, name="PlayerOne", guid=G1, reason="Admin Kick (Restarting)"),
        ),
        (
            "Player #4 Player Two (-) has been kicked by BattlEye: Client not responding",
            PlayerKicked(slot=4, name="Player Two", guid=None, reason="Client not responding"),
        ),
        ("Player #3 PlayerOne disconnected", PlayerDisconnected(slot=3, name="PlayerOne")),
        ("Player #3 A (1.2.3.4:5) disconnected", PlayerDisconnected(slot=3, name="A (1.2.3.4:5)")),
    ]
    for text, expected in cases:
        assert parse_server_message(text, known) == expected, text


def test_chat_prefers_longest_known_name() -> None:
    msg = "(Side) Bob: the builder: hi: there"
    assert parse_server_message(msg, ["Bob", "Bob: the builder"]) == Chat(
        channel="Side", name="Bob: the builder", text="hi: there"
    )
    # Without knowledge: first ": " is the best guess.
    assert parse_server_message(msg) == Chat(
        channel="Side", name="Bob", text="the builder: hi: there"
    )


def test_names_with_tricky_text() -> None:
    msg = "Player #7 Evil (1.2.3.4:5) connected (9.9.9.9:1) connected"
    assert parse_server_message(msg) == PlayerConnected(
        slot=7, name="Evil (1.2.3.4:5) connected", ip="9.9.9.9", port=1
    )


def test_unknown_text() -> None:
    for text in ("", "garbage", "Player #x y", "(Global) no separator", "\x00\ufffd"):
        assert parse_server_message(text) == Unknown(text=text)


@given(st.text(max_size=200), st.lists(st.text(max_size=20), max_size=4))
def test_parsers_total_on_any_text(text: str, names: list[str]) -> None:
    parse_server_message(text, names)
    parse_players(text)
    parse_admins(text)
    parse_bans(text)


_LOBBY_SUFFIX = re.compile(r"\s\(Lobby\)$")
names = st.text(
    alphabet=st.characters(blacklist_characters="\n\r", blacklist_categories=["Cs"]),
    max_size=40,
).filter(lambda n: _LOBBY_SUFFIX.search(n) is None)
players_st = st.builds(
    RconPlayer,
    slot=st.integers(0, 999),
    ip=st.ip_addresses(v=4).map(str),
    port=st.integers(1, 65535),
    ping=st.integers(-1, 9999),
    guid=st.none() | st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    verified=st.booleans(),
    name=names,
    lobby=st.booleans(),
)


@given(st.lists(players_st, max_size=8))
def test_players_round_trip(players: list[RconPlayer]) -> None:
    text = "Players on server:\n[#] [IP Address]:[Port] [Ping] [GUID] [Name]\n" + "-" * 50 + "\n"
    text += "".join(render_player_row(p) + "\n" for p in players)
    text += f"({len(players)} players in total)"
    assert parse_players(text) == PlayerTable(players=tuple(players), total=len(players))
