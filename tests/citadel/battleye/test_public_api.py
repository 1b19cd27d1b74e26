"""The package's public surface is exactly what its docs describe."""

from __future__ import annotations

import citadel.games.battleye as battleye


def test_all_is_the_documented_surface() -> None:
    assert battleye.__all__ == sorted(battleye.__all__)
    assert set(battleye.__all__) == {
        "CommandTimeout",
        "LoginFailed",
        "MessageCallback",
        "RConClient",
        "RConDisconnected",
        "RConError",
        "RConSettings",
        "RConStatistics",
        "RConUnreachable",
        "encode_command_text",
        "find_control_character",
        "is_blank",
        "open_rcon",
        "run_forever",
    }
    for name in battleye.__all__:
        assert getattr(battleye, name) is not None


def test_errors_share_one_root() -> None:
    for error in (
        battleye.CommandTimeout,
        battleye.LoginFailed,
        battleye.RConDisconnected,
        battleye.RConUnreachable,
    ):
        assert issubclass(error, battleye.RConError)
