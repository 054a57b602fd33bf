"""Per-client rate limits as token buckets: what a client is allowed, when it may come back."""

from __future__ import annotations

import pytest

from app.server.ratelimit import PRUNE_EVERY, RateLimiter, TokenBucket, retry_after_s


def test_a_minutes_allowance_at_once_then_one_every_two_seconds() -> None:
    limiter = RateLimiter(runs_per_minute=30, code_bytes_per_minute=0)
    assert all(limiter.admit("a", 10, now=0.0) == 0 for _ in range(30))
    wait = limiter.admit("a", 10, now=0.0)
    assert wait == pytest.approx(2.0)  # 30 a minute: one token every 2 s
    assert limiter.admit("a", 10, now=1.0) == pytest.approx(1.0)
    assert limiter.admit("a", 10, now=2.0) == 0
    assert limiter.admit("a", 10, now=2.0) == pytest.approx(2.0)


def test_clients_are_counted_apart() -> None:
    limiter = RateLimiter(runs_per_minute=2, code_bytes_per_minute=0)
    assert limiter.admit("addr:10.0.0.1", 1, 0.0) == 0
    assert limiter.admit("addr:10.0.0.1", 1, 0.0) == 0
    assert limiter.admit("addr:10.0.0.1", 1, 0.0) > 0
    assert limiter.admit("addr:10.0.0.2", 1, 0.0) == 0
    assert limiter.admit("token:0123456789ab", 1, 0.0) == 0


def test_code_bytes_per_minute() -> None:
    limiter = RateLimiter(runs_per_minute=0, code_bytes_per_minute=60_000)
    assert limiter.admit("a", 50_000, 0.0) == 0
    # 10,000 left; 20,000 more needs 10,000 at 1,000 a second
    assert limiter.admit("a", 20_000, 0.0) == pytest.approx(10.0)
    assert limiter.admit("a", 10_000, 0.0) == 0  # a smaller program fits at once


def test_a_refused_attempt_takes_nothing() -> None:
    """Hammering while refused does not push the next chance further out."""
    limiter = RateLimiter(runs_per_minute=60, code_bytes_per_minute=600)
    assert limiter.admit("a", 600, 0.0) == 0  # the code bucket is empty now; runs has 59
    for _ in range(100):
        assert limiter.admit("a", 100, 0.5) > 0
    assert limiter.admit("a", 100, 10.0) == 0
    # the refused attempts did not spend run tokens either: 58 more runs of 0 bytes fit
    assert all(limiter.admit("a", 0, 10.0) == 0 for _ in range(58))


def test_the_longer_wait_of_the_two_limits_is_told() -> None:
    limiter = RateLimiter(runs_per_minute=1, code_bytes_per_minute=60)
    assert limiter.admit("a", 60, 0.0) == 0
    assert limiter.admit("a", 60, 0.0) == pytest.approx(60.0)
    assert limiter.admit("a", 30, 30.0) == pytest.approx(30.0)  # code would fit; the run token would not


def test_a_program_larger_than_a_minutes_code_waits_for_a_full_bucket_not_forever() -> None:
    limiter = RateLimiter(runs_per_minute=0, code_bytes_per_minute=1000)
    assert limiter.admit("a", 5000, 0.0) == 0
    assert limiter.admit("a", 5000, 0.0) == pytest.approx(60.0)
    assert limiter.admit("a", 5000, 60.0) == 0


def test_zero_is_off() -> None:
    limiter = RateLimiter(0, 0)
    assert not limiter.enabled
    assert all(limiter.admit("a", 10**6, 0.0) == 0 for _ in range(1000))


def test_buckets_that_refilled_are_forgotten() -> None:
    """Memory stays bounded however many addresses come by."""
    limiter = RateLimiter(runs_per_minute=10, code_bytes_per_minute=0)
    for i in range(PRUNE_EVERY - 1):
        limiter.admit(f"addr:{i}", 1, 0.0)
    assert limiter.runs is not None and len(limiter.runs) == PRUNE_EVERY - 1
    limiter.admit("late", 1, 61.0)  # the PRUNE_EVERY-th check, a minute later: all have refilled
    assert len(limiter.runs) == 1


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert retry_after_s(0.01) == 1
    assert retry_after_s(2.0) == 2
    assert retry_after_s(2.1) == 3


def test_a_bucket_needs_a_positive_size() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_an_address_ceiling_bounds_all_its_clients_together() -> None:
    """Issue 29.6: each browser has its own runs a minute, their address a larger allowance for all."""
    limiter = RateLimiter(2, 0, ceiling_runs_per_minute=5)
    admitted = [limiter.admit(f"cookie:{i}@a", 10, 0.0, ceiling="ceiling:a") for i in range(3) for _ in range(2)]
    assert admitted == [0.0] * 5 + [pytest.approx(12.0)]  # the sixth run waits for the address (5 a minute)
    assert limiter.admit("cookie:0@b", 10, 0.0, ceiling="ceiling:b") == 0.0  # another address
    assert limiter.admit("cookie:9@a", 10, 0.0, ceiling="ceiling:a") > 0  # a fresh cookie gains nothing


def test_an_address_ceiling_on_code_bytes() -> None:
    limiter = RateLimiter(0, 1000, ceiling_code_bytes_per_minute=1500)
    assert limiter.admit("cookie:1@a", 1000, 0.0, ceiling="ceiling:a") == 0.0
    assert limiter.admit("cookie:2@a", 1000, 0.0, ceiling="ceiling:a") == pytest.approx(20.0)
