"""Exact text shapes: RCON command outputs, server messages and log lines (formats.md §1–2).

Pure functions only; every string the simulator shows the outside world is built here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Final

import msgspec

from dayzsim._world import Hit, PlayerView

RPT_VERSION: Final = "1.25.158593"
PLAYERS_RULE: Final = "-" * 50
ADMINS_RULE: Final = "-" * 29
GUID_BANS_RULE: Final = "-" * 40
IP_BANS_RULE: Final = "-" * 46
ADM_RULE: Final = "*" * 78
RPT_RULE: Final = "=" * 69


class PlayerRow(msgspec.Struct, frozen=True):
    """One row of the ``players`` output."""

    slot: int
    ip: str
    port: int
    ping: int
    guid: str | None  # None until BattlEye has computed it
    verified: bool
    name: str
    lobby: bool


class Ban(msgspec.Struct, frozen=True):
    """One BattlEye ban: a GUID or an IP, an expiry (Unix seconds, None = permanent), a reason."""

    target: str
    expires: int | None
    reason: str

    @property
    def is_ip(self) -> bool:
        """True for an IP ban, False for a GUID ban."""
        return "." in self.target or ":" in self.target


# --- RCON command outputs -------------------------------------------------------------------------


def players_output(rows: Sequence[PlayerRow]) -> str:
    """The ``players`` reply, column layout as formats.md §2.7."""
    lines = ["Players on server:", "[#] [IP Address]:[Port] [Ping] [GUID] [Name]", PLAYERS_RULE]
    for row in sorted(rows, key=lambda r: r.slot):
        address = f"{row.ip}:{row.port}"
        guid = row.guid if row.guid is not None else "-"
        status = "OK" if row.verified else "?"
        lobby = " (Lobby)" if row.lobby else ""
        lines.append(f"{row.slot:<4}{address:<21} {row.ping:<4} {guid}({status}) {row.name}{lobby}")
    lines.append(f"({len(rows)} players in total)")
    return "\n".join(lines)


def admins_output(admins: Iterable[tuple[int, str, int]]) -> str:
    """The ``admins`` reply from ``(number, ip, port)`` triples."""
    lines = ["Connected RCon admins:", "[#] [IP Address]:[Port]", ADMINS_RULE]
    lines.extend(f"{n} {ip}:{port}" for n, ip, port in sorted(admins))
    return "\n".join(lines)


def minutes_left(ban: Ban, now: float) -> str:
    """``perm``, the whole minutes left, or ``-`` once expired."""
    if ban.expires is None:
        return "perm"
    left = int((ban.expires - now) // 60)
    return str(left) if left > 0 else "-"


def bans_output(bans: Sequence[Ban], now: float) -> str:
    """The ``bans`` reply: GUID section then IP section, one running index (list order)."""
    guid_lines = ["GUID Bans:", "[#] [GUID] [Minutes left] [Reason]", GUID_BANS_RULE]
    ip_lines = ["IP Bans:", "[#] [IP Address] [Minutes left] [Reason]", IP_BANS_RULE]
    for index, ban in enumerate(ordered_bans(bans)):
        left = minutes_left(ban, now)
        if ban.is_ip:
            ip_lines.append(f"{index:<3}{ban.target:<15} {left} {ban.reason}".rstrip())
        else:
            guid_lines.append(f"{index:<3}{ban.target} {left} {ban.reason}".rstrip())
    return "\n".join([*guid_lines, "", *ip_lines])


def ordered_bans(bans: Sequence[Ban]) -> list[Ban]:
    """Bans in display (and ``removeBan`` index) order: GUID bans first, then IP bans."""
    return [b for b in bans if not b.is_ip] + [b for b in bans if b.is_ip]


def parse_bans_file(text: str) -> list[Ban]:
    """Read BattlEye's ``bans.txt``: ``<GUID|IP> <expiry unix time|-1> [reason]`` per line."""
    bans: list[Ban] = []
    for raw in text.splitlines():
        parts = raw.strip().split(" ", 2)
        if len(parts) < 2 or not parts[0]:
            continue
        try:
            expiry = int(parts[1])
        except ValueError:
            continue
        reason = parts[2].strip() if len(parts) > 2 else ""
        bans.append(Ban(parts[0], None if expiry < 0 else expiry, reason))
    return bans


def format_bans_file(bans: Sequence[Ban]) -> str:
    """Write the ban list in ``bans.txt`` form."""
    lines = [
        f"{b.target} {-1 if b.expires is None else b.expires} {b.reason}".rstrip() for b in bans
    ]
    return "".join(f"{line}\n" for line in lines)


# --- server messages (type 0x02) ------------------------------------------------------------------


def msg_admin_login(number: int, ip: str, port: int) -> str:
    """``RCon admin #n (ip:port) logged in``."""
    return f"RCon admin #{number} ({ip}:{port}) logged in"


def msg_connected(p: PlayerView) -> str:
    """``Player #n name (ip:port) connected``."""
    return f"Player #{p.slot} {p.ident.name} ({p.ident.ip}:{p.ident.port}) connected"


def msg_guid(p: PlayerView) -> str:
    """``Player #n name - BE GUID: guid``."""
    return f"Player #{p.slot} {p.ident.name} - BE GUID: {p.ident.guid}"


def msg_verified(p: PlayerView) -> str:
    """``Verified GUID (guid) of player #n name``."""
    return f"Verified GUID ({p.ident.guid}) of player #{p.slot} {p.ident.name}"


def msg_disconnected(p: PlayerView) -> str:
    """``Player #n name disconnected``."""
    return f"Player #{p.slot} {p.ident.name} disconnected"


def msg_kicked(p: PlayerView, guid: str, kind: str, reason: str) -> str:
    """``Player #n name (guid) has been kicked by BattlEye: Admin Kick (reason)``."""
    return (
        f"Player #{p.slot} {p.ident.name} ({guid}) has been kicked by BattlEye: {kind} ({reason})"
    )


def msg_say(admin: int, channel: str, text: str) -> str:
    """``RCon admin #n: (Global) text`` or ``(To name)``."""
    return f"RCon admin #{admin}: ({channel}) {text}"


def msg_chat(p: PlayerView, text: str) -> str:
    """``(Global) name: text``."""
    return f"(Global) {p.ident.name}: {text}"


# --- log lines ------------------------------------------------------------------------------------


def rpt_time(at: dt.datetime) -> str:
    """RPT timestamp, Arma style: hour right-aligned in two columns, milliseconds."""
    return f"{at.hour:2d}:{at.minute:02d}:{at.second:02d}.{at.microsecond // 1000:03d}"


def adm_time(at: dt.datetime) -> str:
    """ADM timestamp ``HH:MM:SS``."""
    return at.strftime("%H:%M:%S")


def rpt_name(at: dt.datetime, exe: str = "DayZServer") -> str:
    """``DayZServer_2024-05-01_18-30-12.RPT``."""
    return f"{exe}_{at:%Y-%m-%d_%H-%M-%S}.RPT"


def adm_name(at: dt.datetime, exe: str = "DayZServer") -> str:
    """``DayZServer_2024_05_01_183013457.ADM``."""
    return f"{exe}_{at:%Y_%m_%d_%H%M%S}{at.microsecond // 1000:03d}.ADM"


def script_name(at: dt.datetime) -> str:
    """``script_2024-05-01_18-30-14.log``."""
    return f"script_{at:%Y-%m-%d_%H-%M-%S}.log"


def crash_name(at: dt.datetime) -> str:
    """``crash_2024-05-01_19-02-33.log``."""
    return f"crash_{at:%Y-%m-%d_%H-%M-%S}.log"


def rpt_header(exe_path: str, command_line: str, exe_time: dt.datetime, now: dt.datetime) -> str:
    """The untimestamped RPT header block, ending with the ``Version`` line."""
    return "\n".join(
        [
            RPT_RULE,
            f"== {exe_path}",
            f"== {command_line}",
            RPT_RULE,
            f"Exe timestamp: {exe_time:%Y/%m/%d %H:%M:%S}",
            f"Current time:  {now:%Y/%m/%d %H:%M:%S}",
            "",
            f"Version {RPT_VERSION}",
        ]
    )


def adm_header(now: dt.datetime) -> str:
    """The ADM header: a rule of ``*`` and ``AdminLog started on …``, then a blank line."""
    return f"{ADM_RULE}\nAdminLog started on {now:%Y-%m-%d} at {now:%H:%M:%S}\n"


def coord(value: float) -> str:
    """One ``pos=`` component: truncated (not rounded) to one decimal; integers bare."""
    try:
        cut = Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_DOWN)
    except InvalidOperation:
        return "0"
    text = format(cut, "f")
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def adm_prefix(p: PlayerView) -> str:
    """``Player "name" (id=… pos=<x, z, alt>)``; ``(DEAD)`` after the name for the dead."""
    dead = " (DEAD)" if p.dead else ""
    pos = f"<{coord(p.x)}, {coord(p.z)}, {coord(p.alt)}>"
    return f'Player "{p.ident.name}"{dead} (id={p.ident.dayz_id} pos={pos})'


def adm_connected(p: PlayerView) -> str:
    """``Player "name" is connected (id=…)``."""
    return f'Player "{p.ident.name}" is connected (id={p.ident.dayz_id})'


def adm_disconnected(p: PlayerView) -> str:
    """``Player "name"(id=…) has been disconnected`` (no space before ``(id=``)."""
    return f'Player "{p.ident.name}"(id={p.ident.dayz_id}) has been disconnected'


def adm_chat(p: PlayerView, text: str) -> str:
    """``Chat("name"(id=…)): text``."""
    return f'Chat("{p.ident.name}"(id={p.ident.dayz_id})): {text}'


def adm_hit(hit: Hit) -> str:
    """A player-on-player hit line; note the trailing space after ``meters``."""
    return (
        f"{adm_prefix(hit.victim)}[HP: {hit.hp}] hit by {adm_prefix(hit.attacker)} into "
        f"{hit.zone}({hit.component}) for {hit.damage} damage ({hit.ammo}) with {hit.weapon} "
        f"from {hit.distance} meters "
    )


def adm_player_list(players: Sequence[PlayerView]) -> list[str]:
    """The ``##### PlayerList log`` block (empty when nobody is on)."""
    if not players:
        return []
    return [
        f"##### PlayerList log: {len(players)} players",
        *(adm_prefix(p) for p in players),
        "#####",
    ]


def rpt_login_queue(p: PlayerView) -> str:
    """``[Login]: Adding player name (dpnid) to login queue at position 0``."""
    return f"[Login]: Adding player {p.ident.name} ({p.dpnid}) to login queue at position 0"


def rpt_state_machine(p: PlayerView) -> str:
    """``[StateMachine]: Player name (dpnid … uid …) Entering DBWaitLoginTimeLoginState``."""
    return (
        f"[StateMachine]: Player {p.ident.name} (dpnid {p.dpnid} uid {p.ident.dayz_id}) "
        "Entering DBWaitLoginTimeLoginState"
    )


def rpt_connected(p: PlayerView) -> str:
    """``Player "name"(steamID=…) is connected``."""
    return f'Player "{p.ident.name}"(steamID={p.ident.steam64}) is connected'


def rpt_kicked(p: PlayerView, code: int, text: str) -> str:
    """``Player name (slot) (dpnid) kicked from server: code (text)``."""
    return f"Player {p.ident.name} ({p.slot}) ({p.dpnid}) kicked from server: {code} ({text})"


def rpt_disconnect(p: PlayerView) -> str:
    """``[Disconnect]: Client dpnid normal disconnect``."""
    return f"[Disconnect]: Client {p.dpnid} normal disconnect"


def script_runtime_error(n: int) -> list[str]:
    """A runtime script error block: message, Class/Function, stack trace frames."""
    return [
        "SCRIPT    (E): NULL pointer to instance",
        "Class:      'ExampleModManager'",
        "Function: 'OnUpdate'",
        "Stack trace:",
        f"ExampleMod/scripts/4_world/examplemodmanager.c:{88 + n % 7}",
        "scripts/5_mission/mission/missionserver.c:214",
    ]


def script_compile_error() -> list[str]:
    """A fatal compile failure: the ``Can't compile`` line and a diagnostic continuation."""
    return [
        'SCRIPT    (E): Can\'t compile "World" script module!',
        "ExampleMod/scripts/4_world/broken.c(13): Unknown type 'MissingClass'",
    ]
