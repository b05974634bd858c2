"""The runner and the stage contract: declared tables only, each request carried out in order,
a DataFrame written once and never recomputed, artifacts on disk and in MLflow, cleanup on failure."""

from __future__ import annotations

import importlib.util
import re
import sys
import time
import uuid
from pathlib import Path

import mlflow
import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import LongType
from pyspark.testing import assertDataFrameEqual

from wildvalues.io.delta_io import DeltaWriteError
from wildvalues.io.registry import CROSSCHECK_TABLES
from wildvalues.io.tables import TableStore
from wildvalues.io.tracking import tracked_run, tracking_uri
from wildvalues.pipeline.runner import Runner, _Preloads
from wildvalues.pipeline.stage import (
    Artifact,
    Committed,
    Log,
    Metrics,
    Stage,
    StageInputs,
    StageRun,
    TableNotDeclared,
    Write,
)
from wildvalues.settings import Settings
from wildvalues.settings.sections import RunnerSettings
from wildvalues.stages import CROSSCHECK, STAGES

SCHEMA = "id long, paid long"


def make_runner(spark, tmp_path, tracker=None, log=None, progress_seconds: float = 0) -> Runner:
    # No progress lines unless asked: the tests compare the log's lines exactly, whatever the load.
    settings = Settings(runner=RunnerSettings(progress_seconds=progress_seconds))
    store = TableStore(spark, str(tmp_path / "out"), settings.tables)
    return Runner(spark, settings, store, "run-1", tracker=tracker, log=log.append if log is not None else print)


def test_the_stages_are_declared_in_run_order_and_read_only_what_earlier_stages_wrote():
    assert [stage.name for stage in STAGES] == ["ingest", "classify", "taxonomy", "analyze", "validate", "report"]
    # `wildvalues crosscheck` writes these outside the run; validate and report read them when present.
    outside = set(CROSSCHECK_TABLES)
    assert outside <= set(CROSSCHECK.writes)
    written: set[str] = set()
    for stage in STAGES:
        # a table a stage both reads and writes is its own cache (classify's answers, taxonomy's vectors)
        missing = set(stage.reads) - written - set(stage.writes) - outside
        assert missing == set(), f"{stage.name} reads tables no earlier stage writes: {missing}"
        written |= set(stage.writes)
    assert len(written) == sum(len(stage.writes) for stage in STAGES)  # each table has one writing stage
    assert not written & outside  # no stage of the run overwrites the cross-check


def test_a_paid_dataframe_is_computed_once_then_read_back_from_its_table(spark, tmp_path):
    calls = spark.sparkContext.accumulator(0)

    def pay(value: int) -> int:
        calls.add(1)  # a stand-in for one API call
        return value * 10

    paid = F.udf(pay, LongType())

    def stage(inputs: StageInputs) -> StageRun:
        frame = inputs.spark.range(5).select(F.col("id"), paid("id").alias("paid"))
        yield Write("answers", frame)
        written = inputs.tables.read("answers")
        row = written.agg(F.sum("paid")).first()
        assert row is not None
        total = row[0]
        yield Metrics({"paid_total": total, "rows": written.count()})
        return {"total": total}

    runner = make_runner(spark, tmp_path)
    summary = runner.run_stage(Stage("pay", reads=(), writes=("answers",), run=stage))
    assert summary == {"total": 100}
    assert calls.value == 5
    expected = spark.createDataFrame([(i, i * 10) for i in range(5)], SCHEMA)
    assertDataFrameEqual(runner.store.read("answers"), expected)
    assert {k: v for k, v in runner.metrics.items() if not k.startswith(("seconds_", "spark_jobs_"))} == {
        "paid_total": 100.0,
        "rows": 5.0,
    }
    assert set(runner.metrics) == {"paid_total", "rows", "seconds_pay", "spark_jobs_pay"}


def test_each_stage_counts_its_own_spark_jobs(spark, tmp_path):
    def two_actions(inputs: StageInputs) -> StageRun:
        inputs.spark.range(3).collect()
        inputs.spark.range(4).collect()
        yield Log("two actions")
        return {}

    def no_action(inputs: StageInputs) -> StageRun:
        inputs.spark.range(3).select((F.col("id") + 1).alias("lazy"))  # planned, never run
        yield Log("nothing run")
        return {}

    runner = make_runner(spark, tmp_path)
    runner.run_stage(Stage("busy", reads=(), writes=(), run=two_actions))
    runner.run_stage(Stage("idle", reads=(), writes=(), run=no_action))
    spark.range(2).collect()  # after the stages: counted in neither
    assert (runner.metrics["spark_jobs_busy"], runner.metrics["spark_jobs_idle"]) == (2.0, 0.0)


def test_writing_or_reading_an_undeclared_table_is_refused(spark, tmp_path):
    def writes_elsewhere(inputs: StageInputs) -> StageRun:
        yield Write("not_mine", inputs.spark.range(1))
        return {}

    def reads_elsewhere(inputs: StageInputs) -> StageRun:
        inputs.tables.read("conversations")
        yield Log("unreachable")
        return {}

    runner = make_runner(spark, tmp_path)
    with pytest.raises(ValueError, match=r"^stage w wrote 'not_mine', which it does not declare$"):
        runner.run_stage(Stage("w", reads=(), writes=("mine",), run=writes_elsewhere))
    with pytest.raises(TableNotDeclared, match="table 'conversations' is not declared by this stage"):
        runner.run_stage(Stage("r", reads=("quarantine",), writes=(), run=reads_elsewhere))
    assert runner.store.exists("not_mine") is False


def test_create_writes_only_when_the_table_is_absent_and_append_adds(spark, tmp_path):
    def stage(inputs: StageInputs) -> StageRun:
        yield Write("ledger", inputs.spark.createDataFrame([(1, 1)], SCHEMA), mode="create")
        yield Write("ledger", inputs.spark.createDataFrame([(9, 9)], SCHEMA), mode="create")
        yield Write("ledger", inputs.spark.createDataFrame([(2, 2)], SCHEMA), mode="append")
        return {}

    runner = make_runner(spark, tmp_path)
    runner.run_stage(Stage("ledger", reads=(), writes=("ledger",), run=stage))
    assertDataFrameEqual(runner.store.read("ledger"), spark.createDataFrame([(1, 1), (2, 2)], SCHEMA))


def test_a_failed_request_runs_the_stage_cleanup_and_the_error_goes_on(spark, tmp_path):
    cleaned: list[str] = []

    def stage(inputs: StageInputs) -> StageRun:
        try:
            yield Write("t", inputs.spark.range(1))
            yield Write("undeclared", inputs.spark.range(1))
            yield Log("never reached")
        finally:
            cleaned.append("unpersisted")
        return {}

    lines: list[str] = []
    runner = make_runner(spark, tmp_path, log=lines)
    with pytest.raises(ValueError, match="does not declare"):
        runner.run_stage(Stage("failing", reads=(), writes=("t",), run=stage))
    assert cleaned == ["unpersisted"]
    assert lines == ["failing: started"]
    assert "seconds_failing" not in runner.metrics


def test_logs_metrics_and_artifacts_reach_the_console_the_output_and_mlflow(spark, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def stage(inputs: StageInputs) -> StageRun:
        yield Log("hello")
        yield Metrics({"answer": 42, "skipped": None})
        yield Artifact("report/plot.png", b"\x89PNG-bytes")
        yield Artifact("summary.csv", "a,b\n1,2\n")
        yield Artifact("validation/results.json", '{"suites": []}', keep_file=False)
        return {"ok": True}

    lines: list[str] = []
    out = tmp_path / "out"
    with tracked_run(str(out), "wildvalues", "run-1") as tracker:
        runner = make_runner(spark, tmp_path, tracker=tracker, log=lines)
        assert runner.run_stage(Stage("demo", reads=(), writes=(), run=stage)) == {"ok": True}
        mlflow_run_id = tracker.mlflow_run_id
    assert lines[:2] == ["demo: started", "demo: hello"]
    assert lines[2].startswith("demo: done in ")
    assert (out / "report" / "plot.png").read_bytes() == b"\x89PNG-bytes"
    assert (out / "summary.csv").read_text() == "a,b\n1,2\n"
    assert not (out / "validation").exists()
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(str(out)))
    run = client.get_run(mlflow_run_id)
    # A metric no group claims is logged under other/ (tracking.mlflow_metric), never dropped.
    assert run.data.metrics["other/answer"] == 42.0 and "other/skipped" not in run.data.metrics
    listed = {a.path for a in client.list_artifacts(mlflow_run_id)}
    assert listed == {"report", "summary.csv", "validation"}
    assert [a.path for a in client.list_artifacts(mlflow_run_id, "report")] == ["report/plot.png"]
    logged = Path(client.download_artifacts(mlflow_run_id, "validation/results.json", str(tmp_path)))
    assert logged.read_text() == '{"suites": []}'


def test_a_stage_that_yields_something_else_is_an_error(spark, tmp_path):
    def stage(inputs: StageInputs) -> StageRun:
        yield "write this please"  # type: ignore[misc]  # the mistake under test
        return {}

    with pytest.raises(TypeError, match=r"^stage odd yielded 'write this please', not a request$"):
        make_runner(spark, tmp_path).run_stage(Stage("odd", reads=(), writes=(), run=stage))


def test_every_declared_stage_has_a_cli_command_and_a_job_entry_point():
    import argparse

    from wildvalues.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {stage.name for stage in STAGES} - set(commands) == set()
    setup = (Path(__file__).parent.parent / "setup.py").read_text()
    for stage in STAGES:
        assert f'"wildvalues-{stage.name}=wildvalues.jobs.{stage.name}:main"' in setup
        assert (Path(__file__).parent.parent / "jobs" / f"{stage.name}.py").is_file()


def test_a_running_stage_logs_progress_lines_named_for_it(spark, tmp_path):
    def slow(x: int) -> int:
        time.sleep(1.0)
        return x

    def stage(inputs: StageInputs) -> StageRun:
        inputs.spark.sparkContext.parallelize(range(2), 2).map(slow).collect()
        return {}
        yield  # a generator, as every stage

    lines: list[str] = []
    make_runner(spark, tmp_path, log=lines, progress_seconds=0.2).run_stage(Stage("slow", (), (), stage))
    progress = lines[1:-1]
    assert lines[0] == "slow: started" and lines[-1].startswith("slow: done in ")
    assert progress, lines
    pattern = r"slow: \d/2 tasks in \d+s, \d+\.\d tasks/s, \d+s elapsed, (~\d+s left|time left unknown)"
    assert all(re.fullmatch(pattern, line) for line in progress), progress


def slow_copy(spark, seconds: float):
    """A UDF that returns its input after `seconds`: a small write that is still running for a while."""

    def wait_then(value: int) -> int:
        time.sleep(seconds)
        return value

    return F.udf(wait_then, LongType())


def committed(runner: Runner, name: str) -> bool:
    return (Path(runner.store.location(name)) / "_delta_log").is_dir()


def test_a_small_write_runs_while_the_stage_goes_on_and_a_read_waits_for_its_commit(spark, tmp_path):
    seen: dict[str, bool] = {}
    runner = make_runner(spark, tmp_path)

    def stage(inputs: StageInputs) -> StageRun:
        frame = inputs.spark.range(3).select("id", slow_copy(inputs.spark, 1.0)("id").alias("paid"))
        yield Write("aggregate", frame, small=True)
        seen["committed when the stage went on"] = committed(runner, "aggregate")
        rows = sorted(tuple(row) for row in inputs.tables.read("aggregate").collect())
        seen["rows read"] = rows == [(0, 0), (1, 1), (2, 2)]
        return {}

    runner.run_stage(Stage("aggregates", reads=(), writes=("aggregate",), run=stage))
    assert seen == {"committed when the stage went on": False, "rows read": True}


def test_committed_waits_for_every_small_write_before_a_persisted_frame_goes(spark, tmp_path):
    seen: list[bool] = []
    runner = make_runner(spark, tmp_path)

    def stage(inputs: StageInputs) -> StageRun:
        base = inputs.spark.range(2).select("id", slow_copy(inputs.spark, 0.5)("id").alias("paid")).persist()
        try:
            yield Write("first", base, small=True)
            yield Write("second", base.select("id", (F.col("paid") * 2).alias("paid")), small=True)
            yield Committed()
            seen.extend(committed(runner, name) for name in ("first", "second"))
        finally:
            base.unpersist()
        return {}

    runner.run_stage(Stage("levels", reads=(), writes=("first", "second"), run=stage))
    assert seen == [True, True]
    assertDataFrameEqual(runner.store.read("second"), spark.createDataFrame([(0, 0), (1, 2)], SCHEMA))


def test_a_small_write_that_fails_in_the_background_fails_the_stage_with_one_line(spark, tmp_path):
    def explode(value: int) -> int:
        raise RuntimeError(f"no answer for {value}")

    def stage(inputs: StageInputs) -> StageRun:
        yield Write(
            "broken", inputs.spark.range(1).select("id", F.udf(explode, LongType())("id").alias("paid")), small=True
        )
        yield Log("went on")
        return {}

    lines: list[str] = []
    runner = make_runner(spark, tmp_path, log=lines)
    with pytest.raises(DeltaWriteError, match=r"writing Delta table .*broken failed: .*no answer for 0") as failed:
        runner.run_stage(Stage("failing", reads=(), writes=("broken",), run=stage))
    assert "\n" not in str(failed.value)
    assert lines == ["failing: started", "failing: went on"]
    assert not committed(runner, "broken")
    assert "seconds_failing" not in runner.metrics


def test_with_no_write_threads_each_small_write_commits_before_the_stage_goes_on(spark, tmp_path):
    settings = Settings(runner=RunnerSettings(progress_seconds=0, write_threads=0))
    runner = Runner(spark, settings, TableStore(spark, str(tmp_path / "out"), settings.tables), "run-1", log=print)
    seen: list[bool] = []

    def stage(inputs: StageInputs) -> StageRun:
        yield Write("aggregate", inputs.spark.range(1).select("id", F.col("id").alias("paid")), small=True)
        seen.append(committed(runner, "aggregate"))
        return {}

    runner.run_stage(Stage("aggregates", reads=(), writes=("aggregate",), run=stage))
    assert seen == [True]


def marker_copy(spark, marker: str, seconds: float):
    """A UDF that returns 1 once `marker` exists (0 if it never does within `seconds`)."""

    def wait_for_marker(value: int) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if Path(marker).exists():
                return 1
            time.sleep(0.05)
        return 0

    return F.udf(wait_for_marker, LongType())


def test_a_later_stages_imports_happen_while_the_driver_waits_on_a_write(spark, tmp_path, monkeypatch):
    # The probe module leaves a marker when imported; the write's task waits for that marker.
    # The write can commit in time only if the driver imports the module while it waits.
    name = f"wildvalues_probe_{uuid.uuid4().hex}"
    marker = tmp_path / "imported"
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path / "probes"))
    seen: dict[str, object] = {}

    def first(inputs: StageInputs) -> StageRun:
        frame = inputs.spark.range(1).select("id", marker_copy(inputs.spark, str(marker), 60)("id").alias("paid"))
        yield Write("aggregate", frame, small=True)
        seen["rows"] = [tuple(row) for row in inputs.tables.read("aggregate").collect()]
        return {}

    def second(inputs: StageInputs) -> StageRun:
        seen["imported before the second stage"] = name in sys.modules
        yield Log("second")
        return {}

    stages = [
        Stage("first", reads=(), writes=("aggregate",), run=first),
        Stage("second", reads=(), writes=(), run=second, imports=(name,)),
    ]
    make_runner(spark, tmp_path).run(stages)
    assert seen == {"rows": [(0, 1)], "imported before the second stage": True}


def test_preloads_skip_what_is_imported_and_outlive_a_module_that_fails(tmp_path, monkeypatch):
    (tmp_path / "wildvalues_broken_probe.py").write_text("raise ValueError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    preloads = _Preloads(["json", "wildvalues_broken_probe", "json", "wildvalues_broken_probe"])
    # json is imported already; the broken module is tried once (its stage reports the error).
    assert [preloads.import_next(), preloads.import_next()] == [True, False]
    assert "wildvalues_broken_probe" not in sys.modules


def test_every_module_a_stage_declares_for_preloading_exists():
    declared = [module for stage in STAGES for module in stage.imports]
    assert "great_expectations" in declared
    assert [m for m in declared if importlib.util.find_spec(m) is None] == []
