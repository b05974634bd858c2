"""The local session as `build_session` makes it: the JVM runs with the configured options, and the
Python workers fork from a daemon that has imported the pipeline."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import zipfile

from wildvalues.pipeline.spark import session_properties
from wildvalues.pipeline.worker_daemon import PRELOADED, idle_archives, preloaded_for
from wildvalues.settings.sections import SparkSettings


def jvm_arguments(spark) -> list[str]:
    bean = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    return list(bean.getInputArguments())


def test_the_local_jvm_runs_with_the_configured_jit_code_cache_and_collector(spark):
    arguments = jvm_arguments(spark)
    # C1 alone reserves 48 MB of code cache: a long run filled it and failed, so 240 MB (tiered's) is asked for.
    flags = ["-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=240m", "-XX:+UseSerialGC"]
    assert SparkSettings().jvm_options.split() == flags
    assert [a for a in arguments if a in flags] == flags
    assert any(a.startswith("-Dlog4j2.configurationFile=") for a in arguments)


def test_the_jvm_reserves_the_configured_code_cache(spark):
    bean = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        spark.sparkContext._jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    )
    assert bean.getVMOption("ReservedCodeCacheSize").getValue() == str(240 * 1024 * 1024)


def test_spark_conf_is_applied_last_so_the_users_word_wins():
    mine = {"spark.sql.shuffle.partitions": "1", "spark.sql.codegen.wholeStage": "false"}
    default = session_properties(SparkSettings())
    assert default["spark.sql.shuffle.partitions"] == "8" and "spark.sql.codegen.wholeStage" not in default
    assert session_properties(SparkSettings(conf=mine)) == {**default, **mine}


def test_the_session_is_built_with_spark_conf(spark):
    # tests/conftest.py builds the test session with build_session and SMALL_INPUT_SPARK as spark.conf.
    assert spark.conf.get("spark.sql.codegen.wholeStage") == "false"
    assert spark.conf.get("spark.sql.adaptive.enabled") == "false"


def preloaded_in_a_fresh_interpreter(worker_module: str) -> dict:
    """What `worker_daemon.preload` imports in a new Python: missing names, and which modules are then loaded."""
    script = (
        "import json, sys; from wildvalues.pipeline import worker_daemon as d; missing = d.preload(sys.argv[1]);"
        " print(json.dumps({'missing': missing, 'loaded': sorted(m for m in d.preloaded_for(sys.argv[1]) if m in sys.modules)}))"
    )
    done = subprocess.run([sys.executable, "-c", script, worker_module], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_the_udf_workers_daemon_preloads_the_pipeline():
    assert preloaded_in_a_fresh_interpreter("pyspark.worker") == {"missing": [], "loaded": sorted(PRELOADED)}


def test_a_daemon_for_any_other_worker_preloads_nothing():
    assert preloaded_for("some.other.worker") == ()


def test_spark_forks_its_python_workers_from_the_preloading_daemon(spark):
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.python.daemon.module") == "wildvalues.pipeline.worker_daemon"
    # The task runs in a forked worker: the daemon's imports are there before the task imports anything.
    loaded = spark.sparkContext.parallelize([0], 1).map(
        lambda _: "wildvalues.ingest.records" in __import__("sys").modules
    )
    assert loaded.collect() == [True]


def test_lower_uses_the_jvm_case_mappings_and_still_lowers_every_script(spark):
    # ICU's case mappings (Spark 4's default) cost seconds of CPU on their first use.
    assert spark.conf.get("spark.sql.icu.caseMappings.enabled") == "false"
    row = spark.sql("SELECT lower('Harm Prevention ÄÖÜ ΣΟΦΊΑ Ёлка') AS lowered").first()
    assert row is not None and row["lowered"] == "harm prevention äöü σοφία ёлка"


def archive(path, *names: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as opened:
        for name in names:
            opened.writestr(name, "")
    return str(path)


def test_the_workers_drop_the_archives_they_never_import_from(tmp_path):
    site = tmp_path / "site-packages"
    for package in ("pyspark", "py4j"):
        (site / package).mkdir(parents=True)
        (site / package / "__init__.py").write_text("")
    lib = site / "pyspark" / "python" / "lib"
    py4j = importlib.metadata.version("py4j")
    wheel_pyspark = archive(lib / "pyspark.zip", "pyspark/__init__.py")
    wheel_py4j = archive(lib / f"py4j-{py4j}-src.zip", "py4j/__init__.py")
    other_py4j = archive(lib / "py4j-0.0.1-src.zip", "py4j/__init__.py")  # not the installed version
    core_jar = archive(site / "pyspark" / "jars" / "spark-core.jar", "org/apache/spark/SparkContext.class")
    distribution = archive(tmp_path / "spark-home" / "python" / "lib" / "pyspark.zip", "pyspark/__init__.py")
    user_files = archive(tmp_path / "deps.zip", "helpers.py")
    path = [wheel_pyspark, wheel_py4j, other_py4j, core_jar, distribution, user_files, str(site)]
    assert idle_archives(path) == [wheel_pyspark, wheel_py4j, core_jar]


def test_without_an_installed_pyspark_only_archives_without_python_are_dropped(tmp_path):
    jar = archive(tmp_path / "spark-core.jar", "org/apache/spark/SparkContext.class")
    distribution = archive(tmp_path / "python" / "lib" / "pyspark.zip", "pyspark/__init__.py")
    assert idle_archives([distribution, jar, str(tmp_path / "empty")]) == [jar]


def test_spark_tasks_run_without_archive_importers_to_reread(spark):
    # Each task calls importlib.invalidate_caches(), which re-reads every archive still importable.
    def archive_importers(_):
        import sys

        return sorted(key for key, finder in sys.path_importer_cache.items() if type(finder).__name__ == "zipimporter")

    found = spark.sparkContext.parallelize([0], 1).map(archive_importers).collect()
    assert found == [[]]
