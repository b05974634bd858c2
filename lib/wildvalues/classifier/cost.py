"""Cost and duration estimates for a classification run, before anything is spent.

`estimate` predicts requests, tokens (approximated as chars/4, or counted through the API's
`count_tokens` with a `ClaudeClassifier`), cost in USD (the prices of the settings' model table, with the
settings' batch discount) and, online, the minutes the rate limits allow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import anthropic
from anthropic.types import MessageParam

from wildvalues.classifier.base import Conversation
from wildvalues.classifier.claude import ClaudeClassifier
from wildvalues.classifier.prompt import (
    answer_params,
    approx_tokens,
    build_request,
    prefix_chars,
    render_conversation,
    system_blocks,
    user_message_text,
)
from wildvalues.classifier.providers import FEATURES
from wildvalues.settings import Settings
from wildvalues.settings.claude import AnthropicSettings, ModelEntry, Prices


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
    cache_hit_share: float = 0.0  # input tokens read from the cache / all input tokens
    output_source: str = ""  # where the output tokens per answer came from (AnswerFigures.output_source)
    tokenizer_source: str = ""  # where the tokenizer factor came from

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def framing_chars(prompt: str = "extract", shape: str = "forced_tool") -> int:
    """Characters a request's user message adds around the conversation's own text (no turns)."""
    return len(user_message_text(render_conversation([]), prompt, shape))


def _usd(tokens: Mapping[str, float], price: Mapping[str, float]) -> float:
    return sum(tokens[kind] * price[kind] for kind in ("input", "cache_write", "cache_read", "output")) / 1_000_000


def estimate(
    conversations: Sequence[Conversation] | None = None,
    *,
    char_counts: Sequence[int] | None = None,
    model: str,
    prices: Mapping[str, float],
    limits: Mapping[str, float],
    mode: str = "online",
    expected_output_tokens: float = 150,
    token_budget: int = AnthropicSettings().token_budget,
    concurrency: int = AnthropicSettings().concurrency,
    batch_discount: float = Settings().batch_discount,
    tasks: int = 1,
    latency_s: float = 2.0,
    classifier: ClaudeClassifier | None = None,
    max_count_calls: int = 100,
    prompt: str = "extract",
    shape: str = "forced_tool",
    min_cache_tokens: int = 0,
    caching: bool = True,
    share: float = 1.0,
    tokenizer_factor: float = 1.0,
    output_source: str = "",
    tokenizer_source: str = "",
) -> Estimate:
    """Expected requests, tokens, cost (USD) and duration of classifying these conversations.

    Token counts: with `classifier` (and `conversations`), `client.messages.count_tokens` is
    asked for up to `max_count_calls` conversations and the rest scaled by the measured ratio;
    otherwise (or when the API is unreachable) tokens = ceil(chars / 4). `token_source` says
    which. For `char_counts` (total characters of each conversation's turns), each request
    adds the fixed framing of the user message; turn tags are not counted.

    Caching: the prefix (tools or schema + system) is written once and read by every later
    request (cache reads cost 0.1x input and do not count against the input-tokens-per-minute
    limit), unless it is shorter than `min_cache_tokens` (the model's minimum) or `caching` is
    off: then every request pays it as input, and a note says why. `share` is the fraction of
    the conversations actually sent (two-pass mode: the subjective share reaching extraction).
    `tokenizer_factor`: tokens per characters / 4 of the model's tokenizer, applied to the
    approximated counts (not to counts from the API); `output_source` and `tokenizer_source` say
    where it and `expected_output_tokens` came from (`answer_figures`).
    Cost: (input*p_in + cache_write*p_write + cache_read*p_read + output*p_out) / 1e6, halved
    for batch. Duration (online): the slowest of requests/rpm, (input + cache_write)/itpm,
    output/otpm and the latency floor requests * latency / (concurrency * tasks) / 60.
    """
    if mode not in ("online", "batch"):
        raise ValueError("mode must be 'online' or 'batch'")
    price = dict(prices)
    notes: list[str] = []
    prefix, message_tokens, source = _token_counts(
        conversations, char_counts, model, token_budget, classifier, max_count_calls, notes, prompt, shape
    )
    if source.startswith("approximate") and tokenizer_factor != 1.0:
        prefix = scaled_tokens(prefix, tokenizer_factor)
        message_tokens = [scaled_tokens(t, tokenizer_factor) for t in message_tokens]
        source = f"approximate (chars/4 x {tokenizer_factor:.3f})"
    n = round(len(message_tokens) * share)
    message_total = round(sum(message_tokens) * share)
    cached = caching and prefix >= min_cache_tokens
    if not cached:
        why = "prompt caching is off" if not caching else f"prefix {prefix:,} < {min_cache_tokens:,} tokens"
        notes.append(f"{model}: no prompt caching ({why}); the prefix is paid as input on every request")
    cache_write = prefix if n and cached else 0
    cache_read = prefix * max(0, n - 1) if cached else 0
    input_tokens = message_total + (0 if cached else prefix * n)
    output_tokens = round(expected_output_tokens * n)
    tokens = {"input": input_tokens, "cache_write": cache_write, "cache_read": cache_read, "output": output_tokens}
    cost = _usd(tokens, price)
    if mode == "batch":
        cost *= batch_discount
        notes.append("batch: results within 24 hours (usually under 1 hour); per-minute limits do not apply")
        duration, bottleneck = None, None
    else:
        duration, bottleneck = _online_duration(
            n, input_tokens + cache_write, output_tokens, limits, concurrency * max(1, tasks), latency_s
        )
    if cached:
        notes.append(f"{model}: assumes one cache write of the prefix; concurrent first requests may each write it")
    all_input = input_tokens + cache_write + cache_read
    return Estimate(
        mode,
        model,
        n,
        input_tokens,
        cache_write,
        cache_read,
        output_tokens,
        cost,
        duration,
        bottleneck,
        source,
        notes,
        cache_read / all_input if all_input else 0.0,
        output_source,
        tokenizer_source,
    )


def scaled_tokens(tokens: int, factor: float) -> int:
    return math.ceil(tokens * factor)


def combine_passes(screen: Estimate, extract: Estimate) -> Estimate:
    """Two-pass mode as one estimate: the screening pass, then the extraction pass after it."""
    duration, bottleneck = None, None
    if screen.duration_minutes is not None and extract.duration_minutes is not None:
        duration = screen.duration_minutes + extract.duration_minutes
        slower = screen if screen.duration_minutes >= extract.duration_minutes else extract
        bottleneck = f"{slower.bottleneck} of {slower.model}"
    cache_read = screen.cache_read_tokens + extract.cache_read_tokens
    all_input = sum(e.input_tokens + e.cache_write_tokens + e.cache_read_tokens for e in (screen, extract))
    return Estimate(
        extract.mode,
        f"{screen.model} (screen) + {extract.model} (extract)",
        screen.requests + extract.requests,
        screen.input_tokens + extract.input_tokens,
        screen.cache_write_tokens + extract.cache_write_tokens,
        cache_read,
        screen.output_tokens + extract.output_tokens,
        screen.cost_usd + extract.cost_usd,
        duration,
        bottleneck,
        extract.token_source,
        [*screen.notes, *extract.notes],
        cache_read / all_input if all_input else 0.0,
        f"screen: {screen.output_source}; extract: {extract.output_source}",
        f"screen: {screen.tokenizer_source}; extract: {extract.tokenizer_source}",
    )


def _online_duration(
    n: int, itpm_tokens: int, output_tokens: int, limits: Mapping[str, float] | None, in_flight: int, latency_s: float
) -> tuple[float, str]:
    limit = dict(limits or {})
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
    prompt: str = "extract",
    shape: str = "forced_tool",
) -> tuple[int, list[int], str]:
    """(prefix tokens, uncached message tokens per request, source description)."""
    prefix = approx_tokens(prefix_chars(prompt, shape))
    if conversations is None:
        if char_counts is None:
            raise ValueError("pass conversations or char_counts")
        frame = framing_chars(prompt, shape)
        cap = token_budget * 4
        return prefix, [approx_tokens(frame + min(c, cap)) for c in char_counts], "approximate (chars/4)"
    messages = [
        build_request(c, model, 1, token_budget, shape=shape, prompt=prompt)[0]["messages"] for c in conversations
    ]
    approx = [approx_tokens(len(m[0]["content"])) for m in messages]
    if classifier is None:
        return prefix, approx, "approximate (chars/4)"
    provider = classifier.settings["provider"]
    if not FEATURES[provider].count_tokens:
        notes.append(f"count_tokens is not offered on {provider} ({FEATURES[provider].docs}); used chars/4")
        return prefix, approx, "approximate (chars/4)"
    try:
        return _counted_tokens(classifier, model, messages, approx, max_count_calls, prompt, shape)
    except (anthropic.APIError, OSError) as error:
        notes.append(f"count_tokens unavailable ({type(error).__name__}); used chars/4")
        return prefix, approx, "approximate (chars/4)"


def _counted_tokens(
    classifier: ClaudeClassifier,
    model: str,
    messages: list[list[MessageParam]],
    approx: list[int],
    max_calls: int,
    prompt: str = "extract",
    shape: str = "forced_tool",
) -> tuple[int, list[int], str]:
    """Token counts from the API: the prefix once, then up to `max_calls` messages, the rest scaled."""

    def count(**params: Any) -> Any:  # with the provider's model id and anthropic_version (Vertex AI)
        return classifier.client.messages.count_tokens(**classifier.platform_request(params))

    probe: list[MessageParam] = [{"role": "user", "content": "x"}]
    with_prefix = count(
        model=model, system=system_blocks(prompt, shape), messages=probe, **answer_params(prompt, shape)
    )
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


_PRICE_OF_USAGE = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_creation_input_tokens": "cache_write",
    "cache_read_input_tokens": "cache_read",
}


def usage_usd(usage: Mapping[str, int], prices: Prices) -> float:
    """USD of a Messages API `usage` total (input, output, cache write and read tokens) at list prices."""
    return sum(int(usage.get(field, 0)) * getattr(prices, price) for field, price in _PRICE_OF_USAGE.items()) / 1e6


# ---------------------------------------------------------------------------------------------
# Output tokens per answer and the tokenizer factor: measured where possible, else assumed


# The answer itself: a short JSON object or tool call (the estimate's constant before issue 23).
ASSUMED_ANSWER_TOKENS = 150
# Thinking with nothing measured. Thinking tokens are output tokens, billed as output and counted
# against max_tokens (https://platform.claude.com/docs/en/build-with-claude/thinking-troubleshooting),
# and how many a model spends at an effort is not published. So a request on which the model may
# think (adaptive or between_tools thinking, or a model that thinks unless told otherwise) is
# assumed to spend this share of what max_tokens leaves after the answer: conservative on purpose,
# as max_tokens is the most an answer can be billed. Thinking turned off ("disabled") is assumed 0.
ASSUMED_THINKING_SHARE = 0.5


@dataclass(frozen=True)
class AnswerFigures:
    """Output tokens per answer (thinking included) and the tokenizer factor, each with its source."""

    output_tokens: float
    output_source: str
    tokenizer_factor: float
    tokenizer_source: str


def may_think(entry: ModelEntry, thinking: str | None) -> bool:
    """Whether a request with this `thinking.type` (None: no field) may think on this model."""
    if thinking is None:
        return entry.thinks_by_default
    return thinking != "disabled"


def assumed_output_tokens(entry: ModelEntry, thinking: str | None, max_tokens: int) -> int:
    if not may_think(entry, thinking):
        return ASSUMED_ANSWER_TOKENS
    room = max(0, max_tokens - ASSUMED_ANSWER_TOKENS)
    return ASSUMED_ANSWER_TOKENS + int(room * ASSUMED_THINKING_SHARE)


def assumed_figures(entry: ModelEntry, model: str, thinking: str | None, max_tokens: int) -> AnswerFigures:
    output = assumed_output_tokens(entry, thinking, max_tokens)
    thinks = "may think: half of max_tokens after the answer" if may_think(entry, thinking) else "no thinking"
    return AnswerFigures(
        output,
        f"assumed: {output:,} per answer ({ASSUMED_ANSWER_TOKENS} answer, {thinks})",
        entry.tokenizer_factor,
        f"assumed: x{entry.tokenizer_factor:g} (models.{model}.tokenizer_factor)",
    )


def measured_figures(
    output_per_answer: float, factor: float | None, source: str, fallback: AnswerFigures
) -> AnswerFigures:
    """Measured output tokens per answer, and the measured tokenizer factor when there is one."""
    if factor is None:
        return AnswerFigures(output_per_answer, source, fallback.tokenizer_factor, fallback.tokenizer_source)
    return AnswerFigures(output_per_answer, source, factor, source)
