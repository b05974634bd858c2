"""The preflight: a few real requests of each kind a Claude run will send, before it spends on the rest.

A run that the API refuses request by request (a field the model does not take, a retired model id,
a `max_tokens` thinking eats up) would otherwise pay for every conversation and end with error
rows. The preflight sends `classifier.anthropic.preflight.requests` requests of each kind the
run's settings will use (classification; screening in two-pass mode; adjudication, cluster naming
and the label audit when the settings ask Claude for them), built by the code the stages use:
classification and screening on conversations drawn from the input, the taxonomy's kinds on the
published tree's own values and clusters (the run's values do not exist before classification).

The kind fails systematically (`PreflightFailed`: one line, exit 2) when any request gets a 4xx
other than 429 (https://platform.claude.com/docs/en/api/errors: a 4xx other than 429 is the
request's own fault, and retrying it unchanged fails the same way), any answer is cut at
max_tokens (stop_reason "max_tokens",
https://platform.claude.com/docs/en/build-with-claude/handling-stop-reasons), most answers are
invalid, or no request got an answer at all. Otherwise its answers are the measurements `estimate`
and the run's metrics use: tokens per answer (input, cache write, cache read, output with thinking,
thinking) and the tokenizer factor (billed input tokens per characters / 4 of the requests).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from wildvalues.classifier.base import Conversation
from wildvalues.settings import Settings
from wildvalues.taxonomy.tree import TreeNode

# The kinds a run may send, in the order the run sends them (the cross-check is a command of its own).
RUN_KINDS = ("classify", "screen", "adjudicate", "name", "audit")
USAGE_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
# Error types of an answer that came back but could not be used (prompt.BadAnswer, claude.py).
INVALID_ANSWERS = frozenset({"invalid_output", "refusal", "invalid_response"})
MEASUREMENTS_FILE = "preflight.json"  # under the output directory: what `estimate` reads back


class PreflightFailed(RuntimeError):
    """A request kind failed systematically in the preflight: the run stops before spending more.

    `results`: the kinds measured so far, the failed one last (their metrics are still logged)."""

    def __init__(self, line: str, results: Sequence[KindMeasurement] = ()) -> None:
        super().__init__(line)
        self.results = list(results)


@dataclass(frozen=True)
class KindPlan:
    """One request kind a run will send, to which model, with which thinking, effort and max_tokens."""

    kind: str
    model: str
    thinking: str | None  # the `thinking.type` sent, None: no thinking field
    effort: str | None  # the `output_config.effort` sent, None: no effort field
    max_tokens: int


@dataclass
class KindMeasurement:
    """What a kind's preflight requests got back: answers, failures by type and the tokens billed."""

    plan: KindPlan
    requests: int
    answered: int = 0  # answers that parsed
    failures: Counter[str] = field(default_factory=Counter)  # error type -> requests
    messages: dict[str, str] = field(default_factory=dict)  # error type -> its first message
    answered_usage: Counter[str] = field(default_factory=Counter)  # tokens of the parsed answers
    spent_usage: Counter[str] = field(default_factory=Counter)  # tokens of every answer, failed ones too
    approx_input_tokens: int = 0  # characters / 4 of the parsed answers' requests

    def per_answer(self, key: str) -> float:
        """Mean tokens of one parsed answer (`key`: a usage field or thinking_tokens)."""
        return self.answered_usage[key] / self.answered if self.answered else 0.0

    def billed_input_per_answer(self) -> float:
        return sum(self.per_answer(key) for key in USAGE_KEYS[:3])

    def tokenizer_factor(self) -> float | None:
        """Billed input tokens per characters / 4 of the same requests; None without an answer."""
        if not self.answered or not self.approx_input_tokens:
            return None
        billed = sum(self.answered_usage[key] for key in USAGE_KEYS[:3])
        return billed / self.approx_input_tokens

    def as_record(self) -> dict[str, Any]:
        """The measurement as `estimate` reads it back (no prompt, no answer, no key)."""
        return {
            **asdict(self.plan),
            "requests": self.requests,
            "answered": self.answered,
            "failures": dict(self.failures),
            "per_answer": {key: self.per_answer(key) for key in (*USAGE_KEYS, "thinking_tokens")},
            "tokenizer_factor": self.tokenizer_factor(),
        }


# ---------------------------------------------------------------------------------------------
# What the run will send


def run_kind_models(settings: Settings) -> list[tuple[str, str]]:
    """(kind, model) of every kind of request a `run` with these settings sends, in run order."""
    if settings.classifier.name != "anthropic":
        return []
    kinds = [("classify", settings.classifier.anthropic.model)]
    if settings.classifier.screen_model:
        kinds.append(("screen", settings.classifier.screen_model))
    taxonomy = settings.taxonomy
    if taxonomy.adjudicate and taxonomy.placement == "semantic" and taxonomy.mode != "discovered":
        kinds.append(("adjudicate", settings.claude_model(taxonomy.adjudication_model)))
    if settings.discovery.namer == "claude" and taxonomy.mode != "published":
        kinds.append(("name", settings.claude_model(settings.discovery.naming_model)))
    if settings.audit_rater() == "claude":
        kinds.append(("audit", settings.claude_model(settings.privacy.audit_model)))
    return kinds


def plan_for(settings: Settings, kind: str, model: str) -> KindPlan:
    from wildvalues.classifier.thinking import kind_options

    options = kind_options(settings, model, kind)
    thinking = options["thinking"]["type"] if options["thinking"] else None
    return KindPlan(kind, model, thinking, options["effort"], int(options["max_tokens"]))


def preflight_applies(settings: Settings) -> bool:
    return settings.classifier.name == "anthropic" and settings.classifier.anthropic.preflight.enabled


# ---------------------------------------------------------------------------------------------
# The requests, built by the stages' own code


Request = tuple[dict[str, Any], Callable[[Any], Any]]


def client_for(settings: Settings, api_key: str, kind: str, model: str) -> Any:
    """The Claude client the stage sending `kind` builds (one task: the model's whole limits)."""
    from wildvalues.classifier.claude import ClaudeClassifier
    from wildvalues.classifier.claude_settings import client_settings

    prompt = "screen" if kind == "screen" else "extract"
    own_kind = kind if kind in ("classify", "screen") else None
    return ClaudeClassifier(client_settings(settings, api_key, 1, model, prompt=prompt, kind=own_kind))


def conversation_requests(client: Any, conversations: Sequence[Conversation]) -> list[Request]:
    """Classification or screening requests, as `ClaudeClassifier.classify_one` sends them."""
    return [(client.build_request(c)[0], client.parse_labels) for c in conversations]


def level_nodes(tree: Sequence[TreeNode], level: int) -> list[TreeNode]:
    return [node for node in tree if node.level == level]


def adjudication_requests(settings: Settings, model: str, tree: Sequence[TreeNode], n: int) -> list[Request]:
    """Tree values asked which of the first level-1 clusters they belong to (`adjudication.ask`)."""
    from wildvalues.classifier.claude_settings import output_shape
    from wildvalues.classifier.taxonomy_prompts import Candidate, adjudication_request, choice_parser

    shape = output_shape(settings, model)
    clusters = level_nodes(tree, 1)[: settings.taxonomy.adjudication_candidates]
    candidates = [Candidate(c.cluster_id, c.name, c.description, 0.5) for c in clusters]
    ids = [c.cluster_id for c in candidates]
    values = level_nodes(tree, 0)[:n]
    return [(adjudication_request(model, v.name, candidates, shape), choice_parser(ids, shape)) for v in values]


def naming_requests(settings: Settings, model: str, tree: Sequence[TreeNode], n: int) -> list[Request]:
    """Level-1 clusters of the tree named from their values (`naming.ClaudeClusterNamer`)."""
    from wildvalues.classifier.claude_settings import output_shape
    from wildvalues.classifier.taxonomy_prompts import NamingRequest, name_parser, naming_payload, naming_request

    shape = output_shape(settings, model)
    discovery = settings.discovery
    values = level_nodes(tree, 0)
    requests = []
    for cluster in level_nodes(tree, 1)[:n]:
        members = tuple(sorted(v.name for v in values if v.parent_cluster_id == cluster.cluster_id)) or (cluster.name,)
        contrast = tuple(v.name for v in values if v.parent_cluster_id != cluster.cluster_id)
        asked = NamingRequest(1, members, tuple(1.0 for _ in members), members, contrast)
        payload = naming_payload(asked, discovery.naming_members, discovery.naming_contrast)
        requests.append((naming_request(model, payload, shape), name_parser(shape)))
    return requests


def audit_requests(settings: Settings, model: str, tree: Sequence[TreeNode], n: int) -> list[Request]:
    """Tree values rated as published labels (`label_audit.ask`)."""
    from wildvalues.classifier.claude_settings import output_shape
    from wildvalues.classifier.taxonomy_prompts import rating_parser, rating_request

    shape = output_shape(settings, model)
    values = level_nodes(tree, 0)[:n]
    return [(rating_request(model, v.name, "value", shape), rating_parser(shape)) for v in values]


TREE_REQUESTS = {"adjudicate": adjudication_requests, "name": naming_requests, "audit": audit_requests}


def kind_requests(
    settings: Settings, client: Any, kind: str, conversations: Sequence[Conversation], tree: Sequence[TreeNode]
) -> list[Request]:
    """The kind's preflight requests with its thinking, effort and max_tokens applied."""
    n = settings.classifier.anthropic.preflight.requests
    if kind in ("classify", "screen"):
        return conversation_requests(client, conversations[:n])
    built = TREE_REQUESTS[kind](settings, client.model, tree, n)
    return [(client.with_kind(params, kind), parse) for params, parse in built]


# ---------------------------------------------------------------------------------------------
# Sending and judging


def once_at_max_tokens(params: dict[str, Any]) -> dict[str, Any]:
    """`params` marked so that a cut answer is reported as cut, not asked again with more tokens
    (`ClaudeClassifier._raised_max_tokens`): the preflight measures what the run's setting gets."""
    return {**params, "_max_tokens_raised": True}


def measure_kind(client: Any, plan: KindPlan, requests: Sequence[Request]) -> KindMeasurement:
    """Send the kind's requests (concurrently, paced and retried as the run does) and measure them."""
    from wildvalues.classifier.prompt import estimate_input_tokens

    answers = client.ask_each([(once_at_max_tokens(params), parse) for params, parse in requests])
    measured = KindMeasurement(plan, len(requests))
    for (params, _), answer in zip(requests, answers, strict=True):
        measured.spent_usage.update(answer.usage)
        if answer.error_type is None:
            measured.answered += 1
            measured.answered_usage.update(answer.usage)
            measured.approx_input_tokens += estimate_input_tokens(params)
            continue
        measured.failures[answer.error_type] += 1
        measured.messages.setdefault(answer.error_type, first_line(answer.error_message or answer.error_type))
    return measured


def first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:400]


def systematic_failure(measured: KindMeasurement) -> str | None:
    """Why a kind's requests would fail the run, or None when they would not."""
    failures, messages = measured.failures, measured.messages
    if failures["api_error"]:  # claude.py: every 4xx but 408 and 429
        return f"{failures['api_error']} of {measured.requests} refused: {messages['api_error']}"
    if failures["max_tokens"]:
        return f"{failures['max_tokens']} of {measured.requests} cut at max_tokens: {messages['max_tokens']}"
    invalid = sum(failures[kind] for kind in INVALID_ANSWERS)
    if invalid * 2 > measured.requests:
        first = next(messages[kind] for kind in sorted(INVALID_ANSWERS) if kind in messages)
        return f"{invalid} of {measured.requests} answers unusable: {first}"
    if measured.requests and not measured.answered:
        kind, n = failures.most_common(1)[0]
        return f"no answer to {measured.requests} request(s) ({n} {kind}): {messages[kind]}"
    return None


def failure_line(measured: KindMeasurement, reason: str, sent: int) -> str:
    plan = measured.plan
    return (
        f"preflight: {plan.model} failed its {plan.kind} requests ({reason}); "
        f"stopped before classifying, having sent only the preflight's {sent} request(s) "
        "(classifier.anthropic.preflight)"
    )


def run_preflight(
    settings: Settings,
    api_key: str,
    conversations: Sequence[Conversation],
    tree: Sequence[TreeNode],
    kinds: Sequence[tuple[str, str]] | None = None,
) -> list[KindMeasurement]:
    """Every kind's requests measured in run order; PreflightFailed at the first kind that fails."""
    if not conversations:
        return []
    results: list[KindMeasurement] = []
    sent = 0
    for kind, model in run_kind_models(settings) if kinds is None else kinds:
        client = client_for(settings, api_key, kind, model)
        measured = measure_kind(
            client, plan_for(settings, kind, model), kind_requests(settings, client, kind, conversations, tree)
        )
        sent += measured.requests
        results.append(measured)
        reason = systematic_failure(measured)
        if reason:
            raise PreflightFailed(failure_line(measured, reason, sent), results)
    return results


# ---------------------------------------------------------------------------------------------
# Figures: metrics, the file `estimate` reads, cost


def spent_usd(results: Sequence[KindMeasurement], settings: Settings) -> float:
    from wildvalues.classifier.cost import usage_usd

    return sum(usage_usd(r.spent_usage, settings.model_entry(r.plan.model).prices) for r in results)


def metrics(results: Sequence[KindMeasurement], settings: Settings) -> dict[str, float]:
    """The preflight's `preflight_*` metrics: per kind, requests, failures and tokens per answer."""
    values: dict[str, float] = {
        "preflight_requests": float(sum(r.requests for r in results)),
        "preflight_cost_usd": spent_usd(results, settings),
    }
    for r in results:
        prefix = f"preflight_{r.plan.kind}"
        values[f"{prefix}_requests"] = float(r.requests)
        values[f"{prefix}_answered"] = float(r.answered)
        values[f"{prefix}_failures"] = float(sum(r.failures.values()))
        for key in (*USAGE_KEYS, "thinking_tokens"):
            values[f"{prefix}_{key}_per_answer"] = r.per_answer(key)
        factor = r.tokenizer_factor()
        if factor is not None:
            values[f"{prefix}_tokenizer_factor"] = factor
    return values


def records_json(results: Sequence[KindMeasurement]) -> str:
    return json.dumps({"kinds": [r.as_record() for r in results]}, indent=2, sort_keys=True)


def save_measurements(output_dir: str, results: Sequence[KindMeasurement]) -> str:
    path = os.path.join(output_dir, MEASUREMENTS_FILE)
    os.makedirs(output_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(records_json(results))
    return path


def load_measurements(output_dir: str) -> list[dict[str, Any]]:
    """The measurements a preflight saved under `output_dir` (none: an empty list)."""
    path = os.path.join(output_dir, MEASUREMENTS_FILE)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return list(json.load(handle).get("kinds", []))


def matching_measurement(records: Sequence[Mapping[str, Any]], plan: KindPlan) -> Mapping[str, Any] | None:
    """The saved measurement of this kind, model, thinking, effort and max_tokens, if one answered."""
    for record in records:
        same = all(record.get(name) == value for name, value in asdict(plan).items())
        if same and record.get("answered"):
            return record
    return None
