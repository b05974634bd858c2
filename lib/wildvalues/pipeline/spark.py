"""Building the SparkSession from settings; the session is always passed in, never global."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from importlib import resources

import pyarrow as pa
from pyspark.sql import SparkSession

from wildvalues.io.delta_io import native_delta_available, write_delta  # here, not in the start-up thread
from wildvalues.settings.sections import SparkSettings

LOG4J_FILE = "log4j2.properties"


def _delta_jars_present() -> bool:
    """True when delta-spark's jars are already on this machine (no download needed)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        return False
    jars = os.path.join(list(spec.submodule_search_locations)[0], "jars")
    return any(name.startswith("delta-spark") for name in os.listdir(jars)) if os.path.isdir(jars) else False


def _show_progress(settings: SparkSettings) -> bool:
    """Spark's stage progress bar on a terminal; logs in CI and files stay clean."""
    return sys.stderr.isatty() if settings.progress is None else settings.progress


def _log4j_config() -> str:
    return str(resources.files("wildvalues.conf").joinpath(LOG4J_FILE))


def session_properties(settings: SparkSettings) -> dict[str, str]:
    """The Spark properties of a session the pipeline builds, `spark.conf` applied last."""
    properties = {
        "spark.master": settings.master,
        "spark.app.name": settings.app_name,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.speculation": str(settings.speculation).lower(),
        "spark.ui.showConsoleProgress": "true" if _show_progress(settings) else "false",
        "spark.ui.enabled": "false",
        "spark.driver.memory": settings.driver_memory,
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.python.worker.reuse": "true",
        # Workers fork from a daemon that has already imported the pipeline (worker_daemon.py).
        "spark.python.daemon.module": "wildvalues.pipeline.worker_daemon",
        # Spark keeps one daemon per worker environment, and SQL's Python runners add this variable
        # where RDD functions (classify's mapPartitions) do not: set for both, they share one daemon.
        "spark.executorEnv.SPARK_SIMPLIFIED_TRACEBACK": "1",
        # lower() through the JVM's case mappings, as in Spark 3: ICU's (Spark 4's default) cost
        # 2.3 s of CPU on their first use, in the analysis stage, for value names that are ASCII.
        "spark.sql.icu.caseMappings.enabled": "false",
        # Quiet from the first line: Spark's default log4j profile prints WARN lines at start-up,
        # before setLogLevel can act.
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={_log4j_config()} {settings.jvm_options}",
    }
    if _delta_jars_present() or settings.delta_packages:
        properties["spark.sql.extensions"] = "io.delta.sql.DeltaSparkSessionExtension"
        properties["spark.sql.catalog.spark_catalog"] = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        if settings.delta_packages:
            properties["spark.jars.packages"] = settings.delta_packages
    return {**properties, **settings.conf}  # the user's word wins over the defaults above


def build_session(settings: SparkSettings) -> SparkSession:
    """A local (or cluster-provided) session configured for the pipeline."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active  # Databricks and notebooks hand us a configured session
    # Executors must run the same interpreter as the driver so they see the installed package.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in session_properties(settings).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(settings.log_level)
    return session


def start_session(settings: SparkSettings) -> Future[SparkSession]:
    """The session built in a thread: the JVM boots (seconds) while the driver imports and opens MLflow.

    A session already active in this thread (Databricks, notebooks) is handed back as it is."""
    future: Future[SparkSession] = Future()
    active = SparkSession.getActiveSession()
    if active is not None:
        future.set_result(active)
        return future
    threading.Thread(target=_start, args=(settings, future), name="spark-start", daemon=True).start()
    return future


def _start(settings: SparkSettings, future: Future[SparkSession]) -> None:
    """Build the session and hand it over, then start the Python workers (best effort)."""
    try:
        spark = build_session(settings)
    except BaseException as error:  # the caller sees it when it asks for the session
        future.set_exception(error)
        return
    future.set_result(spark)
    with contextlib.suppress(Exception):  # a failed warm-up costs nothing but the time it saves
        start_python_workers(spark)
        start_delta_writer(spark)


def _passed_through(batches: Iterable[pa.RecordBatch]) -> Iterable[pa.RecordBatch]:
    yield from batches


def start_python_workers(spark: SparkSession) -> None:
    """Start the Python worker daemon now, in the background, with one tiny task.

    The daemon imports the pipeline before it forks a worker (worker_daemon.py): seconds that
    would otherwise fall on the first stage's first task, here they overlap the driver's own
    imports and the MLflow store's start."""
    spark.range(1, numPartitions=1).mapInArrow(_passed_through, "id long").collect()


def start_delta_writer(spark: SparkSession) -> None:
    """Where Delta is written without the Spark jars, write a one-row table to a scratch directory:
    the data source's planner daemons start now (seconds) instead of on the run's first write."""
    if native_delta_available(spark):
        return
    scratch = tempfile.mkdtemp(prefix="wildvalues-warm-")
    try:
        write_delta(spark.range(1), os.path.join(scratch, "warm"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def joined_session(started: Future[SparkSession]) -> SparkSession:
    """The session `start_session` built, made the active one of this thread too: Spark looks Python
    data sources (the Delta fallback) up in the calling thread's active session."""
    spark = started.result()
    # pyspark sets the JVM's thread-local active session this way itself (createDataFrame, getOrCreate).
    SparkSession._get_j_spark_session_class(spark._jvm).setActiveSession(spark._jsparkSession)
    return spark
