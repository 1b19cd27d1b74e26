"""Admin log (ADM) grammar: player prefixes, connects, chat, hits, kills, player lists.

Lines are ``HH:MM:SS | <message>`` (formats.md §1.6–1.7). The player prefix is
``Player "<name>"[ (DEAD)] (id=<dayzid> pos=<x, z, alt>)`` where ``pos`` is east, north,
altitude, each truncated to one decimal. Names are arbitrary UTF-8, so nothing here splits on
spaces or on the first ``: ``.

:func:`parse_message` is pure and stateless. :class:`AdmParser` adds the two stateful bits: the
date (``AdminLog started on`` header, rolled at midnight) and ``##### PlayerList`` blocks, which
it gathers into one :class:`AdmPlayerList` (the map's source when no mod writes positions).
Anything unrecognised comes back as :class:`AdmUnknown`; nothing raises.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Final

import msgspec

__all__ = [
    "AdmChat",
    "AdmConnected",
    "AdmDisconnected",
    "AdmEvent",
    "AdmHeader",
    "AdmHit",
    "AdmKill",
    "AdmParser",
    "AdmPlayer",
    "AdmPlayerAction",
    "AdmPlayerList",
    "AdmRecord",
    "AdmReport",
    "AdmUnknown",
    "HitSource",
    "Position",
    "parse_line",
    "parse_message",
    "parse_player_prefix",
]

# --- defaults -------------------------------------------------------------------------------
MAX_PLAYERLIST_ROWS: Final = 1000
"""Rows gathered in one PlayerList block before it is closed early (bounds memory)."""
ROLLOVER_MIN_BACKSTEP: Final = timedelta(hours=1)
"""A time this much earlier than the previous line means midnight passed."""
# ---------------------------------------------------------------------------------------------

_LINE_RE: Final = re.compile(r"^\s?(\d{1,2}):(\d{2}):(\d{2}) \| (.*)$", re.DOTALL)
_HEADER_RE: Final = re.compile(
    r"^AdminLog started on (\d{4})-(\d{1,2})-(\d{1,2}) at (\d{1,2}):(\d{2}):(\d{2})\s*$"
)
_NUM: Final = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
# Non-greedy name: the first `" (id=` / `" (DEAD) (id=` closes it, which is right unless a
# player puts that exact text in their name.
_PREFIX_RE: Final = re.compile(
    r'Player "(?P<name>.*?)"(?P<dead> \(DEAD\))? \(id=(?P<id>[^ )]*)'
    r"(?: pos=<(?P<x>" + _NUM + r"), (?P<z>" + _NUM + r"), (?P<alt>" + _NUM + r")>)?\)"
)
_CONNECTED_RE: Final = re.compile(r'^Player "(.*)" is connected \(id=([^)]*)\)\s*$')
_DISCONNECTED_RE: Final = re.compile(r'^Player "(.*)"\(id=([^)]*)\) has been disconnected\s*$')
_CHAT_RE: Final = re.compile(r'^Chat\("(.*?)"\(id=([^)]*)\)\): (.*)$', re.DOTALL)
_REPORT_RE: Final = re.compile(r"^PLAYER REPORT: (\S+) ([^:\s]+): (.*)$", re.DOTALL)
_HIT_HEAD_RE: Final = re.compile(r"^\[HP: (" + _NUM + r")\] hit by ")
_HIT_TAIL_RE: Final = re.compile(
    r"^ into (?P<zone>[^(]*)\((?P<component>-?\d+)\) for (?P<damage>" + _NUM + r") damage"
    r" \((?P<ammo>[^)]*)\)(?: with (?P<weapon>.*?))?(?: from (?P<dist>" + _NUM + r") meters)?"
    r"\s*$"
)
_SOURCE_RE: Final = re.compile(r"^(?P<source>.*?)(?= into [^(]*\(-?\d+\) for )")
_KILL_TAIL_RE: Final = re.compile(
    r"^(?: with (?P<weapon>.*?))?(?: from (?P<dist>" + _NUM + r") meters)?\s*$"
)
_KILL_SOURCE_RE: Final = re.compile(r"^(?P<source>.*?)(?= with | from " + _NUM + r" meters|\s*$)")
_PLAYERLIST_OPEN_RE: Final = re.compile(r"^#{5} PlayerList log: (\d+) players?\s*$")
_PLAYERLIST_CLOSE_RE: Final = re.compile(r"^#{5}\s*$")


class Position(msgspec.Struct, frozen=True):
    """A ``pos=<x, z, alt>`` triple: east, north, altitude (metres)."""

    x: float
    z: float
    alt: float


class AdmPlayer(msgspec.Struct, frozen=True, kw_only=True):
    """A player as the script prefix describes them."""

    name: str
    id: str
    dead: bool = False
    pos: Position | None = None


class HitSource(msgspec.Struct, frozen=True, kw_only=True):
    """Who or what dealt a hit or a kill: a player, or a bare name (``Infected``, a type)."""

    player: AdmPlayer | None = None
    name: str | None = None


class AdmConnected(msgspec.Struct, frozen=True, kw_only=True, tag="connected"):
    """``Player "<name>" is connected (id=<id>)``."""

    name: str
    id: str


class AdmDisconnected(msgspec.Struct, frozen=True, kw_only=True, tag="disconnected"):
    """``Player "<name>"(id=<id>) has been disconnected``."""

    name: str
    id: str


class AdmChat(msgspec.Struct, frozen=True, kw_only=True, tag="chat"):
    """``Chat("<name>"(id=<id>)): <text>``."""

    name: str
    id: str
    text: str


class AdmReport(msgspec.Struct, frozen=True, kw_only=True, tag="report"):
    """``PLAYER REPORT: <stamp> <id>: <text>`` (a player's ``#toadmin``)."""

    stamp: str
    id: str
    text: str


class AdmHit(msgspec.Struct, frozen=True, kw_only=True, tag="hit"):
    """A hit: victim prefix, ``[HP: n] hit by <source> into <Zone>(<component>) for ...``."""

    victim: AdmPlayer
    hp: float
    source: HitSource
    zone: str
    component: int
    damage: float
    ammo: str
    weapon: str | None = None
    distance_m: float | None = None


class AdmKill(msgspec.Struct, frozen=True, kw_only=True, tag="kill"):
    """A death by someone or something: ``<prefix> killed by <source> [with ...] [from ...]``."""

    victim: AdmPlayer
    killer: HitSource
    weapon: str | None = None
    distance_m: float | None = None


class AdmPlayerAction(msgspec.Struct, frozen=True, kw_only=True, tag="player_action"):
    """Any other prefixed line: ``is unconscious``, ``died. Stats> ...``, ``placed ...``."""

    player: AdmPlayer
    action: str


class AdmPlayerList(msgspec.Struct, frozen=True, kw_only=True, tag="player_list"):
    """A ``##### PlayerList`` block: every listed player with their position."""

    declared: int | None
    players: tuple[AdmPlayer, ...]


class AdmHeader(msgspec.Struct, frozen=True, kw_only=True, tag="header"):
    """``AdminLog started on YYYY-MM-DD at HH:MM:SS``."""

    started: datetime


class AdmUnknown(msgspec.Struct, frozen=True, kw_only=True, tag="unknown"):
    """A line no rule matched (kept, never dropped)."""

    text: str


AdmEvent = (
    AdmConnected
    | AdmDisconnected
    | AdmChat
    | AdmReport
    | AdmHit
    | AdmKill
    | AdmPlayerAction
    | AdmPlayerList
    | AdmHeader
    | AdmUnknown
)


class AdmRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One parsed ADM line (or block): its clock text, datetime if known, and the event."""

    time: str | None
    at: datetime | None
    event: AdmEvent


# --- pure helpers ----------------------------------------------------------------------------


def parse_line(line: str) -> tuple[str, str] | None:
    """Split ``HH:MM:SS | message`` into (``"HH:MM:SS"``, message), else ``None``."""
    m = _LINE_RE.match(line)
    if m is None:
        return None
    h, mi, s, message = m.groups()
    if int(h) > 23 or int(mi) > 59 or int(s) > 59:
        return None
    return f"{int(h):02d}:{mi}:{s}", message


def _player_from(m: re.Match[str]) -> AdmPlayer:
    pos = None
    if m.group("x") is not None:
        pos = Position(x=float(m.group("x")), z=float(m.group("z")), alt=float(m.group("alt")))
    return AdmPlayer(name=m.group("name"), id=m.group("id"), dead=bool(m.group("dead")), pos=pos)


def parse_player_prefix(text: str, start: int = 0) -> tuple[AdmPlayer, int] | None:
    """Read a ``Player "<name>" ... (id=... pos=<...>)`` prefix at ``start``.

    Returns the player and the index just past the prefix, or ``None``.
    """
    m = _PREFIX_RE.match(text, start)
    if m is None:
        return None
    return _player_from(m), m.end()


def _source_at(text: str) -> tuple[HitSource, str] | None:
    """Parse a hit source (player prefix or bare name) and return it with the rest of text."""
    prefixed = parse_player_prefix(text)
    if prefixed is not None:
        return HitSource(player=prefixed[0]), text[prefixed[1] :]
    m = _SOURCE_RE.match(text)
    if m is None:
        return None
    return HitSource(name=m.group("source")), text[m.end() :]


def _parse_hit(victim: AdmPlayer, rest: str) -> AdmHit | None:
    head = _HIT_HEAD_RE.match(rest)
    if head is None:
        return None
    parsed = _source_at(rest[head.end() :])
    if parsed is None:
        return None
    source, tail = parsed
    m = _HIT_TAIL_RE.match(tail)
    if m is None:
        return None
    return AdmHit(
        victim=victim,
        hp=float(head.group(1)),
        source=source,
        zone=m.group("zone"),
        component=int(m.group("component")),
        damage=float(m.group("damage")),
        ammo=m.group("ammo"),
        weapon=m.group("weapon"),
        distance_m=None if m.group("dist") is None else float(m.group("dist")),
    )


def _parse_kill(victim: AdmPlayer, rest: str) -> AdmKill | None:
    if not rest.startswith(" killed by "):
        return None
    body = rest[len(" killed by ") :]
    prefixed = parse_player_prefix(body)
    if prefixed is not None:
        killer, tail = HitSource(player=prefixed[0]), body[prefixed[1] :]
    else:
        src = _KILL_SOURCE_RE.match(body)
        if src is None:
            return None
        killer, tail = HitSource(name=src.group("source")), body[src.end() :]
    m = _KILL_TAIL_RE.match(tail)
    if m is None:
        return None
    return AdmKill(
        victim=victim,
        killer=killer,
        weapon=m.group("weapon"),
        distance_m=None if m.group("dist") is None else float(m.group("dist")),
    )


def parse_message(message: str) -> AdmEvent:
    """Classify one ADM message (the part after ``HH:MM:SS | ``); never raises."""
    if m := _CONNECTED_RE.match(message):
        return AdmConnected(name=m.group(1), id=m.group(2))
    if m := _DISCONNECTED_RE.match(message):
        return AdmDisconnected(name=m.group(1), id=m.group(2))
    if m := _CHAT_RE.match(message):
        return AdmChat(name=m.group(1), id=m.group(2), text=m.group(3))
    if m := _REPORT_RE.match(message):
        return AdmReport(stamp=m.group(1), id=m.group(2), text=m.group(3))
    prefixed = parse_player_prefix(message)
    if prefixed is not None:
        victim, end = prefixed
        rest = message[end:]
        event: AdmEvent | None = _parse_hit(victim, rest) or _parse_kill(victim, rest)
        if event is not None:
            return event
        return AdmPlayerAction(player=victim, action=rest.strip())
    return AdmUnknown(text=message)


def _parse_header(line: str) -> datetime | None:
    m = _HEADER_RE.match(line)
    if m is None:
        return None
    try:
        y, mo, d, h, mi, s = (int(g) for g in m.groups())
        return datetime(y, mo, d, h, mi, s)
    except ValueError:
        return None


# --- incremental parser ----------------------------------------------------------------------


class AdmParser:
    """Parse ADM lines one at a time, tracking the date and gathering PlayerList blocks.

    Args:
        start_date: date to assume before the ``AdminLog started on`` header (e.g. from the
            file name); without either, records carry ``at=None``.
        max_playerlist_rows: rows kept per PlayerList block before it is closed early.
    """

    def __init__(
        self, start_date: date | None = None, *, max_playerlist_rows: int = MAX_PLAYERLIST_ROWS
    ) -> None:
        """Create a parser outside any PlayerList block."""
        self._date = start_date
        self._last: datetime | None = None
        self._max_rows = max_playerlist_rows
        self._block: tuple[str, datetime | None, int | None] | None = None
        self._rows: list[AdmPlayer] = []

    def feed(self, line: str) -> list[AdmRecord]:
        """Take one complete line; return the records it produces (possibly none)."""
        out: list[AdmRecord] = []
        parsed = parse_line(line)
        if parsed is None:
            started = _parse_header(line)
            if started is not None:
                out += self.flush()
                self._date = started.date()
                self._last = started
                out.append(AdmRecord(time=None, at=None, event=AdmHeader(started=started)))
            elif line.strip() and not set(line.strip()) <= {"*"}:
                out += self.flush()
                out.append(AdmRecord(time=None, at=None, event=AdmUnknown(text=line)))
            return out
        clock, message = parsed
        at = self._stamp(clock)
        if self._block is not None:
            if _PLAYERLIST_CLOSE_RE.match(message):
                return self.flush()
            prefixed = parse_player_prefix(message)
            if prefixed is not None and message[prefixed[1] :].strip() == "":
                self._rows.append(prefixed[0])
                if len(self._rows) >= self._max_rows:
                    out += self.flush()
                return out
            # Anything else ends the block early; keep what was gathered.
            out += self.flush()
        if m := _PLAYERLIST_OPEN_RE.match(message):
            self._block = (clock, at, int(m.group(1)))
            return out
        out.append(AdmRecord(time=clock, at=at, event=parse_message(message)))
        return out

    def flush(self) -> list[AdmRecord]:
        """Close an open PlayerList block and return it, if any."""
        if self._block is None:
            return []
        clock, at, declared = self._block
        record = AdmRecord(
            time=clock, at=at, event=AdmPlayerList(declared=declared, players=tuple(self._rows))
        )
        self._block = None
        self._rows = []
        return [record]

    def _stamp(self, clock: str) -> datetime | None:
        if self._date is None:
            return None
        h, mi, s = (int(p) for p in clock.split(":"))
        at = datetime(self._date.year, self._date.month, self._date.day, h, mi, s)
        if self._last is not None and self._last - at > ROLLOVER_MIN_BACKSTEP:
            at += timedelta(days=1)
            self._date = at.date()
        self._last = at
        return at
