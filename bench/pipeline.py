"""Benchmark: synth N conversations, run the whole pipeline, print JSON throughput and memory.

    .venv/bin/python bench/pipeline.py --n 100000 [--output DIR] [--keep] [--no-io-floor]

Figures: conversations per second per stage and overall (the stage timings the pipeline logs to
MLflow), and the driver's peak resident memory (the Python driver process and the JVM it
starts, read from /proc). Executors run inside the driver JVM in local mode, so the JVM figure
is the whole Spark footprint.

The I/O floor, measured in the same run (a fresh Spark session in its own process, after the
pipeline): Spark reading the same input, a text line per conversation, and writing it as one Delta
table, the least any pipeline over this input must do. `ratio_to_io_floor` is the pipeline's
total time over the floor's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    children = []
    try:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
        for child in map(int, out.split()):
            children.append(child)
            children.extend(_descendants(child))
    except (OSError, ValueError):
        pass
    return children


class PeakMemory:
    """Samples the resident memory of a process tree; keeps the driver's and the JVM's peaks."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_driver_kib = 0
        self.peak_jvm_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_driver_kib = max(self.peak_driver_kib, _rss_kib(self.pid))
            jvm = 0
            for child in _descendants(self.pid):
                try:
                    with open(f"/proc/{child}/cmdline", "rb") as handle:
                        if b"java" in handle.read():
                            jvm += _rss_kib(child)
                except OSError:
                    continue
            self.peak_jvm_kib = max(self.peak_jvm_kib, jvm)
            self._stop.wait(0.5)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _metrics(output: str) -> dict:
    """The latest run's metrics under the stages' names (MLflow holds them prefixed: `seconds/ingest`)."""
    import mlflow

    from wildvalues.io.tracking import stage_metrics

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{os.path.abspath(output)}/mlflow.db")
    experiment_ids = [client.search_experiments()[0].experiment_id]  # mlflow wraps a lone id in a list anyway
    runs = client.search_runs(experiment_ids, order_by=["start_time DESC"], max_results=1)
    return stage_metrics(runs[0].data.metrics)


def io_floor(source: str, output: str) -> float:
    """Seconds to read `source` with Spark (a line per conversation) and write it as one Delta table."""
    from wildvalues.io.delta_io import write_delta
    from wildvalues.pipeline.spark import build_session
    from wildvalues.settings import Settings

    spark = build_session(Settings().spark)
    started = time.monotonic()
    # One row per input line (one conversation each): reading, decompressing and writing, no parsing.
    write_delta(spark.read.text(source), os.path.join(output, "io_floor_conversations"), "overwrite")
    seconds = time.monotonic() - started
    spark.stop()
    return seconds


def _io_floor_in_a_new_process(cli_python: str, source: str, output: str, env: dict) -> float:
    result = subprocess.run(
        [cli_python, os.path.abspath(__file__), "--io-floor-of", source, "--output", output],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the output directory")
    parser.add_argument("--no-io-floor", action="store_true", help="skip the I/O floor measurement")
    parser.add_argument("--io-floor-of", default=None, help=argparse.SUPPRESS)  # the floor's own process
    args = parser.parse_args(argv)
    if args.io_floor_of:
        print(io_floor(args.io_floor_of, args.output))
        return 0
    output = args.output or tempfile.mkdtemp(prefix="wildvalues-bench-")
    source = os.path.join(output, "conversations.jsonl.gz")
    cli = [sys.executable, "-m", "wildvalues.cli"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}

    started = time.monotonic()
    subprocess.run(
        [*cli, "synth", "--n", str(args.n), "--output", source, "--seed", str(args.seed)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    synth_seconds = time.monotonic() - started

    process = subprocess.Popen(
        [*cli, "run", "--input", source, "--output", output, "--no-report"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with PeakMemory(process.pid) as memory:
        log, _ = process.communicate()
    if process.returncode != 0:
        print(log[-3000:], file=sys.stderr)
        return process.returncode
    metrics = _metrics(output)
    floor = None if args.no_io_floor else _io_floor_in_a_new_process(sys.executable, source, output, env)
    conversations = metrics.get("conversations", 0.0)
    stages = ("ingest", "classify", "taxonomy", "analyze", "validate")
    result = {
        "n": args.n,
        "synth_seconds": round(synth_seconds, 2),
        "conversations": int(conversations),
        "subjective": int(metrics.get("subjective", 0)),
        "seconds": {s: round(metrics[f"seconds_{s}"], 2) for s in stages if f"seconds_{s}" in metrics},
        "conversations_per_second": {
            s: round(conversations / metrics[f"seconds_{s}"], 1) for s in stages if metrics.get(f"seconds_{s}")
        },
        "overall_seconds": round(metrics.get("seconds_total", 0.0), 2),
        "overall_conversations_per_second": round(metrics.get("conversations_per_second", 0.0), 1),
        "io_floor_seconds": round(floor, 2) if floor else None,
        "ratio_to_io_floor": round(metrics.get("seconds_total", 0.0) / floor, 2) if floor else None,
        "peak_driver_python_rss_mib": round(memory.peak_driver_kib / 1024, 1),
        "peak_driver_jvm_rss_mib": round(memory.peak_jvm_kib / 1024, 1),
        "output": output if args.keep else None,
    }
    print(json.dumps(result, indent=2))
    if not args.keep and not args.output:
        shutil.rmtree(output, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
