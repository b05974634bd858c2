"""Spark's Python worker daemon, with the pipeline imported once before it forks the workers.

Spark forks every Python worker from a daemon (`spark.python.daemon.module`), one daemon per worker
module. pyspark's own daemon imports nothing of ours, so every worker it forked imported Arrow,
pandas, Presidio and spaCy itself, seconds of CPU each on a machine with two cores. Imported here,
they are shared by every fork. Spark starts the daemon as `python -m wildvalues.pipeline.worker_daemon
pyspark.worker`. (The planner workers of Python data sources, `pyspark.sql.worker.*`, fork from
pyspark's own daemon: Spark 4.0 starts them without reading `spark.python.daemon.module`.)
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.machinery
import importlib.metadata
import os
import sys
import zipfile

UDF_WORKER = "pyspark.worker"
# What the pipeline's UDF and mapInArrow tasks import: Arrow and pandas (pyspark's serializers),
# the ingest parser with its PII redactor, and the Delta writer of the fallback data source.
PRELOADED = (
    "pyarrow",
    "pandas",
    "pyspark.sql.pandas.serializers",
    "wildvalues.ingest.records",
    "wildvalues.io.delta_io",
)


def idle_archives(path: list[str]) -> list[str]:
    """The archives on `path` that a worker never needs to import from.

    Spark puts three on the workers' PYTHONPATH: its core jar (thousands of classes, no Python) and
    the pip wheel's zip copies of pyspark and py4j. Every task calls importlib.invalidate_caches(),
    which makes Python re-read each archive's directory: 75 ms a task here, more than most tasks
    take. Dropped: archives holding no Python module, and the wheel's zips inside the installed
    pyspark package when the installed packages import without them (zips of a separate Spark
    distribution are kept: they match its JVM)."""
    plain = [entry for entry in path if not _is_archive(entry)]
    wheel_lib = _wheel_zip_dir(plain)
    return [
        entry
        for entry in path
        if _is_archive(entry) and (_holds_no_python(entry) or _duplicates_installed(entry, wheel_lib, plain))
    ]


def _is_archive(entry: str) -> bool:
    return entry.endswith((".zip", ".jar", ".egg")) and os.path.isfile(entry)


def _holds_no_python(archive: str) -> bool:
    try:
        with zipfile.ZipFile(archive) as opened:
            return not any(name.endswith((".py", ".pyc")) for name in opened.namelist())
    except (OSError, zipfile.BadZipFile):
        return False  # not ours to judge: zipimport reports it as it always has


def _wheel_zip_dir(plain: list[str]) -> str | None:
    """Where the installed pyspark package keeps its zips (pyspark/python/lib), if it is installed."""
    spec = importlib.machinery.PathFinder.find_spec("pyspark", plain)
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(os.path.realpath(list(spec.submodule_search_locations)[0]), "python", "lib")


def _duplicates_installed(archive: str, wheel_lib: str | None, plain: list[str]) -> bool:
    if wheel_lib is None or os.path.dirname(os.path.realpath(archive)) != wheel_lib:
        return False
    name = os.path.basename(archive)
    if name == "pyspark.zip":
        return True
    version = _installed_version("py4j", plain)
    return version is not None and name.startswith("py4j-") and f"-{version}-" in name


def _installed_version(package: str, plain: list[str]) -> str | None:
    """The version of `package` as installed on the plain (non-archive) path; None when it is not there."""
    if importlib.machinery.PathFinder.find_spec(package, plain) is None:
        return None
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def drop_idle_archives() -> list[str]:
    """Take `idle_archives` off sys.path, and their importers out of the cache, before pyspark is imported."""
    dropped = idle_archives(sys.path)
    for entry in dropped:
        sys.path.remove(entry)
    for key in [key for key in sys.path_importer_cache if any(key.startswith(entry) for entry in dropped)]:
        del sys.path_importer_cache[key]  # an archive's subdirectories have importers of their own
    return dropped


def preloaded_for(worker_module: str) -> tuple[str, ...]:
    """What the forks of `worker_module`'s daemon import before they run."""
    return PRELOADED if worker_module == UDF_WORKER else ()


def preload(worker_module: str) -> list[str]:
    """Import what the workers of `worker_module` need; the names that could not be imported."""
    names = preloaded_for(worker_module)
    if not names:
        return []
    missing = []
    # The daemon tells Spark its port on stdout: nothing an import prints may go there first.
    with contextlib.redirect_stdout(sys.stderr):
        for name in names:
            try:
                importlib.import_module(name)
            except ImportError:
                missing.append(name)  # a worker that needs it imports it itself, and fails there
    # The worker collects garbage after every task: without this it would walk every object the
    # imports made (spaCy, Presidio) each time, and touch, so copy, the pages the forks share.
    gc.freeze()
    return missing


def main() -> None:
    drop_idle_archives()
    preload(sys.argv[1] if len(sys.argv) > 1 else UDF_WORKER)
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
