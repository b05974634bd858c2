"""End-to-end helpers: the `wildvalues` command (in this process, or in a process of its own where
the process is what a test proves), the summary's lines, and the shared runs that conftest.py
offers as session fixtures.

Two full runs serve most end-to-end modules, each built once per test process:
- `offline_run`: generated conversations with planted PII, an account field, malformed lines,
  paths with spaces, the report (then again with screenshots) and the public export;
- `claude_run`: a Claude-classified run against one emulator with taxonomy.mode both, Claude
  adjudication and the Claude namer, with its report (the cross-check tests judge a copy).

A third, `history_run`, holds two weekly runs in one output with k lowered, for runs as history
and for the outside readers.

A test that changes an output works on a copy of it (`copy_output`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from deltalake import DeltaTable

from wildvalues.settings.claude import DEFAULT_MODELS

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.clirun import CliResult, forget_mlflow_artifact_locations, run_cli
    from tests.conftest import SMALL_INPUT_SPARK, STATIC_MODEL_PATH, TREE_PATH
else:
    from clirun import CliResult, forget_mlflow_artifact_locations, run_cli
    from conftest import SMALL_INPUT_SPARK, STATIC_MODEL_PATH, TREE_PATH

# Lean settings for a 2-core machine; in this process the test session's Spark serves every
# command, and `spark` is only what the resolved settings record.
# Screenshots start Chromium in every run; the privacy run and tests/test_report_browser.py take them.
# The default rate limits are the lowest tier's (50 requests a minute): a run of hundreds of
# conversations against the emulator would spend minutes waiting on them.
EMULATOR_LIMITS = {"rpm": 4000, "itpm": 2_000_000, "otpm": 400_000}
LEAN_CONFIG = {
    "spark": {"master": "local[2]", "driver_memory": "1g", "shuffle_partitions": 2, "conf": SMALL_INPUT_SPARK},
    "report": {"screenshots": False},
    "models": {model: {"limits": EMULATOR_LIMITS} for model in DEFAULT_MODELS},
}
PROCESS_TIMEOUT = 1800


def cli_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "WILDVALUES_ENV", "WILDVALUES_DEBUG")
    }
    env["WILDVALUES_TAXONOMY"] = os.path.abspath(TREE_PATH)
    env["WILDVALUES_EMBEDDING_MODEL"] = STATIC_MODEL_PATH  # the CLI runs in a temporary directory
    env["PYSPARK_PYTHON"] = sys.executable
    env.update(extra)
    return env


def wildvalues(*args: Any, cwd: Any, env: dict[str, str] | None = None) -> CliResult:
    """`wildvalues *args` in this process (tests/clirun.py)."""
    return run_cli(list(args), cwd, env or cli_env())


def wildvalues_process(*args: Any, cwd: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m wildvalues.cli *args` in a process of its own: for what only a process shows."""
    return subprocess.run(
        [sys.executable, "-m", "wildvalues.cli", *map(str, args)],
        cwd=str(cwd),
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )


def assert_ok(result: CliResult | subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}"
    )
    assert "Traceback" not in result.stderr, result.stderr[-5000:]


def one_line_error(result: CliResult | subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def summary_value(stdout: str, label: str) -> str:
    match = re.search(rf"^  {re.escape(label)}\s+(.+)$", stdout, re.M)
    assert match, f"no '{label}' line in the summary:\n{stdout}"
    return match.group(1)


def summary_run_id(stdout: str) -> tuple[str, str]:
    match = re.search(r"^  run id\s+(\S+)\s+\(MLflow run (\w+)\)", stdout, re.M)
    assert match, f"no 'run id' line in the summary:\n{stdout}"
    run_id, mlflow_run_id = match.groups()
    return run_id, mlflow_run_id


def write_config(path: Path, settings: dict) -> Path:
    path.write_text(yaml.safe_dump(settings))
    return path


# Where MLflow's SQLite store keeps absolute artifact locations (MLflow 3's schema).
MLFLOW_LOCATION_COLUMNS = {
    "experiments": "artifact_location",
    "runs": "artifact_uri",
    "logged_models": "artifact_location",
}


def copy_output(out: Path, to: Path) -> Path:
    """A copy of a shared output for a test that changes it, its MLflow artifacts included.

    MLflow stores each experiment's and run's artifact location as an absolute URI, so a plain copy
    would still log (a report, a retention's deletions) into the original's artifacts."""
    shutil.copytree(out, to)
    store = to / "mlflow.db"
    if store.exists():
        import sqlite3

        before, after = Path(out).resolve().as_uri() + "/", Path(to).resolve().as_uri() + "/"
        with sqlite3.connect(store) as db:
            for table, column in MLFLOW_LOCATION_COLUMNS.items():
                db.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (before, after))
        db.close()
    return to


# --------------------------------------------------------------------------------- the offline run

OFFLINE_N = 240
PLANT_EVERY = 6  # one conversation in six carries the PII markers
HARMLESS_IN = 3  # the harmless word only in the first three of those: fewer than k conversations
NAME = "Quillon Marwick"
EMAIL = "quillon.marwick@example.org"
CARD = "4539 1488 0343 6467"  # Luhn-valid test number
PHONE = "(415) 867-5309"
ACCOUNT_PREFIX = "acct-marwick-"
ACCOUNTS = 12
HARMLESS = "snorkelwhistle"
MALFORMED = [
    "{this is not json",
    '["a", "list"]',
    json.dumps({"id": "only-user", "messages": [{"role": "user", "content": "hello?"}]}),
]


def plant(record: dict, index: int) -> dict:
    """The account id on every record (twelve users); PII on some, the harmless word on three."""
    record = {**record, "account": f"{ACCOUNT_PREFIX}{index % ACCOUNTS:04d}"}
    if index % PLANT_EVERY:
        return record
    messages = [dict(m) for m in record["messages"]]
    user = next(m for m in messages if m["role"] == "user")
    text = user["content"] if isinstance(user["content"], str) else " ".join(p["text"] for p in user["content"])
    user["content"] = (
        f"My name is {NAME}. You can email me at {EMAIL} or call {PHONE}; my card is {CARD}. "
        + (f"I collect {HARMLESS} recordings. " if index < PLANT_EVERY * HARMLESS_IN else "")
        + text
    )
    return {**record, "messages": messages}


def build_offline_run(root: Path) -> dict[str, Any]:
    """Synth, plant, run (report included), the report again with screenshots, then the export."""
    config = write_config(root / "lean.yml", LEAN_CONFIG)
    synth = root / "synth.jsonl"
    assert_ok(wildvalues("synth", "--n", OFFLINE_N, "--output", synth, "--seed", 5, cwd=root))
    records = [json.loads(line) for line in synth.read_text().splitlines()]
    planted = root / "planted input.jsonl"
    lines = [json.dumps(plant(r, i)) for i, r in enumerate(records)] + MALFORMED
    planted.write_text("".join(line + "\n" for line in lines))
    # Paths with spaces, so that every reader and writer of the output is tried with one too.
    out, exported = root / "out with spaces", root / "public export"
    common = ("--config", config)
    run = wildvalues("run", "--input", planted, "--output", out, "--user-field", "account", *common, cwd=root)
    assert_ok(run)
    # Screenshots on here only (LEAN_CONFIG turns them off): their PNGs are searched too.
    report = wildvalues("report", "--output", out, *common, "--set", "report.screenshots=true", cwd=root)
    assert_ok(report)
    export = wildvalues("export", "--output", out, "--to", exported, *common, cwd=root)
    assert_ok(export)
    return {
        "root": root,
        "config": config,
        "input": planted,
        "out": out,
        "export": exported,
        "result": run,
        "results": [run, report, export],
    }


# --------------------------------------------------------------------------------- the Claude run

CLAUDE_N = 300
CLAUDE_KEY = "sk-ant-api03-e2e-SECRET-9999"
# The README's `run --classifier anthropic` (tests/test_claude_taxonomy_cli.py checks), then the
# taxonomy's options.
CLAUDE_TAXONOMY = (
    "--classifier",
    "anthropic",
    "--set",
    "taxonomy.mode=both",
    "--set",
    "taxonomy.adjudicate=true",
    "--set",
    "taxonomy.adjudicate_below=0.9",
    "--set",
    "discovery.namer=claude",
    "--set",
    "discovery.min_values=10",  # a small run has few human values
)


def claude_env(base_url: str, **extra: str) -> dict[str, str]:
    return cli_env(ANTHROPIC_API_KEY=CLAUDE_KEY, ANTHROPIC_BASE_URL=base_url, **extra)


def build_claude_run(root: Path, emulator: Any) -> dict[str, Any]:
    """One Claude run with taxonomy.mode both, adjudication and the Claude namer, report included."""
    config = write_config(root / "lean.yml", LEAN_CONFIG)
    source = root / "conversations.jsonl"
    assert_ok(wildvalues("synth", "--n", CLAUDE_N, "--output", source, "--seed", 5, cwd=root))
    out = root / "out"
    env = claude_env(emulator.base_url)
    args = ("--output", out, *CLAUDE_TAXONOMY, "--config", config)
    result = wildvalues("run", "--input", source, *args, cwd=root, env=env)
    assert_ok(result)
    run_id, mlflow_run_id = summary_run_id(result.stdout)
    return {
        "root": root,
        "config": config,
        "source": source,
        "out": out,
        "args": args,
        "env": env,
        "result": result,
        "run_id": run_id,
        "mlflow_run_id": mlflow_run_id,
    }


# --------------------------------------------------------------------------------- two weeks in one output

HISTORY_N = 30
RUN_A, RUN_B = "week-1", "week-2"
# k lowered so the export and every public table hold rows at this size.
HISTORY_CONFIG = {**LEAN_CONFIG, "analyze": {"suppression_k": 2}, "privacy": {"k_users": 1}}


def table_rows(out: Path, name: str) -> list[dict]:
    return DeltaTable(str(out / "tables" / name)).to_pyarrow_table().to_pylist()


def run_rows(out: Path, name: str, run_id: str, drop: tuple[str, ...] = ()) -> list[dict]:
    """A run's rows of a table, sorted, without columns that differ between writes (timestamps)."""
    rows = [{k: v for k, v in r.items() if k not in drop} for r in table_rows(out, name) if r["run_id"] == run_id]
    return sorted(rows, key=repr)


def mlflow_state(out: Path, run_id: str) -> dict:
    """A wildvalues run's MLflow run: status, end time and the bytes of its report artifact."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{out}/mlflow.db")
    forget_mlflow_artifact_locations()  # a copy's runs share their ids with the original's
    (run,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], f"tags.`wildvalues.run_id` = '{run_id}'"
    )
    local = client.download_artifacts(run.info.run_id, "report/report.html", str(out / f"dl-{run_id}-{os.getpid()}"))
    with open(local, "rb") as handle:
        report = handle.read()
    return {"status": run.info.status, "end_time": run.info.end_time, "report": report}


def build_history_run(root: Path) -> dict[str, Any]:
    """Week 1, its export, then week 2 on other conversations into the same output."""
    config = write_config(root / "lean.yml", HISTORY_CONFIG)
    inputs = {}
    for run_id, seed in ((RUN_A, 1), (RUN_B, 2)):
        inputs[run_id] = root / f"{run_id}.jsonl"
        assert_ok(wildvalues("synth", "--n", HISTORY_N, "--output", inputs[run_id], "--seed", seed, cwd=root))
    out = root / "out"

    def run(run_id: str) -> None:
        args = ("run", "--input", inputs[run_id], "--output", out, "--config", config, "--run-id", run_id)
        assert_ok(wildvalues(*args, cwd=root))

    run(RUN_A)
    assert_ok(wildvalues("export", "--output", out, "--to", root / "export-a-alone", "--config", config, cwd=root))
    alone = {name: run_rows(out, name, RUN_A, ("ingested_at",)) for name in ("conversations", "values_level_0")}
    state_a = mlflow_state(out, RUN_A)
    run(RUN_B)
    with open(out / "report" / "report.html", "rb") as handle:
        latest_report = handle.read()
    return {
        "root": root,
        "out": out,
        "config": config,
        "alone": alone,
        "state_a": state_a,
        "state_b": mlflow_state(out, RUN_B),
        "latest_report": latest_report,
    }


def rerun_claude_taxonomy(claude_run: dict[str, Any], emulator: Any, to: Path) -> dict[str, Any]:
    """The taxonomy stage of the shared Claude run again, as it ran, on a copy of its output."""
    out = copy_output(claude_run["out"], to)
    args = ("--output", out, *claude_run["args"][2:])
    before = len(emulator.request_log)
    rerun = wildvalues(
        "taxonomy", *args, "--run-id", claude_run["run_id"], cwd=claude_run["root"], env=claude_run["env"]
    )
    assert_ok(rerun)
    return {**claude_run, "out": out, "args": args, "rerun": rerun, "rerun_requests": emulator.request_log[before:]}
