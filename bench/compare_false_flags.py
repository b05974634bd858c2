"""False flags of `wildvalues compare` on two samples from the same generator.

    .venv/bin/python bench/compare_false_flags.py [--n 2000] [--seeds 1,2] [--keep DIR]

Generates two inputs with `wildvalues synth` (same generator, different seeds), runs both into
one output with the offline classifier (two MLflow runs), and compares them twice: with the old
intervals, which count value expressions as independent (`clustered=False`), and with the
conversation-clustered ones. Nothing changed between the samples, so every flagged change is a
false flag; at 95% about 5% are expected. Prints one JSON object:
{"changes_tested": N, "flagged_old_method": a, "flagged_new_method": b, "rate_old": ..., "rate_new": ...,
 "flagged_new": [[kind, name], ...], "n": ..., "seconds": ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared")
LEAN = {"spark": {"master": "local[2]", "driver_memory": "2g", "shuffle_partitions": 2}}


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "WILDVALUES_ENV")}
    env.setdefault("WILDVALUES_TAXONOMY", os.path.abspath(os.path.join(SHARED, "data", "values_tree.csv")))
    env.setdefault("WILDVALUES_EMBEDDING_MODEL", os.path.abspath(os.path.join(SHARED, "models", "minilm-static")))
    env["PYSPARK_PYTHON"] = sys.executable
    return env


def wildvalues(*args: object, cwd: str) -> str:
    """Run the CLI; its stdout, or exit with its stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "wildvalues.cli", *map(str, args)],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"wildvalues {args[0]} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def run_id(stdout: str) -> str:
    """The wildvalues run id from a run's summary."""
    line = next(line for line in stdout.splitlines() if line.strip().startswith("run id"))
    return line.split()[2]


def measure(n: int, seeds: tuple[int, int], workdir: str) -> dict[str, object]:
    from wildvalues.analysis import compare
    from wildvalues.io.tracking import tracking_uri

    started = time.monotonic()
    config = os.path.join(workdir, "lean.yml")
    with open(config, "w", encoding="utf-8") as handle:
        yaml.safe_dump(LEAN, handle)
    output = os.path.join(workdir, "out")
    ids = []
    for seed in seeds:
        source = os.path.join(workdir, f"synth-{seed}.jsonl")
        wildvalues("synth", "--n", n, "--output", source, "--seed", seed, cwd=workdir)
        stdout = wildvalues(
            "run", "--input", source, "--output", output, "--config", config, "--no-report", cwd=workdir
        )
        ids.append(run_id(stdout))
    uri = tracking_uri(output)
    old = compare.compare_from_mlflow(uri, ids[0], ids[1], clustered=False)
    new = compare.compare_from_mlflow(uri, ids[0], ids[1])
    tested = len(new)
    return {
        "changes_tested": tested,
        "flagged_old_method": sum(c.significant for c in old),
        "flagged_new_method": sum(c.significant for c in new),
        "rate_old": round(sum(c.significant for c in old) / tested, 4) if tested else None,
        "rate_new": round(sum(c.significant for c in new) / tested, 4) if tested else None,
        "flagged_old": [[c.kind, c.name] for c in old if c.significant],
        "flagged_new": [[c.kind, c.name] for c in new if c.significant],
        "n": n,
        "seeds": list(seeds),
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="conversations per sample")
    parser.add_argument("--seeds", default="1,2", help="the two synth seeds")
    parser.add_argument("--keep", help="work in this directory and keep it (default: a temporary one)")
    args = parser.parse_args()
    first, second = (int(s) for s in args.seeds.split(","))
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        result = measure(args.n, (first, second), os.path.abspath(args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="compare-false-flags-") as workdir:
            result = measure(args.n, (first, second), workdir)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
