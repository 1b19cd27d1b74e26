"""Child specs, and the should_restart and removed_when_stopped tables (OTP's restart types)."""

from __future__ import annotations

import pytest

from actors import ChildSpec, ExitKind, Restart
from actors._spec import removed_when_stopped, should_restart
from actors.testing import Probe

N, S, E = ExitKind.NORMAL, ExitKind.SHUTDOWN, ExitKind.ERROR


@pytest.mark.parametrize(
    ("restart", "kind", "expected"),
    [
        (Restart.PERMANENT, N, True),
        (Restart.PERMANENT, S, True),
        (Restart.PERMANENT, E, True),
        (Restart.TRANSIENT, N, False),
        (Restart.TRANSIENT, S, False),
        (Restart.TRANSIENT, E, True),
        (Restart.TEMPORARY, N, False),
        (Restart.TEMPORARY, S, False),
        (Restart.TEMPORARY, E, False),
    ],
)
def test_should_restart_table(restart: Restart, kind: ExitKind, expected: bool) -> None:
    assert should_restart(restart, kind) is expected


@pytest.mark.parametrize(
    ("restart", "dynamic", "expected"),
    [
        (Restart.PERMANENT, False, False),
        (Restart.TRANSIENT, False, False),
        (Restart.TEMPORARY, False, True),
        (Restart.PERMANENT, True, True),
        (Restart.TRANSIENT, True, True),
        (Restart.TEMPORARY, True, True),
    ],
)
def test_removed_when_stopped_table(restart: Restart, dynamic: bool, expected: bool) -> None:
    assert removed_when_stopped(restart, dynamic) is expected


def test_spec_defaults() -> None:
    spec = ChildSpec("w", start=Probe)
    assert spec.restart is Restart.PERMANENT
    assert spec.shutdown == 5.0
    assert spec.name is None


def test_spec_refuses_an_empty_id() -> None:
    with pytest.raises(ValueError, match="id"):
        ChildSpec("", start=Probe)


def test_spec_refuses_a_negative_shutdown() -> None:
    with pytest.raises(ValueError, match="shutdown"):
        ChildSpec("w", start=Probe, shutdown=-1.0)


def test_zero_shutdown_is_allowed() -> None:
    assert ChildSpec("w", start=Probe, shutdown=0.0).shutdown == 0.0


def test_spec_is_frozen() -> None:
    spec = ChildSpec("w", start=Probe)
    with pytest.raises(AttributeError):
        spec.id = "x"  # type: ignore[misc]  # frozen on purpose
