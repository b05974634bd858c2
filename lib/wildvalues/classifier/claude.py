"""The Claude classifier: many concurrent Messages API calls per Spark task, paced and retried here.

A `ClaudeClassifier` is built from a plain settings dict (see `DEFAULT_SETTINGS`), so a Spark
task can rebuild it on an executor from a pickled spec. It talks to the API through the
official `anthropic` SDK with the SDK's own retries off (`max_retries=0`): this module decides
what to retry, how long to wait, and when to give up, because a Spark task shares its rate
limits with every other task and must slow down as a whole when the API says so.

Online: `classify_batch` runs up to `concurrency` requests at once (they are I/O-bound), each
through the task's `RateLimiter`. Batch: `submit_batch` / `poll_batch` / `collect_batch_results`
use the Message Batches API (half price, results within 24 hours), and can resume from a batch
id alone. `estimate` predicts requests, tokens, cost and duration before a run.

The API key never appears in logs, reprs or error messages: every message is scrubbed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import anthropic

from wildvalues.classifier.base import Classification, ClassificationError, Conversation, Result
from wildvalues.classifier.prompt import (
    PROMPT_VERSION,
    TOOL_NAME,
    InvalidOutput,
    approx_tokens,
    build_request,
    estimate_input_tokens,
    prefix_chars,
    TOOL,
    TOOL_CHOICE,
    render_conversation,
    system_blocks,
    user_message_text,
    validate_output,
)
from wildvalues.classifier.ratelimit import RateLimiter, backoff_delay, parse_retry_after

log = logging.getLogger(__name__)

DEFAULT_SETTINGS: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "api_key": None,  # None: the ANTHROPIC_API_KEY environment variable
    "base_url": None,  # None: ANTHROPIC_BASE_URL, else the SDK's default endpoint
    "max_tokens": 1024,
    "token_budget": 12_000,  # conversation text kept per request, in approximate tokens (chars/4)
    "limits": {"rpm": 50, "itpm": 30_000, "otpm": 8_000},  # the organisation's limits for the model
    "share": 1.0,  # this task's fraction of the limits: 1 / tasks running at once
    "burst_seconds": 1.0,  # seconds' worth of requests / input tokens that may go out at once
    "output_burst_seconds": 60.0,  # output bucket size; must hold max_tokens of every request in flight
    "concurrency": 64,  # requests in flight per task; needs >= rpm*share/60 * latency seconds
    "max_attempts": 6,  # API calls per conversation before it is recorded as an error
    "backoff_base": 1.0,  # seconds; exponential backoff with full jitter for 5xx / connection errors
    "backoff_cap": 60.0,
    "timeout": 120.0,  # seconds per HTTP request
    "batch_poll_interval": 30.0,  # seconds between polls of a Message Batch
    "seed": None,  # seeds the backoff jitter, for reproducible tests
}

MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024
_CUSTOM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_KEY_PATTERNS = (re.compile(r"sk-ant-[A-Za-z0-9_\-]+"),)
# An answer that was refused, cut off or malformed is retried once, then recorded as an error.
MAX_BAD_ANSWERS = 2

# USD per million tokens; cache writes (5-minute TTL) cost 1.25x input, cache reads 0.1x.
# List prices when written; pass `prices=` to `estimate` for current ones.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "claude-sonnet-4-5": {"input": 3.0, "output": 15.0, "cache_write": 3.75, "cache_read": 0.30},
    "claude-sonnet-4-0": {"input": 3.0, "output": 15.0, "cache_write": 3.75, "cache_read": 0.30},
    "claude-haiku-4-5": {"input": 1.0, "output": 5.0, "cache_write": 1.25, "cache_read": 0.10},
    "claude-opus-4-1": {"input": 15.0, "output": 75.0, "cache_write": 18.75, "cache_read": 1.50},
}
BATCH_DISCOUNT = 0.5


class BatchError(RuntimeError):
    """A Message Batches call failed after retries; the message carries no secrets.

    `batch_ids` lists the batches already created when a multi-batch submission failed part
    way, so the caller can still poll and collect them.
    """

    def __init__(self, message: str, batch_ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.batch_ids = list(batch_ids)


class _BadAnswer(Exception):
    """The API answered, but not with a usable record_values call."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


# ---------------------------------------------------------------------------------------------
# Settings


def resolve_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with `settings` (limits merged key by key); unknown keys are kept."""
    resolved = copy.deepcopy(DEFAULT_SETTINGS)
    for key, value in (settings or {}).items():
        if key == "limits" and isinstance(value, Mapping):
            resolved["limits"] = {**resolved["limits"], **value}
        else:
            resolved[key] = value
    if not 0 < float(resolved["share"]) <= 1:
        raise ValueError("settings.share must be in (0, 1]")
    if int(resolved["max_attempts"]) < 1 or int(resolved["concurrency"]) < 1:
        raise ValueError("settings.max_attempts and settings.concurrency must be >= 1")
    return resolved


def make_scrubber(secret: str | None) -> Callable[[str], str]:
    """A function removing `secret` (and anything shaped like an Anthropic key) from text."""

    def scrub(text: str) -> str:
        if secret:
            text = text.replace(secret, "[REDACTED]")
        for pattern in _KEY_PATTERNS:
            text = pattern.sub("[REDACTED]", text)
        return text

    return scrub


# ---------------------------------------------------------------------------------------------
# The classifier


class ClaudeClassifier:
    """Classifies conversations with Claude; one instance per Spark task (threads inside)."""

    name = "anthropic"

    def __init__(
        self,
        settings: Mapping[str, Any] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._raw_settings = dict(settings or {})
        resolved = resolve_settings(settings)
        self._api_key: str | None = resolved.pop("api_key") or os.environ.get("ANTHROPIC_API_KEY")
        self.settings = resolved  # without the key, so logging it is harmless
        self.settings["base_url"] = resolved.get("base_url") or os.environ.get("ANTHROPIC_BASE_URL")
        self.model: str = resolved["model"]
        self._scrub = make_scrubber(self._api_key)
        self._sleep = sleep
        self._clock = clock
        self._rng = random.Random(resolved.get("seed"))
        self._rng_lock = threading.Lock()
        limits = resolved["limits"]
        self.limiter = RateLimiter(
            float(limits["rpm"]),
            float(limits["itpm"]),
            float(limits["otpm"]),
            float(resolved["share"]),
            burst_seconds=float(resolved["burst_seconds"]),
            output_burst_seconds=float(resolved["output_burst_seconds"]),
            output_reserve=int(resolved["max_tokens"]),
            clock=clock,
            sleep=sleep,
        )
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self.client = self._make_client()

    def _make_client(self) -> anthropic.Anthropic:
        if not self._api_key:
            raise ValueError("no API key: set settings.api_key or the ANTHROPIC_API_KEY environment variable")
        return anthropic.Anthropic(
            api_key=self._api_key,
            base_url=self.settings["base_url"],
            max_retries=0,  # retries are decided here, with the task-wide rate limiter
            timeout=float(self.settings["timeout"]),
        )

    # Pickling sends only the settings; the executor rebuilds the client and the limiter.
    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self._raw_settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["settings"])  # type: ignore[misc]

    def __repr__(self) -> str:
        limits = self.settings["limits"]
        return (
            f"ClaudeClassifier(model={self.model!r}, base_url={self.settings['base_url']!r}, "
            f"rpm={limits['rpm']}, share={self.settings['share']}, concurrency={self.settings['concurrency']})"
        )

    # -- counters ------------------------------------------------------------------------------

    def _count(self, key: str, n: int = 1) -> None:
        with self._counts_lock:
            self._counts[key] += n

    @property
    def api_calls(self) -> int:
        """HTTP calls made to the API by this instance (every attempt, every endpoint)."""
        with self._counts_lock:
            return self._counts["api_calls"]

    def count_requests(self) -> int:
        return self.api_calls

    def stats(self) -> dict[str, int]:
        """Counters: api_calls, ok, rate_limited, overloaded, server_error, connection_error, ..."""
        with self._counts_lock:
            return dict(self._counts)

    def _jitter(self, attempt: int) -> float:
        with self._rng_lock:
            return backoff_delay(
                attempt, float(self.settings["backoff_base"]), float(self.settings["backoff_cap"]), self._rng
            )

    # -- online classification -----------------------------------------------------------------

    def classify_batch(self, conversations: Sequence[Conversation]) -> list[Result]:
        """One result per conversation, in order; requests run concurrently under the rate limits."""
        if not conversations:
            return []
        workers = min(int(self.settings["concurrency"]), len(conversations))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="claude") as pool:
            return list(pool.map(self._classify_safely, conversations))

    def _classify_safely(self, conversation: Conversation) -> Result:
        try:
            return self.classify_one(conversation)
        except Exception as error:  # a bug must cost one row, not the whole Spark task
            log.exception("unexpected error classifying %s", conversation.conversation_id)
            return ClassificationError(
                conversation.conversation_id, "internal", self._scrub(f"{type(error).__name__}: {error}"), 0
            )

    def classify_one(self, conversation: Conversation) -> Result:
        params, truncated = build_request(
            conversation, self.model, int(self.settings["max_tokens"]), int(self.settings["token_budget"])
        )
        estimate = estimate_input_tokens(params)
        max_attempts = int(self.settings["max_attempts"])
        usage = Counter[str]()
        attempts = failures = bad_answers = 0
        last_type, last_message = "unknown", "no attempt made"
        while attempts < max_attempts:
            attempts += 1
            self.limiter.acquire(estimate)
            outcome = self._call_messages(params, estimate)
            if isinstance(outcome, _Failure):
                failures += 1
                last_type, last_message = outcome.error_type, outcome.message
                if not outcome.retryable:
                    break
                self._wait_after_failure(outcome, failures)
                continue
            message = outcome
            _add_usage(usage, message.usage)
            try:
                labels = _extract_labels(message)
            except _BadAnswer as bad:
                self._count(bad.error_type)
                bad_answers += 1
                last_type, last_message = bad.error_type, self._scrub(str(bad))
                if bad_answers >= MAX_BAD_ANSWERS:
                    break
                continue
            self._count("ok")
            return self._classification(conversation, labels, usage, truncated, attempts)
        return ClassificationError(conversation.conversation_id, last_type, last_message, attempts)

    def _classification(
        self, conversation: Conversation, labels: dict, usage: Counter, truncated: bool, attempts: int
    ) -> Classification:
        return Classification(
            conversation_id=conversation.conversation_id,
            classifier=self.name,
            model=self.model,
            prompt_version=PROMPT_VERSION,
            truncated=truncated,
            attempts=attempts,
            input_tokens=usage["input_tokens"],
            output_tokens=usage["output_tokens"],
            cache_creation_input_tokens=usage["cache_creation_input_tokens"],
            cache_read_input_tokens=usage["cache_read_input_tokens"],
            **labels,
        )

    def _call_messages(self, params: dict, estimate: int) -> Any:
        """One API call: the parsed Message, or a _Failure saying whether and how to retry."""
        reserve = int(self.settings["max_tokens"])
        self._count("api_calls")
        try:
            raw = self.client.messages.with_raw_response.create(**params)
        except anthropic.APIStatusError as error:
            # The request produced no output; a 429 was not admitted, so its input is refunded too.
            refund_input = error.status_code == 429
            self.limiter.settle(
                0, output_reserved=reserve,
                input_tokens=0 if refund_input else None, input_estimate=estimate if refund_input else None,
            )
            self.limiter.observe_headers(error.response.headers)
            return self._status_failure(error)
        except anthropic.APIConnectionError as error:
            self.limiter.settle(0, output_reserved=reserve)
            kind = "timeout" if isinstance(error, anthropic.APITimeoutError) else "connection_error"
            self._count(kind)
            return _Failure(kind, self._scrub(f"{type(error).__name__}: {error.message}"), True)
        self.limiter.observe_headers(raw.headers)
        try:
            message = raw.parse()
        except (anthropic.APIError, ValueError) as error:  # a 200 whose body is not a Message
            self.limiter.settle(0, output_reserved=reserve)
            self._count("invalid_response")
            return _Failure("invalid_response", self._scrub(f"{type(error).__name__}: {error}")[:500], True)
        billed_input = (message.usage.input_tokens or 0) + (message.usage.cache_creation_input_tokens or 0)
        self.limiter.settle(
            message.usage.output_tokens, output_reserved=reserve, input_tokens=billed_input, input_estimate=estimate
        )
        return message

    def _status_failure(self, error: anthropic.APIStatusError) -> "_Failure":
        status = error.status_code
        detail = self._scrub(f"HTTP {status}: {error.api_message or error.message}")[:500]
        retry_after = parse_retry_after(error.response.headers)
        if status == 429:
            self._count("rate_limited")
            return _Failure("rate_limited", detail, True, retry_after, global_pause=True)
        if status == 529:
            self._count("overloaded")
            return _Failure("overloaded", detail, True, retry_after, global_pause=True)
        if status >= 500 or status == 408:
            self._count("server_error")
            return _Failure("server_error", detail, True, retry_after)
        self._count("api_error")
        return _Failure("api_error", detail, False)

    def _wait_after_failure(self, failure: "_Failure", failures: int) -> None:
        """429/529 pause the whole task (retry-after if given); other failures back off this thread."""
        delay = failure.retry_after if failure.retry_after is not None else self._jitter(failures)
        if failure.global_pause:
            self.limiter.pause_for(delay)  # acquire() then waits for it, in every thread
        else:
            self._sleep(delay)

    # -- Message Batches -----------------------------------------------------------------------

    def batch_requests(
        self, conversations: Sequence[Conversation], keys: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The `requests` entries for a Message Batch: custom_id (valid, unique) and params."""
        ids = list(keys) if keys is not None else [batch_custom_id(c) for c in conversations]
        if len(ids) != len(conversations):
            raise ValueError("keys must match conversations one to one")
        if len(set(ids)) != len(ids):
            raise ValueError("custom ids must be unique within a batch")
        requests = []
        for custom_id, conversation in zip(ids, conversations):
            if not _CUSTOM_ID_RE.match(custom_id):
                raise ValueError(f"custom id {custom_id!r} must match [A-Za-z0-9_-]{{1,64}}")
            params, _ = build_request(
                conversation, self.model, int(self.settings["max_tokens"]), int(self.settings["token_budget"])
            )
            requests.append({"custom_id": custom_id, "params": params})
        return requests

    def submit_batch(
        self,
        conversations: Sequence[Conversation],
        keys: Sequence[str] | None = None,
        on_created: Callable[[str, int], None] | None = None,
    ) -> list[str]:
        """Create Message Batches (split at 100,000 requests / 256 MB); returns their ids in order.

        `on_created(batch_id, n_requests)` runs right after each create and before the next, so
        a caller can record every paid-for batch even if a later create or the process fails.
        """
        batch_ids: list[str] = []
        requests = self.batch_requests(conversations, keys)
        for chunk in split_batches(requests, MAX_BATCH_REQUESTS, MAX_BATCH_BYTES):
            try:
                # A create whose connection broke may have succeeded: retrying could pay for the
                # same requests twice, so only unambiguous failures (429, 5xx) are retried.
                batch = self._control(
                    "create batch", lambda c=chunk: self.client.messages.batches.create(requests=c),
                    retry_connection_errors=False,
                )
            except BatchError as error:
                raise BatchError(str(error), batch_ids) from None
            log.info("submitted message batch %s with %d requests", batch.id, len(chunk))
            batch_ids.append(batch.id)
            if on_created is not None:
                on_created(batch.id, len(chunk))
        return batch_ids

    def poll_batch(self, batch_id: str) -> "BatchStatus":
        batch = self._control("retrieve batch", lambda: self.client.messages.batches.retrieve(batch_id))
        return BatchStatus.from_batch(batch)

    def wait_for_batch(
        self, batch_id: str, poll_interval: float | None = None, timeout: float | None = None
    ) -> "BatchStatus":
        """Poll until the batch has ended (or `timeout` seconds pass: TimeoutError)."""
        interval = float(self.settings["batch_poll_interval"] if poll_interval is None else poll_interval)
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            status = self.poll_batch(batch_id)
            if status.ended:
                return status
            if deadline is not None and self._clock() >= deadline:
                raise TimeoutError(f"batch {batch_id} still {status.processing_status} after {timeout} s")
            self._sleep(interval)

    def cancel_batch(self, batch_id: str) -> "BatchStatus":
        batch = self._control("cancel batch", lambda: self.client.messages.batches.cancel(batch_id))
        return BatchStatus.from_batch(batch)

    def collect_batch_results(
        self,
        batch_id: str,
        conversations: Sequence[Conversation] | None = None,
        keys: Sequence[str] | None = None,
    ) -> dict[str, Result]:
        """Results of an ended batch by custom_id; errored/expired/canceled become ClassificationError.

        Without `conversations`, each result's conversation_id is its custom_id. With them (and
        the `keys` used at submission, if any), ids and the truncated flag are restored.
        """
        by_id: dict[str, Conversation] = {}
        if conversations is not None:
            ids = list(keys) if keys is not None else [batch_custom_id(c) for c in conversations]
            by_id = dict(zip(ids, conversations))
        status = self.poll_batch(batch_id)
        if not status.ended:
            raise BatchError(f"batch {batch_id} is {status.processing_status}; wait until it has ended")
        entries = self._control("batch results", lambda: list(self.client.messages.batches.results(batch_id)))
        return {entry.custom_id: self._batch_result(entry, by_id.get(entry.custom_id)) for entry in entries}

    def _batch_result(self, entry: Any, conversation: Conversation | None) -> Result:
        conversation_id = conversation.conversation_id if conversation is not None else entry.custom_id
        result = entry.result
        if result.type != "succeeded":
            return ClassificationError(conversation_id, f"batch_{result.type}", self._batch_error_text(result), 1)
        message = result.message
        usage = Counter[str]()
        _add_usage(usage, message.usage)
        try:
            labels = _extract_labels(message)
        except _BadAnswer as bad:
            return ClassificationError(conversation_id, bad.error_type, self._scrub(str(bad)), 1)
        truncated = False
        if conversation is not None:
            _, truncated = build_request(
                conversation, self.model, int(self.settings["max_tokens"]), int(self.settings["token_budget"])
            )
        target = conversation or Conversation(conversation_id, ())
        return self._classification(target, labels, usage, truncated, 1)

    def _batch_error_text(self, result: Any) -> str:
        if result.type == "errored":
            error = result.error.error
            return self._scrub(f"{getattr(error, 'type', 'error')}: {getattr(error, 'message', '')}")[:500]
        return f"request {result.type} before it was processed"

    def _control(self, what: str, call: Callable[[], Any], retry_connection_errors: bool = True) -> Any:
        """A Batches API call with retries on 429/5xx (and connection errors); BatchError otherwise."""
        max_attempts = int(self.settings["max_attempts"])
        for attempt in range(1, max_attempts + 1):
            self._count("api_calls")
            try:
                return call()
            except anthropic.APIStatusError as error:
                retryable = error.status_code in (408, 429) or error.status_code >= 500
                detail = self._scrub(f"{what}: HTTP {error.status_code}: {error.api_message or error.message}")
                delay = parse_retry_after(error.response.headers)
            except anthropic.APIConnectionError as error:
                retryable, delay = retry_connection_errors, None
                detail = self._scrub(f"{what}: {type(error).__name__}: {error.message}")
                if not retry_connection_errors:
                    detail += " (it may have succeeded: check the batch list before resubmitting)"
            if not retryable or attempt == max_attempts:
                raise BatchError(detail[:500]) from None
            self._sleep(delay if delay is not None else self._jitter(attempt))
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class _Failure:
    error_type: str
    message: str
    retryable: bool
    retry_after: float | None = None
    global_pause: bool = False


@dataclass(frozen=True)
class BatchStatus:
    batch_id: str
    processing_status: str  # in_progress | canceling | ended
    request_counts: dict[str, int]
    results_url: str | None

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"

    @classmethod
    def from_batch(cls, batch: Any) -> "BatchStatus":
        counts = batch.request_counts
        return cls(
            batch.id,
            batch.processing_status,
            {k: getattr(counts, k) for k in ("processing", "succeeded", "errored", "canceled", "expired")},
            batch.results_url,
        )


def _add_usage(total: Counter, usage: Any) -> None:
    for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        total[name] += getattr(usage, name, None) or 0


def _extract_labels(message: Any) -> dict[str, Any]:
    """The validated record_values input of a Message; _BadAnswer if refused, cut off or malformed."""
    if message.stop_reason == "refusal":
        raise _BadAnswer("refusal", "the model declined to answer (stop_reason refusal)")
    if message.stop_reason == "max_tokens":
        raise _BadAnswer("max_tokens", "the answer was cut off at max_tokens")
    calls = [b for b in message.content if getattr(b, "type", None) == "tool_use" and b.name == TOOL_NAME]
    if not calls:
        raise _BadAnswer("invalid_output", f"the answer has no {TOOL_NAME} call (stop_reason {message.stop_reason})")
    try:
        return validate_output(calls[0].input)
    except InvalidOutput as error:
        raise _BadAnswer("invalid_output", str(error)) from None


def batch_custom_id(conversation: Conversation) -> str:
    """A custom_id for a conversation: its id when valid for the API, else a hash of the id."""
    cid = conversation.conversation_id
    if _CUSTOM_ID_RE.match(cid):
        return cid
    return "h_" + hashlib.sha256(cid.encode()).hexdigest()[:40]


def split_batches(
    requests: Sequence[dict[str, Any]], max_requests: int = MAX_BATCH_REQUESTS, max_bytes: int = MAX_BATCH_BYTES
) -> Iterable[list[dict[str, Any]]]:
    """Consecutive chunks within the API's per-batch limits (count, and approximate JSON size)."""
    chunk: list[dict[str, Any]] = []
    size = 0
    for request in requests:
        request_size = _json_size(request)
        if chunk and (len(chunk) >= max_requests or size + request_size > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(request)
        size += request_size
    if chunk:
        yield chunk


def _json_size(obj: Any) -> int:
    return len(json.dumps(obj, separators=(",", ":")).encode()) + 1


# Module-level entry points: each builds its own client from settings, so a new process (or a
# new Spark driver) can resume a batch from its id alone.


def submit_batch(settings: Mapping[str, Any], conversations: Sequence[Conversation], keys: Sequence[str] | None = None) -> list[str]:
    return ClaudeClassifier(settings).submit_batch(conversations, keys)


def poll_batch(settings: Mapping[str, Any], batch_id: str) -> BatchStatus:
    return ClaudeClassifier(settings).poll_batch(batch_id)


def collect_batch_results(
    settings: Mapping[str, Any],
    batch_id: str,
    conversations: Sequence[Conversation] | None = None,
    keys: Sequence[str] | None = None,
) -> dict[str, Result]:
    return ClaudeClassifier(settings).collect_batch_results(batch_id, conversations, keys)


# ---------------------------------------------------------------------------------------------
# Estimates


@dataclass
class Estimate:
    """What a run will take. Tokens per request = cached prefix (tools + system) + the message."""

    mode: str
    model: str
    requests: int
    input_tokens: int  # uncached input (the conversation messages, plus the first prefix if uncached)
    cache_write_tokens: int
    cache_read_tokens: int
    output_tokens: int
    cost_usd: float
    duration_minutes: float | None
    bottleneck: str | None
    token_source: str
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def framing_chars() -> int:
    """Characters a request's user message adds around the conversation's own text (no turns)."""
    return len(user_message_text(render_conversation([])))


def estimate(
    conversations: Sequence[Conversation] | None = None,
    *,
    char_counts: Sequence[int] | None = None,
    model: str = DEFAULT_SETTINGS["model"],
    mode: str = "online",
    prices: Mapping[str, float] | None = None,
    limits: Mapping[str, float] | None = None,
    expected_output_tokens: int = 150,
    token_budget: int = DEFAULT_SETTINGS["token_budget"],
    concurrency: int = DEFAULT_SETTINGS["concurrency"],
    tasks: int = 1,
    latency_s: float = 2.0,
    classifier: ClaudeClassifier | None = None,
    max_count_calls: int = 100,
) -> Estimate:
    """Expected requests, tokens, cost (USD) and duration of classifying these conversations.

    Token counts: with `classifier` (and `conversations`), `client.messages.count_tokens` is
    asked for up to `max_count_calls` conversations and the rest scaled by the measured ratio;
    otherwise (or when the API is unreachable) tokens = ceil(chars / 4). `token_source` says
    which. For `char_counts` (total characters of each conversation's turns), each request
    adds the fixed framing of the user message; turn tags are not counted.

    Caching: the prefix (tools + system) is written once and read by every later request
    (cache reads cost 0.1x input and do not count against the input-tokens-per-minute limit).
    Cost: (input*p_in + cache_write*p_write + cache_read*p_read + output*p_out) / 1e6, halved
    for batch. Duration (online): the slowest of requests/rpm, (input + cache_write)/itpm,
    output/otpm and the latency floor requests * latency / (concurrency * tasks) / 60.
    """
    if mode not in ("online", "batch"):
        raise ValueError("mode must be 'online' or 'batch'")
    price = dict(prices) if prices is not None else DEFAULT_PRICES.get(model)
    if price is None:
        raise ValueError(f"no default prices for {model!r}; pass prices={{input, output, cache_write, cache_read}}")
    notes: list[str] = []
    prefix, message_tokens, source = _token_counts(
        conversations, char_counts, model, token_budget, classifier, max_count_calls, notes
    )
    n = len(message_tokens)
    cache_write = prefix if n else 0
    cache_read = prefix * max(0, n - 1)
    input_tokens = sum(message_tokens)
    output_tokens = expected_output_tokens * n
    cost = (
        input_tokens * price["input"]
        + cache_write * price["cache_write"]
        + cache_read * price["cache_read"]
        + output_tokens * price["output"]
    ) / 1_000_000
    if mode == "batch":
        cost *= BATCH_DISCOUNT
        notes.append("batch: results within 24 hours (usually under 1 hour); per-minute limits do not apply")
        duration, bottleneck = None, None
    else:
        duration, bottleneck = _online_duration(
            n, input_tokens + cache_write, output_tokens, limits, concurrency * max(1, tasks), latency_s
        )
    notes.append("assumes one cache write of the prefix; concurrent first requests may each write it")
    return Estimate(
        mode, model, n, input_tokens, cache_write, cache_read, output_tokens,
        cost, duration, bottleneck, source, notes,
    )


def _online_duration(
    n: int, itpm_tokens: int, output_tokens: int, limits: Mapping[str, float] | None, in_flight: int, latency_s: float
) -> tuple[float, str]:
    limit = {**DEFAULT_SETTINGS["limits"], **(limits or {})}
    candidates = {
        "requests": n / float(limit["rpm"]),
        "input_tokens": itpm_tokens / float(limit["itpm"]),
        "output_tokens": output_tokens / float(limit["otpm"]),
        "latency": n * latency_s / in_flight / 60.0,
    }
    bottleneck = max(candidates, key=lambda k: candidates[k])
    return candidates[bottleneck], bottleneck


def _token_counts(
    conversations: Sequence[Conversation] | None,
    char_counts: Sequence[int] | None,
    model: str,
    token_budget: int,
    classifier: ClaudeClassifier | None,
    max_count_calls: int,
    notes: list[str],
) -> tuple[int, list[int], str]:
    """(prefix tokens, uncached message tokens per request, source description)."""
    prefix = approx_tokens(prefix_chars())
    if conversations is None:
        if char_counts is None:
            raise ValueError("pass conversations or char_counts")
        frame = framing_chars()
        cap = token_budget * 4
        return prefix, [approx_tokens(frame + min(c, cap)) for c in char_counts], "approximate (chars/4)"
    messages = [
        build_request(c, model, 1, token_budget)[0]["messages"] for c in conversations
    ]
    approx = [approx_tokens(len(m[0]["content"])) for m in messages]
    if classifier is None:
        return prefix, approx, "approximate (chars/4)"
    try:
        return _counted_tokens(classifier, model, messages, approx, max_count_calls)
    except (anthropic.APIError, OSError) as error:
        notes.append(f"count_tokens unavailable ({type(error).__name__}); used chars/4")
        return prefix, approx, "approximate (chars/4)"


def _counted_tokens(
    classifier: ClaudeClassifier, model: str, messages: list[list[dict]], approx: list[int], max_calls: int
) -> tuple[int, list[int], str]:
    """Token counts from the API: the prefix once, then up to `max_calls` messages, the rest scaled."""
    count = classifier.client.messages.count_tokens
    probe = [{"role": "user", "content": "x"}]
    with_prefix = count(model=model, system=system_blocks(), tools=[TOOL], tool_choice=TOOL_CHOICE, messages=probe)
    bare = count(model=model, messages=probe)
    classifier._count("api_calls", 2)
    prefix = with_prefix.input_tokens - bare.input_tokens
    sample = min(len(messages), max(0, max_calls))
    counted = []
    for m in messages[:sample]:
        counted.append(count(model=model, messages=m).input_tokens)
        classifier._count("api_calls")
    if sample == len(messages):
        return prefix, counted, "count_tokens"
    ratio = sum(counted) / max(1, sum(approx[:sample])) if sample else 1.0
    scaled = counted + [math.ceil(a * ratio) for a in approx[sample:]]
    return prefix, scaled, f"count_tokens (sampled {sample} of {len(messages)}, rest scaled)"
