"""The Databricks bundle: valid against the published schema, and its wheel tasks call real scripts."""

from __future__ import annotations

import ast
import glob
import importlib
import os
import subprocess
import sys

import pytest
import yaml

from conftest import BUNDLE_VALIDATOR, REPO


def console_scripts() -> dict[str, str]:
    """name -> "module:function" of every console script declared in setup.py (read, not run)."""
    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as handle:
        module = ast.parse(handle.read())
    constants = {
        target.id: node.value
        for node in module.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    calls = [n for n in ast.walk(module) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "setup"]
    assert len(calls) == 1, "setup.py should call setup() once"
    keywords = {k.arg: k.value for k in calls[0].keywords}
    entry_points = keywords["entry_points"]
    if isinstance(entry_points, ast.Name):
        entry_points = constants[entry_points.id]
    scripts = ast.literal_eval(entry_points)["console_scripts"]
    result = {}
    for spec in scripts:
        name, target = (part.strip() for part in spec.split("=", 1))
        result[name] = target
    return result


def wheel_tasks() -> list[tuple[str, str, dict]]:
    """(resource file, task key, python_wheel_task) for every wheel task in resources/*.yml."""
    found = []
    for path in sorted(glob.glob(os.path.join(REPO, "resources", "*.yml"))):
        with open(path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle) or {}
        for job in (doc.get("resources", {}).get("jobs") or {}).values():
            for task in job.get("tasks", []):
                if "python_wheel_task" in task:
                    found.append((os.path.basename(path), task["task_key"], task["python_wheel_task"]))
    return found


def test_bundle_validates_against_the_schema():
    result = subprocess.run(
        [sys.executable, BUNDLE_VALIDATOR, "databricks.yml"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 schema errors" in result.stdout, result.stdout


def test_bundle_has_wheel_tasks():
    tasks = wheel_tasks()
    assert {key for _, key, _ in tasks} >= {"ingest", "classify", "taxonomy", "validate"}


@pytest.mark.parametrize("resource, task_key, wheel_task", wheel_tasks(), ids=lambda v: v if isinstance(v, str) else "")
def test_wheel_task_entry_point_is_a_console_script(resource, task_key, wheel_task):
    scripts = console_scripts()
    assert wheel_task["package_name"] == "wildvalues"
    entry_point = wheel_task["entry_point"]
    assert entry_point in scripts, f"{resource}: task {task_key} calls {entry_point!r}, not in setup.py {sorted(scripts)}"
    module_name, function = scripts[entry_point].split(":")
    assert callable(getattr(importlib.import_module(module_name), function))


def bundle_variables() -> dict[str, str]:
    with open(os.path.join(REPO, "databricks.yml"), encoding="utf-8") as handle:
        bundle = yaml.safe_load(handle)
    return {name: str(spec.get("default", "")) for name, spec in bundle.get("variables", {}).items()}


def substitute(parameter: str, variables: dict[str, str]) -> str:
    """A task parameter as the job would receive it: bundle variables at their defaults."""
    for name, value in variables.items():
        parameter = parameter.replace("${var.%s}" % name, value)
    return parameter.replace("{{job.run_id}}", "123456789")


@pytest.mark.parametrize("resource, task_key, wheel_task", wheel_tasks(), ids=lambda v: v if isinstance(v, str) else "")
def test_wheel_task_parameters_are_accepted_by_the_cli(resource, task_key, wheel_task):
    """The jobs/ entry point prepends its CLI command; the task's parameters must parse with it."""
    from wildvalues.cli import build_parser

    module_name = console_scripts()[wheel_task["entry_point"]].split(":")[0]
    with open(importlib.import_module(module_name).__file__, encoding="utf-8") as handle:
        source = handle.read()
    commands = [
        node.elts[0].value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.List) and node.elts and isinstance(node.elts[0], ast.Constant)
    ]
    assert len(commands) == 1, f"{module_name} should call the CLI with one command"
    variables = bundle_variables()
    argv = [commands[0], *[substitute(str(p), variables) for p in wheel_task.get("parameters", [])]]
    assert "${" not in " ".join(argv), argv
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"{resource}: task {task_key}: `wildvalues {' '.join(argv)}` is rejected by the CLI (exit {exit_.code})")
    assert args.command == commands[0]
