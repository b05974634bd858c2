"""What the emulated Messages API accepts from each model, from its own documented fixture.

The facts live in `documented_models.yml` (next to this file), each with the documentation page it
came from; they are deliberately not imported from the project's model table
(`wildvalues.settings`), so the emulator can disagree with the client it tests. This module loads
them and holds the request rules that use them: each rule returns the API's error message for a
request it refuses, or None, and names the page it follows.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

FIXTURE = os.path.join(os.path.dirname(__file__), "documented_models.yml")
EFFORTS: tuple[str, ...] = ("low", "medium", "high", "xhigh", "max")
THINKING_TYPES: tuple[str, ...] = ("adaptive", "enabled", "disabled", "between_tools")
FORCING_TOOL_CHOICES: frozenset[str] = frozenset({"any", "tool"})

# Top-level fields of POST /v1/messages
# (https://platform.claude.com/docs/en/api/messages/create, as the installed SDK's
# MessageCreateParams also lists them, plus stream and the sampling parameters that the reference
# keeps for older models). Anything else is an invalid_request_error.
MESSAGES_FIELDS: frozenset[str] = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "cache_control",
        "container",
        "diagnostics",
        "inference_geo",
        "metadata",
        "output_config",
        "service_tier",
        "speed",
        "stop_sequences",
        "stream",
        "system",
        "temperature",
        "thinking",
        "tool_choice",
        "tools",
        "top_k",
        "top_p",
        "user_profile_id",
        "workspace_id",
    }
)
# Top-level fields of POST /v1/messages/count_tokens
# (https://platform.claude.com/docs/en/api/messages/count_tokens).
COUNT_TOKENS_FIELDS: frozenset[str] = frozenset(
    {
        "model",
        "messages",
        "cache_control",
        "output_config",
        "speed",
        "system",
        "thinking",
        "tool_choice",
        "tools",
        "user_profile_id",
        "workspace_id",
    }
)
# Keys inside output_config: effort (https://platform.claude.com/docs/en/build-with-claude/effort)
# and format (https://platform.claude.com/docs/en/build-with-claude/structured-outputs).
OUTPUT_CONFIG_FIELDS: frozenset[str] = frozenset({"effort", "format"})
# Fields of each thinking configuration
# (https://platform.claude.com/docs/en/build-with-claude/extended-thinking and /adaptive-thinking).
THINKING_FIELDS: dict[str, frozenset[str]] = {
    "adaptive": frozenset({"type", "display"}),
    "enabled": frozenset({"type", "budget_tokens", "display"}),
    "disabled": frozenset({"type"}),
    "between_tools": frozenset({"type"}),
}
# budget_tokens is at least 1,024 and below max_tokens
# (https://platform.claude.com/docs/en/build-with-claude/extended-thinking).
MIN_THINKING_BUDGET = 1024
# Cache lifetimes by cache_control.ttl: 5 minutes by default, or 1 hour, each refreshed on use
# (https://platform.claude.com/docs/en/build-with-claude/prompt-caching#1-hour-cache-duration).
CACHE_TTL_SECONDS: dict[str, float] = {"5m": 300.0, "1h": 3600.0}


@dataclass(frozen=True)
class DocumentedModel:
    """One model as the documentation describes it (see documented_models.yml for each field)."""

    model_id: str
    prices: Mapping[str, float]
    min_cache_tokens: int
    max_output_tokens: int
    tokenizer_factor: float
    status: str
    thinking_types: Mapping[str, tuple[str, ...]]  # type -> efforts it is accepted at
    thinking_default: str
    thinking_display: str
    effort: tuple[str, ...]
    default_effort: str | None
    tool_choice: tuple[str, ...]
    sampling: str
    structured_outputs: bool

    def tokens(self, chars: int) -> int:
        """Tokens of `chars` characters of text: characters / 4, times the tokenizer's factor, rounded up."""
        return math.ceil(round(chars / 4 * self.tokenizer_factor, 6))


@dataclass(frozen=True)
class Documentation:
    """The fixture: documented models, the stand-in for unknown ids, and the thinking assumption."""

    models: Mapping[str, DocumentedModel]
    generic: DocumentedModel
    thinking_tokens_per_answer: Mapping[str, int]


def model_from_facts(model_id: str, facts: Mapping[str, Any]) -> DocumentedModel:
    """A DocumentedModel from one fixture entry (the format of documented_models.yml)."""
    thinking = facts["thinking"]
    return DocumentedModel(
        model_id=model_id,
        prices={k: float(v) for k, v in facts["prices"].items()},
        min_cache_tokens=int(facts["min_cache_tokens"]),
        max_output_tokens=int(facts["max_output_tokens"]),
        tokenizer_factor=float(facts["tokenizer_factor"]),
        status=str(facts["status"]),
        thinking_types={t: _efforts(at) for t, at in thinking["types"].items()},
        thinking_default=str(thinking["default"]),
        thinking_display=str(thinking["display"]),
        effort=tuple(facts["effort"]),
        default_effort=facts.get("default_effort"),
        tool_choice=tuple(facts["tool_choice"]),
        sampling=str(facts["sampling"]),
        structured_outputs=bool(facts["structured_outputs"]),
    )


def _efforts(accepted_at: Any) -> tuple[str, ...]:
    return EFFORTS if accepted_at == "all" else tuple(accepted_at)


def load_documentation(path: str = FIXTURE, extra: Mapping[str, Mapping[str, Any]] | None = None) -> Documentation:
    """The fixture at `path`, with `extra` models (fixture format) added or replacing documented ones."""
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    entries = {**raw["models"], **(extra or {})}
    return Documentation(
        models={model_id: model_from_facts(model_id, facts) for model_id, facts in entries.items()},
        generic=model_from_facts("generic", raw["generic"]),
        thinking_tokens_per_answer={k: int(v) for k, v in raw["thinking_tokens_per_answer"].items()},
    )


# -- request rules: each returns the API's message for a refused request, else None --------------


def unknown_fields(body: Mapping[str, Any], accepted: frozenset[str]) -> str | None:
    """Unknown top-level fields are refused (the API reference's request body; see the sets above)."""
    extra = sorted(set(body) - accepted)
    return f"{extra[0]}: Extra inputs are not permitted" if extra else None


def check_output_config(body: Mapping[str, Any], model: DocumentedModel) -> str | None:
    """output_config holds effort and format only; effort must be one the model accepts.

    https://platform.claude.com/docs/en/build-with-claude/effort (values and models).
    """
    config = body.get("output_config")
    if config is None:
        return None
    if not isinstance(config, dict):
        return "output_config: Input should be an object"
    extra = sorted(set(config) - OUTPUT_CONFIG_FIELDS)
    if extra:
        return f"output_config.{extra[0]}: Extra inputs are not permitted"
    effort = config.get("effort")
    if effort is None:
        return None
    if not model.effort:
        return f"output_config.effort: the effort parameter is not supported by model {model.model_id}"
    if effort not in model.effort:
        return f"output_config.effort: {effort!r} is not supported by model {model.model_id} (accepted: {', '.join(model.effort)})"
    return None


def requested_effort(body: Mapping[str, Any], model: DocumentedModel) -> str:
    """The request's effort, else the model's default, else high (the budget form's reference)."""
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    return str(effort or model.default_effort or "high")


def thinking_type(body: Mapping[str, Any], model: DocumentedModel) -> str:
    """The request's thinking.type, else the model's default (adaptive where it thinks by default)."""
    thinking = body.get("thinking")
    return str(thinking.get("type")) if isinstance(thinking, dict) else model.thinking_default


def check_thinking(body: Mapping[str, Any], model: DocumentedModel) -> str | None:
    """A thinking shape the model takes, at an effort it takes it at, with a valid budget.

    Per model: documented_models.yml (e.g. disabled is a 400 on Sonnet 5.5, which takes
    between_tools at low-high effort only; Opus 5.5 cannot turn thinking off; budgets are 400s on
    the 5.x models). Budgets: https://platform.claude.com/docs/en/build-with-claude/extended-thinking.
    """
    thinking = body.get("thinking")
    if thinking is None:
        return None
    if not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES:
        return f"thinking.type: Input should be one of {', '.join(repr(t) for t in THINKING_TYPES)}"
    kind = str(thinking["type"])
    extra = sorted(set(thinking) - THINKING_FIELDS[kind])
    if extra:
        return f"thinking.{extra[0]}: Extra inputs are not permitted"
    if kind not in model.thinking_types:
        accepted = ", ".join(f'"{t}"' for t in model.thinking_types)
        return f'thinking.type "{kind}" is not supported for model {model.model_id}; use one of {accepted}'
    effort = requested_effort(body, model)
    if model.effort and effort not in model.thinking_types[kind]:
        return f'thinking.type "{kind}" is not supported at effort "{effort}" on model {model.model_id}'
    return _check_budget(thinking, body) if kind == "enabled" else None


def _check_budget(thinking: Mapping[str, Any], body: Mapping[str, Any]) -> str | None:
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < MIN_THINKING_BUDGET:
        return f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_THINKING_BUDGET}"
    if budget >= int(body["max_tokens"]):
        return "max_tokens must be greater than thinking.budget_tokens"
    return None


def check_tool_choice(body: Mapping[str, Any], model: DocumentedModel) -> str | None:
    """A tool_choice the model takes, and no forced tool together with requested thinking.

    Forced tool use is a 400 on Sonnet 5.5 and Opus 5.5 (documented_models.yml). Thinking "isn't
    compatible with forced tool use"
    (https://platform.claude.com/docs/en/build-with-claude/extended-thinking#feature-compatibility):
    a forced tool with thinking asked for in the request is a 400.
    """
    choice = body.get("tool_choice")
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        return "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"
    if kind not in model.tool_choice:
        return (
            f"tool_choice type {kind!r} is not supported for model {model.model_id}: forced tool use "
            "is not available on this model; use tool_choice auto, or output_config.format for structured output"
        )
    asked = body.get("thinking")
    if kind in FORCING_TOOL_CHOICES and isinstance(asked, dict) and asked.get("type") in ("adaptive", "enabled"):
        return "Thinking may not be enabled when tool_choice forces tool use."
    return None


def check_sampling(body: Mapping[str, Any], model: DocumentedModel) -> str | None:
    """temperature / top_p / top_k as the model takes them (documented_models.yml, `sampling`).

    `refused`: non-default values are 400s (temperature's default, 1.0, is accepted; top_p and
    top_k have no default to send). `one_of`: temperature or top_p, not both.
    """
    sent = [name for name in ("temperature", "top_p", "top_k") if body.get(name) is not None]
    if model.sampling == "refused":
        non_default = [name for name in sent if not (name == "temperature" and body[name] == 1)]
        if non_default:
            return f"{non_default[0]}: sampling parameters are not supported for model {model.model_id}"
    if model.sampling == "one_of" and {"temperature", "top_p"} <= set(sent):
        return f"temperature and top_p cannot both be specified for model {model.model_id}"
    return None


def check_max_tokens(body: Mapping[str, Any], model: DocumentedModel) -> str | None:
    """max_tokens within the model's maximum output (each model's overview page)."""
    if int(body["max_tokens"]) > model.max_output_tokens:
        return f"max_tokens: {body['max_tokens']} > {model.max_output_tokens}, which is the maximum allowed number of output tokens for {model.model_id}"
    return None


def check_model_request(body: Mapping[str, Any], model: DocumentedModel) -> str | None:
    """Every per-model rule above, first refusal first."""
    for rule in (check_max_tokens, check_output_config, check_thinking, check_tool_choice, check_sampling):
        problem = rule(body, model)
        if problem:
            return problem
    return None


# -- thinking: how much the emulated model thinks ------------------------------------------------


def forces_tool(body: Mapping[str, Any]) -> bool:
    choice = body.get("tool_choice")
    return isinstance(choice, dict) and choice.get("type") in FORCING_TOOL_CHOICES


def thinking_tokens(body: Mapping[str, Any], model: DocumentedModel, per_effort: Mapping[str, int]) -> int:
    """Thinking tokens the emulated model spends on this request (0: it does not think).

    It thinks when the request asks for adaptive or enabled thinking, or sends none to a model that
    thinks by default. A forced tool (where accepted) prefills the answer, so a model thinking only
    by default does not think then (https://platform.claude.com/docs/en/agents-and-tools/tool-use/implement-tool-use#forcing-tool-use).
    The amount is the fixture's assumption per effort; `enabled` caps it at budget_tokens.
    """
    kind = thinking_type(body, model)
    if kind not in ("adaptive", "enabled"):
        return 0
    if "thinking" not in body and forces_tool(body):
        return 0
    amount = int(per_effort[requested_effort(body, model)])
    if kind == "enabled":
        amount = min(amount, int(body["thinking"]["budget_tokens"]))
    return amount


def thinking_display(body: Mapping[str, Any], model: DocumentedModel) -> str:
    """summarized or omitted: the request's thinking.display, else the model's default."""
    thinking = body.get("thinking")
    display = thinking.get("display") if isinstance(thinking, dict) else None
    return str(display or model.thinking_display)
