"""Benchmark: a whole Claude run per model against the emulator in its documented-behaviour mode.

    .venv/bin/python bench/models.py [--n 40] [--models claude-sonnet-5-5,claude-opus-5-5,...]

For each model: `wildvalues estimate`, then `wildvalues run --classifier anthropic` on the same `n`
generated conversations, with Claude adjudication (taxonomy.mode both, every placement below 0.9
asked), the Claude namer and the Claude label audit, against a fresh emulator whose model facts come
from the platform documentation (lib/wildvalues/demo/documented_models.yml), not from our table. It
prints JSON, per model: the run's exit code, error rows, requests the API refused (4xx other than
429), answers cut at max_tokens, fallbacks of adjudication, naming and the audit, thinking and
output tokens per classification answer, the run's cost per 1,000 conversations and what `estimate`
predicted for the same input: before the run (assumed figures) and after it (measured from the
run's preflight and cached answers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODELS = "claude-sonnet-5-5,claude-opus-5-5,claude-haiku-5-5,claude-sonnet-5"
CLAUDE_EVERYWHERE = (
    "--set", "taxonomy.mode=both", "--set", "taxonomy.adjudicate=true", "--set", "taxonomy.adjudicate_below=0.9",
    "--set", "discovery.namer=claude", "--set", "discovery.min_values=10", "--set", "privacy.audit=claude",
)  # fmt: skip
FALLBACKS = ("adjudication_failures", "naming_ai_failures", "naming_human_failures", "label_audit_failures")


def cli(args: list[str], cwd: str, env: dict[str, str]) -> tuple[int, str, str]:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "wildvalues.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    return done.returncode, done.stdout, done.stderr


def run_metrics(output: str) -> dict[str, float]:
    """The latest MLflow run's metrics, under the stage's names."""
    import mlflow

    from wildvalues.io.tracking import stage_metric

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{output}/mlflow.db")
    experiments = [e.experiment_id for e in client.search_experiments()]
    (run,) = client.search_runs(experiments, max_results=1, order_by=["attributes.start_time DESC"])
    return {stage_metric(k): v for k, v in run.data.metrics.items()}


def answer_tokens(output: str) -> dict[str, float]:
    """Output and thinking tokens per classification answer, from the run's cache rows."""
    from deltalake import DeltaTable

    rows = DeltaTable(os.path.join(output, "tables", "classification_cache")).to_pyarrow_table().to_pylist()
    answers = [r for r in rows if r["kind"] == "result"]
    count = max(1, len(answers))
    return {
        "output_tokens_per_answer": round(sum(r["output_tokens"] for r in answers) / count, 1),
        "thinking_tokens_per_answer": round(sum(r["thinking_tokens"] or 0 for r in answers) / count, 1),
    }


def estimated_usd_per_1000(stdout: str, n: int) -> float | None:
    """The one-pass cost `estimate --json` predicted, per 1,000 conversations."""
    start = stdout.find("\n{")
    if start < 0:
        return None
    cost = json.loads(stdout[start:])["one_pass"]["cost_usd"]
    return round(1000.0 * float(cost) / n, 4)


def one_model(model: str, source: str, n: int, work: str) -> dict[str, Any]:
    from wildvalues.demo.emulator import Emulator

    output = os.path.join(work, model)
    with Emulator(latency_ms=0) as emulator:
        env = {
            **os.environ,
            "ANTHROPIC_API_KEY": "sk-ant-emulator-not-a-real-key",
            "ANTHROPIC_BASE_URL": emulator.base_url,
        }
        # The emulator's limits, not an organisation's (the defaults are the lowest tier's).
        limits = "{rpm: 4000, itpm: 2000000, otpm: 400000}"
        model_args = ["--classifier", "anthropic", "--model", model, "--set", f"models.{model}.limits={limits}"]
        estimate_args = ["--model", model, "--set", f"models.{model}.limits={limits}"]  # estimate is Claude's only
        _, before, _ = cli(["estimate", "--input", source, *estimate_args, "--json"], work, env)
        run_args = ["run", "--input", source, "--output", output, *model_args, *CLAUDE_EVERYWHERE]
        code, _, stderr = cli(run_args, work, env)
        # Again once the run's preflight and cached answers are there to measure from.
        _, after, _ = cli(["estimate", "--input", source, "--output", output, *estimate_args, "--json"], work, env)
        log = list(emulator.request_log)
    messages = [e for e in log if e["path"] == "/v1/messages"]
    statuses = Counter(e["status"] for e in messages)
    metrics = run_metrics(output) if code in (0, 4) else {}
    return {
        "exit_code": code,
        "stderr_tail": stderr.strip().splitlines()[-3:] if code else [],
        "classification_errors": int(metrics.get("classification_errors", -1)),
        "refused_requests": sum(n for status, n in statuses.items() if 400 <= status < 500 and status != 429),
        "cut_answers": sum(1 for e in messages if e.get("stop_reason") == "max_tokens"),
        "fallbacks": {name: int(metrics.get(name, 0)) for name in FALLBACKS},
        **(answer_tokens(output) if metrics else {}),
        "usd_per_1000": round(1000.0 * float(metrics.get("cost_usd", 0.0)) / n, 4),
        "estimate_usd_per_1000_assumed": estimated_usd_per_1000(before, n),
        "estimate_usd_per_1000_measured": estimated_usd_per_1000(after, n),
        "requests": len(messages),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--models", default=DEFAULT_MODELS)
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="wildvalues-models-")
    os.environ.setdefault("WILDVALUES_TAXONOMY", os.path.join(REPO, "..", "shared", "data", "values_tree.csv"))
    try:
        source = os.path.join(work, "conversations.jsonl")
        code, _, stderr = cli(
            ["synth", "--n", str(args.n), "--output", source, "--seed", str(args.seed)], work, dict(os.environ)
        )
        if code:
            raise SystemExit(f"synth failed: {stderr.strip()}")
        result = {model: one_model(model, source, args.n, work) for model in args.models.split(",")}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"n": args.n, "models": result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(REPO, "lib"))
    sys.exit(main())
