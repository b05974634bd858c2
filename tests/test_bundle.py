"""The Databricks bundle: valid against the published schema, its relative paths naming files of a
built bundle, its wheel tasks call real scripts with arguments the CLI accepts, one task per
pipeline stage, and per-target (per-user in dev) tables and MLflow experiment."""

from __future__ import annotations

import ast
import glob
import importlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

if TYPE_CHECKING:  # mypy names tests/conftest.py by its path; pytest puts tests/ on sys.path
    from tests.clirun import CliResult
    from tests.conftest import BUNDLE_VALIDATOR, REPO
    from tests.e2e import RUN_A, RUN_B, assert_ok, copy_output, mlflow_state, run_rows, table_rows, wildvalues
else:
    from clirun import CliResult
    from conftest import BUNDLE_VALIDATOR, REPO
    from e2e import RUN_A, RUN_B, assert_ok, copy_output, mlflow_state, run_rows, table_rows, wildvalues

# The task keys, in run order (tests below also hold them to wildvalues.stages.STAGES).
TASK_KEYS = ["ingest", "classify", "taxonomy", "analyze", "validate", "report"]
TARGETS = ["dev", "prod"]
# Stand-ins for the deploying user, as the CLI would resolve ${workspace.current_user.*}.
SHORT_NAME = "jdoe"
USER_NAME = "jdoe@example.com"
RUN_ID = "123456789"


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


def _merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def load_bundle() -> dict:
    """databricks.yml with the files it includes merged in (YAML anchors already expanded)."""
    with open(os.path.join(REPO, "databricks.yml"), encoding="utf-8") as handle:
        bundle = yaml.safe_load(handle)
    for pattern in bundle.get("include", []):
        for path in sorted(glob.glob(os.path.join(REPO, pattern))):
            with open(path, encoding="utf-8") as handle:
                _merge(bundle, yaml.safe_load(handle) or {})
    return bundle


def the_job() -> dict:
    jobs = load_bundle()["resources"]["jobs"]
    assert list(jobs) == ["wildvalues_weekly"]
    return jobs["wildvalues_weekly"]


def target_variables(target: str) -> dict[str, str]:
    """The bundle variables as `target` sees them: defaults, then the target's own values."""
    bundle = load_bundle()
    values = {name: spec["default"] for name, spec in bundle["variables"].items() if "default" in spec}
    for name, value in (bundle["targets"][target].get("variables") or {}).items():
        values[name] = value["default"] if isinstance(value, dict) else value
    return {name: str(value) for name, value in values.items()}


def resolve(text: str, target: str) -> str:
    """A string as a run of `target`'s deployed job would see it: bundle references (${...}) as the
    CLI resolves them at deploy time, then the job's dynamic values ({{...}}) at run time."""
    bundle = load_bundle()
    variables = target_variables(target)
    development = bundle["targets"][target].get("mode") == "development"
    parameters = {p["name"]: p["default"] for p in the_job().get("parameters", [])}

    def experiment_name(key: str) -> str:
        # Development mode prefixes the last path segment of every experiment (CLI ApplyPresets).
        name = resolve(bundle["resources"]["experiments"][key]["name"], target)
        if development:
            folder, _, base = name.rpartition("/")
            name = f"{folder}/[dev {SHORT_NAME}] {base}"
        return name

    def schema_name(key: str) -> str:
        # Development mode prefixes every schema with "dev_<short_name>_" unless
        # experimental.skip_name_prefix_for_schema is set (CLI ApplyPresets, normalizePrefix).
        name = resolve(bundle["resources"]["schemas"][key]["name"], target)
        if development and not (bundle.get("experimental") or {}).get("skip_name_prefix_for_schema"):
            name = f"dev_{SHORT_NAME}_{name}"
        return name

    def reference(match: re.Match) -> str:
        path = match.group(1)
        if path.startswith("var."):
            return variables[path[len("var.") :]]
        if path.startswith("resources.experiments.") and path.endswith(".name"):
            return experiment_name(path.split(".")[2])
        if path.startswith("resources.schemas.") and path.endswith(".name"):
            return schema_name(path.split(".")[2])
        return {
            "workspace.current_user.short_name": SHORT_NAME,
            "workspace.current_user.userName": USER_NAME,
            "bundle.target": target,
            "bundle.name": bundle["bundle"]["name"],
        }[path]

    def dynamic(match: re.Match) -> str:
        path = match.group(1).strip()
        if path == "job.run_id":
            return RUN_ID
        assert path.startswith("job.parameters."), f"unexpected dynamic value {{{{{path}}}}}"
        return resolve(parameters[path[len("job.parameters.") :]], target)

    for _ in range(10):
        resolved = re.sub(r"\{\{([^}]*)\}\}", dynamic, re.sub(r"\$\{([^}]*)\}", reference, text))
        if resolved == text:
            return resolved
        text = resolved
    raise AssertionError(f"references do not resolve: {text}")


def expected_experiment(target: str) -> str:
    return {"dev": f"/Users/{USER_NAME}/[dev {SHORT_NAME}] wildvalues-dev", "prod": "/Shared/wildvalues"}[target]


def test_bundle_validates_against_the_schema():
    result = subprocess.run(
        [sys.executable, BUNDLE_VALIDATOR, "databricks.yml"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 schema errors" in result.stdout, result.stdout


def test_bundle_has_wheel_tasks():
    assert [key for _, key, _ in wheel_tasks()] == TASK_KEYS


@pytest.mark.parametrize("resource, task_key, wheel_task", wheel_tasks(), ids=lambda v: v if isinstance(v, str) else "")
def test_wheel_task_entry_point_is_a_console_script(resource, task_key, wheel_task):
    scripts = console_scripts()
    assert wheel_task["package_name"] == "wildvalues"
    entry_point = wheel_task["entry_point"]
    assert entry_point in scripts, (
        f"{resource}: task {task_key} calls {entry_point!r}, not in setup.py {sorted(scripts)}"
    )
    module_name, function = scripts[entry_point].split(":")
    assert callable(getattr(importlib.import_module(module_name), function))


def entry_point_command(entry_point: str) -> str:
    """The CLI command a console script's jobs/ module prepends to the task's parameters (read, not run)."""
    module_name = console_scripts()[entry_point].split(":")[0]
    module_file = importlib.import_module(module_name).__file__
    assert module_file is not None, module_name
    with open(module_file, encoding="utf-8") as handle:
        source = handle.read()
    commands = [
        node.elts[0].value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.List) and node.elts and isinstance(node.elts[0], ast.Constant)
    ]
    assert len(commands) == 1, f"{module_name} should call the CLI with one command"
    command = commands[0]
    assert isinstance(command, str), f"{module_name} should name the CLI command as a string"
    return command


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("resource, task_key, wheel_task", wheel_tasks(), ids=lambda v: v if isinstance(v, str) else "")
def test_wheel_task_parameters_are_accepted_by_the_cli(resource, task_key, wheel_task, target):
    """The jobs/ entry point prepends its CLI command; the task's parameters, as a run of the
    target's deployed job receives them, must parse with it."""
    from wildvalues.cli import build_parser

    command = entry_point_command(wheel_task["entry_point"])
    argv = [command, *[resolve(str(p), target) for p in wheel_task.get("parameters", [])]]
    assert "${" not in " ".join(argv) and "{{" not in " ".join(argv), argv
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(
            f"{resource}: task {task_key}: `wildvalues {' '.join(argv)}` is rejected by the CLI (exit {exit_.code})"
        )
    assert args.command == command
    # --set reads its value as YAML: the experiment must come through as the same string.
    assignments = dict(argv[i + 1].partition("=")[::2] for i, arg in enumerate(argv[:-1]) if arg == "--set")
    assert list(assignments) == ["mlflow.experiment", "history.keep_runs"]
    assert yaml.safe_load(assignments["mlflow.experiment"]) == expected_experiment(target)
    assert yaml.safe_load(assignments["history.keep_runs"]) == 0


def test_tasks_are_the_declared_stages_in_order():
    from wildvalues.stages import STAGES

    names = [stage.name for stage in STAGES]
    tasks = the_job()["tasks"]
    assert [task["task_key"] for task in tasks] == names
    assert "depends_on" not in tasks[0]
    assert [task["depends_on"] for task in tasks[1:]] == [[{"task_key": name}] for name in names[:-1]]
    assert [task["python_wheel_task"]["entry_point"] for task in tasks] == [f"wildvalues-{name}" for name in names]


def test_tasks_run_one_after_another():
    tasks = the_job()["tasks"]
    assert [task["task_key"] for task in tasks] == TASK_KEYS
    assert [task.get("depends_on") for task in tasks] == [None] + [[{"task_key": key}] for key in TASK_KEYS[:-1]]


def test_each_target_has_its_own_schema_and_experiment():
    bundle = load_bundle()
    assert list(bundle["targets"]) == TARGETS
    # No fallback: a target that names neither would fail to deploy rather than share prod's.
    assert "default" not in bundle["variables"]["schema"]
    assert "default" not in bundle["variables"]["experiment"]
    dev, prod = target_variables("dev"), target_variables("prod")
    assert (dev["schema"], dev["experiment"]) == (
        "wildvalues_dev_${workspace.current_user.short_name}",
        "/Users/${workspace.current_user.userName}/wildvalues-dev",
    )
    assert (prod["schema"], prod["experiment"]) == ("wildvalues", "/Shared/wildvalues")
    assert "${workspace.current_user.short_name}" in dev["schema"]
    assert "${workspace.current_user.userName}" in dev["experiment"]
    assert dev["schema"] != prod["schema"] and dev["experiment"] != prod["experiment"]
    assert (bundle["targets"]["dev"]["mode"], bundle["targets"]["prod"]["mode"]) == ("development", "production")


def test_the_bundle_creates_the_experiment_the_job_logs_to():
    assert load_bundle()["resources"]["experiments"] == {"wildvalues": {"name": "${var.experiment}"}}
    parameters = {p["name"]: p["default"] for p in the_job()["parameters"]}
    assert parameters["experiment"] == "${resources.experiments.wildvalues.name}"
    assert [resolve("{{job.parameters.experiment}}", target) for target in TARGETS] == [
        expected_experiment(target) for target in TARGETS
    ]


def test_job_parameters_are_declared_once_and_all_used():
    job = the_job()
    assert job["parameters"] == [
        {"name": "input_path", "default": "${var.input_path}"},
        {"name": "output_path", "default": "${var.output_path}"},
        {"name": "catalog", "default": "${var.catalog}"},
        {"name": "schema", "default": "${var.schema}"},
        {"name": "classifier", "default": "${var.classifier}"},
        {"name": "model", "default": "${var.model}"},
        {"name": "secret_scope", "default": "${var.secret_scope}"},
        {"name": "experiment", "default": "${resources.experiments.wildvalues.name}"},
        {"name": "keep_runs", "default": "${var.keep_runs}"},
    ]
    used = {
        name
        for task in job["tasks"]
        for parameter in task["python_wheel_task"]["parameters"]
        for name in re.findall(r"\{\{\s*job\.parameters\.([\w.-]+)\s*\}\}", parameter)
    }
    assert used == {p["name"] for p in job["parameters"]}
    # Positional parameters only: with named_parameters every job parameter would be pushed down
    # to the task as --<name>=<value>, which the CLI rejects.
    assert [sorted(task["python_wheel_task"]) for task in job["tasks"]] == [
        ["entry_point", "package_name", "parameters"]
    ] * len(TASK_KEYS)


def test_every_task_passes_the_run_parameters():
    run_parameters = [
        "--input", "{{job.parameters.input_path}}",
        "--output", "{{job.parameters.output_path}}",
        "--run-id", "{{job.run_id}}",
        "--env", "databricks",
        "--catalog", "{{job.parameters.catalog}}",
        "--schema", "{{job.parameters.schema}}",
        "--classifier", "{{job.parameters.classifier}}",
        "--model", "{{job.parameters.model}}",
        "--secret-scope", "{{job.parameters.secret_scope}}",
        "--set", "mlflow.experiment={{job.parameters.experiment}}",
        "--set", "history.keep_runs={{job.parameters.keep_runs}}",
    ]  # fmt: skip
    tasks = the_job()["tasks"]
    assert {task["task_key"]: task["python_wheel_task"]["parameters"] for task in tasks} == {
        key: run_parameters for key in TASK_KEYS
    }
    # Written once: the other tasks alias the first task's list.
    with open(os.path.join(REPO, "resources", "wildvalues_job.yml"), encoding="utf-8") as handle:
        text = handle.read()
    assert text.count("{{job.parameters.input_path}}") == 1
    assert text.count("parameters: *run_parameters") == len(TASK_KEYS) - 1


# Job parameters unlike every default (the test adds `model`), so a task that drops one resolves
# other settings than the run.
JOB_PARAMETER_VALUES = {
    "input_path": "/Volumes/test_catalog/test_schema/raw/week/",
    "output_path": "/Volumes/test_catalog/test_schema/output/",
    "catalog": "test_catalog",
    "schema": "test_schema",
    "classifier": "anthropic",
    "secret_scope": "test-scope",
    "experiment": "/Shared/test-experiment",
    "keep_runs": "3",
}


def local_run_argv(values: dict[str, str]) -> list[str]:
    """`wildvalues run` with the job's parameters, as one would type it (written here, not read from the job)."""
    return [
        "run",
        "--input", values["input_path"],
        "--output", values["output_path"],
        "--run-id", RUN_ID,
        "--env", "databricks",
        "--catalog", values["catalog"],
        "--schema", values["schema"],
        "--classifier", values["classifier"],
        "--model", values["model"],
        "--secret-scope", values["secret_scope"],
        "--set", f"mlflow.experiment={values['experiment']}",
        "--set", f"history.keep_runs={values['keep_runs']}",
    ]  # fmt: skip


def task_argv(task: dict, values: dict[str, str], run_id: str = RUN_ID) -> list[str]:
    """The CLI arguments a run of the job with these parameter values gives the task's entry point."""

    def dynamic(match: re.Match) -> str:
        path = match.group(1).strip()
        return run_id if path == "job.run_id" else values[path.removeprefix("job.parameters.")]

    wheel_task = task["python_wheel_task"]
    parameters = [re.sub(r"\{\{([^}]*)\}\}", dynamic, str(p)) for p in wheel_task["parameters"]]
    return [entry_point_command(wheel_task["entry_point"]), *parameters]


def resolved_settings(argv: list[str]):
    """The settings the command resolves from these arguments, as it does before any work."""
    from wildvalues.cli import build_parser
    from wildvalues.cli.commands import resolve_settings

    return resolve_settings(build_parser().parse_args(argv))


def differing_settings(settings, expected) -> dict[str, tuple]:
    """dotted key -> (value, expected value) wherever two settings differ."""

    def flat(node: object, prefix: str = "") -> dict[str, object]:
        if isinstance(node, dict):
            return {k: v for key, child in node.items() for k, v in flat(child, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): node}

    ours, theirs = flat(settings.as_dict()), flat(expected.as_dict())
    return {
        key: (ours.get(key), theirs.get(key))
        for key in sorted(ours.keys() | theirs.keys())
        if ours.get(key) != theirs.get(key)
    }


@pytest.mark.parametrize("model", ["claude-haiku-4-5", ""], ids=["model", "empty model"])
def test_every_task_resolves_the_settings_of_a_local_run(model):
    """Each task's stage command, given the task's parameters, resolves exactly the settings
    `wildvalues run` resolves from the same job parameters: the classifier, model, secret scope,
    tables, experiment and retention reach every stage, not only the one that classifies."""
    from wildvalues.settings import settings_for

    values = {**JOB_PARAMETER_VALUES, "model": model}
    expected = resolved_settings(local_run_argv(values))
    # The parameters reached the run's settings, so equal settings are not merely equal defaults.
    default_model = settings_for(env="databricks").classifier.anthropic.model
    assert (
        expected.classifier.name,
        expected.classifier.anthropic.model,
        expected.classifier.secret_scope,
        expected.tables.catalog,
        expected.tables.schema_name,
        expected.mlflow.experiment,
        expected.history.keep_runs,
    ) == (
        "anthropic",
        model or default_model,
        "test-scope",
        "test_catalog",
        "test_schema",
        "/Shared/test-experiment",
        3,
    )
    differences = {
        task["task_key"]: differing_settings(resolved_settings(task_argv(task, values)), expected)
        for task in the_job()["tasks"]
    }
    assert differences == {key: {} for key in TASK_KEYS}


def test_the_jobs_last_task_applies_retention(history_run, tmp_path):
    """The job never calls `run`, which applies history.keep_runs at its end: its last task, the
    report of the run just made, applies it. Run here on a copy of two weekly runs, with the
    task's own arguments, a local profile and keep_runs 1."""
    last = the_job()["tasks"][-1]
    assert (last["task_key"], entry_point_command(last["python_wheel_task"]["entry_point"])) == ("report", "report")
    out = copy_output(history_run["out"], tmp_path / "out")
    values = {
        **JOB_PARAMETER_VALUES,
        "input_path": str(history_run["root"] / f"{RUN_B}.jsonl"),
        "output_path": str(out),
        "classifier": "offline",
        "model": "",
        "experiment": "wildvalues",
        "keep_runs": "1",
    }

    def report(run_id: str) -> CliResult:
        argv = task_argv(last, values, run_id)
        # The job's profile keeps the tables in Unity Catalog; the same arguments on a local output.
        argv[argv.index("--env") + 1] = "local"
        result = wildvalues(*argv, "--config", history_run["config"], cwd=history_run["root"])
        assert_ok(result)
        return result

    # A past run's report (a rerun by hand) is not the end of a run: the history stays.
    report(RUN_A)
    assert {row["run_id"] for row in table_rows(out, "conversations")} == {RUN_A, RUN_B}
    result = report(RUN_B)
    assert f"deleted the rows of 1 older run(s): {RUN_A}" in result.stdout + result.stderr
    for name in ("conversations", "classifications", "values_level_0", "runs"):
        assert {row["run_id"] for row in table_rows(out, name)} == {RUN_B}, name
    assert run_rows(out, "values_level_0", RUN_B) == run_rows(history_run["out"], "values_level_0", RUN_B)
    # The copy logged into its own MLflow artifacts: the shared original's are untouched.
    assert mlflow_state(history_run["out"], RUN_B) == history_run["state_b"]


def test_every_task_runs_on_the_one_job_cluster_with_the_wheel():
    job = the_job()
    assert "environments" not in job
    assert [cluster["job_cluster_key"] for cluster in job["job_clusters"]] == ["wildvalues"]
    cluster = job["job_clusters"][0]["new_cluster"]
    assert cluster["spark_conf"] == {"spark.speculation": "false"}
    assert cluster["spark_env_vars"] == {
        "WILDVALUES_ENV": "databricks",
        "WILDVALUES_TAXONOMY": "${var.taxonomy_path}",
        "WILDVALUES_EMBEDDING_MODEL": "${var.embedding_model_path}",
        "MLFLOW_TRACKING_URI": "databricks",
    }
    compute_keys = {"job_cluster_key", "environment_key", "new_cluster", "existing_cluster_id", "libraries"}
    assert [{k: v for k, v in task.items() if k in compute_keys} for task in job["tasks"]] == [
        {"job_cluster_key": "wildvalues", "libraries": [{"whl": "../dist/*.whl"}]}
    ] * len(TASK_KEYS)


# Keys whose value the CLI reads as a local path when it is relative: `include` (the bundle's YAML
# files), artifacts' `path`, and in resources the keys of databricks/cli's path visitors
# (bundle/config/mutator/paths/job_paths_visitor.go, job_libraries_paths_visitor.go,
# pipeline_paths_visitor.go, app_paths_visitor.go): notebook_path, python_file, project_directory,
# file/path, whl, jar, requirements, source_code_path.
LOCAL_PATH_KEYS = frozenset(
    {"include", "path", "file", "notebook_path", "python_file", "project_directory", "whl", "jar", "requirements",
     "source_code_path"}
)  # fmt: skip


def bundle_files(bundle: Path) -> list[Path]:
    """databricks.yml and the files its `include` globs match, relative to the bundle root
    (databricks/cli bundle/config/loader/process_root_includes.go)."""
    with open(bundle / "databricks.yml", encoding="utf-8") as handle:
        patterns = yaml.safe_load(handle).get("include", [])
    included = sorted({path for pattern in patterns for path in bundle.glob(pattern)})
    return [bundle / "databricks.yml", *included]


def is_local_relative(value: str) -> bool:
    """A path the CLI resolves on this machine: not absolute (a workspace or volume path), no URL
    scheme (dbfs:, s3:...), no ${...} reference (resolved only at deploy time)."""
    return not value.startswith("/") and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value) and "${" not in value


def declared_local_paths(node: object, key: str | None = None) -> Iterator[tuple[str, str]]:
    """(key, value) for each relative local path in a parsed YAML file; a list's items count under
    the list's key (include: [globs])."""
    if isinstance(node, dict):
        for child_key, child in node.items():
            yield from declared_local_paths(child, child_key)
    elif isinstance(node, list):
        for item in node:
            yield from declared_local_paths(item, key)
    elif isinstance(node, str) and key in LOCAL_PATH_KEYS and is_local_relative(node):
        yield key, node


def test_every_local_path_matches_a_file_from_the_file_that_declares_it(built_bundle, built_wheel):
    """Every relative path in the bundle, resolved as the CLI does, names a file of a built bundle.

    The CLI joins a relative path to the directory of the YAML file that declares it, not to the
    bundle root: databricks/cli bundle/config/mutator/translate_paths.go, rewritePath ("Local path
    is relative to the directory the resource was defined in": localPath := filepath.Join(dir,
    input)), with dir the location of the value itself (gatherFallbackPaths there). So a wheel
    named ./dist/*.whl in resources/ is looked for in resources/dist and the deploy fails with
    "no files match pattern"."""
    declared = {
        (path, key, value)
        for path in bundle_files(built_bundle)
        for key, value in declared_local_paths(yaml.safe_load(path.read_text(encoding="utf-8")))
    }  # a set: the YAML anchor repeats the wheel in every task
    matches = {
        (path.relative_to(built_bundle).as_posix(), key, value): sorted(
            Path(os.path.normpath(match)) for match in glob.glob(os.path.join(path.parent, value))
        )
        for path, key, value in declared
    }
    assert [path.relative_to(built_bundle).as_posix() for path in bundle_files(built_bundle)] == [
        "databricks.yml",
        *sorted(f"resources/{name}" for name in os.listdir(built_bundle / "resources") if name.endswith(".yml")),
    ]
    # The paths this bundle is known to declare, so a walk that finds nothing cannot pass.
    assert {declaration[1] for declaration in matches} == {"include", "path", "whl"}
    assert [declaration for declaration, found in matches.items() if not found] == []
    wheels = {declaration: found for declaration, found in matches.items() if declaration[1] == "whl"}
    assert wheels == {("resources/wildvalues_job.yml", "whl", "../dist/*.whl"): [built_wheel]}


def test_schedule_concurrency_and_retries():
    job = the_job()
    # No pause_status: development mode deploys the schedule paused, production leaves it running.
    assert job["schedule"] == {"quartz_cron_expression": "0 0 3 ? * MON", "timezone_id": "UTC"}
    assert job["max_concurrent_runs"] == 1
    assert {task["task_key"]: task.get("max_retries", 0) for task in job["tasks"]} == {
        "ingest": 0, "classify": 2, "taxonomy": 0, "analyze": 0, "validate": 0, "report": 0,
    }  # fmt: skip


# The volume paths each target's job reads and writes, as the CLI resolves the variables.
EXPECTED_PATHS = {
    "dev": {
        "input_path": f"/Volumes/main/wildvalues_dev_{SHORT_NAME}/raw/conversations/",
        "output_path": f"/Volumes/main/wildvalues_dev_{SHORT_NAME}/output/",
        "taxonomy_path": f"/Volumes/main/wildvalues_dev_{SHORT_NAME}/reference/values_tree.csv",
        "embedding_model_path": f"/Volumes/main/wildvalues_dev_{SHORT_NAME}/reference/models/minilm-static",
    },
    "prod": {
        "input_path": "/Volumes/main/wildvalues/raw/conversations/",
        "output_path": "/Volumes/main/wildvalues/output/",
        "taxonomy_path": "/Volumes/main/wildvalues/reference/values_tree.csv",
        "embedding_model_path": "/Volumes/main/wildvalues/reference/models/minilm-static",
    },
}


def test_paths_default_into_the_targets_own_schema():
    variables = load_bundle()["variables"]
    assert {name: variables[name]["default"] for name in EXPECTED_PATHS["prod"]} == {
        "input_path": "/Volumes/${var.catalog}/${var.schema}/raw/conversations/",
        "output_path": "/Volumes/${var.catalog}/${var.schema}/output/",
        "taxonomy_path": "/Volumes/${var.catalog}/${var.schema}/reference/values_tree.csv",
        "embedding_model_path": "/Volumes/${var.catalog}/${var.schema}/reference/models/minilm-static",
    }
    # No target pins a path: each follows its target's schema.
    targets = load_bundle()["targets"]
    assert [set(targets[t]["variables"]) & set(EXPECTED_PATHS[t]) for t in TARGETS] == [set(), set()]
    resolved = {t: {name: resolve(f"${{var.{name}}}", t) for name in EXPECTED_PATHS[t]} for t in TARGETS}
    assert resolved == EXPECTED_PATHS
    # What the tasks receive at run time: the job parameters, the taxonomy and the model through the cluster.
    job = the_job()
    env = job["job_clusters"][0]["new_cluster"]["spark_env_vars"]
    assert {
        t: {
            "input_path": resolve("{{job.parameters.input_path}}", t),
            "output_path": resolve("{{job.parameters.output_path}}", t),
            "taxonomy_path": resolve(env["WILDVALUES_TAXONOMY"], t),
            "embedding_model_path": resolve(env["WILDVALUES_EMBEDDING_MODEL"], t),
        }
        for t in TARGETS
    } == EXPECTED_PATHS
    assert [resolve("{{job.parameters.schema}}", t) for t in TARGETS] == [f"wildvalues_dev_{SHORT_NAME}", "wildvalues"]


def test_the_bundle_creates_the_schema_and_its_volumes():
    resources = load_bundle()["resources"]
    assert resources["schemas"] == {
        "wildvalues_schema": {
            "catalog_name": "${var.catalog}",
            "name": "${var.schema}",
            "comment": "wildvalues tables (conversations, classifications, roll-ups, analyses) and volumes",
        }
    }
    # Each volume names the schema resource, so the CLI creates the schema first.
    assert {
        key: {k: v for k, v in volume.items() if k != "comment"} for key, volume in resources["volumes"].items()
    } == {
        name: {
            "catalog_name": "${var.catalog}",
            "schema_name": "${resources.schemas.wildvalues_schema.name}",
            "name": name,
            "volume_type": "MANAGED",
        }
        for name in ["raw", "output", "reference"]
    }
    # Development mode would prefix the schema's name; the bundle turns that off, so the schema
    # created is the one ${var.schema} names in the job and the paths.
    assert load_bundle()["experimental"] == {"skip_name_prefix_for_schema": True}


@pytest.mark.parametrize("target", TARGETS)
def test_the_paths_lie_in_the_volumes_the_bundle_creates(target):
    volumes = load_bundle()["resources"]["volumes"]
    roots = {
        key: resolve(f"/Volumes/{v['catalog_name']}/{v['schema_name']}/{v['name']}/", target)
        for key, v in volumes.items()
    }
    schema = {"dev": f"wildvalues_dev_{SHORT_NAME}", "prod": "wildvalues"}[target]
    assert roots == {name: f"/Volumes/main/{schema}/{name}/" for name in ["raw", "output", "reference"]}
    assert EXPECTED_PATHS[target] == {
        "input_path": roots["raw"] + "conversations/",
        "output_path": roots["output"],
        "taxonomy_path": roots["reference"] + "values_tree.csv",
        "embedding_model_path": roots["reference"] + "models/minilm-static",
    }


def test_only_the_prod_schema_is_protected_from_destroy():
    targets = load_bundle()["targets"]
    assert targets["prod"]["resources"] == {
        "schemas": {
            "wildvalues_schema": {
                "catalog_name": "${var.catalog}",
                "name": "${var.schema}",
                "lifecycle": {"prevent_destroy": True},
            }
        }
    }
    assert "resources" not in targets["dev"]
    assert "lifecycle" not in load_bundle()["resources"]["schemas"]["wildvalues_schema"]


def test_every_task_and_the_job_have_a_timeout():
    job = the_job()
    timeouts = {task["task_key"]: task.get("timeout_seconds") for task in job["tasks"]}
    assert timeouts == {
        "ingest": 7200, "classify": 43200, "taxonomy": 3600, "analyze": 7200, "validate": 3600, "report": 3600,
    }  # fmt: skip
    assert max(timeouts, key=lambda key: timeouts[key]) == "classify"
    assert job["timeout_seconds"] == 86400
    assert sum(timeouts.values()) <= job["timeout_seconds"]


def test_failures_are_emailed_to_the_notify_variable():
    job = the_job()
    assert job["email_notifications"] == {"on_failure": ["${var.notify_on_failure}"]}
    # A plain string variable, so --var and BUNDLE_VAR_notify_on_failure can set it.
    assert load_bundle()["variables"]["notify_on_failure"] == {
        "description": "Email address told when a run fails or times out; by default the deploying user",
        "default": "${workspace.current_user.userName}",
    }
    assert [resolve(job["email_notifications"]["on_failure"][0], t) for t in TARGETS] == [USER_NAME, USER_NAME]


def test_node_type_is_a_variable_documented_per_cloud():
    bundle = load_bundle()
    variable = bundle["variables"]["node_type_id"]
    assert variable == {
        "description": "Driver and worker node type; it depends on the workspace's cloud: AWS i3.xlarge (default),"
        " Azure Standard_DS3_v2, GCP n1-standard-4. Override per target or with --var node_type_id=...",
        "default": "i3.xlarge",
    }
    assert the_job()["job_clusters"][0]["new_cluster"]["node_type_id"] == "${var.node_type_id}"
    assert [resolve("${var.node_type_id}", t) for t in TARGETS] == ["i3.xlarge", "i3.xlarge"]


def test_resource_keys_are_unique_across_kinds():
    """The CLI rejects a key used by two resource kinds (`bundle run` and `bind` address resources
    by key alone): databricks/cli bundle/config/validate/unique_resource_keys.go."""
    resources = load_bundle()["resources"]
    keys = [key for kind in resources.values() for key in kind]
    assert sorted(keys) == ["output", "raw", "reference", "wildvalues", "wildvalues_schema", "wildvalues_weekly"]
    assert len(set(keys)) == len(keys)
