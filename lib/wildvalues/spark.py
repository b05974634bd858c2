"""Building the SparkSession from settings; the session is always passed in, never global."""

from __future__ import annotations

import importlib.util
import os
import sys

from pyspark.sql import SparkSession


def _delta_jars_present() -> bool:
    """True when delta-spark's jars are already on this machine (no download needed)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        return False
    jars = os.path.join(list(spec.submodule_search_locations)[0], "jars")
    return any(name.startswith("delta-spark") for name in os.listdir(jars)) if os.path.isdir(jars) else False


def _show_progress(settings: dict) -> bool:
    """Spark's stage progress bar on a terminal; logs in CI and files stay clean."""
    return bool(settings.get("progress", sys.stderr.isatty()))


def build_session(settings: dict) -> SparkSession:
    """A local (or cluster-provided) session configured for the pipeline."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active  # Databricks and notebooks hand us a configured session
    # Executors must run the same interpreter as the driver so they see the installed package.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(settings.get("master", "local[*]"))
        .appName(settings.get("app_name", "wildvalues"))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(settings.get("shuffle_partitions", 8)))
        .config("spark.speculation", str(bool(settings.get("speculation", False))).lower())
        .config("spark.ui.showConsoleProgress", "true" if _show_progress(settings) else "false")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", settings.get("driver_memory", "4g"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.python.worker.reuse", "true")
    )
    if _delta_jars_present() or settings.get("delta_packages"):
        builder = builder.config(
            "spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension"
        ).config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        if settings.get("delta_packages"):
            builder = builder.config("spark.jars.packages", settings["delta_packages"])
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(settings.get("log_level", "ERROR"))
    return session
