"""The per-client queue policy of a lagging client (pure, no sockets, no clock)."""

from __future__ import annotations

import msgspec

from citadel.realtime import ClientQueue, QueueLimits, Verdict


class Item(msgspec.Struct, frozen=True):
    name: str
    server_id: str | None
    body: str = ""
    size: int = 10


def notice(server_id: str | None, count: int) -> Item:
    return Item("log", server_id, f"{count} dropped", 0)


def make(**limits: float) -> ClientQueue[Item]:
    return ClientQueue(QueueLimits(**limits), notice)  # type: ignore[arg-type]


def drain(q: ClientQueue[Item]) -> list[Item]:
    out = []
    while (item := q.pop()) is not None:
        out.append(item)
    return out


def test_state_kinds_coalesce_to_the_latest_per_kind_and_server() -> None:
    q = make()
    assert q.push(Item("metrics", "a", "1"), 0.0) is Verdict.QUEUED
    assert q.push(Item("metrics", "b", "1"), 0.0) is Verdict.QUEUED
    assert q.push(Item("players", "a", "1"), 0.0) is Verdict.QUEUED
    assert q.push(Item("metrics", "a", "2"), 0.0) is Verdict.COALESCED
    assert q.push(Item("metrics", "a", "3"), 0.0) is Verdict.COALESCED
    assert [(i.name, i.server_id, i.body) for i in drain(q)] == [
        ("metrics", "a", "3"),
        ("metrics", "b", "1"),
        ("players", "a", "1"),
    ]
    assert q.coalesced == 2
    assert q.queued_bytes == 0


def test_coalescing_starts_afresh_once_the_pending_value_left() -> None:
    q = make()
    q.push(Item("mods", "a", "1"), 0.0)
    assert q.pop() == Item("mods", "a", "1")
    assert q.push(Item("mods", "a", "2"), 0.0) is Verdict.QUEUED
    assert drain(q) == [Item("mods", "a", "2")]


def test_server_status_transitions_are_all_kept_in_order() -> None:
    q = make()
    for status in ("stopping", "stopped", "starting", "running"):
        q.push(Item("serverStatus", "a", status), 0.0)
    q.push(Item("metrics", "a"), 0.0)
    assert [i.body for i in drain(q) if i.name == "serverStatus"] == [
        "stopping",
        "stopped",
        "starting",
        "running",
    ]


def test_logs_beyond_the_bound_are_dropped_oldest_first_and_announced() -> None:
    q = make(max_log_lines=3)
    q.push(Item("serverStatus", "a", "running"), 0.0)
    for n in range(5):
        q.push(Item("log", "a", f"line {n}"), 0.0)
    q.push(Item("log", "b", "b line"), 0.0)
    out = drain(q)
    assert out[0] == Item("log", "a", "3 dropped", 0)
    assert [i.body for i in out[1:]] == ["running", "line 3", "line 4", "b line"]
    assert q.dropped_logs == 3
    assert len(q) == 0


def test_too_many_bytes_means_disconnect() -> None:
    q = make(max_bytes=100)
    for _ in range(10):
        assert q.push(Item("serverStatus", "a", size=10), 0.0) is Verdict.QUEUED
    assert q.push(Item("serverStatus", "a", size=10), 0.0) is Verdict.DISCONNECT


def test_coalescing_keeps_bytes_bounded() -> None:
    q = make(max_bytes=100)
    for _ in range(1000):
        assert q.push(Item("metrics", "a", size=50), 0.0) is not Verdict.DISCONNECT
    assert q.queued_bytes == 50


def test_a_pending_frame_older_than_max_lag_means_disconnect() -> None:
    q = make(max_lag=5.0)
    q.push(Item("metrics", "a"), 10.0)
    assert q.check(14.9) is Verdict.QUEUED
    # A newer value of the same state does not make the client any less behind.
    assert q.push(Item("metrics", "a"), 15.5) is Verdict.DISCONNECT


def test_lag_is_measured_from_the_oldest_frame_still_pending() -> None:
    q = make(max_lag=5.0)
    q.push(Item("serverStatus", "a"), 0.0)
    q.push(Item("serverStatus", "a"), 4.0)
    q.pop()
    assert q.check(8.0) is Verdict.QUEUED
    assert q.check(9.5) is Verdict.DISCONNECT


def test_a_log_flood_keeps_memory_bounded() -> None:
    q = make(max_log_lines=10)
    for n in range(100_000):
        q.push(Item("log", "a", str(n)), 0.0)
    assert len(q._slots) < 200
    assert q.dropped_logs == 100_000 - 10
    out = drain(q)
    assert out[0].body == f"{100_000 - 10} dropped"
    assert [i.body for i in out[1:]] == [str(n) for n in range(100_000 - 10, 100_000)]


def test_clear_forgets_everything() -> None:
    q = make(max_log_lines=1)
    q.push(Item("log", "a"), 0.0)
    q.push(Item("log", "a"), 0.0)
    q.push(Item("metrics", "a"), 0.0)
    q.clear()
    assert q.pop() is None
    assert q.queued_bytes == 0


def test_retain_drops_what_a_narrower_scope_forbids_and_keeps_the_rest_in_order() -> None:
    q = make(max_log_lines=2)
    q.push(Item("serverStatus", "a", "a1"), 0.0)
    q.push(Item("serverStatus", "b", "b1"), 1.0)
    q.push(Item("metrics", "b", "mb"), 2.0)
    q.push(Item("metrics", "a", "ma"), 3.0)
    for n in range(3):  # one a-line dropped: a notice for server a is pending
        q.push(Item("log", "a", f"la{n}"), 4.0)
    q.push(Item("log", "b", "lb"), 5.0)  # drops la1: a's notice counts 2 lines
    q.push(Item("serverStatus", "a", "a2"), 6.0)
    # b1, mb and lb go; a's notice stays (it is about server a); a second pass finds nothing.
    assert q.retain(lambda item: item.server_id == "a") == 3
    assert q.retain(lambda item: item.server_id == "a") == 0
    assert q.queued_bytes == 4 * 10
    assert len(q) == 5
    assert [(i.server_id, i.body) for i in drain(q)] == [
        ("a", "2 dropped"),
        ("a", "a1"),
        ("a", "ma"),
        ("a", "la2"),
        ("a", "a2"),
    ]
    assert q.queued_bytes == 0
    # Bookkeeping survived: state coalesces again, logs are bounded again.
    q.push(Item("metrics", "a", "1"), 0.0)
    assert q.push(Item("metrics", "a", "2"), 0.0) is Verdict.COALESCED
    for n in range(4):
        q.push(Item("log", "a", str(n)), 0.0)
    assert [i.body for i in drain(q)] == ["2 dropped", "2", "2", "3"]


def test_retain_drops_a_drop_notice_the_scope_no_longer_allows() -> None:
    q = make(max_log_lines=1)
    q.push(Item("log", "b", "old"), 0.0)
    q.push(Item("log", "b", "new"), 0.0)
    q.push(Item("serverStatus", "a", "keep"), 0.0)
    assert q.retain(lambda item: item.server_id == "a") == 2  # the b line and b's notice
    assert drain(q) == [Item("serverStatus", "a", "keep")]
    assert q.dropped_logs == 1  # what the client lost while it could still see b
