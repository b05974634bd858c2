"""Benchmark: what classifying with Claude costs per conversation, one pass or two-pass, cached or not.

    .venv/bin/python bench/cost.py [--n 1000] [--subjective-share 0.44] [--partitions 2]

Generates `n` distinct synthetic conversations of which `subjective-share` are subjective by the
emulator's own labels (the study kept 44%), then runs the real classify stage (through the
Runner, Spark, mapInArrow, the real SDK) against an in-process emulator in four modes, each on
a fresh output and a fresh emulator (an empty prompt cache):

* one_pass_uncached: the extraction model for every conversation, no prompt caching;
* one_pass_cached: the same with the instructions cached (the default one-pass run);
* two_pass_cached: the screen model first, only subjective conversations to extraction;
* two_pass_cached_batch: two-pass through the Message Batches API (the batch discount).

It prints JSON `{"modes": {...}}`; each mode has `usd_per_1000` and billable input-token
equivalents per conversation, computed from the usage the emulator reported (the token columns
of the run's `classification_cache` rows, failed answers included) and the settings' prices.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES: dict[str, dict[str, Any]] = {
    "one_pass_uncached": {"screen": False, "caching": False, "mode": "online"},
    "one_pass_cached": {"screen": False, "caching": True, "mode": "online"},
    "two_pass_cached": {"screen": True, "caching": True, "mode": "online"},
    "two_pass_cached_batch": {"screen": True, "caching": True, "mode": "batch"},
}


def write_input(path: str, n: int, subjective_share: float, seed: int) -> dict[str, int]:
    """`n` distinct synth records, round(n * share) of them subjective by the offline labels."""
    from wildvalues.classifier.offline import OfflineClassifier
    from wildvalues.demo.synth import as_conversation, generate_conversations
    from wildvalues.taxonomy.tree import load_tree

    tree_path = os.environ.get("WILDVALUES_TAXONOMY", os.path.join(REPO, "..", "shared", "data", "values_tree.csv"))
    labeller = OfflineClassifier(load_tree(tree_path))
    wanted = {True: round(n * subjective_share), False: n - round(n * subjective_share)}
    chosen: list[dict] = []
    seen: set[str] = set()
    for record in generate_conversations(n * 20, seed):
        content = json.dumps(record["messages"], sort_keys=True)
        if content in seen:
            continue  # identical content is classified once: keep every request distinct
        seen.add(content)
        subjective = bool(labeller.classify_payload(as_conversation(record))["is_subjective"])
        if wanted[subjective] > 0:
            wanted[subjective] -= 1
            chosen.append(record)
        if not any(wanted.values()):
            break
    if any(wanted.values()):
        raise SystemExit(f"could not draw {n} distinct conversations at share {subjective_share}")
    with open(path, "w", encoding="utf-8") as handle:
        for record in chosen:
            handle.write(json.dumps(record) + "\n")
    return {"conversations": len(chosen), "subjective": round(n * subjective_share)}


def run_mode(spark, work: str, source: str, name: str, mode: dict[str, Any], args: argparse.Namespace) -> dict:
    """One mode on a fresh output and emulator: the stage's metrics and the emulator's request counts."""
    from wildvalues.demo.emulator import Emulator
    from wildvalues.io.tables import TableStore
    from wildvalues.pipeline.runner import Runner
    from wildvalues.pipeline.stage import StageOptions
    from wildvalues.settings import settings_for
    from wildvalues.stages import stage_named

    classifier: dict[str, Any] = {
        "name": "anthropic",
        "mode": mode["mode"],
        "partitions": args.partitions,
        "chunk_size": 0,
        "screen_model": args.screen_model if mode["screen"] else None,
        "anthropic": {
            "model": args.model,
            "prompt_caching": mode["caching"],
            "concurrency": 32,
            "batch_size": 100_000,
            "batch_poll_interval": 0.2,
        },
    }
    # The emulator's limits, not an organisation's: the defaults are the lowest tier's.
    limits = {"rpm": 4000, "itpm": 2_000_000, "otpm": 400_000}
    models = {model: {"limits": limits} for model in (args.model, args.screen_model)}
    config = settings_for(overrides={"classifier": classifier, "models": models})
    output = os.path.join(work, name)
    with Emulator(batch_processing_s=0.2) as emulator:
        os.environ["ANTHROPIC_BASE_URL"] = emulator.base_url
        store = TableStore(spark, output, config.tables)
        runner = Runner(spark, config, store, f"bench-{name}", input_path=source)
        runner.run_stage(stage_named("ingest"), StageOptions())
        started = time.monotonic()
        runner.run_stage(stage_named("classify"))
        metrics = dict(runner.metrics)
        seconds = time.monotonic() - started
        requests = emulator.requests_by_model()
    conversations = store.read("conversations").count()
    per_model = tokens_by_model(store, f"bench-{name}")
    return summarise(config, metrics, per_model, conversations, requests, seconds, mode["mode"] == "batch")


def tokens_by_model(store, run_id: str) -> dict[str, dict[str, int]]:
    """The run's billed tokens per model, from its classification_cache rows (errors included)."""
    from pyspark.sql import functions as F

    columns = {
        "input": "input_tokens",
        "cache_write": "cache_creation_input_tokens",
        "cache_read": "cache_read_input_tokens",
        "output": "output_tokens",
        "thinking": "thinking_tokens",  # part of output
        "answers": "answers",
    }
    rows = (
        store.read("classification_cache")
        .filter((F.col("run_id") == run_id) & F.col("model").isNotNull())
        .withColumn("answers", F.lit(1))
        .groupBy("model")
        .agg(*[F.sum(c).alias(k) for k, c in columns.items()])
        .collect()
    )
    return {r["model"]: {k: int(r[k] or 0) for k in columns} for r in rows}


def summarise(
    config,
    metrics: dict,
    per_model: dict[str, dict[str, int]],
    conversations: int,
    requests: dict[str, int],
    seconds: float,
    batch: bool,
) -> dict:
    """usd_per_1000 and billable input-token equivalents per conversation, for one mode."""
    discount = config.batch_discount if batch else 1.0
    reference = config.model_entry(config.classifier.anthropic.model).prices.input
    usd = 0.0
    input_side_usd = 0.0
    for model, tokens in per_model.items():
        price = config.model_entry(model).prices
        # A batch writes its cache for an hour (the batch page's advice), at the 1-hour price.
        write_price = price.one_hour_write() if batch else price.cache_write
        inputs = tokens["input"] * price.input + tokens["cache_write"] * write_price
        inputs += tokens["cache_read"] * price.cache_read
        input_side_usd += discount * inputs / 1e6
        usd += discount * (inputs + tokens["output"] * price.output) / 1e6
    return {
        "conversations": conversations,
        "requests_by_model": dict(sorted(requests.items())),
        "tokens_by_model": per_model,
        "output_tokens_per_answer": {m: round(t["output"] / max(1, t["answers"]), 1) for m, t in per_model.items()},
        "thinking_tokens_per_answer": {m: round(t["thinking"] / max(1, t["answers"]), 1) for m, t in per_model.items()},
        "cache_hit_share": round(float(metrics["cache_hit_share"]), 4),
        "usd_per_1000": round(1000.0 * usd / conversations, 4),
        # input, cache-write and cache-read spend per conversation, as tokens at the extraction
        # model's full input price (the study's way would be every prompt token at that price)
        "billable_input_token_equivalents_per_conversation": round(input_side_usd * 1e6 / reference / conversations, 1),
        "stage_cost_usd": round(float(metrics["cost_usd"]), 6),  # the MLflow metric: the same figure
        "failed_answers_cost_usd": round(float(metrics["failed_answers_cost_usd"]), 6),
        "classification_errors": int(metrics["classification_errors"]),
        "stage_seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--subjective-share", type=float, default=0.44)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--model", default="claude-sonnet-5-5")
    parser.add_argument("--screen-model", default="claude-haiku-4-5")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    args = parser.parse_args(argv)

    from wildvalues.pipeline.spark import build_session
    from wildvalues.settings.sections import SparkSettings

    os.environ.setdefault("ANTHROPIC_API_KEY", "sk-ant-emulator-not-a-real-key")
    os.environ.setdefault("MLFLOW_TRACKING_URI", "file://" + tempfile.mkdtemp(prefix="wildvalues-cost-mlruns-"))
    work = tempfile.mkdtemp(prefix="wildvalues-cost-")
    source = os.path.join(work, "conversations.jsonl")
    result: dict[str, Any] = {"input": write_input(source, args.n, args.subjective_share, args.seed)}
    result.update(model=args.model, screen_model=args.screen_model)
    spark = build_session(
        SparkSettings(master=f"local[{max(2, args.partitions)}]", shuffle_partitions=args.partitions, progress=False)
    )
    try:
        modes = {}
        for name in args.modes.split(","):
            modes[name] = run_mode(spark, work, source, name, MODES[name], args)
        result["modes"] = modes
        if "one_pass_uncached" in modes and "two_pass_cached" in modes:
            baseline = modes["one_pass_uncached"]["usd_per_1000"]
            result["two_pass_cached_vs_one_pass_uncached"] = round(
                modes["two_pass_cached"]["usd_per_1000"] / baseline, 3
            )
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(REPO, "lib"))
    sys.exit(main())
