"""Commands over a run's values: `place` (where values land on the published tree), `discover` (the run's own tree) and `crosscheck` (a second judge)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wildvalues.cli.commands import (
    check_run,
    check_stage_claude,
    output_runner,
    resolve_settings,
    store_for_run,
    store_only,
    tracked_runner,
)
from wildvalues.errors import UsageError
from wildvalues.io.readers import InputError
from wildvalues.io.registry import Table
from wildvalues.pipeline.stage import StageOptions
from wildvalues.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from wildvalues.stages.summaries import CrosscheckSummary


def placements_of(
    settings: Settings, values: list[str], cache: Callable[[], DataFrame | None] = lambda: None
) -> list[dict[str, Any]]:
    """Where each value lands on the published tree, by the run's own placement settings.

    `cache`: the adjudication cache to reuse Claude's verdicts from, read only when Claude is asked."""
    from wildvalues.taxonomy import placement
    from wildvalues.taxonomy.embeddings import build_embedder, resolve_embedder
    from wildvalues.taxonomy.levels import trigram_placements
    from wildvalues.taxonomy.tree import resolve_taxonomy

    tree, _ = resolve_taxonomy(settings)
    if settings.taxonomy.placement == "trigram":
        placed = trigram_placements(values, tree, settings.taxonomy.similarity_threshold)
    else:
        texts = placement.texts_for(tree, values)
        vectors = dict(zip(texts, build_embedder(resolve_embedder(settings.embeddings)).embed(texts), strict=True))
        placer = placement.SemanticPlacer(tree, vectors, settings.taxonomy)
        placed = placer.place(values, vectors)
        if settings.taxonomy.adjudicate:
            placed = adjudicated_now(settings, placer, placed, vectors, cache)
    return [
        {
            "value": p.raw_value,
            "match_method": p.method,
            "match_score": p.score,
            "level_1_cluster_id": p.level_1_cluster_id,
            "level_2_cluster_id": p.level_2_cluster_id,
            "level_3_cluster_id": p.level_3_cluster_id,
        }
        for p in placed
    ]


def adjudicated_now(
    settings: Settings,
    placer: Any,
    placed: list[Any],
    vectors: dict[str, Any],
    cache: Callable[[], DataFrame | None],
) -> list[Any]:
    """`place` with taxonomy.adjudicate: Claude judges the low-confidence values, as the taxonomy
    stage does (`adjudication.adjudicate`), except those `cache` holds a verdict on; nothing is written."""
    from wildvalues.classifier.claude import ClaudeClassifier
    from wildvalues.classifier.claude_settings import client_settings, output_shape, require_api_key
    from wildvalues.taxonomy import adjudication

    model = settings.claude_model(settings.taxonomy.adjudication_model)
    shape = output_shape(settings, model)
    asked = adjudication.questions(placer, placed, vectors, settings.taxonomy, model, shape)
    if not asked:
        return placed
    frame = cache()
    cached = adjudication.cached_verdicts(frame, [q.key for q in asked]) if frame is not None else {}

    def client() -> ClaudeClassifier:
        return ClaudeClassifier(client_settings(settings, require_api_key(settings), 1, model))

    outcome = adjudication.adjudicate(asked, cached, client, model, shape)
    tally = outcome.tally
    if tally.failed:
        print(f"adjudication: {tally.failed} request(s) failed ({', '.join(sorted(tally.failures))})", file=sys.stderr)
    return adjudication.apply_verdicts(placer, placed, asked, outcome.answers, settings.taxonomy.adjudicate_below)


def adjudication_cache(args: argparse.Namespace, settings: Settings) -> DataFrame | None:
    """`--output`'s placement_adjudications (read, never written), or None: no --output, or no run's tables there."""
    from wildvalues.taxonomy import adjudication

    if args.output is None:
        return None
    if settings.tables.mode == "path" and not os.path.isdir(os.path.join(args.output, "tables")):
        return None
    store = output_runner(args, settings, "place").store
    return store.read(adjudication.TABLE) if store.exists(adjudication.TABLE) else None


def cmd_place(args: argparse.Namespace) -> int:
    """How values are mapped onto the published tree: method, score and the three clusters."""
    import json

    from wildvalues.taxonomy.tree import resolve_taxonomy

    settings = resolve_settings(args)
    if not args.values:
        raise UsageError("give at least one value, e.g. wildvalues place truthfulness")
    placed = placements_of(settings, args.values, lambda: adjudication_cache(args, settings))
    if args.json:
        print(json.dumps(placed, indent=2))
        return 0
    names = {n.cluster_id: n.name for n in resolve_taxonomy(settings)[0]}
    for row in placed:
        clusters = " > ".join(names.get(row[f"level_{k}_cluster_id"] or "", "-") for k in (3, 2, 1))
        print(f"{row['value']!r}: {row['match_method']} ({row['match_score']:.3f})  {clusters}")
    return 0


def cmd_discover(args: argparse.Namespace) -> int:
    """The run's own tree from its values (the study's method), beside the published placement."""
    from wildvalues.stages import DISCOVER

    settings = resolve_settings(args)
    check_stage_claude(settings, (DISCOVER,))
    settings, runner, run_id = store_for_run(args, settings)
    sides = (args.side,) if args.side else ("ai", "human")
    with tracked_runner(args, settings, run_id) as tracked:
        summary = tracked.run_stage(DISCOVER, StageOptions(sides=sides))
    agreement = ", ".join(
        f"level {level.level}: NMI {level.nmi:.3f}, ARI {level.ari:.3f}" for level in summary.agreement
    )
    print(f"run id {run_id}: discovered tree in discovered_taxonomy (AI) and discovered_taxonomy_human")
    print(f"  agreement with the published tree: {agreement or 'no AI tree'}")
    return 0


def crosscheck_settings(args: argparse.Namespace) -> Settings:
    """The settings with the command's judge flags in the crosscheck section."""
    settings = resolve_settings(args)
    flags = {
        "sample": args.sample,
        "seed": args.seed,
        "model": args.judge_model,
        "base_url": args.base_url,
        "judge": "openai" if args.base_url else None,
        "api_key_env": args.api_key_env,
    }
    update = {key: value for key, value in flags.items() if value is not None}
    return settings.model_copy(update={"crosscheck": settings.crosscheck.model_copy(update=update)})


def judge_model(settings: Settings, first_model: str | None) -> str:
    """The second judge's model: as configured, else the first configured Claude model not the run's."""
    section = settings.crosscheck
    if section.judge == "openai":
        if not section.model:
            raise UsageError("an OpenAI-compatible judge needs --model (the endpoint's model id)")
        if not section.base_url:
            raise UsageError("an OpenAI-compatible judge needs --base-url")
        return section.model
    if section.model:
        settings.model_entry(section.model)  # an unknown Claude model is a one-line error here
        if section.model == first_model:
            raise UsageError(f"the second judge must differ from the run's classifier ({first_model})")
        return section.model
    others = sorted(name for name in settings.models if name != first_model)
    if not others:
        raise UsageError("no second Claude model configured: give --model")
    return others[0]


def cmd_crosscheck(args: argparse.Namespace) -> int:
    """A stratified sample of a run judged again by a second model, and their agreement."""
    from pyspark.sql import functions as F

    from wildvalues.classifier.claude_settings import require_judge_key
    from wildvalues.io.tracking import find_mlflow_run, stage_metrics
    from wildvalues.stages import CROSSCHECK, stage_named

    if args.sample is not None and args.sample <= 0:
        raise UsageError("--sample must be a positive number")
    settings = crosscheck_settings(args)
    require_judge_key(settings)
    _, runner = store_only(args, "crosscheck")
    if not runner.store.exists(Table.CLASSIFICATIONS):
        raise InputError(f"no classifications under {args.output}; run `wildvalues run` first")
    runs = runner.runs()
    check_run(args.run_id, runs, args.output)
    run_id = args.run_id or runs[-1]
    labels = runner.store.read(Table.CLASSIFICATIONS).filter(F.col("run_id") == run_id)
    first = labels.select(F.coalesce("model", "classifier").alias("m")).first()
    n_classified = labels.count()
    if settings.crosscheck.sample > n_classified:
        raise UsageError(
            f"--sample {settings.crosscheck.sample} is larger than the {n_classified} conversation(s) run {run_id} classified"
        )
    model = judge_model(settings, first["m"] if first else None)
    settings = settings.model_copy(update={"crosscheck": settings.crosscheck.model_copy(update={"model": model})})
    found = find_mlflow_run(args.output, run_id)
    latest = runner.latest_run_id()
    with tracked_runner(args, settings, run_id) as tracked:
        if found:
            tracked.metrics.update(stage_metrics(found.data.metrics))
        if run_id != latest:
            tracked.local_dir = os.path.join("runs", run_id)  # report/report.html stays the latest run's
        summary = tracked.run_stage(CROSSCHECK)
        report = tracked.run_stage(stage_named("report"))
    print(format_crosscheck(run_id, summary, os.path.join(args.output, tracked.local_dir, report.html)))
    return 0


def format_crosscheck(run_id: str, summary: CrosscheckSummary, report: str) -> str:
    def number(measure: str) -> str:
        value = summary.measures.get(measure)
        return "undefined" if value is None else f"{value:.3f}"

    lines = [
        f"run id {run_id}: cross-check of {summary.compared} conversation(s), "
        f"{summary.first_model} (first) vs {summary.second_model} (second)",
        f"  kappa_subjective             {number('kappa_subjective')}  (agreement {number('agreement_subjective')})",
        f"  kappa_response_type          {number('kappa_response_type')}  (agreement {number('agreement_response_type')})",
        f"  jaccard_ai_level_1           {number('jaccard_ai_level_1')}",
        f"  overlap_ai_level_3_shares    {number('overlap_ai_level_3_shares')}",
        f"  jaccard_human_level_1        {number('jaccard_human_level_1')}",
        f"  overlap_human_level_3_shares {number('overlap_human_level_3_shares')}",
        f"  second judge errors          {summary.errors}",
        "  tables                       crosscheck_agreement, crosscheck_confusion, crosscheck_labels",
        f"  report                       {report}",
    ]
    return "\n".join(lines)
