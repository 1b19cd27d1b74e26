"""The tally of anonymous refusals: one row per address, method and status, bounded."""

from __future__ import annotations

from citadel.web.audit import MAX_PATH_LENGTH, PATH_SAMPLES, AuditTally


def test_refusals_sum_up_per_address_method_and_status() -> None:
    tally = AuditTally()
    for i in range(30):
        tally.add("192.0.2.1", "POST", f"/api/x{i % 7}", 401, now=float(i))
    tally.add("192.0.2.1", "POST", "/api/x", 404, now=40.0)
    tally.add("192.0.2.2", "POST", "/api/x", 401, now=41.0)
    assert tally.pending() == 32
    rows = {(r.ip, r.status): r for r in tally.drain()}
    assert set(rows) == {("192.0.2.1", 401), ("192.0.2.1", 404), ("192.0.2.2", 401)}
    flood = rows["192.0.2.1", 401]
    assert (flood.count, flood.first, flood.last, flood.path) == (30, 0.0, 29.0, "/api/x1")
    assert flood.paths == [f"/api/x{i}" for i in range(PATH_SAMPLES)]
    assert flood.detail()["count"] == 30
    assert tally.drain() == []
    assert tally.pending() == 0


def test_addresses_beyond_the_bound_fold_into_one_row() -> None:
    tally = AuditTally(max_keys=3)
    for i in range(1000):
        tally.add(f"10.0.{i // 256}.{i % 256}", "DELETE", "/" + "p" * 1000, 401, now=0.0)
    rows = tally.drain()
    assert len(rows) == 4
    other = next(r for r in rows if r.ip is None)
    assert other.count == 997
    assert all(len(r.path) == MAX_PATH_LENGTH for r in rows)
