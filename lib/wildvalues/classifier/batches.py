"""The Message Batches client: submit, poll, cancel and collect batches of classification requests.

Batches cost half as much as online calls and end within 24 hours. A `MessageBatches` holds
an SDK client and the resolved settings; `ClaudeClassifier` builds one and exposes its calls as
`submit_batch`, `poll_batch`, `wait_for_batch`, `cancel_batch` and `collect_batch_results`.
Everything needed to resume is the settings and a batch id. Control calls are retried on
429/5xx here (the SDK's own retries are off); error messages are scrubbed of the API key.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import anthropic
from anthropic.types.messages.batch_create_params import Request

from wildvalues.classifier.base import Classification, ClassificationError, Conversation, Result
from wildvalues.classifier.prompt import BadAnswer, add_usage
from wildvalues.classifier.ratelimit import parse_retry_after
from wildvalues.classifier.thinking import thinking_tokens

log = logging.getLogger(__name__)

MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024
_CUSTOM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class BatchError(RuntimeError):
    """A Message Batches call failed after retries; the message carries no secrets.

    `batch_ids` lists the batches already created when a multi-batch submission failed part
    way, so the caller can still poll and collect them.
    """

    def __init__(self, message: str, batch_ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.batch_ids = list(batch_ids)


class ForeignBatch(BatchError):
    """The batch's answers come from another model (the other pass of a two-pass run)."""


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
    def from_batch(cls, batch: Any) -> BatchStatus:
        counts = batch.request_counts
        return cls(
            batch.id,
            batch.processing_status,
            {k: getattr(counts, k) for k in ("processing", "succeeded", "errored", "canceled", "expired")},
            batch.results_url,
        )


# (conversation, labels, usage, truncated, attempts) -> the Classification to record
MakeClassification = Callable[[Conversation, dict, Counter, bool, int], Classification]
# (conversation, error type, message, billed usage, attempts) -> the ClassificationError to record
MakeError = Callable[[Conversation, str, str, Counter, int], ClassificationError]


class MessageBatches:
    """Message Batches calls through one SDK client, with the owning classifier's settings.

    `scrub` removes secrets from messages, `count(key)` adds to the owner's counters (every HTTP
    call counts as "api_calls"), `backoff(attempt)` is the jittered delay before a retry, and
    `classification` turns validated labels into the owner's Classification record, `error` a
    failure into its error record; `build` makes a conversation's request and `parse` reads an
    answer (both the owner's, so a batch asks exactly what an online call would).
    """

    def __init__(
        self,
        client: anthropic.Anthropic,
        settings: Mapping[str, Any],
        *,
        scrub: Callable[[str], str],
        count: Callable[[str], None],
        backoff: Callable[[int], float],
        classification: MakeClassification,
        build: Callable[[Conversation], tuple[dict[str, Any], bool]],
        parse: Callable[[Any], dict[str, Any]],
        error: MakeError,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.settings = settings
        self._scrub = scrub
        self._count = count
        self._backoff = backoff
        self._classification = classification
        self._build_request, self._parse, self._error = build, parse, error
        self._sleep = sleep
        self._clock = clock

    def _build(self, conversation: Conversation) -> tuple[dict[str, Any], bool]:
        params, truncated = self._build_request(conversation)
        return with_hour_cache(params), truncated

    def requests(
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
            params, _ = self._build(conversation)
            requests.append({"custom_id": custom_id, "params": params})
        return requests

    def submit(
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
        requests = self.requests(conversations, keys)
        for chunk in split_batches(requests, MAX_BATCH_REQUESTS, MAX_BATCH_BYTES):
            try:
                # A create whose connection broke may have succeeded: retrying could pay for the
                # same requests twice, so only unambiguous failures (429, 5xx) are retried.
                batch = self._control(
                    "create batch",
                    functools.partial(self._create, chunk),
                    retry_connection_errors=False,
                )
            except BatchError as error:
                raise BatchError(str(error), batch_ids) from None
            log.info("submitted message batch %s with %d requests", batch.id, len(chunk))
            batch_ids.append(batch.id)
            if on_created is not None:
                on_created(batch.id, len(chunk))
        return batch_ids

    def _create(self, requests: list[dict[str, Any]]) -> Any:
        # The entries are the API's Request shape, built as plain dicts (params from build_request).
        return self.client.messages.batches.create(requests=cast("list[Request]", requests))

    def poll(self, batch_id: str) -> BatchStatus:
        batch = self._control("retrieve batch", lambda: self.client.messages.batches.retrieve(batch_id))
        return BatchStatus.from_batch(batch)

    def wait(self, batch_id: str, poll_interval: float | None = None, timeout: float | None = None) -> BatchStatus:
        """Poll until the batch has ended (or `timeout` seconds pass: TimeoutError)."""
        interval = float(self.settings["batch_poll_interval"] if poll_interval is None else poll_interval)
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            status = self.poll(batch_id)
            if status.ended:
                return status
            if deadline is not None and self._clock() >= deadline:
                raise TimeoutError(f"batch {batch_id} still {status.processing_status} after {timeout} s")
            self._sleep(interval)

    def cancel(self, batch_id: str) -> BatchStatus:
        batch = self._control("cancel batch", lambda: self.client.messages.batches.cancel(batch_id))
        return BatchStatus.from_batch(batch)

    def collect(
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
        status = self.poll(batch_id)
        if not status.ended:
            raise BatchError(f"batch {batch_id} is {status.processing_status}; wait until it has ended")
        entries = self._control("batch results", lambda: list(self.client.messages.batches.results(batch_id)))
        models = {e.result.message.model for e in entries if e.result.type == "succeeded"}
        mine = str(self.settings["model"])
        # The API may answer an alias with its dated id (claude-haiku-4-5 -> claude-haiku-4-5-20251001).
        if models and not any(str(m).startswith(mine) for m in models):
            raise ForeignBatch(f"batch {batch_id} was answered by {', '.join(sorted(map(str, models)))}, not {mine}")
        return {entry.custom_id: self._result(entry, by_id.get(entry.custom_id)) for entry in entries}

    def _result(self, entry: Any, conversation: Conversation | None) -> Result:
        conversation_id = conversation.conversation_id if conversation is not None else entry.custom_id
        result = entry.result
        target = conversation or Conversation(conversation_id, ())
        usage = Counter[str]()
        if result.type != "succeeded":  # errored, expired and canceled requests are not billed
            return self._error(target, f"batch_{result.type}", self._error_text(result), usage, 1)
        message = result.message
        add_usage(usage, message.usage)
        usage["thinking_tokens"] += thinking_tokens(message)
        try:
            labels = self._parse(message)
        except BadAnswer as bad:  # an answer that cannot be used is still billed
            return self._error(target, bad.error_type, self._scrub(str(bad)), usage, 1)
        truncated = False
        if conversation is not None:
            _, truncated = self._build(conversation)
        return self._classification(target, labels, usage, truncated, 1)

    def _error_text(self, result: Any) -> str:
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
            self._sleep(delay if delay is not None else self._backoff(attempt))
        raise AssertionError("unreachable")


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


# A batch can take longer than 5 minutes, so the batch page recommends the 1-hour cache TTL for
# shared context (https://platform.claude.com/docs/en/build-with-claude/batch-processing); its
# writes cost the 1 h price (settings.Prices.cache_write_1h), which the batch cost accounting uses.
HOUR_CACHE = {"type": "ephemeral", "ttl": "1h"}


def with_hour_cache(params: dict[str, Any]) -> dict[str, Any]:
    """`params` with every cache breakpoint of its system blocks on the 1-hour TTL."""
    system = params.get("system")
    if not isinstance(system, list):
        return params
    blocks = [{**b, "cache_control": dict(HOUR_CACHE)} if "cache_control" in b else b for b in system]
    return {**params, "system": blocks}
