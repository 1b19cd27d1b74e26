"""ADM parser: formats.md §1.6–1.7 example, player prefixes, chat split, PlayerList blocks."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from citadel.games.dayz.adm import (
    AdmChat,
    AdmConnected,
    AdmDisconnected,
    AdmHeader,
    AdmHit,
    AdmKill,
    AdmParser,
    AdmPlayer,
    AdmPlayerAction,
    AdmPlayerList,
    AdmRecord,
    AdmReport,
    AdmUnknown,
    HitSource,
    Position,
    parse_line,
    parse_message,
    parse_player_prefix,
)

ID1 = "PLACEHOLDERid000000000000000000000000000001="
ID2 = "PLACEHOLDERid000000000000000000000000000002="

# The example block of formats.md §1.7, verbatim (note the trailing spaces after "meters ").
ADM_EXAMPLE = (Path(__file__).parent / "data" / "adm_example.ADM").read_text("utf-8")

P1 = AdmPlayer(name="PlayerOne", id=ID1, pos=Position(x=4521.3, z=10234.7, alt=312.4))
P2 = AdmPlayer(name="Player Two", id=ID2, pos=Position(x=4490.1, z=10201.2, alt=309.0))


def parse_all(text: str, start_date: date | None = None) -> list[AdmRecord]:
    parser = AdmParser(start_date)
    out: list[AdmRecord] = []
    for line in text.split("\n"):
        out += parser.feed(line)
    return out + parser.flush()


def test_adm_example_full_parse() -> None:
    records = parse_all(ADM_EXAMPLE)
    events = [r.event for r in records]
    assert events == [
        AdmHeader(started=datetime(2024, 5, 1, 18, 30, 13)),
        AdmConnected(name="PlayerOne", id=ID1),
        AdmConnected(name="Player Two", id=ID2),
        AdmPlayerList(declared=2, players=(P1, P2)),
        AdmChat(name="PlayerOne", id=ID1, text="meet at the (old) barn: north side"),
        AdmHit(
            victim=P1,
            hp=63.4,
            source=HitSource(player=P2),
            zone="Torso",
            component=12,
            damage=24.5612,
            ammo="Bullet_762x39",
            weapon="AKM",
            distance_m=44.913,
        ),
        AdmKill(
            victim=AdmPlayer(name="PlayerOne", id=ID1, dead=True, pos=P1.pos),
            killer=HitSource(player=P2),
            weapon="AKM",
            distance_m=44.913,
        ),
        AdmPlayerAction(player=P2, action="is unconscious"),
        AdmDisconnected(name="Player Two", id=ID2),
    ]
    hit = records[5]
    assert hit.time == "18:47:12"
    assert hit.at == datetime(2024, 5, 1, 18, 47, 12)
    assert records[3].time == "18:45:00"


def test_line_grammar() -> None:
    assert parse_line("18:41:07 | hello | world") == ("18:41:07", "hello | world")
    assert parse_line(" 9:01:02 | x") == ("09:01:02", "x")
    assert parse_line("18:41:07 hello") is None
    assert parse_line("99:41:07 | x") is None


def test_prefix_with_quotes_and_integer_positions() -> None:
    parsed = parse_player_prefix('Player "say "hi" (x)" (id=abc-_= pos=<-1, 2.5, 0>) rest')
    assert parsed is not None
    player, end = parsed
    assert player == AdmPlayer(name='say "hi" (x)', id="abc-_=", pos=Position(x=-1, z=2.5, alt=0))
    assert parse_player_prefix('Player "x" (id=abc)') == (AdmPlayer(name="x", id="abc"), 19)
    assert end == len('Player "say "hi" (x)" (id=abc-_= pos=<-1, 2.5, 0>)')


def test_chat_splits_on_first_marker_after_id_not_on_colon() -> None:
    assert parse_message(f'Chat("A: B"(id={ID1})): x)): y') == AdmChat(
        name="A: B", id=ID1, text="x)): y"
    )
    assert parse_message(f'Chat("A"(id={ID1})): ') == AdmChat(name="A", id=ID1, text="")


def test_hit_by_infected_and_kill_by_type() -> None:
    hit = parse_message(
        f'Player "A" (id={ID1} pos=<1, 2, 3>)[HP: 93.5] hit by Infected into Head(0) for 5 damage'
        " (MeleeInfected)"
    )
    assert isinstance(hit, AdmHit)
    assert hit.source == HitSource(name="Infected")
    assert (hit.zone, hit.component, hit.damage, hit.weapon, hit.distance_m) == (
        "Head",
        0,
        5.0,
        None,
        None,
    )
    kill = parse_message(f'Player "A" (DEAD) (id={ID1} pos=<1, 2, 3>) killed by ZmbM_Soldier')
    assert kill == AdmKill(
        victim=AdmPlayer(name="A", id=ID1, dead=True, pos=Position(x=1, z=2, alt=3)),
        killer=HitSource(name="ZmbM_Soldier"),
    )
    fist = parse_message(
        f'Player "A" (DEAD) (id={ID1} pos=<1, 2, 3>) killed by Player "B" (id={ID2} '
        "pos=<4, 5, 6>) with (MeleeFist)"
    )
    assert isinstance(fist, AdmKill)
    assert fist.weapon == "(MeleeFist)"
    assert fist.killer.player is not None
    assert fist.killer.player.name == "B"


def test_report_and_unknown() -> None:
    assert parse_message(f"PLAYER REPORT: 2024-5-1_18-50-2 {ID1}: help: stuck") == AdmReport(
        stamp="2024-5-1_18-50-2", id=ID1, text="help: stuck"
    )
    assert parse_message("something else") == AdmUnknown(text="something else")


def test_playerlist_block_closed_early_by_other_line() -> None:
    records = parse_all(
        "18:45:00 | ##### PlayerList log: 2 players\n"
        f'18:45:00 | Player "PlayerOne" (id={ID1} pos=<4521.3, 10234.7, 312.4>)\n'
        f'18:45:01 | Player "Player Two" is connected (id={ID2})\n',
        date(2024, 5, 1),
    )
    assert [r.event for r in records] == [
        AdmPlayerList(declared=2, players=(P1,)),
        AdmConnected(name="Player Two", id=ID2),
    ]


def test_playerlist_block_is_bounded() -> None:
    parser = AdmParser(max_playerlist_rows=2)
    out = parser.feed("18:45:00 | ##### PlayerList log: 3 players")
    for _ in range(3):
        out += parser.feed(f'18:45:00 | Player "PlayerOne" (id={ID1} pos=<1, 2, 3>)')
    out += parser.feed("18:45:00 | #####")
    out += parser.flush()
    lists = [r.event for r in out if isinstance(r.event, AdmPlayerList)]
    assert [len(x.players) for x in lists] == [2]
    # The third row arrives after the block was closed: kept as a bare player line.
    assert any(isinstance(r.event, AdmPlayerAction) for r in out)


def test_date_rolls_at_midnight() -> None:
    records = parse_all(
        "AdminLog started on 2024-12-31 at 23:59:00\n23:59:59 | a\n00:00:01 | b\n", None
    )
    assert [r.at for r in records[1:]] == [
        datetime(2024, 12, 31, 23, 59, 59),
        datetime(2025, 1, 1, 0, 0, 1),
    ]


@given(st.lists(st.text(max_size=120), max_size=20))
def test_never_raises_on_garbage(lines: list[str]) -> None:
    parser = AdmParser(date(2024, 1, 1))
    for line in lines:
        parser.feed(line)
        parse_message(line)
    parser.flush()


@given(
    st.text(min_size=1, max_size=30).filter(lambda n: '"' not in n and "\n" not in n),
    st.floats(-1e5, 1e5).map(lambda f: round(f, 1)),
    st.floats(-1e5, 1e5).map(lambda f: round(f, 1)),
)
def test_prefix_round_trip(name: str, x: float, z: float) -> None:
    line = f'Player "{name}" (id={ID1} pos=<{x}, {z}, 10>) is unconscious'
    assert parse_message(line) == AdmPlayerAction(
        player=AdmPlayer(name=name, id=ID1, pos=Position(x=x, z=z, alt=10)),
        action="is unconscious",
    )
