"""Every command the README shows is run here as written (an optional `[--flag value]` both with and
without it), with only its placeholders filled: the input file, the key (the emulator's). The
Databricks ones need a workspace: they are checked against the bundle they deploy instead. A
command added to the README without a place here fails `test_every_readme_command_is_covered`."""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from wildvalues.io.delta_io import read_delta

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.e2e import LEAN_CONFIG, assert_ok, claude_env, summary_value, wildvalues, write_config
    from tests.test_history import docs_queries
else:
    from e2e import LEAN_CONFIG, assert_ok, claude_env, summary_value, wildvalues, write_config
    from test_history import docs_queries

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PROGRAMS = ("make ", "DEMO_N=", ".venv/bin/", "databricks ", "export ")
WILDVALUES = ".venv/bin/wildvalues "
README_INPUT = "conversations.jsonl.gz"


def readme_commands() -> list[str]:
    """The README's command lines (code blocks and inline code), comments and prompts removed."""
    fenced = re.findall(r"```\n(.*?)```", README, flags=re.S)
    lines = [line for block in fenced for line in block.splitlines()] + re.findall(r"`([^`\n]+)`", README)
    commands = [line.split("  #")[0].strip() for line in lines]
    return list(dict.fromkeys(c for c in commands if c.startswith(PROGRAMS)))


def variants(command: str) -> list[list[str]]:
    """The command's argv without and with each optional `[...]` part."""
    optional = re.findall(r"\[([^\]]+)\]", command)
    base = re.sub(r"\s*\[[^\]]+\]", "", command)
    return [shlex.split(base)] + [shlex.split(base) + shlex.split(part) for part in optional]


def wildvalues_argvs(subcommand: str) -> list[list[str]]:
    found = [c for c in readme_commands() if c.startswith(f"{WILDVALUES}{subcommand} ")]
    assert found, f"the README shows no `wildvalues {subcommand}` command"
    return [argv[1:] for command in found for argv in variants(command)]


def filled(argv: list[str], source: Path) -> list[str]:
    return [str(source) if a == README_INPUT else a for a in argv]


def test_every_readme_command_is_covered() -> None:
    covered = {
        "make run": "test_make_run_and_the_mlflow_ui_command",
        "DEMO_N=20000 make run": "test_make_run_and_the_mlflow_ui_command",
        "make test": "test_ci_runs_make_test",
        f"{WILDVALUES}<command> --help": "test_each_command_of_the_readmes_table_has_its_help",
        f"{WILDVALUES}estimate": "test_estimate_and_preflight_as_the_readme_writes_them",
        f"{WILDVALUES}preflight": "test_estimate_and_preflight_as_the_readme_writes_them",
        f"{WILDVALUES}run": "test_the_readme_run_in_batch, test_claude_taxonomy_cli.py::test_the_shared_run_is_the_readmes_command",
        f"{WILDVALUES}sql": "test_history.py::test_the_docs_queries_read_the_same_from_a_catalog_schema",
        ".venv/bin/mlflow ui": "test_make_run_and_the_mlflow_ui_command",
        "databricks ": "test_the_databricks_commands_name_what_the_bundle_deploys",
        "export ANTHROPIC_API_KEY": "test_estimate_and_preflight_as_the_readme_writes_them",
    }
    uncovered = [c for c in readme_commands() if not any(c.startswith(prefix) for prefix in covered)]
    assert uncovered == []
    assert len(readme_commands()) >= 10, readme_commands()


def test_ci_runs_make_test() -> None:
    """CI runs `.ci/run` on a clean clone: the README's test command and nothing less."""
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[-1] == "make test"


def test_each_command_of_the_readmes_table_has_its_help(tmp_path) -> None:
    """The table lists exactly the CLI's commands, with the CLI's own help line; `--help` works for each."""
    from wildvalues.cli.parser import build_parser

    table = dict(re.findall(r"^\| `(\w+)` \| (.+?) \|$", README, flags=re.M))
    (commands,) = [a for a in build_parser()._actions if a.dest == "command"]
    assert table == {c.dest: c.help for c in commands._choices_actions}  # type: ignore[attr-defined]
    for command in table:
        result = wildvalues(command, "--help", cwd=tmp_path)
        assert result.returncode == 0, command
        assert result.stdout.startswith(f"usage: wildvalues {command} [-h]"), result.stdout


def test_the_readme_sql_queries_are_the_docs_queries_run_on_two_runs() -> None:
    """The README's `wildvalues sql` queries are among those test_history.py runs on both stores."""
    in_readme = re.findall(r'wildvalues sql "([^"]+)"', README)
    assert in_readme
    assert {" ".join(q.split()) for q in in_readme} <= set(docs_queries())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_run_commands(workdir: Path, demo_n: int) -> list[list[str]]:
    """What `make run` would execute with DEMO_N set, its setup lines (venv, pip) left out."""
    dry = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-n",
            "-C",
            str(ROOT),
            "run",
            f"DEMO_N={demo_n}",
            f"OUT={workdir / 'out/demo'}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return [shlex.split(line)[1:] for line in dry.stdout.splitlines() if line.startswith(WILDVALUES)]


def wait_for_http(url: str, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_make_run_and_the_mlflow_ui_command(spark, tmp_path: Path) -> None:
    """`make run`'s two commands (synth, run) on 40 conversations, then the README's MLflow UI command
    serves the run the summary names. The demo places by meaning and, offline, asks no adjudicator."""
    commands = make_run_commands(tmp_path, 40)
    assert [argv[0] for argv in commands] == ["synth", "run"]
    assert "--n" in commands[0] and commands[0][commands[0].index("--n") + 1] == "40"
    results = [wildvalues(*argv, cwd=tmp_path) for argv in commands]
    for result in results:
        assert_ok(result)
    assert summary_value(results[1].stdout, "placement") == "semantic with model2vec:minilm-static:752af54a759e"
    assert re.fullmatch(
        r"\d+  \(exact [\d.]+%, similar [\d.]+%, placed [\d.]+%, adjudicated 0\.0%, unmatched [\d.]+%\)",
        summary_value(results[1].stdout, "value expr. (AI)"),
    )
    expressions = read_delta(spark, str(tmp_path / "out" / "demo" / "tables" / "value_expressions"))
    assert {r["match_method"] for r in expressions.select("match_method").distinct().collect()} <= {
        "exact",
        "similar",
        "placed",
        "unmatched",
    }, "no adjudication"
    mlflow_run = re.search(r"\(MLflow run (\w+)\)", results[1].stdout)
    assert mlflow_run, results[1].stdout
    (ui,) = [c for c in readme_commands() if c.startswith(".venv/bin/mlflow ui")]
    argv = [arg.replace("$PWD", str(tmp_path)) for arg in shlex.split(ui)]
    port = free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), *argv[1:], "--port", str(port)]
    # Without MLflow's GenAI job runner (seven processes wildvalues never uses), as docs/mlflow.md advises.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        found = wait_for_http(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/get?run_id={mlflow_run[1]}", 120)
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert json.loads(found)["run"]["info"]["run_id"] == mlflow_run[1]


@pytest.fixture
def readme_input(tmp_path: Path) -> Path:
    """The README's `conversations.jsonl.gz`: eight generated conversations, gzipped."""
    plain = tmp_path / "conversations.jsonl"
    assert_ok(wildvalues("synth", "--n", 8, "--output", plain, "--seed", 3, cwd=tmp_path))
    source = tmp_path / README_INPUT
    source.write_bytes(gzip.compress(plain.read_bytes()))
    return source


def test_estimate_and_preflight_as_the_readme_writes_them(tmp_path, readme_input, make_emulator) -> None:
    emulator = make_emulator(unknown_models="not_found")
    assert re.search(r"export ANTHROPIC_API_KEY=\.\.\.", README)
    env = claude_env(emulator.base_url)
    for argv in wildvalues_argvs("estimate"):
        result = wildvalues(*filled(argv, readme_input), cwd=tmp_path, env=env)
        assert_ok(result)
        assert "USD" in result.stdout, result.stdout
    (preflight,) = wildvalues_argvs("preflight")
    before = len(emulator.request_log)
    result = wildvalues(*filled(preflight, readme_input), cwd=tmp_path, env=env)
    assert_ok(result)
    assert len(emulator.request_log) > before  # real requests, measured


def test_the_readme_run_in_batch(tmp_path, readme_input, make_emulator) -> None:
    """`run ... --mode batch` as written (Spark settings from a lean config); the online form is the
    shared Claude run's command, checked in test_claude_taxonomy_cli.py."""
    online, batch = wildvalues_argvs("run")
    assert batch == [*online, "--mode", "batch"]
    emulator = make_emulator(unknown_models="not_found", batch_processing_s=0.3)
    config = write_config(tmp_path / "lean.yml", LEAN_CONFIG)
    env = claude_env(emulator.base_url)
    result = wildvalues(*filled(batch, readme_input), "--config", config, cwd=tmp_path, env=env)
    assert_ok(result)
    assert re.search(r"^  classified +8  \(errors 0, sent to classifier 8\)$", result.stdout, flags=re.M), result.stdout
    assert [e["path"] for e in emulator.request_log if e["method"] == "POST"].count("/v1/messages/batches") == 1
    assert (tmp_path / "out" / "mine" / "tables" / "classifications").is_dir()


def bundle_file(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


def test_the_databricks_commands_name_what_the_bundle_deploys() -> None:
    """Only a workspace runs them; here each names a target, job, volume path and secret the bundle
    and the job's settings use (a renamed volume or job key breaks the README's checklist)."""
    from wildvalues.settings.claude import ClassifierSettings

    bundle, storage = bundle_file("databricks.yml"), bundle_file("resources/wildvalues_storage.yml")
    jobs = bundle_file("resources/wildvalues_job.yml")["resources"]["jobs"]
    # "<short name>" is one placeholder (the deploying user's), not two words.
    readme = [c.replace("<short name>", "<short_name>") for c in readme_commands() if c.startswith("databricks ")]
    commands = [shlex.split(c) for c in readme]
    assert {arg for argv in commands for flag, arg in zip(argv, argv[1:]) if flag == "-t"} == set(bundle["targets"])
    assert {argv[3] for argv in commands if argv[1:3] == ["bundle", "run"]} == set(jobs)
    uploads = [argv[-1] for argv in commands if argv[1:3] == ["fs", "cp"]]
    schema = "/Volumes/main/wildvalues_dev_<short_name>/"
    assert all(u.startswith(f"dbfs:{schema}") for u in uploads), uploads
    defaults = {
        name: v["default"].replace("${var.catalog}/${var.schema}/", schema[len("/Volumes/") :])
        for name, v in bundle["variables"].items()
        if isinstance(v.get("default"), str)
    }
    assert sorted(u.removeprefix("dbfs:") for u in uploads) == sorted(
        [defaults["embedding_model_path"], defaults["input_path"], defaults["taxonomy_path"]]
    )
    assert {u.split("/")[4] for u in uploads} <= set(storage["resources"]["volumes"])
    secrets = [argv[3:] for argv in commands if argv[1:3] == ["secrets", "put-secret"]]
    assert secrets == [[bundle["variables"]["secret_scope"]["default"], ClassifierSettings().secret_key]]
    assert [argv[3:] for argv in commands if argv[1:3] == ["secrets", "create-scope"]] == [[secrets[0][0]]]
