"""Before spending: `estimate` (requests, tokens, cost and duration) and `preflight` (a few real requests of each kind)."""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
from collections.abc import Iterable
from typing import Any

from wildvalues.cli.commands import output_runner, resolve_settings
from wildvalues.errors import UsageError
from wildvalues.io.readers import InputError
from wildvalues.io.registry import Table
from wildvalues.settings import Settings


def _usable_conversations(runner: Any, input_path: str):
    """The input's parseable conversations, one per content hash, as the ingest stage keeps them."""
    from pyspark.sql import functions as F

    from wildvalues.ingest import records as ingest
    from wildvalues.io.readers import read_raw_records

    raw = read_raw_records(runner.spark, input_path, runner.settings.ingest.format)
    parsed = ingest.parse_records(raw, runner.settings.ingest, runner.settings.privacy)
    return parsed.filter(F.col("reason").isNull()).dropDuplicates(["content_hash"])


DEFAULT_SCREEN_MODEL = "claude-haiku-4-5"  # what estimate prices two-pass mode with when none is set


def cmd_estimate(args: argparse.Namespace) -> int:
    """Requests, tokens, cost and duration of classifying an input, one pass and two-pass side by side.

    Output tokens per answer (thinking included) and the tokenizer factor come from a preflight
    saved under --output, else from the answers in --output's classification cache, else the
    model table and a stated assumption (`answer_figures`); the output says which."""

    import json

    from wildvalues.classifier.cost import combine_passes, estimate

    settings = resolve_settings(args)
    if not (os.path.exists(args.input) or glob.glob(args.input)):
        raise InputError(f"input not found: {args.input}")
    if not 0.0 < args.subjective_share <= 1.0:
        raise UsageError(f"--subjective-share {args.subjective_share}: must be in (0, 1]")
    model = args.model or settings.classifier.anthropic.model
    screen_model = args.screen_model or settings.classifier.screen_model or DEFAULT_SCREEN_MODEL
    args.output = args.output or os.path.join("out", "estimate")
    runner = output_runner(args, settings, "estimate")
    usable = _usable_conversations(runner, args.input)
    char_counts = [r.n_chars for r in usable.select("n_chars").collect()]
    inputs = _EstimateInputs(settings, runner, args.mode or settings.classifier.mode, char_counts)
    extract = answer_figures(runner, settings, "classify", model)
    screen = answer_figures(runner, settings, "screen", screen_model)
    extract = _counted_input(inputs, usable, model, extract)
    one_pass = estimate(char_counts=char_counts, **inputs.figures(model, extract))
    two_pass = combine_passes(
        estimate(char_counts=char_counts, **inputs.figures(screen_model, screen, "screen")),
        estimate(char_counts=char_counts, **inputs.figures(model, extract, share=args.subjective_share)),
    )
    print(format_estimates(one_pass, two_pass, args.subjective_share))
    print(format_figures([(model, "classify", extract), (screen_model, "screen (two-pass)", screen)]))
    if args.json:
        print(json.dumps({"one_pass": one_pass.as_dict(), "two_pass": two_pass.as_dict()}, indent=2))
    return 0


@dataclasses.dataclass(frozen=True)
class _EstimateInputs:
    """What every estimate of one input shares: the settings, the mode and the conversations' sizes."""

    settings: Settings
    runner: Any
    mode: str
    char_counts: list[int]

    def figures(self, chosen: str, answer: Any, prompt: str = "extract", share: float = 1.0) -> dict[str, Any]:
        """`cost.estimate`'s keyword arguments for `chosen` answering `prompt` with these figures."""
        from wildvalues.classifier.claude_settings import concurrent_tasks, output_shape

        settings = self.settings
        entry = settings.model_entry(chosen)
        return dict(
            model=chosen,
            mode=self.mode,
            prices=entry.prices.model_dump(),
            limits=entry.limits.model_dump(),
            token_budget=settings.classifier.anthropic.token_budget,
            concurrency=settings.classifier.anthropic.concurrency,
            batch_discount=settings.batch_discount,
            tasks=concurrent_tasks(self.runner.spark, settings.classifier.partitions),
            prompt=prompt,
            shape=output_shape(settings, chosen),
            min_cache_tokens=entry.min_cache_tokens,
            caching=settings.classifier.anthropic.prompt_caching,
            share=share,
            expected_output_tokens=answer.output_tokens,
            tokenizer_factor=answer.tokenizer_factor,
            output_source=answer.output_source,
            tokenizer_source=answer.tokenizer_source,
        )


def _counted_input(inputs: _EstimateInputs, usable: Any, model: str, answer: Any) -> Any:
    """`answer` with the tokenizer factor counted by the API's count_tokens on a sample, when a key
    reaches it: the input's own text, counted, beats any other measurement of the factor."""
    from wildvalues.classifier.base import Conversation
    from wildvalues.classifier.claude import ClaudeClassifier
    from wildvalues.classifier.claude_settings import client_settings, optional_api_key
    from wildvalues.classifier.cost import estimate

    settings = inputs.settings
    key = optional_api_key(settings, inputs.runner.spark)
    if key is None:  # "" for Bedrock and Vertex AI, whose clients read their platform's credentials
        return answer
    sample = [Conversation.from_row(r) for r in usable.limit(100).collect()]
    client = {**client_settings(settings, key, 1, model), "max_attempts": 2}
    plain = dataclasses.replace(answer, tokenizer_factor=1.0)
    counted = estimate(sample, classifier=ClaudeClassifier(client), **inputs.figures(model, plain))
    if counted.token_source.startswith("approximate"):
        return answer
    sizes = [sum(len(t.text) for t in c.turns) for c in sample]
    approximated = estimate(char_counts=sizes, **inputs.figures(model, plain))
    ratio = counted.input_tokens / max(1, approximated.input_tokens)
    source = f"measured: count_tokens on {len(sample)} conversations (x{ratio:.3f} the chars/4 figure)"
    return dataclasses.replace(answer, tokenizer_factor=ratio, tokenizer_source=source)


def answer_figures(runner: Any, settings: Settings, kind: str, model: str) -> Any:
    """Output tokens per answer and the tokenizer factor of `kind` on `model`, with their source:
    a preflight saved under the output for the same model, thinking, effort and max_tokens, else
    the answers of `model` in the output's classification cache, else the model table and
    `cost.ASSUMED_*`."""
    from wildvalues.classifier.cost import assumed_figures, measured_figures
    from wildvalues.classifier.preflight import load_measurements, matching_measurement, plan_for

    plan = plan_for(settings, kind, model)
    fallback = assumed_figures(settings.model_entry(model), model, plan.thinking, plan.max_tokens)
    record = matching_measurement(load_measurements(runner.store.output_dir), plan)
    if record is not None:
        source = f"measured: preflight ({record['answered']} answers)"
        return measured_figures(record["per_answer"]["output_tokens"], record["tokenizer_factor"], source, fallback)
    cached = _cached_usage(runner, settings, kind, model)
    if cached.get("answers"):
        factor = (
            cached["billed_input_tokens"] / cached["approx_input_tokens"] if cached["approx_input_tokens"] else None
        )
        source = f"measured: {cached['answers']} cached answers"
        return measured_figures(cached["output_tokens"] / cached["answers"], factor, source, fallback)
    return fallback


def _cached_usage(runner: Any, settings: Settings, kind: str, model: str) -> dict[str, int]:
    """Usage totals of `model`'s cached answers to this prompt (`classify.answer_usage`), if any."""
    from wildvalues.classifier import classify
    from wildvalues.classifier.claude_settings import output_shape
    from wildvalues.classifier.cost import framing_chars
    from wildvalues.classifier.prompt import approx_tokens, prefix_chars, prompt_version

    store = runner.store
    if not (store.exists(classify_cache_table()) and store.exists(Table.CONVERSATIONS)):
        return {}
    prompt = "screen" if kind == "screen" else "extract"
    shape = output_shape(settings, model)
    return classify.answer_usage(
        store.read(classify_cache_table()),
        store.read(Table.CONVERSATIONS),
        model,
        prompt_version(prompt, shape),
        approx_tokens(prefix_chars(prompt, shape)),
        framing_chars(prompt, shape),
        settings.classifier.anthropic.token_budget * 4,
    )


def classify_cache_table() -> str:
    from wildvalues.io.registry import CACHE_TABLE

    return CACHE_TABLE


def format_figures(used: Iterable[tuple[str, str, Any]]) -> str:
    """Where each per-answer figure came from: measured (preflight, cached answers) or assumed."""
    lines = ["  per answer"]
    for model, kind, answer in used:
        lines.append(
            f"    {model} {kind}: {answer.output_tokens:,.1f} output tokens, thinking included ({answer.output_source})"
        )
        lines.append(f"    {model} {kind}: tokenizer x{answer.tokenizer_factor:.3f} ({answer.tokenizer_source})")
    return "\n".join(lines)


def cmd_preflight(args: argparse.Namespace) -> int:
    """The preflight alone: a few real requests per kind the run would send, measured, and the
    projected cost of the whole input from them; saved under --output for `estimate`."""
    from wildvalues.classifier import preflight
    from wildvalues.classifier.base import Conversation
    from wildvalues.classifier.claude_settings import require_api_key
    from wildvalues.taxonomy.tree import resolve_taxonomy

    args.classifier = "anthropic"
    if args.screen_model:
        args.set = [*(args.set or []), f"classifier.screen_model={args.screen_model}"]
    settings = resolve_settings(args)
    if not (os.path.exists(args.input) or glob.glob(args.input)):
        raise InputError(f"input not found: {args.input}")
    if not 0.0 < args.subjective_share <= 1.0:
        raise UsageError(f"--subjective-share {args.subjective_share}: must be in (0, 1]")
    args.output = args.output or os.path.join("out", "estimate")
    tree, _ = resolve_taxonomy(settings)
    runner = output_runner(args, settings, "preflight")
    key = require_api_key(settings, runner.spark)
    usable = _usable_conversations(runner, args.input)
    char_counts = [r.n_chars for r in usable.select("n_chars").collect()]
    sample_size = settings.classifier.anthropic.preflight.requests
    sample = [Conversation.from_row(r) for r in usable.limit(sample_size).collect()]
    if not sample:
        raise InputError(f"no usable conversation in {args.input}: nothing to send")
    results = preflight.run_preflight(settings, key, sample, tree)
    path = preflight.save_measurements(args.output, results)
    inputs = _EstimateInputs(settings, runner, args.mode or settings.classifier.mode, char_counts)
    print(format_preflight(results, settings, inputs, args.subjective_share, path))
    return 0


def format_preflight(results: Any, settings: Settings, inputs: _EstimateInputs, share: float, path: str) -> str:
    """The preflight's measurements per kind, and what they project for the whole input."""
    from wildvalues.classifier import preflight

    sent = sum(r.requests for r in results)
    lines = [
        f"preflight: {sent} request(s), {preflight.spent_usd(results, settings):.4f} USD spent; "
        "all kinds answered as the run needs",
        "  tokens per answer (measured)",
        f"    {'kind':<11}{'model':<20}{'answered':>9}{'input':>9}{'cache wr':>10}{'cache rd':>10}"
        f"{'output':>9}{'thinking':>10}{'tokenizer':>11}",
    ]
    for r in results:
        answered = f"{r.answered}/{r.requests}"
        factor = r.tokenizer_factor()
        lines.append(
            f"    {r.plan.kind:<11}{r.plan.model:<20}{answered:>9}{r.per_answer('input_tokens'):>9,.1f}"
            f"{r.per_answer('cache_creation_input_tokens'):>10,.1f}{r.per_answer('cache_read_input_tokens'):>10,.1f}"
            f"{r.per_answer('output_tokens'):>9,.1f}{r.per_answer('thinking_tokens'):>10,.1f}"
            f"{'' if factor is None else f'x{factor:.3f}':>11}"
        )
    lines.append("    (output includes thinking; effort, thinking and max_tokens as the run sends them)")
    lines += projection_lines(results, settings, inputs, share)
    lines.append(f"  saved to {path}: `wildvalues estimate --output {os.path.dirname(path) or '.'}` uses it")
    return "\n".join(lines)


def projection_lines(results: Any, settings: Settings, inputs: _EstimateInputs, share: float) -> list[str]:
    """Projected cost: classification (and screening) over the whole input; per request for the rest."""
    from wildvalues.classifier.cost import AnswerFigures, estimate, usage_usd

    n = len(inputs.char_counts)
    lines = [f"  projected for the whole input ({n:,} conversations, {inputs.mode})"]
    screened = any(r.plan.kind == "screen" for r in results)
    total = 0.0
    for r in results:
        if r.plan.kind not in ("classify", "screen"):
            per_request = usage_usd(
                {k: round(r.per_answer(k)) for k in r.answered_usage}, settings.model_entry(r.plan.model).prices
            )
            lines.append(
                f"    {r.plan.kind:<11}{per_request:.5f} USD per request (online; how many depends on the values found)"
            )
            continue
        factor = r.tokenizer_factor() or settings.model_entry(r.plan.model).tokenizer_factor
        answer = AnswerFigures(r.per_answer("output_tokens"), "measured: preflight", factor, "measured: preflight")
        prompt = "screen" if r.plan.kind == "screen" else "extract"
        part = share if screened and r.plan.kind == "classify" else 1.0
        projected = estimate(char_counts=inputs.char_counts, **inputs.figures(r.plan.model, answer, prompt, part))
        total += projected.cost_usd
        lines.append(
            f"    {r.plan.kind:<11}{projected.requests:,} requests, {projected.cost_usd:,.4f} USD "
            f"(input {projected.input_tokens:,}, cache write {projected.cache_write_tokens:,}, "
            f"cache read {projected.cache_read_tokens:,}, output {projected.output_tokens:,} tokens)"
        )
    if screened:
        lines.append(f"    (two-pass: {share:.0%} of conversations assumed subjective, as --subjective-share)")
    lines.append(
        f"    classification total {total:,.4f} USD" + (" (batch discount applied)" if inputs.mode == "batch" else "")
    )
    return lines


def format_estimates(one_pass: Any, two_pass: Any | None = None, subjective_share: float | None = None) -> str:
    """Estimates side by side: one pass, and two-pass (screen, then extraction) when given."""
    columns = [one_pass] if two_pass is None else [one_pass, two_pass]

    def duration(result: Any) -> str:
        if result.duration_minutes is None:
            return "within 24 hours (batch)"
        return f"{result.duration_minutes:,.1f} min ({result.bottleneck})"

    rows = [
        ("requests", lambda r: f"{r.requests:,}"),
        ("input tokens", lambda r: f"{r.input_tokens:,}"),
        ("cache write tokens", lambda r: f"{r.cache_write_tokens:,}"),
        ("cache read tokens", lambda r: f"{r.cache_read_tokens:,}"),
        ("output tokens", lambda r: f"{r.output_tokens:,} (expected)"),
        ("cache-hit share", lambda r: f"{r.cache_hit_share:.1%}"),
        ("cost", lambda r: f"{r.cost_usd:,.2f} USD"),
        ("duration", duration),
    ]
    header = ["one pass"] if two_pass is None else ["one pass", "two-pass"]
    width = 34
    lines = [f"estimate for {one_pass.model} ({one_pass.mode})"]
    if two_pass is not None:
        lines.append(f"  two-pass: {two_pass.model}, {subjective_share:.0%} of conversations assumed subjective")
        lines.append(f"  {'':<20}" + "".join(f"{h:>{width}}" for h in header))
    for label, cell in rows:
        lines.append(f"  {label:<20}" + "".join(f"{cell(r):>{width}}" for r in columns))
    lines.append(f"  token counts        {one_pass.token_source}")
    notes = dict.fromkeys(n for r in columns for n in r.notes)  # once each, in order
    lines += [f"  note: {n}" for n in notes]
    return "\n".join(lines)
