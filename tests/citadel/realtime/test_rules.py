"""The delivery rule and the choice of payload variant (pure)."""

from __future__ import annotations

import pytest

from citadel.realtime import ClientScope, Outgoing, may_receive, select_variant
from citadel.realtime._rules import FULL, REDACTED

VIEWER = ClientScope(servers=frozenset({"a"}), permissions=frozenset({"server.view"}))
MODERATOR = ClientScope(
    servers=frozenset({"a"}),
    permissions=frozenset({"server.view", "players.view", "players.kick"}),
)
EVERYTHING_ON_A = ClientScope(servers=frozenset({"a"}), permissions=frozenset({"*"}))
ALL_SERVERS = ClientScope(servers=None, permissions=frozenset({"server.view"}))
ADMIN = ClientScope(servers=None, permissions=frozenset(), is_admin=True)


@pytest.mark.parametrize(
    ("scope", "name", "server", "expected"),
    [
        (VIEWER, "serverStatus", "a", True),
        (VIEWER, "serverStatus", "b", False),
        (VIEWER, "notification", "a", True),
        (VIEWER, "players", "a", False),
        (MODERATOR, "players", "a", True),
        (MODERATOR, "mapData", "a", True),
        (MODERATOR, "log", "a", False),
        (EVERYTHING_ON_A, "log", "a", True),
        (EVERYTHING_ON_A, "metrics", "a", True),
        (EVERYTHING_ON_A, "mods", "a", True),
        (EVERYTHING_ON_A, "metrics", "b", False),
        (ALL_SERVERS, "serverStatus", "zulu", True),
        (ALL_SERVERS, "metrics", "zulu", False),
        (EVERYTHING_ON_A, "notification", None, False),
        (ALL_SERVERS, "notification", None, False),
        (ADMIN, "notification", None, True),
        (ADMIN, "log", "anything", True),
        (EVERYTHING_ON_A, "someNewKind", "a", False),
        (ADMIN, "someNewKind", "a", True),
    ],
)
def test_may_receive(scope: ClientScope, name: str, server: str | None, expected: bool) -> None:
    assert may_receive(scope, name, server) is expected


def _players(redacted: bytes | None) -> Outgoing:
    return Outgoing("players", "a", b'{"ip":"192.0.2.1"}', redacted, "players.kick")


def test_full_payload_for_a_client_holding_the_permission() -> None:
    assert select_variant(MODERATOR, _players(b"{}")) == FULL


def test_redacted_payload_for_a_client_lacking_the_permission() -> None:
    scope = ClientScope(servers=None, permissions=frozenset({"players.view"}))
    assert select_variant(scope, _players(b"{}")) == REDACTED


def test_withheld_when_no_redacted_body_exists() -> None:
    scope = ClientScope(servers=None, permissions=frozenset({"players.view"}))
    assert select_variant(scope, _players(None)) is None


def test_out_of_scope_wins_over_variants() -> None:
    assert select_variant(VIEWER, _players(b"{}")) is None
