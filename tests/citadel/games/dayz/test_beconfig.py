"""BattlEye config writer: rendering, validation, both names, stale active files removed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from citadel.games.dayz.beconfig import render_beserver_cfg, write_beserver_cfg


def test_render() -> None:
    assert render_beserver_cfg("s3cret!", 2306, "127.0.0.1") == (
        "RConPassword s3cret!\nRConPort 2306\nRConIP 127.0.0.1\nRestrictRCon 0\n"
    )


@pytest.mark.parametrize(
    ("password", "port", "ip", "match"),
    [
        ("", 2306, "127.0.0.1", "empty"),
        ("two words", 2306, "127.0.0.1", "spaces"),
        ("line\nRConPort 1", 2306, "127.0.0.1", "newlines"),
        ("tab\there", 2306, "127.0.0.1", "tabs"),
        ("bell\x07", 2306, "127.0.0.1", "control"),
        ("ok", 0, "127.0.0.1", "port"),
        ("ok", 70000, "127.0.0.1", "port"),
        ("ok", 2306, "127.0.0.1\nRConPassword x", "IP"),
    ],
)
def test_rejects_bad_values(password: str, port: int, ip: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        render_beserver_cfg(password, port, ip)


def test_write_both_names_and_remove_stale_active(tmp_path: Path) -> None:
    be = tmp_path / "battleye"
    be.mkdir()
    (be / "beserver_x64_active_1a2b3c.cfg").write_text("RConPassword old\n")
    (be / "BEServer_x64_active_FFFF.cfg").write_text("RConPassword old\n")
    (be / "BEServer_x64.cfg").write_text("RConPassword old\n")
    (be / "bans.txt").write_text("keep me\n")
    written = write_beserver_cfg(tmp_path, "Пароль-1", 2310, "0.0.0.0")
    assert sorted(p.name for p in written) == ["BEServer_x64.cfg", "beserver_x64.cfg"]
    expected = "RConPassword Пароль-1\nRConPort 2310\nRConIP 0.0.0.0\nRestrictRCon 0\n"
    for path in written:
        assert path.read_text("utf-8") == expected
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in be.iterdir()) == [
        "BEServer_x64.cfg",
        "bans.txt",
        "beserver_x64.cfg",
    ]


def test_invalid_password_touches_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="spaces"):
        write_beserver_cfg(tmp_path, "a b", 2306)
    assert list(tmp_path.iterdir()) == []
