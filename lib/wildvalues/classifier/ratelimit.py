"""Client-side pacing for the Anthropic API: token buckets per limit, a global pause, jittered backoff.

The API limits an organisation by requests, input tokens and output tokens per minute, each a
token bucket that refills continuously. Every Spark task runs its own `RateLimiter` holding
`share` of each configured limit (share = 1 / number of concurrently running tasks), so the
tasks together stay under the organisation's limits without talking to each other.

Time is read through injected `clock` / `sleep` callables so tests can drive a fake clock
and check the pacing exactly, without waiting.
"""

from __future__ import annotations

import email.utils
import math
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

Clock = Callable[[], float]
Sleep = Callable[[float], None]

# A waiting thread wakes at least this often, so a pause or a settle that frees tokens is noticed.
_MAX_SLEEP_SLICE = 0.25
# Below this fraction of the server-side limit remaining, the server's view overrides ours.
_LOW_REMAINING_FRACTION = 0.05
_TOKEN_EPSILON = 1e-6


class _Random(Protocol):
    def random(self) -> float: ...


def backoff_delay(attempt: int, base: float, cap: float, rng: _Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(attempt-1))).

    `attempt` counts the failures so far (1 for the first retry). Full jitter spreads the
    retries of many threads that failed together, so they do not hit the API in lockstep.
    """
    if attempt < 1:
        raise ValueError("attempt counts failures and starts at 1")
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    return ceiling * rng.random()


class TokenBucket:
    """A bucket of `capacity` tokens refilled at `rate` tokens/second; its balance may go negative.

    Not thread-safe on its own: `RateLimiter` holds the lock. A debt (negative balance) is
    how a request larger than the whole bucket is admitted: it waits until the bucket is
    full, takes everything it needs, and later requests wait until the debt is repaid, so
    the long-run rate never exceeds `rate`.
    """

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds until `amount` (capped at the capacity) is available; 0 when it is now."""
        self.refill(now)
        needed = min(amount, self.capacity)
        # The tolerance absorbs float rounding in the refill: without it a bucket short by 1e-16
        # asks for a sleep too small to move the clock, and the caller spins forever.
        if self.tokens >= needed - _TOKEN_EPSILON:
            return 0.0
        return (needed - self.tokens) / self.rate

    def take(self, amount: float) -> None:
        self.tokens -= amount

    def give_back(self, amount: float) -> None:
        self.tokens = min(self.capacity, self.tokens + amount)

    def restart_at(self, when: float, tokens: float) -> None:
        """Hold `tokens` and refill only from `when` on (a pause: nothing accrues before it ends)."""
        self.tokens = tokens
        self.updated = max(self.updated, when)

    def lower_rate(self, rate: float) -> None:
        """Slow the bucket to `rate` (never faster), shrinking its capacity in proportion."""
        if 0 < rate < self.rate:
            self.capacity = max(1.0, self.capacity * rate / self.rate)
            self.tokens = min(self.tokens, self.capacity)
            self.rate = rate

    def clamp(self, ceiling: float) -> None:
        """Never believe more tokens remain than `ceiling` (the server's view); never adds."""
        self.tokens = min(self.tokens, max(0.0, ceiling))


class RateLimiter:
    """Thread-safe pacing of one task's requests under requests/input/output per-minute limits.

    Each limit gets a bucket refilling at `limit * share / 60` per second. The request and
    input-token buckets hold `burst_seconds` worth (a small burst, then an even pace).
    `acquire` blocks until a request fits all three buckets and reserves `output_reserve`
    output tokens, as the API counts `max_tokens` against the output limit while a request
    runs; `settle` returns what was not used. So the output bucket must hold the reserves of
    every request in flight: it holds `output_burst_seconds` worth, a full minute by default,
    which is also what the API allows. Actual output still never exceeds the limit over time.
    Waiting threads queue on a turn lock, so exactly one computes and sleeps while the others
    line up behind it: no thundering herd, and requests leave evenly spaced.
    """

    def __init__(
        self,
        rpm: float,
        itpm: float,
        otpm: float,
        share: float = 1.0,
        *,
        burst_seconds: float = 1.0,
        output_burst_seconds: float = 60.0,
        output_reserve: int = 0,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        wall_clock: Clock = time.time,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        if burst_seconds <= 0 or output_burst_seconds <= 0:
            raise ValueError("burst_seconds and output_burst_seconds must be positive")
        self.share = share
        self.output_reserve = output_reserve
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        now = clock()
        self.requests = self._bucket(rpm, share, burst_seconds, now)
        self.input_tokens = self._bucket(itpm, share, burst_seconds, now)
        self.output_tokens = self._bucket(otpm, share, output_burst_seconds, now)
        self._paused_until = now
        self._state = threading.Lock()
        self._turn = threading.Lock()
        self.waited_seconds = 0.0
        self.pauses = 0

    @staticmethod
    def _bucket(limit: float, share: float, burst_seconds: float, now: float) -> TokenBucket:
        rate = limit * share / 60.0
        # At least one whole request/token must fit, or the bucket could never admit anything.
        return TokenBucket(rate, max(1.0, rate * burst_seconds), now)

    @property
    def paused_until(self) -> float:
        with self._state:
            return self._paused_until

    def acquire(self, input_tokens_estimate: int, output_reserve: int | None = None) -> float:
        """Block until one request with this many input tokens may be sent; returns seconds waited."""
        reserve = self.output_reserve if output_reserve is None else output_reserve
        started = self._clock()
        with self._turn:
            while True:
                with self._state:
                    now = self._clock()
                    wait = self._wait_time(now, input_tokens_estimate, reserve)
                    if wait <= 0:
                        self.requests.take(1)
                        self.input_tokens.take(input_tokens_estimate)
                        self.output_tokens.take(reserve)
                        waited = now - started
                        self.waited_seconds += waited
                        return waited
                self._sleep(min(wait, _MAX_SLEEP_SLICE))

    def _wait_time(self, now: float, input_tokens: float, output_tokens: float) -> float:
        return max(
            self._paused_until - now,
            self.requests.wait_time(1, now),
            self.input_tokens.wait_time(input_tokens, now),
            self.output_tokens.wait_time(output_tokens, now),
        )

    def settle(
        self,
        output_tokens: int,
        *,
        output_reserved: int | None = None,
        input_tokens: int | None = None,
        input_estimate: int | None = None,
    ) -> None:
        """Correct the reservations made by `acquire` with the usage the API reported.

        Output: the reserve is replaced by the tokens actually produced (usually far fewer).
        Input: when both the estimate and the billed count are given, the difference is
        charged or refunded, so a systematically low estimate cannot exceed the limit.
        A failed request that produced nothing settles with `output_tokens=0`.
        """
        reserved = self.output_reserve if output_reserved is None else output_reserved
        with self._state:
            now = self._clock()
            self.output_tokens.refill(now)
            self._adjust(self.output_tokens, reserved - output_tokens)
            if input_tokens is not None and input_estimate is not None:
                self.input_tokens.refill(now)
                self._adjust(self.input_tokens, input_estimate - input_tokens)

    @staticmethod
    def _adjust(bucket: TokenBucket, refund: float) -> None:
        if refund >= 0:
            bucket.give_back(refund)
        else:
            bucket.take(-refund)

    def pause_until(self, until: float) -> None:
        """Hold back every request of this task until `until` (clock time), e.g. after a 429.

        The request bucket restarts from a single request at `until`: the server's bucket is
        empty after a 429, so the task resumes at its steady pace, not with a burst of every
        waiting thread at once (which would earn the next 429).
        """
        with self._state:
            self._set_pause(until)

    def _set_pause(self, until: float) -> None:
        if until <= self._paused_until:
            return
        self._paused_until = until
        self.pauses += 1
        # By the end of the pause the server has refilled at least one request, and no more is
        # assumed: the bucket holds exactly one then and refills from there.
        self.requests.restart_at(until, min(1.0, self.requests.capacity))

    def pause_for(self, seconds: float) -> None:
        self.pause_until(self._clock() + max(0.0, seconds))

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Let the server's `anthropic-ratelimit-*` headers slow us down.

        * `-limit` lower than configured (a wrong setting, or a lower tier): the bucket's rate
          drops to our share of the server's limit. Headers never raise a rate.
        * `-remaining` under 5% of the limit: other tasks or processes may share the
          organisation's limits, so the server can have less left than our bucket believes;
          the bucket is clamped to our share of what remains.
        * no requests remaining: the task pauses until the server refills one request's worth
          (or until `-requests-reset`, if sooner).
        """
        lower = {k.lower(): v for k, v in headers.items()}
        with self._state:
            now = self._clock()
            for name, bucket in (
                ("requests", self.requests),
                ("input-tokens", self.input_tokens),
                ("output-tokens", self.output_tokens),
            ):
                limit = _int_header(lower, f"anthropic-ratelimit-{name}-limit")
                remaining = _int_header(lower, f"anthropic-ratelimit-{name}-remaining")
                bucket.refill(now)
                if limit is not None and limit > 0:
                    bucket.lower_rate(limit * self.share / 60.0)
                if remaining is None or (limit is not None and remaining >= limit * _LOW_REMAINING_FRACTION):
                    continue
                bucket.clamp(remaining * self.share)
                if name == "requests" and remaining <= 0:
                    self._pause_for_reset(lower, limit, now)

    def _pause_for_reset(self, headers: Mapping[str, str], limit: int | None, now: float) -> None:
        delay = 60.0 / limit if limit else 1.0
        reset = _reset_seconds(headers.get("anthropic-ratelimit-requests-reset"), self._wall_clock())
        if reset is not None:
            delay = min(delay, reset)
        self._set_pause(now + max(0.0, delay))


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _reset_seconds(value: str | None, wall_now: float) -> float | None:
    """Seconds from now until an RFC 3339 reset time (as the API sends it); None if unparseable."""
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        try:
            stamp = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None
    return max(0.0, stamp - wall_now)


def parse_retry_after(headers: Mapping[str, str], wall_now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `retry-after` (seconds or HTTP date); None if absent."""
    lower = {k.lower(): v for k, v in headers.items()}
    millis = lower.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        stamp = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, stamp - (time.time() if wall_now is None else wall_now))
