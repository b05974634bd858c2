"""Benchmark: the fixed cost of each stage, from whole `wildvalues run`s at several sizes.

    .venv/bin/python bench/overhead.py [--sizes 50,2000,100000] [--seed 3] [--set KEY=VALUE ...]

For each size it generates that many conversations, runs the real CLI in a fresh process (with the
report, as a user would), and reads the stage timings the run logged to MLflow. It prints JSON:
per size the wall time of the whole command (JVM start and MLflow included), the seconds of each
stage, the Spark jobs each stage started (the same on a busy machine) and what is left outside
the stages (session start, settings, tracking); then, per stage, the fixed cost, the intercept
of a straight line through the two smallest sizes (what the stage costs before it has any
work), and the cost per 1,000 conversations from the two largest.
Run it alone on the machine: two cores shared with anything else skew every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ("ingest", "classify", "taxonomy", "analyze", "validate", "report")


def run_once(n: int, seed: int, root: str, assignments: tuple[str, ...] = ()) -> dict:
    """One generated input of n conversations through `wildvalues run` (`--set` each assignment); its timings."""
    output = os.path.join(root, f"n{n}")
    source = os.path.join(root, f"conversations-{n}.jsonl.gz")
    cli = [sys.executable, "-m", "wildvalues.cli"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    subprocess.run(
        [*cli, "synth", "--n", str(n), "--output", source, "--seed", str(seed)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    started = time.monotonic()
    sets = [arg for assignment in assignments for arg in ("--set", assignment)]
    result = subprocess.run(
        [*cli, "run", "--input", source, "--output", output, *sets], env=env, cwd=REPO, capture_output=True, text=True
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"run of {n} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    from wildvalues.io.tracking import find_mlflow_run, stage_metrics

    found = find_mlflow_run(output, None)
    metrics = stage_metrics(found.data.metrics) if found else {}  # MLflow's prefixed names -> the stages' own
    stages = {s: round(metrics[f"seconds_{s}"], 2) for s in STAGES if f"seconds_{s}" in metrics}
    jobs = {s: int(metrics[f"spark_jobs_{s}"]) for s in STAGES if f"spark_jobs_{s}" in metrics}
    return {
        "conversations": int(metrics.get("conversations", 0)),
        "wall_seconds": round(wall, 2),
        "stage_seconds": stages,
        "stage_spark_jobs": jobs,  # independent of machine load, unlike the seconds
        "outside_stages_seconds": round(wall - sum(stages.values()), 2),
    }


def fixed_costs(runs: dict[int, dict]) -> dict[str, dict[str, float]]:
    """Per stage: the intercept through the two smallest sizes and the slope of the two largest."""
    sizes = sorted(runs)
    small, next_small, large = sizes[0], sizes[1], sizes[-1]
    before_large = sizes[-2]
    figures = {}
    for stage in STAGES:
        seconds = {n: runs[n]["stage_seconds"].get(stage) for n in sizes}
        if any(value is None for value in seconds.values()):
            continue
        slope_small = (seconds[next_small] - seconds[small]) / (next_small - small)
        slope_large = (seconds[large] - seconds[before_large]) / (large - before_large)
        figures[stage] = {
            "fixed_seconds": round(max(seconds[small] - slope_small * small, 0.0), 2),
            "seconds_per_1000": round(slope_large * 1000, 3),
        }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,2000,100000", help="comma-separated conversation counts")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--keep", default=None, help="keep the outputs under this directory")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every run, as `wildvalues run --set` takes it (e.g. spark.jvm_options=''); repeatable",
    )
    args = parser.parse_args(argv)
    sizes = sorted({int(size) for size in args.sizes.split(",")})
    if len(sizes) < 2:
        parser.error("--sizes needs at least two sizes")
    root = args.keep or tempfile.mkdtemp(prefix="wildvalues-overhead-")
    try:
        runs = {n: run_once(n, args.seed, root, tuple(args.set)) for n in sizes}
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    report = {"settings": args.set, "runs": {str(n): run for n, run in runs.items()}, "per_stage": fixed_costs(runs)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
