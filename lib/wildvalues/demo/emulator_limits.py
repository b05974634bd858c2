"""The emulator's rate limits: a token bucket each for requests, input tokens and output tokens per
minute, refilled continuously up to the limit as the API does, with its `anthropic-ratelimit-*`
headers (https://platform.claude.com/docs/en/api/rate-limits: the token bucket algorithm, the
response headers and their RFC 3339 reset times, OTPM counted on max_tokens at admission)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from wildvalues.demo.emulator_answers import rfc3339


class Bucket:
    """Server-side token bucket: `per_minute` refill, `burst_seconds` worth of capacity."""

    def __init__(self, per_minute: float, burst_seconds: float, now: float) -> None:
        self.limit = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.tokens = self.capacity
        self.updated = now

    def level(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        return self.tokens

    def wait(self, amount: float, now: float) -> float:
        needed = min(amount, self.capacity)
        level = self.level(now)
        return 0.0 if level >= needed else (needed - level) / self.rate

    def headers(self, name: str, now: float, wall: float) -> dict[str, str]:
        level = self.level(now)
        full_in = max(0.0, (self.capacity - level) / self.rate)
        return {
            f"anthropic-ratelimit-{name}-limit": str(int(self.limit)),
            f"anthropic-ratelimit-{name}-remaining": str(max(0, int(level))),
            f"anthropic-ratelimit-{name}-reset": rfc3339(wall + full_in),
        }


class RateLimiter:
    """The three buckets a request is admitted against; output tokens are reserved at max_tokens."""

    def __init__(self, limits: Mapping[str, float], burst_seconds: float) -> None:
        now = time.monotonic()
        self.buckets = {
            "requests": Bucket(limits["rpm"], burst_seconds, now),
            "input-tokens": Bucket(limits["itpm"], burst_seconds, now),
            "output-tokens": Bucket(limits["otpm"], burst_seconds, now),
        }

    def admission_wait(self, input_tokens: int, max_tokens: int, now: float) -> float:
        """Seconds until every bucket holds what the request needs (0: admit now)."""
        b = self.buckets
        return max(
            b["requests"].wait(1, now),
            b["input-tokens"].wait(input_tokens, now),
            b["output-tokens"].wait(max_tokens, now),
        )

    def take(self, input_tokens: int, max_tokens: int) -> None:
        self.buckets["requests"].tokens -= 1
        self.buckets["input-tokens"].tokens -= input_tokens
        self.buckets["output-tokens"].tokens -= max_tokens

    def headers(self, now: float, wall: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, bucket in self.buckets.items():
            headers.update(bucket.headers(name, now, wall))
        return headers
