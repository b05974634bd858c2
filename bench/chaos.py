"""Chaos suite: the real `wildvalues run` CLI through the faults real clusters produce, counted.

    .venv/bin/python bench/chaos.py [--n 300] [--cases kill_ingest,kill_classify,...] [--keep DIR]

Every case runs the CLI in a subprocess on generated conversations (Claude cases against an
in-process emulator of the Messages and Batches APIs, through the real SDK) and prints one JSON
object `{"cases": {name: {...}}}` with, per case: conversations in, kept, quarantined, classified,
classification errors, duplicate ids, API requests sent versus conversations that needed one,
whether every Delta table is readable at a committed version, exit codes and seconds.

Cases:
- kill_<stage> (ingest, classify, taxonomy, validate): `kill -9` of the run's process group (the
  CLI, its JVM and Python workers) while that stage runs, then the same command again; the final
  tables are compared with an uninterrupted run (`equal_to_uninterrupted`), and for classify the
  rerun's classification answers with the contents not yet in the cache (`repaid` is the
  difference; `requests_sent_rerun` counts every stage's requests, the label audit's too);
- concurrent: two runs on one output at once: the second stops at once with the lock's one line;
- faults_30pct: the emulator fails 30% of requests; every conversation ends classified or in
  classification_errors (`lost` = 0);
- rpm_60: a 60 requests-per-minute limit, so that 429s dominate; `lost` = 0;
- batch_kill: `--mode batch` killed while polling, then rerun: each batch created exactly once;
- malformed: a directory of damaged files and files that are one-line errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from wildvalues.demo.chaos import (
    LOCK_FILE,
    cached_keys,
    counts,
    fingerprint,
    kill_when,
    last_line,
    rows,
    run_to_end,
    start,
    tables_state,
    wait_for,
    write_error_inputs,
    write_malformed,
)

CACHE = "classification_cache"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared")
KEY = "sk-ant-chaos-not-a-real-key"
LEAN = {"spark": {"master": "local[2]", "driver_memory": "2g", "shuffle_partitions": 2}}
CASES = (
    "kill_ingest",
    "kill_classify",
    "kill_taxonomy",
    "kill_validate",
    "concurrent",
    "faults_30pct",
    "rpm_60",
    "batch_kill",
    "malformed",
)


def cli_env(base_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "WILDVALUES_ENV")}
    env.setdefault("WILDVALUES_TAXONOMY", os.path.abspath(os.path.join(SHARED, "data", "values_tree.csv")))
    env.setdefault("WILDVALUES_EMBEDDING_MODEL", os.path.abspath(os.path.join(SHARED, "models", "minilm-static")))
    env["PYSPARK_PYTHON"] = sys.executable
    if base_url:
        env.update(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=base_url)
    return env


def write_config(path: str, classifier: str, chunk_size: int, extra: dict | None = None) -> str:
    import yaml

    config = {**LEAN, "classifier": {"name": classifier, "chunk_size": chunk_size}}
    if classifier == "anthropic":
        config["classifier"]["anthropic"] = {"concurrency": 8, "max_attempts": 8, "batch_size": 64}
    for key, value in (extra or {}).items():
        config[key] = {**config.get(key, {}), **value}
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle)
    return path


def run_args(input_path: str, output: str, config: str, *more: str) -> list[str]:
    # One run id, as a resumed job has: a rerun after a kill replaces that run's rows (a new run
    # id would be a second run beside the killed one's partial rows).
    return [sys.executable, "-m", "wildvalues.cli", "run", "--input", input_path, "--output", output,
            "--config", config, "--no-report", "--run-id", "chaos-run", *more]  # fmt: skip


# ------------------------------------------------------------------------------------ cases


class Bench:
    def __init__(self, root: str, n: int) -> None:
        self.root = root
        self.n = n
        self.input = os.path.join(root, "conversations input.jsonl")
        from wildvalues.demo.synth import write_jsonl

        write_jsonl(self.input, n, 3)
        self._references: dict[str, dict[str, Any]] = {}

    def output(self, name: str) -> str:
        return os.path.join(self.root, name, "out dir")

    def config(self, name: str, classifier: str, chunk: int, extra: dict | None = None) -> str:
        os.makedirs(os.path.join(self.root, name), exist_ok=True)
        return write_config(os.path.join(self.root, name, "settings.yml"), classifier, chunk, extra)

    def reference(self, classifier: str, emulator_factory: Callable[[], Any] | None = None) -> dict[str, Any]:
        """The tables of an uninterrupted run (computed once per classifier)."""
        if classifier not in self._references:
            name = f"reference_{classifier}"
            config = self.config(name, classifier, 50)
            emulator = emulator_factory() if emulator_factory else None
            try:
                env = cli_env(emulator.base_url if emulator else None)
                code, log = run_to_end(run_args(self.input, self.output(name), config), env)
                if code != 0:
                    raise RuntimeError(f"reference run failed ({code}): {log[-2000:]}")
            finally:
                if emulator:
                    emulator.stop()
            self._references[classifier] = fingerprint(self.output(name))
        return self._references[classifier]

    def kill_case(self, stage: str, emulator_factory: Callable[[], Any]) -> dict[str, Any]:
        classifier = "anthropic" if stage == "classify" else "offline"
        name = f"kill_{stage}"
        config = self.config(name, classifier, 50)
        out = self.output(name)
        emulator = emulator_factory() if classifier == "anthropic" else None
        started = time.monotonic()
        try:
            env = cli_env(emulator.base_url if emulator else None)
            args = run_args(self.input, out, config)
            # classify: after the first chunk is committed and into the second; others: 3 s in.
            marker, delay = (
                ("classify: chunk 1/", 1.5) if stage == "classify" else (f"[wildvalues] {stage}: started", 3.0)
            )
            killed, _ = kill_when(args, env, marker, delay)
            lock_left = os.path.exists(os.path.join(out, "_wildvalues.lock"))
            cached_before = cached_keys(out)
            rows_before = len(rows(out, CACHE, ["cache_key"]))
            sent_before = len(emulator.request_log) if emulator else 0
            code, log = run_to_end(args, env)
            sent = (len(emulator.request_log) - sent_before) if emulator else 0
            successes = sum(1 for e in emulator.request_log[sent_before:] if e.get("status") == 200) if emulator else 0
        finally:
            if emulator:
                emulator.stop()
        result = {
            "killed_mid_stage": killed,
            "lock_left_by_killed_run": lock_left,
            "stale_lock_taken_over": "took over a stale lock" in log,
            "rerun_exit": code,
            **counts(out),
            **tables_state(out),
            "seconds": round(time.monotonic() - started, 1),
        }
        if classifier == "anthropic":
            # The cache holds one row per answer: answers the rerun paid for beyond the
            # conversations (distinct contents) the killed run had not committed were paid twice.
            answers = len(rows(out, CACHE, ["cache_key"])) - rows_before
            needed = cached_keys(out) - cached_before
            result.update(
                requests_sent_rerun=sent,  # every stage's: the label audit asks Claude too
                answered_rerun=successes,
                classify_answers_rerun=answers,
                needed_rerun=needed,
                repaid=answers - needed,
            )
        reference = self.reference(classifier, emulator_factory)
        result["equal_to_uninterrupted"] = fingerprint(out) == reference
        return result

    def concurrent(self) -> dict[str, Any]:
        name = "concurrent"
        config = self.config(name, "offline", 0)
        out = self.output(name)
        args = run_args(self.input, out, config)
        first = start(args, cli_env())
        wait_for(os.path.join(out, LOCK_FILE))  # taken before Spark starts
        started = time.monotonic()
        code, log = run_to_end(args, cli_env())
        second_seconds = time.monotonic() - started
        first_output, _ = first.communicate(timeout=3600)
        return {
            "first_exit": first.returncode,
            "second_exit": code,
            "second_stopped_in_s": round(second_seconds, 1),
            "second_message": last_line(log),
            "second_lines": len(log.strip().splitlines()),
            "names_holder": f"(pid {first.pid} on " in log,
            **counts(out),
            **tables_state(out),
        }

    def claude_faults(self, name: str, emulator: Any, n: int | None = None, more: tuple[str, ...] = ()) -> dict:
        config = self.config(name, "anthropic", 0)
        out = self.output(name)
        args = run_args(self.input, out, config, *(("--limit", str(n)) if n else ()), *more)
        started = time.monotonic()
        try:
            code, log = run_to_end(args, cli_env(emulator.base_url))
            stats = emulator.stats()
        finally:
            emulator.stop()
        return {
            "exit": code,
            **counts(out),
            **tables_state(out),
            "requests_sent": stats["requests"],
            "by_status": stats["by_status"],
            "faults_injected": stats["faults"],
            "seconds": round(time.monotonic() - started, 1),
            **({"log_tail": log[-1500:]} if code else {}),
        }

    def batch_kill(self, emulator: Any) -> dict[str, Any]:
        name = "batch_kill"
        config = self.config(name, "anthropic", 0)
        out = self.output(name)
        args = run_args(self.input, out, config, "--mode", "batch", "--limit", "100")
        env = cli_env(emulator.base_url)
        try:
            killed, _ = kill_when(args, env, "classify: started", 12.0)
            created_before = created_batches(emulator)
            code, log = run_to_end(args, env)
            created = created_batches(emulator)
        finally:
            emulator.stop()
        return {
            "killed_while_polling": killed and created_before > 0,
            "batches_created_before_kill": created_before,
            "batches_created_in_all": created,
            "rerun_exit": code,
            **counts(out),
            **tables_state(out),
        }

    def malformed(self) -> dict[str, Any]:
        folder = os.path.join(self.root, "malformed", "in put")
        expected = write_malformed(folder)
        config = self.config("malformed", "offline", 0)
        out = self.output("malformed")
        code, log = run_to_end(run_args(folder, out, config), cli_env())
        reasons: dict[str, list[str]] = {}
        for r in rows(out, "quarantine"):
            reasons.setdefault(os.path.basename(r["source_file"]), []).append(r["reason"])
        cut = {r["conversation_id"]: r["cut_chars"] for r in rows(out, "conversations") if r["cut_chars"]}
        one_line = {}
        for label, path in write_error_inputs(os.path.join(self.root, "malformed", "errors")).items():
            error_code, error_log = run_to_end(run_args(path, self.output(f"malformed_{label}"), config), cli_env())
            one_line[label] = {
                "exit": error_code,
                "message": last_line(error_log),
                "lines": len(error_log.strip().splitlines()),
                "traceback": "Traceback" in error_log,
            }
        return {
            "exit": code,
            "traceback": "Traceback" in log,
            **counts(out),
            **tables_state(out),
            "quarantine_reasons": {name: sorted(set(reasons.get(name, []))) for name in expected},
            "cut_chars": cut,
            "skipped_logged": [line for line in log.splitlines() if "skipped" in line],
            "one_line_errors": one_line,
        }


def created_batches(emulator: Any) -> int:
    return sum(
        1
        for e in emulator.request_log
        if e.get("method") == "POST" and e.get("path") == "/v1/messages/batches" and e.get("status") == 200
    )


def emulator_factory(**options: Any) -> Callable[[], Any]:
    def make() -> Any:
        from wildvalues.demo.emulator import Emulator

        return Emulator(0, tree_path=os.path.join(SHARED, "data", "values_tree.csv"), **options).start()

    return make


def run_cases(bench: Bench, names: list[str]) -> dict[str, Any]:
    slow = emulator_factory(latency_ms=300.0, latency_jitter_ms=100.0)
    results: dict[str, Any] = {}
    for name in names:
        started = time.monotonic()
        if name.startswith("kill_"):
            results[name] = bench.kill_case(name.removeprefix("kill_"), slow)
        elif name == "concurrent":
            results[name] = bench.concurrent()
        elif name == "faults_30pct":
            results[name] = bench.claude_faults(name, emulator_factory(fault_rate=0.3)())
        elif name == "rpm_60":
            results[name] = bench.claude_faults(name, emulator_factory(rpm=60.0, burst_seconds=5.0)(), n=60)
        elif name == "batch_kill":
            results[name] = bench.batch_kill(emulator_factory(batch_processing_s=40.0)())
        elif name == "malformed":
            results[name] = bench.malformed()
        results[name].setdefault("seconds", round(time.monotonic() - started, 1))
        # The whole case on one line as it ends, so a long bench that is stopped keeps its cases.
        print(f"[chaos] {name}: {json.dumps(results[name], default=str)}", file=sys.stderr, flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="generated conversations per case")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {','.join(CASES)}")
    parser.add_argument("--keep", default=None, help="work in this directory and keep it (default: a temporary one)")
    args = parser.parse_args()
    names = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    sys.path.insert(0, os.path.join(REPO, "lib"))
    root = args.keep or tempfile.mkdtemp(prefix="wildvalues-chaos-")
    os.makedirs(root, exist_ok=True)
    results = run_cases(Bench(root, args.n), names)
    print(json.dumps({"n": args.n, "cases": results}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
