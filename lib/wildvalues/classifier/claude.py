"""The Claude classifier: many concurrent Messages API calls per Spark task, paced and retried here.

A `ClaudeClassifier` is built from a plain settings dict (see `settings.ClaudeClientSettings`), so a Spark
task can rebuild it on an executor from a pickled spec. It talks to the API through the
official `anthropic` SDK with the SDK's own retries off (`max_retries=0`): this module decides
what to retry, how long to wait, and when to give up, because a Spark task shares its rate
limits with every other task and must slow down as a whole when the API says so.

Online: `classify_batch` runs up to `concurrency` requests at once (they are I/O-bound), each
through the task's `RateLimiter`. Batch: `submit_batch` / `poll_batch` / `collect_batch_results`
use the Message Batches API (half price, results within 24 hours) through the classifier's
`MessageBatches` (`batches.py`), and can resume from a batch id alone. `cost.estimate` predicts
requests, tokens, cost and duration before a run.

The API key never appears in logs, reprs or error messages: every message is scrubbed.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anthropic

from wildvalues.classifier.base import Classification, ClassificationError, Conversation, Result
from wildvalues.classifier.batches import BatchStatus, MessageBatches
from wildvalues.classifier.prompt import (
    BadAnswer,
    add_usage,
    build_request,
    estimate_input_tokens,
    labels_parser,
    prompt_version,
)
from wildvalues.classifier.providers import batch_mode_error, body_version, make_client
from wildvalues.classifier.ratelimit import RateLimiter, backoff_delay, parse_retry_after
from wildvalues.classifier.thinking import apply_options, thinking_tokens
from wildvalues.settings.claude import ClaudeClientSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

_KEY_PATTERNS = (re.compile(r"sk-ant-[A-Za-z0-9_\-]+"),)
# An answer that was refused, cut off or malformed is retried once, then recorded as an error.
MAX_BAD_ANSWERS = 2
# An answer cut at max_tokens is never asked again unchanged: once, with max_tokens times this
# (bounded by the model's max output); cut again, it is an error row `max_tokens` whose message
# names the thinking tokens it spent.
MAX_TOKENS_RETRY_FACTOR = 4


# ---------------------------------------------------------------------------------------------
# Settings


def resolve_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The client settings validated against `ClaudeClientSettings` (its defaults fill the rest)."""
    return ClaudeClientSettings.model_validate(dict(settings or {})).model_dump()


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
        self._api_key: str | None = resolved.pop("api_key") or self._credential_from_environment(resolved)
        self.settings = resolved  # without the key, so logging it is harmless
        if resolved["provider"] == "anthropic":
            self.settings["base_url"] = resolved.get("base_url") or os.environ.get("ANTHROPIC_BASE_URL")
        self.model: str = resolved["model"]
        # The model's id where the request goes (Bedrock, Vertex AI and Databricks name models their
        # own way: classifier/providers.py), and the body's anthropic_version there, if documented.
        self.platform_model: str = resolved.get("platform_model") or self.model
        self._body_version = body_version(resolved["provider"])
        self.prompt: str = resolved["prompt"]  # extract (values) or screen (is_subjective, task)
        self.shape: str = resolved["output_shape"]
        self.prompt_version = prompt_version(self.prompt, self.shape)
        self.parse_labels = labels_parser(self.prompt, self.shape)
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
        self.batches = MessageBatches(
            self.client,
            self.settings,
            scrub=self._scrub,
            count=self._count,
            backoff=self._jitter,
            classification=self._classification,
            build=self.build_request,
            parse=self.parse_labels,
            error=self.error,
            sleep=sleep,
            clock=clock,
        )

    @staticmethod
    def _credential_from_environment(settings: Mapping[str, Any]) -> str | None:
        """The Anthropic key or Databricks token from this machine's environment (none for Bedrock, Vertex AI)."""
        if settings["provider"] == "anthropic":
            return os.environ.get("ANTHROPIC_API_KEY")
        if settings["provider"] == "databricks":
            return os.environ.get(settings["databricks"]["token_env"])
        return None

    def _make_client(self) -> anthropic.Anthropic:
        if self.settings["provider"] == "anthropic" and not self._api_key:
            raise ValueError("no API key: set settings.api_key or the ANTHROPIC_API_KEY environment variable")
        # max_retries=0 there: retries are decided here, with the task-wide rate limiter.
        return make_client(self.settings, self._api_key)

    # Pickling sends only the settings; the executor rebuilds the client and the limiter.
    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self._raw_settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["settings"])  # type: ignore[misc]

    def __repr__(self) -> str:
        limits = self.settings["limits"]
        return (
            f"ClaudeClassifier(model={self.model!r}, provider={self.settings['provider']!r}, "
            f"base_url={self.settings.get('base_url')!r}, "
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
                conversation.conversation_id,
                "internal",
                self._scrub(f"{type(error).__name__}: {error}"),
                0,
                model=self.model,
            )

    def build_request(self, conversation: Conversation) -> tuple[dict[str, Any], bool]:
        """This client's request for a conversation (its prompt, answer shape, caching, thinking and effort)."""
        params, truncated = build_request(
            conversation,
            self.model,
            int(self.settings["max_tokens"]),
            int(self.settings["token_budget"]),
            shape=self.shape,
            prompt=self.prompt,
            caching=bool(self.settings["prompt_caching"]),
        )
        return self.with_kind(params, self.settings["kind"]), truncated

    def with_kind(self, params: dict[str, Any], kind: str | None) -> dict[str, Any]:
        """`params` with the thinking, effort and max_tokens of a request kind for this model."""
        return apply_options(params, self.settings["request_options"].get(kind)) if kind else params

    def classify_one(self, conversation: Conversation) -> Result:
        params, truncated = self.build_request(conversation)
        answer = self.ask(params, self.parse_labels)
        if answer.value is None:
            error_type, message = answer.error_type or "unknown", answer.error_message or ""
            return self.error(conversation, error_type, message, answer.usage, answer.attempts)
        return self._classification(conversation, answer.value, answer.usage, truncated, answer.attempts)

    def error(
        self, conversation: Conversation, error_type: str, message: str, usage: Mapping[str, int], attempts: int
    ) -> ClassificationError:
        """An error row carrying the tokens its failed attempts were billed for."""
        usage = Counter(usage)
        return ClassificationError(
            conversation.conversation_id,
            error_type,
            message,
            attempts,
            model=self.model,
            input_tokens=usage["input_tokens"],
            output_tokens=usage["output_tokens"],
            cache_creation_input_tokens=usage["cache_creation_input_tokens"],
            cache_read_input_tokens=usage["cache_read_input_tokens"],
            thinking_tokens=usage["thinking_tokens"],
        )

    # -- any request (JSON or tool answer) --------------------------------------------------------

    def ask(self, params: dict[str, Any], parse: Callable[[Any], T]) -> Answer[T]:
        """One request (`messages.create` parameters) paced, retried and parsed by `parse`.

        `parse` turns a Message into the answer or raises BadAnswer; a bad answer is asked again
        once, failures are retried up to `max_attempts` as for classification; an answer cut at
        max_tokens is asked once more with a larger max_tokens, never unchanged. The usage of every
        answered attempt is summed, failed ones too: they are billed; thinking tokens are counted
        apart (`thinking_tokens`, part of output_tokens)."""
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
            add_usage(usage, outcome.usage)
            spent_thinking = thinking_tokens(outcome)
            usage["thinking_tokens"] += spent_thinking
            try:
                value = parse(outcome)
            except BadAnswer as bad:
                self._count(bad.error_type)
                bad_answers += 1
                last_type, last_message = bad.error_type, self._scrub(str(bad))
                if bad.error_type == "max_tokens":
                    last_message = f"{last_message} ({params['max_tokens']:,}, of which {spent_thinking:,} thinking)"
                    raised = self._raised_max_tokens(params)
                    if raised is None:
                        break
                    params = raised
                    continue
                if bad_answers >= MAX_BAD_ANSWERS:
                    break
                continue
            self._count("ok")
            return Answer(value, usage, attempts, None, None)
        return Answer(None, usage, attempts, last_type, last_message)

    def _raised_max_tokens(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """`params` with MAX_TOKENS_RETRY_FACTOR x max_tokens (at most the model's max output), or None
        when it was raised already or cannot grow: a cut answer is never asked again unchanged."""
        current = int(params["max_tokens"])
        ceiling = int(self.settings["max_output_tokens"])
        if params.get("_max_tokens_raised") or current >= ceiling:
            return None
        return {**params, "max_tokens": min(ceiling, current * MAX_TOKENS_RETRY_FACTOR), "_max_tokens_raised": True}

    def ask_all(
        self, requests: Sequence[dict[str, Any]], parse: Callable[[Any], T], kind: str | None = None
    ) -> list[Answer[T]]:
        """`ask` for each request with one parser, concurrently under the rate limits; answers in order.

        `kind` (adjudicate, name, audit...) sets the requests' thinking, effort and max_tokens."""
        return self.ask_each([(params, parse) for params in requests], kind)

    def ask_each(
        self, requests: Sequence[tuple[dict[str, Any], Callable[[Any], T]]], kind: str | None = None
    ) -> list[Answer[T]]:
        """`ask` for each (request, its parser), concurrently under the rate limits; answers in order."""
        if not requests:
            return []
        requests = [(self.with_kind(params, kind), parse) for params, parse in requests]

        def ask_safely(request: tuple[dict[str, Any], Callable[[Any], T]]) -> Answer[T]:
            try:
                return self.ask(*request)
            except Exception as error:  # a bug must cost one answer, not the whole run
                log.exception("unexpected error in a %s request", self.model)
                return Answer(None, Counter(), 0, "internal", self._scrub(f"{type(error).__name__}: {error}"))

        workers = min(int(self.settings["concurrency"]), len(requests))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="claude") as pool:
            return list(pool.map(ask_safely, requests))

    def _classification(
        self, conversation: Conversation, labels: dict, usage: Counter, truncated: bool, attempts: int
    ) -> Classification:
        return Classification(
            conversation_id=conversation.conversation_id,
            classifier=self.name,
            model=self.model,
            prompt_version=self.prompt_version,
            truncated=truncated,
            attempts=attempts,
            input_tokens=usage["input_tokens"],
            output_tokens=usage["output_tokens"],
            cache_creation_input_tokens=usage["cache_creation_input_tokens"],
            cache_read_input_tokens=usage["cache_read_input_tokens"],
            thinking_tokens=usage["thinking_tokens"],
            **labels,
        )

    def _call_messages(self, params: dict, estimate: int) -> Any:
        """One API call: the parsed Message, or a _Failure saying whether and how to retry."""
        reserve = int(params["max_tokens"])
        self._count("api_calls")
        sent = self.platform_request(params)
        try:
            raw = self.client.messages.with_raw_response.create(**sent)
        except anthropic.APIStatusError as error:
            # The request produced no output; a 429 was not admitted, so its input is refunded too.
            refund_input = error.status_code == 429
            self.limiter.settle(
                0,
                output_reserved=reserve,
                input_tokens=0 if refund_input else None,
                input_estimate=estimate if refund_input else None,
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

    def platform_request(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`messages.create` arguments for the provider: its model id, its documented anthropic_version
        in the body (over the SDK's default), and none of this client's own `_` keys."""
        sent = {key: value for key, value in params.items() if not key.startswith("_")}
        sent["model"] = self.platform_model
        if self._body_version:
            sent["extra_body"] = {"anthropic_version": self._body_version}
        return sent

    def _status_failure(self, error: anthropic.APIStatusError) -> _Failure:
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

    def _wait_after_failure(self, failure: _Failure, failures: int) -> None:
        """429/529 pause the whole task (retry-after if given); other failures back off this thread."""
        delay = failure.retry_after if failure.retry_after is not None else self._jitter(failures)
        if failure.global_pause:
            self.limiter.pause_for(delay)  # acquire() then waits for it, in every thread
        else:
            self._sleep(delay)

    # -- Message Batches (see batches.py) -------------------------------------------------------

    def batch_requests(
        self, conversations: Sequence[Conversation], keys: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The `requests` entries for a Message Batch; see `MessageBatches.requests`."""
        return self.batches.requests(conversations, keys)

    def submit_batch(
        self,
        conversations: Sequence[Conversation],
        keys: Sequence[str] | None = None,
        on_created: Callable[[str, int], None] | None = None,
    ) -> list[str]:
        """Create Message Batches, calling `on_created(batch_id, n)` after each; see `MessageBatches.submit`."""
        refused = batch_mode_error(self.settings["provider"])
        if refused:  # the settings refuse batch mode already; this guards direct callers
            raise ValueError(refused)
        return self.batches.submit(conversations, keys, on_created)

    def poll_batch(self, batch_id: str) -> BatchStatus:
        return self.batches.poll(batch_id)

    def wait_for_batch(
        self, batch_id: str, poll_interval: float | None = None, timeout: float | None = None
    ) -> BatchStatus:
        """Poll until the batch has ended (or `timeout` seconds pass: TimeoutError)."""
        return self.batches.wait(batch_id, poll_interval, timeout)

    def cancel_batch(self, batch_id: str) -> BatchStatus:
        return self.batches.cancel(batch_id)

    def collect_batch_results(
        self,
        batch_id: str,
        conversations: Sequence[Conversation] | None = None,
        keys: Sequence[str] | None = None,
    ) -> dict[str, Result]:
        """Results of an ended batch by custom_id; see `MessageBatches.collect`."""
        return self.batches.collect(batch_id, conversations, keys)


@dataclass(frozen=True)
class Answer(Generic[T]):
    """What `ask` got: the parsed value (which may itself be None) when `error_type` is None, else
    the last error; the usage of all attempts either way."""

    value: T | None
    usage: Counter[str]
    attempts: int
    error_type: str | None
    error_message: str | None


@dataclass(frozen=True)
class _Failure:
    error_type: str
    message: str
    retryable: bool
    retry_after: float | None = None
    global_pause: bool = False


# Module-level entry points: each builds its own classifier (and client) from settings, so a new
# process (or a new Spark driver) can resume a batch from its id alone. They live here, not in
# batches.py, because building a ClaudeClassifier from raw settings is this module's job.


def submit_batch(
    settings: Mapping[str, Any], conversations: Sequence[Conversation], keys: Sequence[str] | None = None
) -> list[str]:
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
