"""Building the SparkSession from settings; the session is always passed in, never global."""

from __future__ import annotations

import importlib.util
import os
import sys
from importlib import resources

from pyspark.sql import SparkSession

from wildvalues.settings import SparkSettings

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


def build_session(settings: SparkSettings) -> SparkSession:
    """A local (or cluster-provided) session configured for the pipeline."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active  # Databricks and notebooks hand us a configured session
    # Executors must run the same interpreter as the driver so they see the installed package.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(settings.master)
        .appName(settings.app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.speculation", str(settings.speculation).lower())
        .config("spark.ui.showConsoleProgress", "true" if _show_progress(settings) else "false")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.python.worker.reuse", "true")
        # Quiet from the first line: Spark's default log4j profile prints WARN lines at start-up,
        # before setLogLevel can act.
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={_log4j_config()}")
    )
    if _delta_jars_present() or settings.delta_packages:
        builder = builder.config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension").config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        if settings.delta_packages:
            builder = builder.config("spark.jars.packages", settings.delta_packages)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(settings.log_level)
    return session
