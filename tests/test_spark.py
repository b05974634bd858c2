"""The local session as `build_session` makes it: the JVM runs with the configured options, and the
Python workers fork from a daemon that has imported the pipeline."""

from __future__ import annotations

import json
import subprocess
import sys

from wildvalues.settings import SparkSettings
from wildvalues.worker_daemon import PLANNER_PRELOADED, PRELOADED, preloaded_for


def jvm_arguments(spark) -> list[str]:
    bean = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    return list(bean.getInputArguments())


def test_the_local_jvm_runs_with_the_configured_jit_and_collector(spark):
    arguments = jvm_arguments(spark)
    assert SparkSettings().jvm_options.split() == ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
    assert [a for a in arguments if a in SparkSettings().jvm_options.split()] == [
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
    ]
    assert any(a.startswith("-Dlog4j2.configurationFile=") for a in arguments)


def preloaded_in_a_fresh_interpreter(worker_module: str) -> dict:
    """What `worker_daemon.preload` imports in a new Python: missing names, and which modules are then loaded."""
    script = (
        "import json, sys; from wildvalues import worker_daemon as d; missing = d.preload(sys.argv[1]);"
        " print(json.dumps({'missing': missing, 'loaded': sorted(m for m in d.preloaded_for(sys.argv[1]) if m in sys.modules)}))"
    )
    done = subprocess.run([sys.executable, "-c", script, worker_module], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_the_udf_workers_daemon_preloads_the_pipeline():
    assert preloaded_in_a_fresh_interpreter("pyspark.worker") == {"missing": [], "loaded": sorted(PRELOADED)}


def test_the_delta_writers_planner_daemons_preload_delta_rs_and_the_writer():
    module = "pyspark.sql.worker.write_into_data_source"
    found = preloaded_in_a_fresh_interpreter(module)
    assert found == {"missing": [], "loaded": sorted((*PLANNER_PRELOADED, module))}


def test_a_daemon_for_any_other_worker_preloads_nothing():
    assert preloaded_for("some.other.worker") == ()


def test_spark_forks_its_python_workers_from_the_preloading_daemon(spark):
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.python.daemon.module") == "wildvalues.worker_daemon"
    # The task runs in a forked worker: the daemon's imports are there before the task imports anything.
    loaded = spark.sparkContext.parallelize([0], 1).map(lambda _: "wildvalues.ingest" in __import__("sys").modules)
    assert loaded.collect() == [True]


def test_lower_uses_the_jvm_case_mappings_and_still_lowers_every_script(spark):
    # ICU's case mappings (Spark 4's default) cost seconds of CPU on their first use.
    assert spark.conf.get("spark.sql.icu.caseMappings.enabled") == "false"
    row = spark.sql("SELECT lower('Harm Prevention ÄÖÜ ΣΟΦΊΑ Ёлка') AS lowered").first()
    assert row is not None and row["lowered"] == "harm prevention äöü σοφία ёлка"
