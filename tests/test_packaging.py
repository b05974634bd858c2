"""What the wheel asks of a Databricks cluster: ranges that keep the runtime's own libraries, the
skinny MLflow client, and one top-level package."""

from __future__ import annotations

import ast
import os
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
RUNTIME_LIST = REPO / "conf" / "dbr-17.3-lts-python.txt"
# conf/ is linked into the package; the runtime's list is read by these tests only, never shipped.
RUNTIME_LIST_IN_PACKAGE = REPO / "lib" / "wildvalues" / "conf" / RUNTIME_LIST.name
# What the runtime ships that we require, and nothing else: a package added to either list, or
# a name spelled differently, shows up here.
SHARED_WITH_RUNTIME = {
    "matplotlib": "3.10.0",
    "mlflow-skinny": "3.0.1",
    "numpy": "2.1.3",
    "pandas": "2.2.3",
    "plotly": "5.24.1",
    "pyarrow": "19.0.1",
    "pydantic": "2.10.6",
    "pyyaml": "6.0.2",
    "scikit-learn": "1.6.1",
    "scipy": "1.15.1",
    "sqlparse": "0.5.3",
}


def runtime_versions() -> dict[str, Version]:
    """conf/dbr-17.3-lts-python.txt as canonical name -> version."""
    versions: dict[str, Version] = {}
    for line in RUNTIME_LIST.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            versions[canonicalize_name(name)] = Version(version)
    return versions


def setup_list(name: str) -> list[str]:
    """A list constant of setup.py (read, not run)."""
    module = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    [value] = [
        node.value
        for node in module.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets)
    ]
    return ast.literal_eval(value)


def install_requires() -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, setup_list("INSTALL_REQUIRES"))}


def test_the_runtime_list_names_its_source_and_the_runtimes_core_versions():
    text = RUNTIME_LIST.read_text(encoding="utf-8")
    assert "https://github.com/databricks/environments/blob/main/python/dbr/17.3.x-scala2.13/constraints.txt" in text
    assert "https://docs.databricks.com/aws/en/release-notes/runtime/17.3lts" in text
    versions = runtime_versions()
    assert len(versions) == 216
    assert {n: str(versions[n]) for n in ("numpy", "pandas", "pyarrow", "mlflow-skinny")} == {
        "numpy": "2.1.3",
        "pandas": "2.2.3",
        "pyarrow": "19.0.1",
        "mlflow-skinny": "3.0.1",
    }


def test_install_requires_are_ranges_that_admit_the_runtimes_versions():
    requires, runtime = install_requires(), runtime_versions()
    shared = {name: str(runtime[name]) for name in requires if name in runtime}
    assert shared == SHARED_WITH_RUNTIME
    refused = {
        name: str(requires[name].specifier) for name, v in shared.items() if Version(v) not in requires[name].specifier
    }
    assert refused == {}
    pinned = [str(r) for r in requires.values() if any(s.operator in ("==", "===") for s in r.specifier)]
    assert pinned == []
    unbounded = [str(r) for r in requires.values() if not any(s.operator == "<" for s in r.specifier)]
    assert unbounded == []


def test_the_wheel_takes_skinny_mlflow_and_spark_and_full_mlflow_only_locally():
    requires = install_requires()
    assert "mlflow-skinny" in requires and "mlflow" not in requires
    assert not {"pyspark", "delta-spark"} & set(requires)
    local = {canonicalize_name(Requirement(r).name) for r in setup_list("SPARK_REQUIRES")}
    assert local == {"pyspark", "delta-spark", "mlflow"}


def wheel_metadata(wheel: Path) -> tuple[list[str], list[str], list[str]]:
    """(top_level.txt lines, first path components in RECORD, Requires-Dist) of a built wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
        top_level = archive.read(f"{info}/top_level.txt").decode().split()
        record = archive.read(f"{info}/RECORD").decode().splitlines()
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
    roots = sorted({line.split(",")[0].split("/")[0] for line in record if line})
    return top_level, roots, metadata.get_all("Requires-Dist") or []


def test_the_wheel_installs_one_top_level_package_with_the_jobs_inside(built_wheel):
    top_level, roots, requires = wheel_metadata(built_wheel)
    assert top_level == ["wildvalues"]
    assert roots == ["wildvalues", "wildvalues-0.1.0.dist-info"]
    with zipfile.ZipFile(built_wheel) as archive:
        jobs = sorted(n for n in archive.namelist() if n.startswith("wildvalues/jobs/"))
    assert jobs == [
        f"wildvalues/jobs/{name}.py"
        for name in ["__init__", "analyze", "classify", "ingest", "report", "run_pipeline", "taxonomy", "validate"]
    ]
    unconditional = {canonicalize_name(Requirement(r).name) for r in requires if "extra ==" not in r}
    assert unconditional == set(install_requires())


def test_the_wheel_carries_every_data_file_the_package_reads(built_wheel):
    """Data kept as data (prompts, lexicons, stopwords, phrase tables, profiles) ships in the wheel."""
    package = REPO / "lib" / "wildvalues"
    data = sorted(
        str(path.relative_to(REPO / "lib"))
        for path in package.rglob("*")
        if path.suffix in {".yml", ".txt", ".properties"}
        and "jobs" not in path.parts
        and path != RUNTIME_LIST_IN_PACKAGE
    )
    with zipfile.ZipFile(built_wheel) as archive:
        shipped = set(archive.namelist())
    assert "wildvalues/classifier/prompts/extract.txt" in data and "wildvalues/analysis/task_stopwords.txt" in data
    assert [name for name in data if name not in shipped] == []


@pytest.mark.parametrize("stage", ["ingest", "classify", "taxonomy", "analyze", "validate", "report", "run_pipeline"])
def test_each_jobs_file_is_the_module_its_console_script_names(stage):
    """jobs/ stays where the layout puts it; lib/wildvalues/jobs is a link to it."""
    assert os.path.realpath(REPO / "lib" / "wildvalues" / "jobs" / f"{stage}.py") == str(REPO / "jobs" / f"{stage}.py")
