"""Thinking, effort and max_tokens per model and request kind, and the thinking tokens of an answer.

Every request the pipeline sends wants a short structured answer, so by default each kind asks
for as little thinking as its model allows and the lowest effort it accepts
(`settings.RequestKindSettings`). What a model accepts is the model table's
(`settings.ModelEntry.thinking_types`, `efforts`, `thinking_off_max_effort`), written from the
platform documentation; a combination the model refuses is a one-line ConfigError before any
request is sent, never a 400 per request.

Thinking tokens are output tokens, billed at the output price and counted against `max_tokens`
(https://platform.claude.com/docs/en/build-with-claude/thinking-troubleshooting). The API reports
them in `usage.output_tokens_details.thinking_tokens` (the SDK's `OutputTokensDetails`: "always <=
output_tokens; output_tokens - thinking_tokens approximates the non-reasoning output"); an answer
without that detail but with thinking blocks is measured as output tokens minus the answer's own
tokens (characters / 4).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from wildvalues.settings import Settings
from wildvalues.settings.claude import EFFORTS, KIND_MAX_TOKENS, ModelEntry, RequestKindSettings
from wildvalues.settings.sections import ConfigError

CHARS_PER_TOKEN = 4


def off_thinking(entry: ModelEntry) -> dict[str, str] | None:
    """The model's lowest thinking setting: disabled, else between_tools, else none to send."""
    for kind in ("disabled", "between_tools"):
        if kind in entry.thinking_types:
            return {"type": kind}
    return None  # thinking cannot be turned off (or is off unless asked for): say nothing


def resolve_thinking(entry: ModelEntry, wanted: str, model: str, kind: str) -> dict[str, str] | None:
    if wanted == "model_default":
        return None
    if wanted == "off":
        return off_thinking(entry)
    if "adaptive" not in entry.thinking_types:
        raise ConfigError(
            f"classifier.anthropic.requests.{kind}.thinking adaptive: model {model!r} does not accept "
            f"adaptive thinking (models.{model}.thinking_types: {list(entry.thinking_types)})"
        )
    return {"type": "adaptive"}


def resolve_effort(entry: ModelEntry, wanted: str, model: str, kind: str) -> str | None:
    if wanted == "model_default" or (wanted == "lowest" and not entry.efforts):
        return None
    if wanted == "lowest":
        return entry.efforts[0]
    if wanted not in entry.efforts:
        raise ConfigError(
            f"classifier.anthropic.requests.{kind}.effort {wanted}: model {model!r} accepts "
            f"{list(entry.efforts) or 'no effort parameter'} (models.{model}.efforts)"
        )
    return wanted


def check_off_at_effort(entry: ModelEntry, thinking: dict[str, str] | None, effort: str | None, where: str) -> None:
    """Thinking turned off above the model's highest effort for it is a 400: refuse it here."""
    ceiling = entry.thinking_off_max_effort
    if thinking is None or thinking["type"] == "adaptive" or ceiling is None:
        return
    used = effort or entry.default_effort
    if used is not None and EFFORTS.index(used) > EFFORTS.index(ceiling):
        raise ConfigError(f"{where}: thinking {thinking['type']} is accepted up to effort {ceiling}, not {used}")


def default_max_tokens(settings: Settings, kind: str) -> int:
    return KIND_MAX_TOKENS.get(kind, settings.classifier.anthropic.max_tokens)


def kind_options(settings: Settings, model: str, kind: str) -> dict[str, Any]:
    """{"thinking", "effort", "max_tokens"} one kind of request sends to `model`."""
    entry = settings.model_entry(model)
    chosen: RequestKindSettings = getattr(settings.classifier.anthropic.requests, kind)
    thinking = resolve_thinking(entry, chosen.thinking, model, kind)
    effort = resolve_effort(entry, chosen.effort, model, kind)
    check_off_at_effort(entry, thinking, effort, f"classifier.anthropic.requests.{kind} for {model}")
    return {
        "thinking": thinking,
        "effort": effort,
        "max_tokens": chosen.max_tokens or default_max_tokens(settings, kind),
    }


def request_options(settings: Settings, model: str) -> dict[str, dict[str, Any]]:
    """Every kind's options for `model`, as the client settings carry them to the executors."""
    from wildvalues.settings.claude import REQUEST_KINDS

    return {kind: kind_options(settings, model, kind) for kind in REQUEST_KINDS}


def apply_options(params: Mapping[str, Any], options: Mapping[str, Any] | None) -> dict[str, Any]:
    """`params` with the kind's max_tokens, thinking and effort (effort joins any output_config.format)."""
    applied = dict(params)
    if not options:
        return applied
    applied["max_tokens"] = int(options["max_tokens"])
    if options.get("thinking") is not None:
        applied["thinking"] = dict(options["thinking"])
    if options.get("effort") is not None:
        applied["output_config"] = {**dict(params.get("output_config") or {}), "effort": options["effort"]}
    return applied


def answer_chars(message: Any) -> int:
    """Characters of a Message's answer: its text blocks and tool inputs (not its thinking)."""
    chars = 0
    for block in getattr(message, "content", None) or []:
        kind = getattr(block, "type", None)
        if kind == "text":
            chars += len(block.text)
        elif kind == "tool_use":
            chars += len(json.dumps(block.input))
    return chars


def thinking_tokens(message: Any) -> int:
    """The thinking tokens an answer was billed for: the API's count, else output minus the answer."""
    usage = getattr(message, "usage", None)
    details = getattr(usage, "output_tokens_details", None)
    reported = getattr(details, "thinking_tokens", None)
    if reported is not None:
        return int(reported)
    blocks = getattr(message, "content", None) or []
    if not any(getattr(b, "type", None) in ("thinking", "redacted_thinking") for b in blocks):
        return 0
    output = int(getattr(usage, "output_tokens", 0) or 0)
    return max(0, output - -(-answer_chars(message) // CHARS_PER_TOKEN))
