"""Benchmark: the real classify stage (Spark, mapInArrow, ClaudeClassifier) against the emulator.

    .venv/bin/python bench/throughput.py --rpm 1000 --latency-ms 2000 --duration 120 [--partitions 2]

Runs the stage twice on fresh outputs: as configured (many requests in flight per task) and the
naive way (one request at a time per task), and prints JSON: requests, successes, 429s,
achieved requests per minute, utilization = achieved / limit, lost conversations (neither a
result nor an error row), and the ratio between the two ways. The naive run gets as many
conversations as it can finish in the same duration.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _prepare_input(path: str, n: int, seed: int) -> None:
    from wildvalues.demo.synth import write_jsonl

    write_jsonl(path, n, seed)


def _run_stage(spark, output: str, source: str, n: int, emulator, concurrency: int, partitions: int) -> dict:
    """Ingest `n` records, classify them with Claude through the emulator, return the figures."""

    from wildvalues.io.tables import TableStore
    from wildvalues.pipeline.runner import Runner
    from wildvalues.pipeline.stage import StageOptions
    from wildvalues.settings import settings_for
    from wildvalues.stages import stage_named

    config = settings_for(
        overrides={
            "classifier": {
                "name": "anthropic",
                "partitions": partitions,
                "chunk_size": 0,  # one chunk: the whole run is measured
                "anthropic": {"concurrency": concurrency, "max_attempts": 8, "batch_size": 100_000},
            },
            "models": {
                "claude-sonnet-5-5": {
                    "limits": {
                        "rpm": emulator.limits["rpm"],
                        "itpm": emulator.limits["itpm"],
                        "otpm": emulator.limits["otpm"],
                    }
                }
            },
        }
    )
    store = TableStore(spark, output, config.tables)
    runner = Runner(spark, config, store, f"bench-{concurrency}", input_path=source)
    runner.run_stage(stage_named("ingest"), StageOptions(limit=n))
    before = emulator.stats()
    first_entry = len(emulator.request_log)
    started = time.monotonic()
    runner.run_stage(stage_named("classify"))
    metrics = runner.metrics
    seconds = time.monotonic() - started
    after = emulator.stats()
    by_status = _status_delta(before, after)
    conversations = store.read("conversations").count()
    labelled = store.read("classifications").count()
    errors = store.read("classification_errors").count()
    successes = by_status.get("200", 0)
    admitted = sorted(e["admitted_at"] for e in emulator.request_log[first_entry:] if "admitted_at" in e)
    window = admitted[-1] - admitted[0] if len(admitted) > 1 else 0.0
    # The API window: first to last admitted request; the rest of the stage is Spark's fixed cost.
    achieved = (len(admitted) - 1) / (window / 60.0) if window else 0.0
    requests = sum(by_status.values())
    return {
        "concurrency_per_task": concurrency,
        "partitions": partitions,
        "conversations": conversations,
        "sent": int(metrics["sent_to_classifier"]),
        "seconds": round(seconds, 1),
        "requests": requests,
        "successes": successes,
        "status_429": by_status.get("429", 0),
        "pct_429": round(100.0 * by_status.get("429", 0) / requests, 3) if requests else 0.0,
        "other_errors": {k: v for k, v in by_status.items() if k not in ("200", "429")},
        "api_window_seconds": round(window, 1),
        "achieved_rpm": round(achieved, 1),
        "utilization": round(achieved / emulator.limits["rpm"], 3),
        "stage_rpm": round(successes / (seconds / 60.0), 1) if seconds else 0.0,
        "stage_utilization": round(successes / (seconds / 60.0) / emulator.limits["rpm"], 3) if seconds else 0.0,
        "classified": labelled,
        "error_rows": errors,
        "lost": conversations - labelled - errors,
    }


def _status_delta(before: dict, after: dict) -> dict[str, int]:
    """Responses to POST /v1/messages between two emulator stats snapshots, by status."""
    path = "/v1/messages"
    old = before.get("by_path", {}).get(path, {})
    new = after.get("by_path", {}).get(path, {})
    return {str(k): int(v) - int(old.get(k, 0)) for k, v in new.items() if int(v) - int(old.get(k, 0))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpm", type=float, default=1000)
    parser.add_argument("--latency-ms", type=float, default=2000)
    parser.add_argument("--duration", type=float, default=120, help="seconds the tuned run should take at the limit")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args(argv)

    from wildvalues.demo.emulator import Emulator
    from wildvalues.pipeline.spark import build_session
    from wildvalues.settings.sections import SparkSettings

    os.environ.setdefault("ANTHROPIC_API_KEY", "sk-ant-emulator-not-a-real-key")
    work = tempfile.mkdtemp(prefix="wildvalues-throughput-")
    source = os.path.join(work, "conversations.jsonl.gz")
    tuned_n = math.ceil(args.rpm * args.duration / 60.0)
    naive_n = max(args.partitions, math.ceil(args.partitions * args.duration / (args.latency_ms / 1000.0)))
    # Synth repeats some texts; identical content is classified once, so draw extra records.
    _prepare_input(source, int(tuned_n * 1.3) + 100, seed=11)
    spark = build_session(
        SparkSettings(master=f"local[{max(2, args.partitions)}]", shuffle_partitions=args.partitions, progress=False)
    )
    result: dict = {"rpm_limit": args.rpm, "latency_ms": args.latency_ms, "duration_target_s": args.duration}
    try:
        with Emulator(rpm=args.rpm, latency_ms=args.latency_ms, burst_seconds=1.0) as emulator:
            os.environ["ANTHROPIC_BASE_URL"] = emulator.base_url
            result["tuned"] = _run_stage(
                spark,
                os.path.join(work, "tuned"),
                source,
                int(tuned_n * 1.3) + 100,
                emulator,
                args.concurrency,
                args.partitions,
            )
            if not args.skip_naive:
                result["naive"] = _run_stage(
                    spark, os.path.join(work, "naive"), source, naive_n, emulator, 1, args.partitions
                )
                naive_rpm = result["naive"]["achieved_rpm"]
                result["speedup_vs_naive"] = (
                    round(result["tuned"]["achieved_rpm"] / naive_rpm, 1) if naive_rpm else None
                )
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(REPO, "lib"))
    sys.exit(main())
