"""Spark's Python worker daemon, with the pipeline imported once before it forks the workers.

Spark forks every Python worker from a daemon (`spark.python.daemon.module`), one daemon per worker
module. pyspark's own daemon imports nothing of ours, so every worker it forked imported Arrow,
pandas, Presidio and spaCy itself, seconds of CPU each on a machine with two cores. Imported here,
they are shared by every fork. Spark starts the daemon as `python -m wildvalues.worker_daemon
<worker module>`: the UDF worker (`pyspark.worker`) gets the pipeline, the planner workers of the
Delta writer (`pyspark.sql.worker.*`) get delta-rs and the writer.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys

UDF_WORKER = "pyspark.worker"
# What the pipeline's UDF and mapInArrow tasks import: Arrow and pandas (pyspark's serializers),
# the ingest parser with its PII redactor, and the Delta writer of the fallback data source.
PRELOADED = ("pyarrow", "pandas", "pyspark.sql.pandas.serializers", "wildvalues.ingest", "wildvalues.delta_io")


# The planner workers of the Delta writer (the fallback data source): they create the writer and
# commit what the tasks wrote, a fork each per write, each importing delta-rs and Arrow itself.
PLANNER_PREFIX = "pyspark.sql.worker."
PLANNER_PRELOADED = ("pyarrow", "deltalake", "wildvalues.delta_io")


def preloaded_for(worker_module: str) -> tuple[str, ...]:
    """What the forks of `worker_module`'s daemon import before they run."""
    if worker_module == UDF_WORKER:
        return PRELOADED
    if worker_module.startswith(PLANNER_PREFIX):
        return (*PLANNER_PRELOADED, worker_module)
    return ()


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
    preload(sys.argv[1] if len(sys.argv) > 1 else UDF_WORKER)
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
