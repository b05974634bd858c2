"""The console scripts a Databricks python_wheel_task calls, as the built wheel declares them.

The task calls the entry point function and ignores what it returns, so a stage that fails must
raise (SystemExit with its exit code) for the task, and the job, to fail."""

from __future__ import annotations

import configparser
import importlib
import sys
import zipfile
from pathlib import Path

import pytest

# Every wildvalues-* console script; the `wildvalues` command itself is not a task's entry point.
STAGE_SCRIPTS = [
    "wildvalues-analyze",
    "wildvalues-classify",
    "wildvalues-ingest",
    "wildvalues-pipeline",
    "wildvalues-report",
    "wildvalues-taxonomy",
    "wildvalues-validate",
]
# The scripts that read conversations fail on a missing input; the stages that read earlier
# stages' tables fail on an output without them. Both are user errors: exit 2.
READS_INPUT = {"wildvalues-ingest", "wildvalues-pipeline"}
EXIT_USER_ERROR = 2


def wheel_console_scripts(wheel: Path) -> dict[str, str]:
    """name -> "module:function" from the wheel's *.dist-info/entry_points.txt."""
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [name for name in archive.namelist() if name.endswith(".dist-info/entry_points.txt")]
        text = archive.read(metadata).decode("utf-8")
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # script names keep their case
    parser.read_string(text)
    return dict(parser["console_scripts"])


def load_entry_point(target: str):
    module_name, _, function = target.partition(":")
    return getattr(importlib.import_module(module_name), function)


def failing_parameters(script: str, output: Path) -> list[str]:
    if script in READS_INPUT:
        return ["--input", "/nonexistent/path", "--output", str(output)]
    return ["--output", str(output), "--run-id", "nosuch"]


def test_the_wheel_declares_one_script_per_stage_and_the_pipeline(built_wheel):
    scripts = wheel_console_scripts(built_wheel)
    assert sorted(name for name in scripts if name.startswith("wildvalues-")) == STAGE_SCRIPTS


@pytest.mark.parametrize("script", STAGE_SCRIPTS)
def test_a_failing_entry_point_raises_its_exit_code(script, built_wheel, spark, tmp_path, monkeypatch, capsys):
    """Called as a python_wheel_task calls it: sys.argv holds the parameters, the return value is
    dropped. `spark` first, so the command takes the test session's SparkSession (tests/clirun.py)."""
    entry_point = load_entry_point(wheel_console_scripts(built_wheel)[script])
    output = tmp_path / "out"
    output.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [script, *failing_parameters(script, output)])
    with pytest.raises(SystemExit) as excinfo:
        entry_point()
    assert excinfo.value.code == EXIT_USER_ERROR
    assert capsys.readouterr().err.startswith("wildvalues: error: ")
