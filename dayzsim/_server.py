"""The simulated server process: start-up, tick loop, RCON commands, failures, shutdown.

One anyio task group (asyncio backend) holds everything; when idle the process sleeps until the
next tick or datagram, so a hundred instances cost almost nothing.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import anyio

from dayzsim import _commands as cmd
from dayzsim import _files, _snapshot, _text
from dayzsim._config import (
    DEFAULT_MAX_PLAYERS,
    BeConfig,
    Controls,
    LaunchArgs,
    parse_be_config,
    parse_server_cfg,
)
from dayzsim._failures import crash, freeze
from dayzsim._rcon import RconServer, Session
from dayzsim._world import (
    Chat,
    Connecting,
    EnteredGame,
    Event,
    GuidKnown,
    Hit,
    Left,
    Player,
    Verified,
    World,
)

EXE_NAME: Final = "DayZServer"
BE_CONFIG_NAMES: Final = ("beserver_x64.cfg", "BEServer_x64.cfg")
# (fraction of the start delay, RPT message) — the milestones of formats.md §1.3.
STARTUP: Final = (
    (0.0, "Initializing stats manager."),
    (0.3, "Reading mission ..."),
    (0.45, "Mission read."),
    (0.55, "[CE][Hive] :: Initializing OFFLINE"),
    (0.75, "[CE][CoreData] :: 8 root classes"),
    (0.85, "[CE][TypeSetup] :: 5252 classes setuped..."),
)
SCRIPT_MODULE_FRACTION: Final = 0.2  # when the script modules compile, as a start-delay fraction
COMPILE_ERROR_EXIT: Final = 1
DRAIN_LIMIT: Final = 0.5  # seconds to flush queued RCon replies at shutdown
FLOOD_BATCH: Final = 0.1  # seconds between flood batches
KICK_CODE: Final = 6  # the numeric kick reason of an admin kick in the RPT (formats.md §1.3)
CHILD_SOURCE: Final = "import time\nwhile True:\n    time.sleep(3600)\n"
#: A child that ignores SIGTERM (``stubborn``, ``setsid``): only SIGKILL ends it.
STUBBORN_SOURCE: Final = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "while True:\n    time.sleep(3600)\n"
)
#: ``daemon``: the classic double fork. The launcher leaves the session (setsid), forks the
#: daemon, prints the daemon's pid and exits, so the daemon is re-parented (to init or the
#: nearest subreaper): neither the process group nor parent links lead to it any more.
DAEMON_SOURCE: Final = (
    "import os, signal, sys, time\n"
    "os.setsid()\n"
    "r, w = os.pipe()\n"
    "if os.fork() == 0:\n"
    "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "    null = os.open(os.devnull, os.O_RDWR)\n"
    "    for fd in (0, 1, 2):\n"
    "        os.dup2(null, fd)\n"
    "    os.write(w, str(os.getpid()).encode())\n"
    "    os.close(w)\n"
    "    while True:\n        time.sleep(3600)\n"
    "os.close(w)\n"
    "sys.stdout.write(os.read(r, 32).decode())\n"
)
CHILD_LAUNCH_TIMEOUT: Final = 10.0


def say(text: str, *, err: bool = False) -> None:
    """Print a line on stdout/stderr; a closed pipe must not kill the server."""
    stream = sys.stderr if err else sys.stdout
    # The supervisor may have stopped reading; the game server keeps running regardless.
    with contextlib.suppress(OSError, ValueError):
        print(text, file=stream, flush=True)


class Simulator:
    """One run of the simulated DayZ server, from launch to exit code."""

    def __init__(self, args: LaunchArgs, controls: Controls, argv: list[str], cwd: Path) -> None:
        """Prepare a run launched with ``argv`` in working directory ``cwd``."""
        self.args = args
        self.controls = controls
        self.argv = argv
        self.cwd = cwd
        self.profile = cwd / args.profiles
        seed = args.seed if args.seed is not None else controls.seed
        self.rng = random.Random(seed)
        self.started_mono = time.monotonic()
        self.state = "starting"
        self.tick_no = 0
        self.fps: float | None = None
        self.bans: list[_text.Ban] = []
        self.be_dir = cwd / args.be_path if args.be_path else self.profile / "battleye"
        self.active_be: Path | None = None
        self.restrict = False
        self._exit_code = 0
        self.rcon: RconServer | None = None
        self.child_pid: int | None = None
        self._stop = anyio.Event()
        self._loop_frozen = anyio.Event()  # DAYZSIM_HANG_MODE=loop: ticks stop, RCON answers
        cfg = self._read_server_cfg()
        max_players = _int_or(cfg.get("maxPlayers"), DEFAULT_MAX_PLAYERS)
        self.hostname = cfg.get("hostname", "DayZ simulator")
        self.world = World(
            self.rng.randrange(2**32),
            target_players=controls.players,
            vehicles=controls.vehicles,
            churn=controls.churn,
            lobby_ticks=controls.lobby_ticks,
            event_chance=controls.event_chance,
            max_players=max(1, max_players),
        )
        self.profile.mkdir(parents=True, exist_ok=True)
        self.started = _files.fresh_start_time(self.profile)
        self.logs = _files.LogFiles(self.profile, self.started, adminlog=args.adminlog)

    # --- start ------------------------------------------------------------------------------------

    def _read_server_cfg(self) -> dict[str, str]:
        path = self.cwd / self.args.config
        try:
            return parse_server_cfg(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            say(f"dayz-sim: cannot read config {path}; using defaults", err=True)
            return {}

    def _read_be_config(self) -> BeConfig | None:
        """Read BattlEye's config; a left-over ``*_active_*`` copy wins, as with BattlEye."""
        try:
            entries = sorted(self.be_dir.iterdir())
        except OSError:
            return None
        actives = [p for p in entries if p.name.lower().startswith("beserver_x64_active_")]
        bases = [p for p in entries if p.name in BE_CONFIG_NAMES]
        source = actives[-1] if actives else (bases[0] if bases else None)
        if source is None:
            return None
        try:
            text = source.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        if not actives:
            self.active_be = self.be_dir / f"beserver_x64_active_{secrets.token_hex(4)}.cfg"
            try:
                self.active_be.write_text(text, encoding="utf-8")
            except OSError:
                self.active_be = None
        self._load_bans()
        return parse_be_config(text)

    def _load_bans(self) -> None:
        try:
            text = (self.be_dir / "bans.txt").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        self.bans = _text.parse_bans_file(text)

    def _write_bans(self) -> None:
        try:
            self.be_dir.mkdir(parents=True, exist_ok=True)
            _files.write_atomic(
                self.be_dir / "bans.txt", _text.format_bans_file(self.bans).encode("utf-8")
            )
        except OSError as exc:
            say(f"dayz-sim: cannot write bans.txt: {exc}", err=True)

    async def _open_rcon(self) -> None:
        be = self._read_be_config()
        if be is None or be.password is None or be.port is None:
            say(
                "dayz-sim: no BattlEye RCon config (RConPassword/RConPort); RCon disabled", err=True
            )
            return
        try:
            sock = await anyio.create_udp_socket(local_host=be.ip, local_port=be.port)
        except OSError as exc:
            say(f"dayz-sim: cannot bind RCon {be.ip}:{be.port}: {exc}", err=True)
            self.logs.rpt(f"BattlEye Server: RCon failed to bind {be.ip}:{be.port}")
            return
        self.restrict = be.restrict
        self.rcon = RconServer(sock, be.password, self.controls, self._command, self.rng)
        say(f"dayz-sim: RCon listening on {be.ip}:{be.port}")

    def _spawn_child(self, mode: str) -> None:
        """Start the helper process of ``DAYZSIM_SPAWN_CHILD`` and record its pid."""
        if mode == "daemon":
            # Blocking, but only for the launcher's few milliseconds, before the loop starts.
            launched = subprocess.run(
                [sys.executable, "-c", DAEMON_SOURCE],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                timeout=CHILD_LAUNCH_TIMEOUT,
                check=True,
            )
            self.child_pid = int(launched.stdout)
        else:
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD_SOURCE if mode == "group" else STUBBORN_SOURCE],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=mode == "setsid",
            )
            self.child_pid = child.pid
        _files.write_atomic(
            self.profile / "citadel" / "child.pid", f"{self.child_pid}\n".encode("ascii")
        )

    # --- main -------------------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until shut down; returns the exit code (crashes never return)."""
        command_line = " ".join(["./" + EXE_NAME, *self.argv])
        self.logs.rpt_header(str(self.cwd / EXE_NAME), command_line, self.started)
        say(f"DayZ Server (dayz-sim) {_text.RPT_VERSION} - {self.hostname}")
        say(f"dayz-sim: profiles={self.profile} port={self.args.port} pid={os.getpid()}")
        self._heartbeat()
        await self._open_rcon()
        if self.controls.spawn_child is not None:
            self._spawn_child(self.controls.spawn_child)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._signals)
            if self.rcon is not None:
                tg.start_soon(self.rcon.serve)
                tg.start_soon(self.rcon.maintain)
            if self.controls.crash_after is not None:
                tg.start_soon(self._after, self.controls.crash_after, self._crash)
            if self.controls.hang_after is not None:
                hang = freeze if self.controls.hang_mode == "process" else self._loop_frozen.set
                tg.start_soon(self._after, self.controls.hang_after, hang)
            if self.controls.log_flood > 0:
                tg.start_soon(self._flood)
            tg.start_soon(self._lifecycle)
            await self._stop.wait()
            if self.rcon is not None:
                # The empty reply to #shutdown is queued; let it out before RCon goes silent.
                with anyio.move_on_after(DRAIN_LIMIT):
                    await self.rcon.drain()
            tg.cancel_scope.cancel()
        return self._exit_code

    def request_stop(self, why: str, code: int = 0) -> None:
        """Begin a graceful save-and-exit (ignored with ``DAYZSIM_IGNORE_SHUTDOWN``)."""
        if self.controls.ignore_shutdown and code == 0:
            say(f"dayz-sim: ignoring {why} (DAYZSIM_IGNORE_SHUTDOWN)", err=True)
            return
        if self._stop.is_set():
            return
        self._exit_code = code
        if code == 0:
            self._save_and_close(why)
        self._stop.set()

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                self.request_stop(signal.Signals(signum).name)

    async def _after(self, delay: float, action: Callable[[], object]) -> None:
        await self._sleep_until(delay)
        action()

    def _crash(self) -> None:
        crash(self.controls, self.logs, self.profile)

    async def _lifecycle(self) -> None:
        delay = self.controls.start_delay
        script_done = False
        for fraction, message in STARTUP:
            if not script_done and fraction >= SCRIPT_MODULE_FRACTION:
                script_done = True
                if not await self._compile_scripts(delay):
                    return
            await self._sleep_until(fraction * delay)
            self.logs.rpt(message)
        await self._sleep_until(delay)
        self.logs.rpt("Player connect enabled")
        say("dayz-sim: Player connect enabled")
        self.state = "running"
        self._heartbeat()
        next_tick = time.monotonic() + self.controls.tick
        while True:
            await anyio.sleep(max(0.0, next_tick - time.monotonic()))
            next_tick += self.controls.tick
            if self._loop_frozen.is_set():
                # A frozen game loop: no ticks, no logs, no heartbeat; RCON still answers.
                await anyio.sleep_forever()
            self._tick()

    async def _sleep_until(self, offset: float) -> None:
        await anyio.sleep(max(0.0, self.started_mono + offset - time.monotonic()))

    async def _compile_scripts(self, delay: float) -> bool:
        await self._sleep_until(SCRIPT_MODULE_FRACTION * delay)
        self.logs.script("SCRIPT       : Module: Game; loaded 416x files; 1379x classes")
        if not self.controls.script_compile_error:
            self.logs.script("SCRIPT       : Module: World; loaded 1024x files; 2311x classes")
            return True
        first, *rest = _text.script_compile_error()
        self.logs.script(first, *rest)
        self.logs.rpt(first, *rest)
        say(f"dayz-sim: {first}", err=True)
        self.state = "stopped"
        self._heartbeat()
        self.logs.close()
        self.request_stop("script compile error", COMPILE_ERROR_EXIT)
        return False

    def _tick(self) -> None:
        self.tick_no += 1
        for event in self.world.tick():
            self._apply(event)
        c = self.controls
        if self.tick_no % c.stats_ticks == 0:
            self.fps = round(self.rng.uniform(55.0, 60.0), 2)
            self.logs.rpt_many(
                [f"Average server FPS: {self.fps}", f"Players: {len(self.world.players)} in total"]
            )
        if self.tick_no % c.playerlist_ticks == 0:
            views = [self.world.view(p) for p in self._in_game()]
            self.logs.adm(*_text.adm_player_list(views))
        if c.script_error_ticks and self.tick_no % c.script_error_ticks == 0:
            first, *rest = _text.script_runtime_error(self.tick_no)
            self.logs.script(first, *rest)
            self.logs.rpt(first, *rest)
        try:
            _files.write_json(
                self.profile / "citadel" / "positions.json",
                _snapshot.positions(self.world, self.tick_no, _files.now()),
            )
        except OSError as exc:  # a full disk or a deleted dir must not stop the game
            say(f"dayz-sim: cannot write positions: {exc}", err=True)
        self._heartbeat()

    def _in_game(self) -> list[Player]:
        return [p for p in sorted(self.world.players.values(), key=lambda p: p.slot) if p.in_game]

    def _broadcast(self, text: str) -> None:
        if self.rcon is not None:
            self.rcon.broadcast(text)

    def _apply(self, event: Event) -> None:
        match event:
            case Connecting(player=p):
                self._broadcast(_text.msg_connected(p))
                self.logs.rpt(_text.rpt_login_queue(p))
            case GuidKnown(player=p):
                self._broadcast(_text.msg_guid(p))
                self.logs.rpt(_text.rpt_state_machine(p))
            case Verified(player=p):
                self._broadcast(_text.msg_verified(p))
            case EnteredGame(player=p):
                self.logs.rpt(_text.rpt_connected(p))
                self.logs.adm(_text.adm_connected(p))
            case Left(player=p):
                self._broadcast(_text.msg_disconnected(p))
                self.logs.rpt(_text.rpt_disconnect(p))
                if p.in_game:
                    self.logs.adm(_text.adm_disconnected(p))
            case Chat(player=p, text=text):
                self._broadcast(_text.msg_chat(p, text))
                self.logs.adm(_text.adm_chat(p, text))
            case Hit():
                self.logs.adm(_text.adm_hit(event))

    async def _flood(self) -> None:
        carry = 0.0
        n = 0
        while True:
            await anyio.sleep(FLOOD_BATCH)
            if self._loop_frozen.is_set():
                await anyio.sleep_forever()
            carry += self.controls.log_flood * FLOOD_BATCH
            count, carry = int(carry), carry - int(carry)
            lines = [f"SCRIPT       : [Flood] line {n + i} lorem ipsum dolor" for i in range(count)]
            n += count
            self.logs.rpt_many(lines)

    def _heartbeat(self) -> None:
        at = _files.now()
        beat = _snapshot.Heartbeat(
            version=_snapshot.SNAPSHOT_VERSION,
            pid=os.getpid(),
            state=self.state,
            timestamp=_snapshot.iso_utc(at),
            started_at=_snapshot.iso_utc(self.started),
            uptime=round(time.monotonic() - self.started_mono, 3),
            tick=self.tick_no,
            players=len(self.world.players),
            fps=self.fps,
            rcon_port=self.rcon.port if self.rcon is not None else None,
            rcon_clients=len(self.rcon.sessions) if self.rcon is not None else 0,
        )
        try:
            _files.write_json(self.profile / "citadel" / "heartbeat.json", beat)
        except OSError as exc:
            say(f"dayz-sim: cannot write heartbeat: {exc}", err=True)

    def _save_and_close(self, why: str) -> None:
        self.state = "stopping"
        for slot in sorted(self.world.players):
            player = self.world.players[slot]
            view = self.world.view(player)
            self.logs.rpt(_text.rpt_disconnect(view))
            if player.in_game:
                self.logs.adm(_text.adm_disconnected(view))
        self.logs.rpt(f"Server shutting down ({why}); world saved")
        self.logs.close()
        if self.active_be is not None:
            self.active_be.unlink(missing_ok=True)
        self.state = "stopped"
        self._heartbeat()
        say(f"dayz-sim: stopped ({why})")

    # --- RCON commands ----------------------------------------------------------------------------

    def _command(self, session: Session, line: str) -> str:
        command = cmd.parse_command(line)
        if self.restrict and isinstance(command, cmd.Lock | cmd.Unlock | cmd.Shutdown):
            return "Disallowed command"
        match command:
            case cmd.Players():
                return _text.players_output(self._player_rows())
            case cmd.Admins():
                return _text.admins_output(self.rcon.admins() if self.rcon else [])
            case cmd.Bans():
                return _text.bans_output(self.bans, time.time())
            case cmd.Say(slot=slot, text=text):
                self._say(session.number, slot, text)
            case cmd.Kick(slot=slot, reason=reason):
                self._remove_player(slot, "Admin Kick", reason)
            case cmd.BanPlayer(slot=slot, minutes=minutes, reason=reason):
                player = self.world.players.get(slot)
                if player is not None:
                    self._add_ban(player.ident.guid, minutes, reason)
                    self._remove_player(slot, "Admin Ban", reason)
            case cmd.AddBan(target=target, minutes=minutes, reason=reason):
                self._add_ban(target, minutes, reason)
            case cmd.RemoveBan(index=index):
                ordered = _text.ordered_bans(self.bans)
                if index < len(ordered):
                    self.bans.remove(ordered[index])
                    self._write_bans()
            case cmd.LoadBans():
                self._load_bans()
            case cmd.WriteBans():
                self._write_bans()
            case cmd.Lock():
                self.world.locked = True
            case cmd.Unlock():
                self.world.locked = False
            case cmd.Shutdown():
                self.request_stop("#shutdown")
            case cmd.Unknown():
                return "Unknown command"
        return ""

    def _player_rows(self) -> list[_text.PlayerRow]:
        return [
            _text.PlayerRow(
                slot=p.slot,
                ip=p.ident.ip,
                port=p.ident.port,
                ping=p.ping,
                guid=p.ident.guid if p.stage >= 1 else None,
                verified=p.stage >= 2,
                name=p.ident.name,
                lobby=not p.in_game,
            )
            for p in self.world.players.values()
        ]

    def _say(self, admin: int, slot: int, text: str) -> None:
        if slot == -1:
            self._broadcast(_text.msg_say(admin, "Global", text))
            return
        player = self.world.players.get(slot)
        if player is not None:
            self._broadcast(_text.msg_say(admin, f"To {player.ident.name}", text))

    def _remove_player(self, slot: int, kind: str, reason: str) -> None:
        player = self.world.remove(slot)
        if player is None:
            return
        view = self.world.view(player)
        guid = player.ident.guid if player.stage >= 1 else "-"
        self._broadcast(_text.msg_kicked(view, guid, kind, reason))
        self._broadcast(_text.msg_disconnected(view))
        self.logs.rpt_many([_text.rpt_kicked(view, KICK_CODE, ""), _text.rpt_disconnect(view)])
        if player.in_game:
            self.logs.adm(_text.adm_disconnected(view))

    def _add_ban(self, target: str, minutes: int | None, reason: str) -> None:
        expires = None if minutes is None else int(time.time()) + minutes * 60
        self.bans.append(_text.Ban(target, expires, reason))
        self._write_bans()


def _int_or(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default
