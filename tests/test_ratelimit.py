"""RateLimiter and backoff: pacing checked exactly with a fake clock (no real waiting)."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest

from wildvalues.classifier.ratelimit import RateLimiter, backoff_delay, parse_retry_after


class FakeClock:
    """A clock that only moves when someone sleeps; records every sleep."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(clock: FakeClock, **kwargs: Any) -> RateLimiter:
    defaults: dict[str, Any] = dict(rpm=60, itpm=1_000_000, otpm=1_000_000, share=1.0)
    defaults.update(kwargs)
    return RateLimiter(
        defaults.pop("rpm"),
        defaults.pop("itpm"),
        defaults.pop("otpm"),
        defaults.pop("share"),
        clock=clock,
        sleep=clock.sleep,
        wall_clock=lambda: 1_000_000.0,
        **defaults,
    )


def acquire_times(rl: RateLimiter, clock: FakeClock, n: int, tokens: int = 0) -> list[float]:
    times = []
    for _ in range(n):
        rl.acquire(tokens)
        times.append(clock.now)
    return times


# -- backoff --------------------------------------------------------------------------------------


class FixedRandom:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_backoff_is_exponential_with_full_jitter_and_capped():
    half = FixedRandom(0.5)
    assert [backoff_delay(a, 1.0, 60.0, half) for a in range(1, 9)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff_delay(3, 0.25, 60.0, FixedRandom(0.0)) == 0.0
    rng = random.Random(7)
    delays = [backoff_delay(4, 1.0, 60.0, rng) for _ in range(2000)]
    assert all(0.0 <= d < 8.0 for d in delays)
    assert min(delays) < 0.5 and max(delays) > 7.5  # the full range [0, ceiling) is used
    with pytest.raises(ValueError, match=r"^attempt counts failures and starts at 1$"):
        backoff_delay(0, 1.0, 60.0, half)


# -- pacing ---------------------------------------------------------------------------------------


def test_small_burst_then_exact_sustained_rate():
    clock = FakeClock()
    rl = limiter(clock, rpm=60, burst_seconds=5)  # 1 request/s, bucket of 5
    times = acquire_times(rl, clock, 100)
    assert times == [0.0] * 5 + [float(i) for i in range(1, 96)]


def test_sustained_rate_never_exceeds_limit_in_any_window():
    clock = FakeClock()
    rl = limiter(clock, rpm=600, burst_seconds=2)  # 10/s, burst 20
    times = acquire_times(rl, clock, 2000)
    window = 60.0
    j = 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + window:
            j += 1
        assert j - i <= 600 + 20  # limit per minute plus the one burst
    # and over the whole run the average rate is at the limit, not below it
    assert times[-1] == pytest.approx((2000 - 20) / 10.0)


def test_share_divides_the_limit():
    clock = FakeClock()
    rl = limiter(clock, rpm=240, share=0.25, burst_seconds=1)  # 60/min for this task: 1/s, bucket 1
    assert acquire_times(rl, clock, 4) == [0.0, 1.0, 2.0, 3.0]


def test_input_tokens_pace_requests_and_oversized_requests_run_into_debt():
    clock = FakeClock()
    rl = limiter(clock, rpm=60_000, itpm=6_000, burst_seconds=1)  # 100 input tokens/s, bucket 100
    assert acquire_times(rl, clock, 4, tokens=50) == [0.0, 0.0, 0.5, 1.0]
    clock2 = FakeClock()
    rl2 = limiter(clock2, rpm=60_000, itpm=6_000, burst_seconds=1)
    rl2.acquire(500)  # more than the bucket: admitted when full, leaves a debt of 400
    assert clock2.now == 0.0
    rl2.acquire(50)
    assert clock2.now == 4.5  # (400 debt + 50) / 100 per second


def test_output_reserve_is_returned_by_settle():
    clock = FakeClock()
    rl = limiter(clock, otpm=600, output_burst_seconds=10, output_reserve=100)  # 10/s, bucket 100
    rl.acquire(0)
    rl.settle(20)  # produced 20 of the 100 reserved: 80 come back
    rl.acquire(0)
    assert clock.now == 2.0  # (100 - 80) / 10
    rl.settle(100)
    rl.acquire(0)
    assert clock.now == 12.0  # nothing came back: a full 100 must refill


def test_settle_charges_input_underestimates():
    clock = FakeClock()
    rl = limiter(clock, rpm=60_000, itpm=6_000, burst_seconds=1)
    rl.acquire(50)
    rl.settle(0, input_tokens=150, input_estimate=50)  # the API billed 100 more than estimated
    rl.acquire(50)
    assert clock.now == 1.0  # 100 - 50 - 100 = -50 left; 50 needed -> 100 tokens at 100/s


def test_pause_until_holds_every_request():
    clock = FakeClock()
    rl = limiter(clock, rpm=6000, burst_seconds=1)
    rl.acquire(0)
    rl.pause_until(3.0)
    rl.pause_until(2.0)  # an earlier pause never shortens a longer one
    assert rl.paused_until == 3.0
    rl.acquire(0)
    assert clock.now == 3.0
    assert rl.pauses == 1


def test_headers_with_no_requests_remaining_pause_until_reset_or_one_interval():
    clock = FakeClock(100.0)
    rl = limiter(clock, rpm=6000, burst_seconds=10)
    wall = 1_000_000.0  # the limiter's wall clock
    reset = datetime.fromtimestamp(wall + 0.5, UTC).isoformat().replace("+00:00", "Z")
    rl.observe_headers(
        {
            "anthropic-ratelimit-requests-limit": "60",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": reset,
        }
    )
    assert rl.paused_until == 100.5  # the reset (0.5 s) is sooner than one request at 60/min (1 s)
    assert rl.requests.rate == 1.0  # the server's limit (60/min) is lower than ours (6,000/min)
    # our bucket believes the server, not its own 1,000 tokens: one request when the pause ends,
    # then the steady pace
    assert acquire_times(rl, clock, 3) == [100.5, 101.5, 102.5]


def test_headers_never_raise_a_rate():
    clock = FakeClock()
    rl = limiter(clock, rpm=60, burst_seconds=1)
    rl.observe_headers({"anthropic-ratelimit-requests-limit": "6000", "anthropic-ratelimit-requests-remaining": "5999"})
    assert (rl.requests.rate, rl.paused_until) == (1.0, 0.0)
    assert acquire_times(rl, clock, 3) == [0.0, 1.0, 2.0]


def test_pause_resumes_at_the_steady_pace_without_a_burst():
    clock = FakeClock()
    rl = limiter(clock, rpm=600, burst_seconds=3)  # 10/s, bucket of 30
    rl.pause_until(5.0)  # e.g. a 429 with retry-after 5: the bucket must not be full afterwards
    assert acquire_times(rl, clock, 4) == pytest.approx([5.0, 5.1, 5.2, 5.3], abs=1e-9)


def test_headers_clamp_token_buckets_only_when_remaining_is_low():
    clock = FakeClock()
    rl = limiter(clock, itpm=120_000, otpm=60_000, share=0.5, burst_seconds=60, output_burst_seconds=60)
    assert rl.input_tokens.tokens == 60_000
    rl.observe_headers(
        {
            "anthropic-ratelimit-input-tokens-limit": "120000",
            "anthropic-ratelimit-input-tokens-remaining": "50000",  # plenty left: ignored
            "anthropic-ratelimit-output-tokens-limit": "60000",
            "anthropic-ratelimit-output-tokens-remaining": "1000",
        }
    )  # under 5%: clamp
    assert rl.input_tokens.tokens == 60_000
    assert rl.output_tokens.tokens == 500  # our share (0.5) of what the server has left
    assert rl.paused_until == 0.0


def test_concurrent_threads_share_one_pace():
    rl = RateLimiter(12_000, 10**9, 10**9, 1.0, burst_seconds=0.05)  # 200/s, bucket 10
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            rl.acquire(1)
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 200
    assert stamps and max(stamps) - start >= (200 - 10) / 200.0 - 0.02


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"^share must be in \(0, 1\]$"):
        RateLimiter(60, 1, 1, share=0)
    with pytest.raises(ValueError, match=r"^share must be in \(0, 1\]$"):
        RateLimiter(60, 1, 1, share=1.5)


def test_parse_retry_after_variants():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"Retry-After": "0.25"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    when = datetime.fromtimestamp(2_000_010, UTC)
    assert parse_retry_after({"retry-after": format_datetime(when, usegmt=True)}, wall_now=2_000_000) == 10.0
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
