"""The event contract: names, camelCase keys, null/omission rules, round trips, bad input."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from citadel.messages import (
    EVENT_NAMES,
    EVENT_TYPES,
    BackupCreatedEvent,
    BackupRestoreEvent,
    DangerzoneProgressEvent,
    Event,
    HookResultEvent,
    LogEvent,
    MapDataEvent,
    MapPlayer,
    MetricsEvent,
    Mod,
    ModInstallProgressEvent,
    ModsEvent,
    NotificationEvent,
    Player,
    PlayersEvent,
    Position,
    ServerRemovedEvent,
    ServerStatusEvent,
    UpdateProgressEvent,
    Vehicle,
    decode_event,
    encode_event,
    event_name,
    utc_timestamp,
)

TS = "2026-12-03T18:56:31.123Z"
POS = Position(x=1.5, y=2.0, z=-3.25)

# One fully populated sample per event: every optional field set, so every key is exercised.
SAMPLES: list[Event] = [
    ServerStatusEvent(
        server_id="alpha",
        status="crashed",
        seq=7,
        timestamp=TS,
        reason="process exited unexpectedly",
        exit_code=139,
        signal="SIGSEGV",
        restart_in=5.0,
    ),
    PlayersEvent(
        server_id="alpha",
        players=[
            Player(
                id="0123456789abcdef0123456789abcdef",
                name="Игрок_3",
                ping=48,
                guid="0123456789abcdef0123456789abcdef",
                steam_id="76561190000000001",
                slot=3,
                ip="192.0.2.7",
                position=POS,
            )
        ],
    ),
    MetricsEvent(
        server_id="alpha",
        cpu=12.5,
        ram=3.25,
        players=1,
        fps=59.9,
        timestamp=TS,
        ram_bytes=2_000_000_000,
        uptime=3600.0,
    ),
    LogEvent(
        server_id="alpha",
        level="warn",
        source="rpt",
        message="hello",
        timestamp=TS,
        file="DayZServer_2026-12-03_18-31-00.RPT",
        dropped=0,
    ),
    MapDataEvent(
        server_id="alpha",
        players=[MapPlayer(id="p1", name="PlayerOne", position=POS, heading=90.0)],
        vehicles=[
            Vehicle(id="v1", class_name="OffroadHatchback", position=POS, heading=1.0, health=0.5)
        ],
        timestamp=TS,
    ),
    ModsEvent(
        server_id="alpha",
        mods=[Mod(workshop_id="1000000001", name="CF", enabled=True, order=0, type="client")],
    ),
    ModInstallProgressEvent(
        server_id="alpha",
        workshop_id="1000000001",
        progress=42.5,
        status="downloading",
        message="downloading",
    ),
    UpdateProgressEvent(
        server_id="alpha",
        stage="countdown",
        progress=0,
        message="restart in 60 s",
        update_type="server",
        countdown=60,
    ),
    BackupCreatedEvent(
        server_id="alpha", filename="a.tar.zst", type="pre-update", size=1024, created_at=TS
    ),
    BackupRestoreEvent(server_id="alpha", status="error", filename="a.tar.zst", error="disk full"),
    DangerzoneProgressEvent(
        server_id="alpha", status="backing-up", message="saving", preset="full-wipe"
    ),
    NotificationEvent(
        id=12,
        server_id="alpha",
        type="crash",
        title="Alpha crashed",
        message="exit 139",
        severity="error",
        timestamp=TS,
    ),
    HookResultEvent(
        server_id="alpha",
        hook="notify.sh",
        phase="pre-start",
        exit_code=0,
        stdout="ok\n",
        error="none",
    ),
    ServerRemovedEvent(server_id="alpha", timestamp=TS),
]

# The wire keys of each event when fully populated (DESIGN §3 seed fields plus our (+) fields).
EXPECTED_KEYS: dict[str, set[str]] = {
    "serverStatus": {
        "serverId", "status", "seq", "timestamp", "reason", "exitCode", "signal", "restartIn",
    },
    "players": {"serverId", "players"},
    "metrics": {
        "serverId", "cpu", "ram", "players", "fps", "timestamp", "ramBytes", "uptime",
    },
    "log": {"serverId", "level", "source", "message", "timestamp", "file", "dropped"},
    "mapData": {"serverId", "players", "vehicles", "timestamp"},
    "mods": {"serverId", "mods"},
    "modInstallProgress": {"serverId", "workshopId", "progress", "status", "message"},
    "updateProgress": {
        "serverId", "stage", "progress", "message", "countdown", "updateType",
    },
    "backupCreated": {"serverId", "filename", "type", "size", "createdAt"},
    "backupRestore": {"serverId", "status", "filename", "error"},
    "dangerzoneProgress": {"serverId", "status", "message", "preset"},
    "notification": {
        "serverId", "type", "title", "message", "severity", "id", "timestamp",
    },
    "hookResult": {"serverId", "hook", "phase", "exitCode", "stdout", "error"},
    "serverRemoved": {"serverId", "timestamp"},
}  # fmt: skip


def _all_keys(value: Any) -> set[str]:
    """Every object key anywhere in a decoded JSON value."""
    if isinstance(value, dict):
        keys = set(value)
        for item in value.values():
            keys |= _all_keys(item)
        return keys
    if isinstance(value, list):
        return set().union(*(_all_keys(item) for item in value)) if value else set()
    return set()


def test_event_names_are_the_thirteen_of_the_contract_and_our_one_addition() -> None:
    assert tuple(EXPECTED_KEYS) == EVENT_NAMES
    assert [event_name(sample) for sample in SAMPLES] == list(EVENT_NAMES)
    assert len(EVENT_TYPES) == 14
    assert EVENT_NAMES[-1] == "serverRemoved"


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: event_name(s))
def test_round_trip_with_camel_case_keys(sample: Event) -> None:
    data = encode_event(sample)
    payload = json.loads(data)
    name = event_name(sample)
    assert payload["event"] == name
    assert set(payload) - {"event"} == EXPECTED_KEYS[name]
    assert not any("_" in key for key in _all_keys(payload)), payload
    assert decode_event(data) == sample
    assert decode_event(data.decode()) == sample


def test_nested_records_use_camel_case() -> None:
    players = json.loads(encode_event(SAMPLES[1]))["players"][0]
    assert players["steamId"] == "76561190000000001"
    assert players["position"] == {"x": 1.5, "y": 2.0, "z": -3.25}
    vehicle = json.loads(encode_event(SAMPLES[4]))["vehicles"][0]
    assert vehicle["className"] == "OffroadHatchback"
    mod = json.loads(encode_event(SAMPLES[5]))["mods"][0]
    assert mod["workshopId"] == "1000000001"


def test_server_status_nulls_are_explicit() -> None:
    ev = ServerStatusEvent(server_id="alpha", status="running", seq=1, timestamp=TS)
    payload = json.loads(encode_event(ev))
    assert "restartIn" in payload
    assert payload["restartIn"] is None
    assert payload["exitCode"] is None
    assert payload["signal"] is None
    assert payload["reason"] is None


def test_non_seed_optional_values_are_explicit_nulls() -> None:
    metrics = MetricsEvent(
        server_id="a", cpu=0, ram=0, players=0, fps=None, timestamp=TS, ram_bytes=0, uptime=0
    )
    assert json.loads(encode_event(metrics))["fps"] is None
    log = LogEvent(server_id="a", level="info", source="system", message="m", timestamp=TS)
    assert json.loads(encode_event(log))["file"] is None
    assert json.loads(encode_event(log))["dropped"] == 0
    note = NotificationEvent(
        id=1, server_id=None, type="host", title="t", message="m", severity="info", timestamp=TS
    )
    assert json.loads(encode_event(note))["serverId"] is None
    hook = HookResultEvent(server_id="a", hook="h", phase="crash", exit_code=None)
    assert json.loads(encode_event(hook))["exitCode"] is None
    update = UpdateProgressEvent(
        server_id="a", stage="updating", progress=50, message="m", update_type="mods"
    )
    assert json.loads(encode_event(update))["countdown"] is None


def test_seed_question_mark_fields_are_omitted_when_absent() -> None:
    player = PlayersEvent(server_id="a", players=[Player(id="1", name="n", ping=1)])
    assert set(json.loads(encode_event(player))["players"][0]) == {"id", "name", "ping"}
    map_data = MapDataEvent(
        server_id="a",
        players=[MapPlayer(id="1", name="n", position=POS)],
        vehicles=[Vehicle(id="v", class_name="Car", position=POS)],
        timestamp=TS,
    )
    payload = json.loads(encode_event(map_data))
    assert set(payload["players"][0]) == {"id", "name", "position"}
    assert set(payload["vehicles"][0]) == {"id", "className", "position"}
    restore = BackupRestoreEvent(server_id="a", status="complete", filename="f")
    assert "error" not in json.loads(encode_event(restore))
    danger = DangerzoneProgressEvent(server_id="a", status="wiping", message="m")
    assert "preset" not in json.loads(encode_event(danger))
    hook = HookResultEvent(server_id="a", hook="h", phase="post-stop", exit_code=0)
    assert set(json.loads(encode_event(hook))) == {
        "event", "serverId", "hook", "phase", "exitCode",
    }  # fmt: skip


def test_events_are_frozen() -> None:
    ev = ServerStatusEvent(server_id="alpha", status="running", seq=1, timestamp=TS)
    with pytest.raises(AttributeError):
        ev.status = "running"  # type: ignore[misc]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe\x00garbage",
        b'{"event":"serverStatus","serverId":"alpha"',
        b'{"event":"nope","serverId":"alpha"}',
        b'{"type":"notification"}',
        b'{"event":"serverStatus","serverId":"alpha","status":"exploded","seq":1,"timestamp":"t"}',
        b'{"event":"serverStatus","serverId":"Bad Id!","status":"running","seq":1,"timestamp":"t"}',
        b'{"event":"modInstallProgress","serverId":"a","workshopId":"1","progress":101,'
        b'"status":"queued","message":""}',
        b"[1,2,3]",
        b'{"event":"log","serverId":"a","level":"warn","source":"system","message":"m",'
        b'"timestamp":"t","file":null,"dropped":-1}',
    ],
)
def test_decode_rejects_bad_input_with_decode_error(data: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_event(data)


@given(st.binary(max_size=200))
def test_decode_never_fails_other_than_decode_error(data: bytes) -> None:
    with contextlib.suppress(msgspec.DecodeError):
        decode_event(data)


def test_utc_timestamp_format() -> None:
    assert utc_timestamp(0) == "1970-01-01T00:00:00.000Z"
    # 2026-12-03T18:56:31.1239Z: milliseconds are truncated, never rounded up.
    assert utc_timestamp(1796324191.1239) == "2026-12-03T18:56:31.123Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc_timestamp())
