"""Login throttling in injected time: lockout after 5 failures, doubling, reset on success."""

from __future__ import annotations

from citadel.auth import LoginThrottle
from citadel.auth._throttle import IN_FLIGHT_RETRY, PRUNE_THRESHOLD

IP = "192.0.2.7"


def _fail(
    throttle: LoginThrottle, times: int, *, now: float, ip: str = IP, user: str = "u"
) -> None:
    for _ in range(times):
        throttle.record_failure(ip, user, now=now)


def test_five_failures_lock_out_for_the_base_time() -> None:
    throttle = LoginThrottle()
    _fail(throttle, 4, now=0.0)
    assert throttle.retry_after(IP, "u", now=0.0) == 0.0
    throttle.record_failure(IP, "u", now=1.0)
    assert throttle.retry_after(IP, "u", now=1.0) == 60.0
    assert throttle.retry_after(IP, "u", now=31.0) == 30.0
    assert throttle.retry_after(IP, "u", now=61.0) == 0.0


def test_failures_outside_the_window_do_not_count() -> None:
    throttle = LoginThrottle()
    _fail(throttle, 4, now=0.0)
    throttle.record_failure(IP, "u", now=300.0)  # the first four slid out of the 5-minute window
    assert throttle.retry_after(IP, "u", now=300.0) == 0.0


def test_lockouts_double_up_to_the_cap() -> None:
    throttle = LoginThrottle(lockout_cap=200.0)
    now = 0.0
    waits = []
    for _ in range(4):
        _fail(throttle, 5, now=now)
        wait = throttle.retry_after(IP, "u", now=now)
        waits.append(wait)
        now += wait
    assert waits == [60.0, 120.0, 200.0, 200.0]


def test_streak_is_forgotten_after_a_quiet_period() -> None:
    throttle = LoginThrottle(lockout_cap=3600.0)
    _fail(throttle, 5, now=0.0)
    _fail(throttle, 5, now=60.0)
    assert throttle.retry_after(IP, "u", now=60.0) == 120.0
    # Quiet for the cap after the second lockout ended (at 180): back to the base lockout.
    _fail(throttle, 5, now=180.0 + 3599.0)
    assert throttle.retry_after(IP, "u", now=3779.0) == 240.0
    _fail(throttle, 5, now=3779.0 + 240.0 + 3600.0)
    assert throttle.retry_after(IP, "u", now=7619.0) == 60.0


def test_success_resets_the_user_but_not_the_ip() -> None:
    throttle = LoginThrottle()
    _fail(throttle, 4, now=0.0, user="victim")
    throttle.record_success(IP, "victim", now=1.0)
    _fail(throttle, 4, now=2.0, user="victim", ip="198.51.100.1")
    assert throttle.retry_after("198.51.100.1", "victim", now=2.0) == 0.0
    # The IP kept its 4 earlier failures: one more from it locks it, whatever the username.
    throttle.record_failure(IP, "other", now=3.0)
    assert throttle.retry_after(IP, "someone-else", now=3.0) == 60.0


def test_spraying_many_users_from_one_ip_is_throttled() -> None:
    throttle = LoginThrottle()
    for i in range(5):
        throttle.record_failure(IP, f"user{i}", now=0.0)
    assert throttle.retry_after(IP, "user99", now=0.0) == 60.0
    assert throttle.retry_after("203.0.113.5", "user99", now=0.0) == 0.0


def test_one_user_from_many_ips_is_throttled_case_insensitively() -> None:
    throttle = LoginThrottle()
    for i in range(5):
        throttle.record_failure(f"203.0.113.{i}", "Admin", now=0.0)
    assert throttle.retry_after("203.0.113.200", "admin", now=0.0) == 60.0


def test_memory_is_bounded_by_pruning_idle_keys() -> None:
    throttle = LoginThrottle()
    for i in range(PRUNE_THRESHOLD + 10):
        throttle.record_failure(None, f"spray{i}", now=0.0)
    assert throttle.statistics(now=0.0).tracked == PRUNE_THRESHOLD + 10
    throttle.record_failure(None, "late", now=10_000.0)
    assert throttle.statistics(now=10_000.0).tracked == 1


def test_attempts_in_flight_count_against_the_budget() -> None:
    throttle = LoginThrottle()
    # Five guesses reserved at once, none judged yet: the sixth is refused, whatever its name.
    assert [throttle.reserve(IP, f"u{i}", now=0.0) for i in range(5)] == [0.0] * 5
    assert throttle.reserve(IP, "u9", now=0.0) == IN_FLIGHT_RETRY
    assert throttle.statistics(now=0.0).in_flight == 10  # five on the IP, one on each name
    for i in range(5):
        throttle.record_failure(IP, f"u{i}", now=0.1)
    # The fifth failure locked the IP out; nothing is in flight any more.
    assert throttle.reserve(IP, "u9", now=0.1) == 60.0
    assert throttle.statistics(now=0.1).in_flight == 0


def test_at_most_max_failures_guesses_are_judged_per_window_however_concurrent() -> None:
    throttle = LoginThrottle()
    judged = 0
    for _ in range(3):  # waves of 60 concurrent attempts against one name from many IPs
        granted = [
            i for i in range(60) if throttle.reserve(f"203.0.113.{i}", "admin", now=0.0) == 0.0
        ]
        judged += len(granted)
        for i in granted:
            throttle.record_failure(f"203.0.113.{i}", "admin", now=0.0)
    assert judged == 5


def test_a_success_ends_its_reservation_and_keeps_the_others() -> None:
    throttle = LoginThrottle(max_failures=2)
    assert throttle.reserve(IP, "u", now=0.0) == 0.0
    assert throttle.reserve("198.51.100.1", "u", now=0.0) == 0.0
    assert throttle.reserve("198.51.100.2", "u", now=0.0) == IN_FLIGHT_RETRY
    throttle.record_success(IP, "u", now=0.1)
    # One attempt on "u" is still being checked: one more fits in the budget of two.
    assert throttle.reserve("198.51.100.2", "u", now=0.1) == 0.0
    assert throttle.reserve("198.51.100.3", "u", now=0.1) == IN_FLIGHT_RETRY
    throttle.record_failure("198.51.100.1", "u", now=0.2)
    throttle.record_failure("198.51.100.2", "u", now=0.2)
    assert throttle.retry_after(None, "u", now=0.2) == 60.0
    assert throttle.statistics(now=0.2).in_flight == 0


def test_keys_with_attempts_in_flight_are_never_pruned() -> None:
    throttle = LoginThrottle()
    assert throttle.reserve(None, "slow", now=0.0) == 0.0
    for i in range(PRUNE_THRESHOLD + 10):
        throttle.record_failure(None, f"spray{i}", now=0.0)
    throttle.record_failure(None, "late", now=10_000.0)
    assert throttle.statistics(now=10_000.0).tracked == 2
    assert throttle.statistics(now=10_000.0).in_flight == 1
