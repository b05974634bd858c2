"""A local stand-in for the Anthropic API, good enough for the official SDK, with limits and faults.

`Emulator` serves, on a loopback port from a background thread:

* `POST /v1/messages` — answers a forced `record_values` tool call whose input is
  `OfflineClassifier.classify_payload` of the conversation parsed back out of the request
  (the delimited format of `prompt.py`), with `usage` including prompt-cache writes and reads;
* `POST /v1/messages/count_tokens`;
* the Message Batches endpoints: create, retrieve, list, cancel, delete, results (JSONL);
  a batch ends `batch_processing_s` seconds after creation, so clients must poll; an entry the
  API would refuse comes back `errored` with the API's error;
* `POST /v1/chat/completions` — an OpenAI-compatible endpoint answering the same labels as a JSON
  object in `choices[0].message.content` (no rate limits or faults), for the cross-check's
  non-Claude judge;
* `GET /emulator/stats` — requests answered by path and status.

`labelling="second"` makes the instance a different judge: `second_labelling` perturbs the offline
classifier's answer deterministically (subjectivity, response type, values), so a cross-check
between two instances agrees measurably less than perfectly.

Rate limits are token buckets on requests, input tokens and output tokens per minute, holding
`burst_seconds` worth each (60 by default: the API refills continuously up to the per-minute
limit; smaller values emulate stricter short-interval enforcement). Over a limit the answer is
429 with `retry-after` (whole seconds, as the API sends it); every /v1/messages answer carries
`anthropic-ratelimit-*` headers. As the API does, output tokens are reserved at `max_tokens`
on admission and the unused part is returned when the answer is complete, and cache reads
do not count against the input-token limit.

What each model accepts, costs and caches is the emulator's own knowledge, written from the
platform documentation in `documented_models.yml` (each fact with its page) and loaded by
`api_rules`; it is never taken from the project's model table, so the emulator can disagree with
the client. From it:

* unknown top-level fields, and shapes a model refuses (thinking types and efforts, forced tool
  use, sampling parameters, budgets, structured outputs, max_tokens over the model's maximum),
  are 400 invalid_request_errors with the API's error body; an unknown model id is a 404
  (`unknown_models="generic"` instead answers it as a stand-in that accepts everything);
* a model that thinks (by default or on request) answers a `thinking` block first (with a
  signature; its text empty where the display is omitted); thinking tokens are output tokens,
  reported in `usage.output_tokens_details.thinking_tokens`, and count toward `max_tokens`:
  thinking plus answer beyond it cuts the answer (stop_reason max_tokens). How much it thinks per
  effort is the fixture's stated assumption; `thinking_tokens` overrides it (0: never thinks);
* token counts are characters / 4 rounded up, times the model's tokenizer factor (1.3 for the
  5.x tokenizer): prefix = tools JSON (compact) + system text up to the block marked
  `cache_control`; message = the rest of the system text plus the messages' text; output = the
  answer's compact JSON plus thinking. They apply to usage, count_tokens and the rate limits;
* a prefix is cached only from the model's minimum cacheable length (`min_cache_tokens`
  overrides it), for its `cache_control.ttl` (5 minutes, or "1h"), refreshed on each use; writes
  are reported per TTL in `usage.cache_creation`. A batch's entries run spread over
  `batch_duration_s` emulated seconds, so a 5-minute cache written early has expired for late
  entries while a 1-hour one lives on.

Answers take the request's shape, as the API's: `output_config.format` (JSON schema) gets a
text block holding the JSON, a forced tool (`strict: true` or not) a `tool_use` block; either
answers the fields of the request's schema only. Structured outputs are refused (400) for
models without them and for schemas using constraints they do not support; for them the
`malformed_*` faults cannot happen, as generation follows the schema.

Faults are injected, after the rate-limit check, first from `fault_sequence` (one entry per
admitted request, in order, for deterministic tests), then with probability `fault_rate` split evenly
over `fault_kinds` (or `fault_kinds` may map each kind to its own rate): `overloaded` (529),
`server_error` (500), `drop` (connection closed with no response), `malformed_tool` (tool input
not matching the schema), `malformed_text` (prose instead of a tool call), `refusal`
(stop_reason "refusal"), `max_tokens` (answer cut off) and, for batches only, `expired`.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from http.server import ThreadingHTTPServer
from typing import Any

from wildvalues.classifier.base import Conversation, Turn
from wildvalues.classifier.prompt import parse_rendered_conversation
from wildvalues.classifier.taxonomy_prompts import parse_task_block
from wildvalues.demo import api_rules, platforms
from wildvalues.demo.api_rules import DocumentedModel
from wildvalues.demo.emulator_answers import (
    CacheKey,
    PromptCache,
    Reply,
    chat_completion,
    cut_answer,
    error_body,
    flat_usage,
    last_user_text,
    new_id,
    offline_payload_fn,
    second_labelling,
    seconds_text,
    taxonomy_answer,
    text_block,
    token_usage,
    tool_block,
)
from wildvalues.demo.emulator_batches import BatchesEndpoint
from wildvalues.demo.emulator_http import Handler, Server, route_name
from wildvalues.demo.emulator_limits import RateLimiter
from wildvalues.demo.emulator_rules import (
    BATCH_PATH,
    answer_schema,
    check_message_params,
    check_shape,
    describe_request,
    forced_tool,
    output_format,
    strict_tool,
)

FAULT_KINDS: tuple[str, ...] = (
    "overloaded",
    "server_error",
    "drop",
    "malformed_tool",
    "malformed_text",
    "refusal",
    "max_tokens",
    "expired",
)
DEFAULT_FAULT_KINDS: tuple[str, ...] = ("overloaded", "server_error", "drop", "malformed_tool", "refusal")
# How an unknown model id is answered: not_found (the API's 404) or generic (a test convenience:
# the fixture's stand-in model, which accepts every shape and never thinks).
UNKNOWN_MODELS: tuple[str, ...] = ("not_found", "generic")


def fault_rates(fault_rate: float, kinds: Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    """Each fault kind's probability: `kinds` as given per kind, or `fault_rate` split evenly."""
    if isinstance(kinds, Mapping):
        rates = {k: float(v) for k, v in kinds.items()}
    else:
        rates = {k: fault_rate / len(kinds) for k in kinds} if kinds else {}
    unknown = set(rates) - set(FAULT_KINDS)
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; choose from {FAULT_KINDS}")
    if sum(rates.values()) > 1.0 + 1e-9:
        raise ValueError("fault rates add up to more than 1")
    return rates


class Emulator:
    """The emulated API server; see the module docstring. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        rpm: float = 4_000,
        itpm: float = 2_000_000,
        otpm: float = 400_000,
        burst_seconds: float = 60.0,
        latency_ms: float = 0.0,
        latency_jitter_ms: float = 0.0,
        fault_rate: float = 0.0,
        fault_kinds: Sequence[str] | Mapping[str, float] = DEFAULT_FAULT_KINDS,
        overload_retry_after_s: float | None = 1.0,
        fault_sequence: Sequence[str | None] = (),
        seed: int | None = 0,
        batch_processing_s: float = 0.5,
        batch_duration_s: float = 3600.0,
        min_cache_tokens: int | Mapping[str, int] | None = None,
        tree_path: str | None = None,
        payload_fn: Callable[[Conversation], dict] | None = None,
        models: Mapping[str, Mapping[str, Any]] | None = None,
        unknown_models: str = "not_found",
        thinking_tokens: int | Mapping[str, int] | None = None,
        labelling: str = "offline",
        bearer_tokens: Collection[str] | None = None,
    ) -> None:
        if labelling not in LABELLINGS:
            raise ValueError(f"unknown labelling {labelling!r}; choose from {LABELLINGS}")
        self.labelling = labelling
        self._relabelled = False
        self.host, self.port = host, port
        self.limits = {"rpm": rpm, "itpm": itpm, "otpm": otpm}
        self.burst_seconds = burst_seconds
        self.latency_ms, self.latency_jitter_ms = latency_ms, latency_jitter_ms
        self.fault_rates = fault_rates(fault_rate, fault_kinds)
        unknown = {k for k in fault_sequence if k is not None} - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; choose from {FAULT_KINDS}")
        # Faults for the first admitted requests, in order (None: no fault), before random draws.
        self._fault_queue = deque(fault_sequence)
        self.overload_retry_after_s = overload_retry_after_s
        self.batch_processing_s = batch_processing_s
        # Emulated seconds over which a batch's entries run, evenly spread (real time: batch_processing_s).
        self.batch_duration_s = batch_duration_s
        # None: each model's own documented minimum (documented_models.yml).
        self.min_cache_tokens = min_cache_tokens
        # What each model accepts, costs and caches: the emulator's own fixture, written from the
        # documentation, plus `models` (same format) for custom or legacy models in tests.
        self.documentation = api_rules.load_documentation(extra=models)
        if unknown_models not in UNKNOWN_MODELS:
            raise ValueError(f"unknown_models must be one of {UNKNOWN_MODELS}")
        # not_found: an unknown id is a 404, as the API answers; generic: the fixture's stand-in.
        self.unknown_models = unknown_models
        # None: the fixture's thinking assumption per effort; an int (or one per model) replaces it,
        # e.g. 0 for tests about something other than thinking.
        self.thinking_tokens = thinking_tokens
        # The platform routes' model ids (platform_models.yml); Bearer tokens the platform routes
        # accept (None: any, as only the form is checked).
        self.platforms = platforms.load_platforms()
        self.bearer_tokens = frozenset(bearer_tokens) if bearer_tokens is not None else None
        self.tree_path = tree_path
        self._payload_fn = payload_fn
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.request_log: list[dict[str, Any]] = []
        self._stats: dict[str, Counter[int]] = defaultdict(Counter)
        self.prompt_cache = PromptCache()
        self.batch_endpoint = BatchesEndpoint(self)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._reset_buckets()

    def _reset_buckets(self) -> None:
        self.limiter = RateLimiter(self.limits, self.burst_seconds)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Emulator:
        if self._payload_fn is None:
            self._payload_fn = offline_payload_fn(self.tree_path)
        if self.labelling == "second" and not self._relabelled:
            self._payload_fn = second_labelling(self._payload_fn)
            self._relabelled = True  # a restarted instance must not perturb twice
        server = Server((self.host, self.port), Handler)
        server.emulator = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"emulator-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def set_faults(
        self, fault_rate: float, fault_kinds: Sequence[str] | Mapping[str, float] = DEFAULT_FAULT_KINDS
    ) -> None:
        with self._lock:
            self.fault_rates = fault_rates(fault_rate, fault_kinds)

    # -- bookkeeping ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """{"requests": n, "by_path": {path: {status: n}}, "by_status": {status: n}, "faults": {kind: n}}.

        Status "0" counts connections dropped without a response; batch ids in paths read {id}.
        """
        with self._lock:
            by_path = {path: {str(s): n for s, n in sorted(c.items())} for path, c in self._stats.items()}
            by_status: Counter[int] = Counter()
            for counter in self._stats.values():
                by_status.update(counter)
            faults = Counter(e["fault"] for e in self.request_log if e.get("fault"))
            return {
                "requests": sum(by_status.values()),
                "by_path": by_path,
                "by_status": {str(s): n for s, n in sorted(by_status.items())},
                "faults": dict(faults),
            }

    def requests_by_model(self) -> dict[str, int]:
        """Messages answered or queued per model: online requests admitted, plus batch entries."""
        with self._lock:
            counts: Counter[str] = Counter()
            for entry in self.request_log:
                if entry["path"] == "/v1/messages" and "admitted_at" in entry:
                    counts[str(entry.get("model"))] += 1
                counts.update(str(m) for m in entry.get("models", ()))
            return dict(counts)

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.request_log.append(entry)
            self._stats[route_name(entry["path"])][entry["status"]] += 1

    # -- /v1/messages ------------------------------------------------------------------------

    def handle_messages(self, body: dict[str, Any], entry: dict[str, Any]) -> Reply:
        refusal = self.refusal(body, api_rules.MESSAGES_FIELDS)
        if refusal:
            return Reply(refusal[0], error_body(refusal[1], refusal[2]))
        model = self.model_for(str(body["model"]))
        assert model is not None  # refusal() answered 404 otherwise
        usage, cache = self._token_usage(body, model)
        now, wall = time.monotonic(), time.time()
        max_tokens = int(body["max_tokens"])
        with self._lock:
            usage = self.prompt_cache.use(usage, cache, now)
            billed_input = usage["input_tokens"] + usage["cache_creation_input_tokens"]
            wait = self.limiter.admission_wait(billed_input, max_tokens, now)
            if wait > 0:
                entry.update(flat_usage(usage), retry_after=math.ceil(wait))
                return Reply(
                    429,
                    error_body(
                        "rate_limit_error", "Number of requests or tokens has exceeded your per-minute rate limit."
                    ),
                    {**self.limiter.headers(now, wall), "retry-after": str(max(1, math.ceil(wait)))},
                )
            self.limiter.take(billed_input, max_tokens)
            entry["admitted_at"] = now  # lets benchmarks measure the admitted rate
            self.prompt_cache.store(cache, now)
            fault = self._draw_fault(online=True)
            latency = self._draw_latency()
        entry.update(flat_usage(usage), fault=fault)
        time.sleep(latency)
        reply, output_tokens = self._message_reply(body, usage, fault, model)
        with self._lock:
            bucket = self.limiter.buckets["output-tokens"]  # settle the max_tokens reservation
            bucket.tokens = min(bucket.capacity, bucket.tokens + max_tokens - output_tokens)
            headers = self.limiter.headers(time.monotonic(), time.time())
        entry["output_tokens"] = output_tokens
        if isinstance(reply.body, dict) and "usage" in reply.body:
            entry["thinking_tokens"] = reply.body["usage"]["output_tokens_details"]["thinking_tokens"]
            entry["stop_reason"] = reply.body.get("stop_reason")
        reply.headers.update(headers)
        return reply

    def model_for(self, model_id: str) -> DocumentedModel | None:
        """The documented model of an id; None where the API would answer 404 (unknown or retired)."""
        model = self.documentation.models.get(model_id)
        if model is None:
            return self.documentation.generic if self.unknown_models == "generic" else None
        return None if model.status == "retired" else model

    def refusal(self, body: dict[str, Any], fields: frozenset[str]) -> tuple[int, str, str] | None:
        """(status, error type, message) the API answers a request it refuses, else None.

        An unknown model is a 404 not_found_error (https://platform.claude.com/docs/en/api/errors);
        unknown fields and shapes the model refuses are 400 invalid_request_errors
        (api_rules, from https://platform.claude.com/docs/en/api/messages/create).
        """
        problem = check_message_params(body) or api_rules.unknown_fields(body, fields)
        if problem:
            return 400, "invalid_request_error", problem
        model = self.model_for(str(body["model"]))
        if model is None:
            return 404, "not_found_error", f"model: {body['model']}"
        problem = api_rules.check_model_request(body, model) or check_shape(body, model)
        return (400, "invalid_request_error", problem) if problem else None

    def _draw_fault(self, online: bool) -> str | None:
        if self._fault_queue:
            kind = self._fault_queue.popleft()
            return None if (online and kind == "expired") else kind
        roll = self._rng.random()
        for kind, rate in self.fault_rates.items():
            if roll < rate:
                return None if (online and kind == "expired") else kind
            roll -= rate
        return None

    def _draw_latency(self) -> float:
        jitter = self._rng.uniform(-self.latency_jitter_ms, self.latency_jitter_ms) if self.latency_jitter_ms else 0.0
        return max(0.0, self.latency_ms + jitter) / 1000.0

    def _token_usage(self, body: dict[str, Any], model: DocumentedModel) -> tuple[dict[str, int], CacheKey | None]:
        return token_usage(body, model, self.min_cache_for(str(body.get("model"))))

    def min_cache_for(self, model: str) -> int:
        """The shortest prefix (tokens) cached for `model`: the override, else its documented minimum."""
        if isinstance(self.min_cache_tokens, int):
            return self.min_cache_tokens
        if isinstance(self.min_cache_tokens, Mapping) and model in self.min_cache_tokens:
            return int(self.min_cache_tokens[model])
        entry = self.model_for(model)
        return entry.min_cache_tokens if entry else self.documentation.generic.min_cache_tokens

    def _message_reply(
        self, body: dict[str, Any], usage: dict[str, Any], fault: str | None, model: DocumentedModel
    ) -> tuple[Reply, int]:
        """The answer to an admitted request, and its output tokens."""
        if fault == "drop":
            return Reply(drop=True), 0
        if fault == "overloaded":
            headers = {}
            if self.overload_retry_after_s is not None:
                headers["retry-after"] = seconds_text(self.overload_retry_after_s)
            return Reply(529, error_body("overloaded_error", "Overloaded"), headers), 0
        if fault == "server_error":
            return Reply(500, error_body("api_error", "Internal server error"), {}), 0
        message, output_tokens = self.build_message(body, usage, fault, model)
        return Reply(200, message, {"request-id": new_id("req_emu")}), output_tokens

    def thinking_for(self, body: dict[str, Any], model: DocumentedModel) -> int:
        """Thinking tokens for this request: the fixture's assumption, or the `thinking_tokens` override."""
        amount = api_rules.thinking_tokens(body, model, self.documentation.thinking_tokens_per_answer)
        override = self.thinking_tokens
        if isinstance(override, Mapping):
            override = override.get(model.model_id)
        if amount == 0 or override is None:
            return amount
        thinking = body.get("thinking")
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        return min(int(override), int(budget)) if budget else int(override)

    def build_message(
        self, body: dict[str, Any], usage: dict[str, Any], fault: str | None, model: DocumentedModel
    ) -> tuple[dict, int]:
        """A Message (as JSON) answering `body`: thinking first where the model thinks, then the answer.

        Thinking tokens are output tokens and count toward max_tokens; when thinking and answer
        exceed it, the answer is cut and stop_reason is max_tokens
        (https://platform.claude.com/docs/en/build-with-claude/extended-thinking#max-tokens-and-context-window-size).
        """
        answer, stop_reason, stop_details = self._answer_blocks(body, fault)
        answer_tokens = max(
            1, model.tokens(len(json.dumps([c.get("input", c.get("text")) for c in answer], separators=(",", ":"))))
        )
        thinking = 0 if fault == "refusal" else self.thinking_for(body, model)
        max_tokens = int(body["max_tokens"])
        if fault == "max_tokens" or thinking + answer_tokens > max_tokens:
            thinking = min(thinking, max_tokens)
            answer = cut_answer(body, answer, max_tokens - thinking, model) if thinking < max_tokens else []
            answer_tokens, stop_reason, stop_details = max_tokens - thinking, "max_tokens", None
        content = ([self._thinking_block(body, model, thinking)] if thinking else []) + answer
        output_tokens = thinking + answer_tokens
        message = {
            "id": new_id("msg_emu"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "stop_details": stop_details,
            "usage": {
                "input_tokens": usage["input_tokens"],
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                "cache_read_input_tokens": usage["cache_read_input_tokens"],
                "cache_creation": dict(usage["cache_creation"]),
                "output_tokens_details": {"thinking_tokens": thinking},
            },
        }
        return message, output_tokens

    def _answer_blocks(self, body: dict[str, Any], fault: str | None) -> tuple[list[dict], str, dict | None]:
        """The answer's content blocks, stop_reason and stop_details, shaped by a content fault if any."""
        tool_name = forced_tool(body)
        wanted_format = output_format(body)
        if fault in ("malformed_tool", "malformed_text") and (wanted_format or strict_tool(body, tool_name)):
            fault = None  # structured outputs constrain generation to the schema: these cannot happen
        if fault == "refusal":
            text = "I can't help with classifying this conversation."
            return [text_block(text)], "refusal", {"type": "refusal", "category": None, "explanation": None}
        if wanted_format is not None:
            return [text_block(json.dumps(self._payload(body)))], "end_turn", None
        if fault == "malformed_text":
            return [text_block("Sure! The assistant values helpfulness and honesty.")], "end_turn", None
        if tool_name is None:
            return [text_block(json.dumps(self._payload(body)))], "end_turn", None
        if fault == "malformed_tool":
            bad = {"ai_values": "helpfulness", "human_values": None, "response_type": "enthusiastic", "task": 42}
            return [tool_block(tool_name, bad)], "tool_use", None
        return [tool_block(tool_name, self._payload(body))], "tool_use", None

    def _thinking_block(self, body: dict[str, Any], model: DocumentedModel, tokens: int) -> dict[str, Any]:
        """A thinking block as the API returns it: text per `display` (empty when omitted) and a signature.

        https://platform.claude.com/docs/en/build-with-claude/extended-thinking#controlling-thinking-display
        """
        summarized = api_rules.thinking_display(body, model) == "summarized"
        text = f"(emulated thinking: {tokens} tokens at effort {api_rules.requested_effort(body, model)})"
        return {"type": "thinking", "thinking": text if summarized else "", "signature": new_id("sig_emu")}

    def _payload(self, body: dict[str, Any]) -> dict:
        text = last_user_text(body["messages"])
        if parse_task_block(text) is not None:  # an adjudication, naming or rating task, in any answer shape
            return taxonomy_answer(text)
        turns = parse_rendered_conversation(text) or [Turn("user", text)]
        assert self._payload_fn is not None
        payload = self._payload_fn(Conversation("emulated", tuple(turns)))
        asked = answer_schema(body).get("properties")
        # Answer the fields the request's schema asks for (a screening schema asks for three).
        return {k: v for k, v in payload.items() if k in asked} if isinstance(asked, dict) else payload

    def handle_count_tokens(self, body: dict[str, Any]) -> Reply:
        """Input tokens in the model's tokenizer; the same field and model checks as a message.

        https://platform.claude.com/docs/en/api/messages/count_tokens (no max_tokens there).
        """
        if not body.get("model") or not isinstance(body.get("messages"), list):
            return Reply(400, error_body("invalid_request_error", "model and messages are required"))
        problem = api_rules.unknown_fields(body, api_rules.COUNT_TOKENS_FIELDS)
        if problem:
            return Reply(400, error_body("invalid_request_error", problem))
        model = self.model_for(str(body["model"]))
        if model is None:
            return Reply(404, error_body("not_found_error", f"model: {body['model']}"))
        usage, _ = self._token_usage(body, model)
        return Reply(200, {"input_tokens": usage["prefix"] + usage["rest"]})

    # -- /v1/chat/completions (OpenAI-compatible) -------------------------------------------

    def handle_chat_completions(self, body: dict[str, Any]) -> Reply:
        """The labels as a JSON object in choices[0].message.content, as a chat model answers."""
        messages = body.get("messages")
        if not body.get("model") or not isinstance(messages, list) or not messages:
            return Reply(
                400, {"error": {"message": "model and messages are required", "type": "invalid_request_error"}}
            )
        return chat_completion(body, self._payload(body))

    # -- routing -------------------------------------------------------------------------------

    def route(self, method: str, path: str, body: dict[str, Any] | None, entry: dict[str, Any]) -> Reply:
        if method == "GET" and path == "/emulator/stats":
            return Reply(200, self.stats())
        platform = platforms.platform_of(method, path)
        if platform == "oauth":  # a form-encoded refresh, answered before the JSON check
            return Reply(*platforms.oauth_token_reply())
        if platform is not None:
            if body is None:
                return Reply(400, error_body("invalid_request_error", "request body is not valid JSON"))
            return self.handle_platform(platform, path, body, entry)
        if body is None and method == "POST":
            return Reply(400, error_body("invalid_request_error", "request body is not valid JSON"))
        if not entry.get("has_api_key"):
            return Reply(401, error_body("authentication_error", "missing API key"))
        if method == "POST" and path == "/v1/messages":
            describe_request(body or {}, entry)
            return self.handle_messages(body or {}, entry)
        if method == "POST" and path == "/v1/chat/completions":
            return self.handle_chat_completions(body or {})
        if method == "POST" and path == "/v1/messages/count_tokens":
            return self.handle_count_tokens(body or {})
        if path == "/v1/messages/batches":
            if method == "POST":
                return self.batch_endpoint.create_batch(body or {}, entry)
            if method == "GET":
                return self.batch_endpoint.list_batches()
        match = BATCH_PATH.match(path)
        if match:
            entry["batch_id"] = match.group(1)
            return self.batch_endpoint.handle_batch(method, match.group(1), match.group(2))
        return Reply(404, error_body("not_found_error", f"no route {method} {path}"))

    def handle_platform(self, platform: str, path: str, body: dict[str, Any], entry: dict[str, Any]) -> Reply:
        """A Bedrock, Vertex AI or Databricks request, answered as /v1/messages (see demo/platforms.py)."""
        ids = self.platforms[platform]
        if platform == "bedrock":
            request = platforms.bedrock_request(ids, path, body, entry)
        elif platform == "vertex":
            request = platforms.vertex_request(ids, path, body, entry)
        else:
            request = platforms.databricks_request(ids, body, entry)
        if isinstance(request, tuple):
            return Reply(*request)
        if request.pop("_count_tokens", False):
            return self.handle_count_tokens(request)
        describe_request(request, entry)
        return self.handle_messages(request, entry)


# -- request inspection helpers -----------------------------------------------------------------


# -- the taxonomy tasks: a word-overlap judge, deliberately not the embeddings' kind of rule ------


LABELLINGS: tuple[str, ...] = ("offline", "second")


# -- command line ---------------------------------------------------------------------------------
