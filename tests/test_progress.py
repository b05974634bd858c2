"""Progress lines and the messages around them: exact formats on a unit level, then one CLI output.

The CLI part starts Spark three times (ingest, then two `wildvalues sql`), on 60 generated
conversations; everything else is pure or uses the session's SparkSession.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from wildvalues.cli.commands import sql_statements
from wildvalues.cli.summary import claude_token_lines
from wildvalues.errors import UsageError
from wildvalues.pipeline.progress import Snapshot, StageProgress, format_duration, format_progress, spark_snapshot
from wildvalues.stages.batch_mode import batch_progress, ended_line
from wildvalues.stages.summaries import ClaudeTokens

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.e2e import LEAN_CONFIG, assert_ok, wildvalues
else:
    from e2e import LEAN_CONFIG, assert_ok, wildvalues

N_CONVERSATIONS = 60

# ----------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (44.6, "45s"), (59.4, "59s"), (60.0, "1m00s"), (185.0, "3m05s"), (7620.0, "2h07m"), (-3.0, "0s")],
)
def test_durations_are_short(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("snapshot", "elapsed", "line"),
    [
        # tasks only: the rate is tasks over wall time, the time left the tasks' share still to do
        (Snapshot(40, 80), 20.0, "classify: 40/80 tasks, 2.0 tasks/s, 20s elapsed, ~20s left"),
        # records known: their rate and their share decide the time left
        (
            Snapshot(3, 8, records=1200, records_total=4800),
            125.0,
            "classify: 3/8 tasks, 1,200/4,800 records, 9.6 records/s, 2m05s elapsed, ~6m15s left",
        ),
        # records without a total: the time left falls back on the tasks
        (
            Snapshot(1, 4, records=250),
            10.0,
            "classify: 1/4 tasks, 250 records, 25.0 records/s, 10s elapsed, ~30s left",
        ),
        (Snapshot(0, 4), 5.0, "classify: 0/4 tasks, 0.0 tasks/s, 5s elapsed, time left unknown"),
        (Snapshot(4, 4), 12.0, "classify: 4/4 tasks, 0.3 tasks/s, 12s elapsed, ~0s left"),
    ],
)
def test_progress_line(snapshot, elapsed, line):
    assert format_progress("classify", snapshot, elapsed) == line


def test_tasks_are_timed_over_the_time_their_jobs_have_run():
    # the stage's third job started 10 s ago, 95 s into the stage: its tasks' rate is over 10 s
    snapshot = Snapshot(1, 4, jobs=(7,))
    assert (
        format_progress("taxonomy", snapshot, 95.0, busy=10.0)
        == "taxonomy: 1/4 tasks in 10s, 0.1 tasks/s, 1m35s elapsed, ~30s left"
    )
    # records keep their own clock: the stage's
    records = Snapshot(1, 4, records=50, records_total=100, jobs=(7,))
    assert (
        format_progress("classify", records, 95.0, busy=10.0)
        == "classify: 1/4 tasks in 10s, 50/100 records, 0.5 records/s, 1m35s elapsed, ~1m35s left"
    )


def test_batch_progress_is_a_rate_over_wall_time():
    # issue 12: requests ended between two polls over a few microseconds read as 2,786,626 req/s
    counts = {"processing": 7, "succeeded": 2, "errored": 1, "canceled": 0, "expired": 0}
    assert (
        batch_progress("msgbatch_01", counts, 4.0)
        == "message batch msgbatch_01: 3/10 requests, 0.8 requests/s, 4s elapsed, ~9s left"
    )
    done = {"processing": 0, "succeeded": 9_990, "errored": 10, "canceled": 0, "expired": 0}
    assert (
        batch_progress("msgbatch_01", done, 50.0)
        == "message batch msgbatch_01: 10,000/10,000 requests, 200.0 requests/s, 50s elapsed, ~0s left"
    )


def test_batch_end_counts_error_rows_as_the_summary_does():
    # an answer the API counts as succeeded but that fails validation is an error row too
    rows = [{"kind": "result"}] * 5 + [{"kind": "error"}] * 3
    counts = {"processing": 0, "succeeded": 6, "errored": 2, "canceled": 0, "expired": 0}
    assert ended_line("msgbatch_01", rows, counts) == (
        "message batch msgbatch_01 ended: 5 classified, 3 error(s) (API: succeeded 6, errored 2)"
    )


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_stage_progress_ticks_on_the_clock_and_restarts_the_job_clock_when_jobs_change():
    clock = FakeClock()
    readings = iter(
        [
            Snapshot(0, 12, jobs=(1,)),
            Snapshot(6, 12, jobs=(1,)),
            Snapshot(2, 8, jobs=(2,)),
            Snapshot(4, 8, jobs=(2,)),
            Snapshot(),
        ]
    )
    lines: list[str] = []
    with StageProgress("ingest", lambda: next(readings), lines.append, every=0, clock=clock) as progress:
        assert progress.tick() == "ingest: 0/12 tasks in 0s, 0.0 tasks/s, 0s elapsed, time left unknown"
        clock.now += 30.0
        assert progress.tick() == "ingest: 6/12 tasks in 30s, 0.2 tasks/s, 30s elapsed, ~30s left"
        clock.now += 30.0
        assert progress.tick() == "ingest: 2/8 tasks in 0s, 0.0 tasks/s, 1m00s elapsed, time left unknown"
        clock.now += 5.0
        assert progress.tick() == "ingest: 4/8 tasks in 5s, 0.8 tasks/s, 1m05s elapsed, ~5s left"
        assert progress.tick() is None  # no job running: nothing to say
        assert progress.tick() is None  # the reader failed (StopIteration): progress never fails a stage
    assert lines == []  # every=0: no thread, no line


def test_stage_progress_logs_from_its_thread_until_the_stage_ends():
    lines: list[str] = []
    with StageProgress("taxonomy", lambda: Snapshot(1, 2), lines.append, every=0.05):
        time.sleep(0.5)
    count = len(lines)
    time.sleep(0.2)
    assert len(lines) == count  # stopped with the stage
    assert count >= 2
    assert all(re.fullmatch(r"taxonomy: 1/2 tasks, \d+\.\d tasks/s, 0s elapsed, ~0s left", line) for line in lines)


def test_spark_snapshot_reads_the_groups_running_tasks(spark):
    context = spark.sparkContext

    def slow(x: int) -> int:
        time.sleep(1.5)
        return x

    def job() -> None:
        context.setJobGroup("progress-test", "progress-test")
        context.parallelize(range(4), 4).map(slow).collect()

    worker = threading.Thread(target=job)
    worker.start()
    deadline = time.monotonic() + 60
    seen = Snapshot()
    while time.monotonic() < deadline and seen.tasks_total == 0:
        seen = spark_snapshot(context, "progress-test")
        time.sleep(0.05)
    assert spark_snapshot(context, "another-group") == Snapshot()
    worker.join()
    assert seen.tasks_total == 4
    assert 0 <= seen.tasks_done < 4
    assert len(seen.jobs) == 1
    assert spark_snapshot(context, "progress-test") == Snapshot()  # the job ended: nothing running


# ----------------------------------------------------------------------------- messages


def test_claude_token_line():
    tokens = ClaudeTokens(
        input=1_000,
        output=250,
        thinking=0,
        cache_write=2_000,
        cache_read=6_000,
        cache_hit_share=6_000 / 9_000,
        cost_usd=0.0,
    )
    assert claude_token_lines(tokens) == [
        "  Claude tokens         9,250  (input 1,000, output 250 of which thinking 0, cache write 2,000, cache read 6,000; "
        "cache hits 66.7% of input)"
    ]
    assert claude_token_lines(None) == [], "the classifier is not Claude"


def test_sql_statements_split_outside_quotes_and_comments():
    text = "SELECT ';' AS a;\n-- a comment; not a statement\nSELECT 2 AS b ;\n\n;  "
    assert sql_statements(text) == ["SELECT ';' AS a", "SELECT 2 AS b"]
    with pytest.raises(UsageError, match="no SQL statement given"):
        sql_statements("-- nothing ;\n")


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """One `wildvalues ingest` with progress every 0.1 s; the tests read its output."""
    root = tmp_path_factory.mktemp("progress")
    (root / "lean.yml").write_text(yaml.safe_dump({**LEAN_CONFIG, "runner": {"progress_seconds": 0.1}}))
    source = root / "in.jsonl"
    assert_ok(wildvalues("synth", "--n", N_CONVERSATIONS, "--output", source, "--seed", 3, cwd=root))
    out = root / "out"
    args = ("--output", out, "--config", root / "lean.yml", "--run-id", "p1")
    result = wildvalues("ingest", "--input", source, *args, cwd=root)
    assert_ok(result)
    return {"root": root, "out": out, "result": result}


def test_ingest_shows_progress_lines_named_for_its_stage(ingested):
    stdout = ingested["result"].stdout
    progress = [line for line in stdout.splitlines() if re.match(r"\[wildvalues\] ingest: \d+/\d+ tasks", line)]
    assert progress, stdout
    pattern = (
        r"\[wildvalues\] ingest: (\d+)/(\d+) tasks in \d+(m\d\d)?s, \d+\.\d tasks/s, \d+(m\d\d)?s elapsed, "
        r"(~\d+(m\d\d)?s left|time left unknown)"
    )
    for line in progress:
        match = re.fullmatch(pattern, line)
        assert match, line
        assert int(match.group(1)) <= int(match.group(2))


def test_a_stage_command_prints_the_runs_summary_lines(ingested):
    stdout = ingested["result"].stdout
    assert "wildvalues ingest complete" in stdout
    assert "{" not in stdout  # no raw dict
    lines = {line.split()[0]: line for line in stdout.splitlines() if line.startswith("  ") and line.split()}
    assert re.fullmatch(r"  run id           p1  \(MLflow run \w+\)", lines["run"])
    assert lines["input"] == f"  input records    {N_CONVERSATIONS:>10,}  (files: 1 JSON-lines)"
    assert lines["quarantined"] == f"  quarantined      {0:>10,}"
    assert lines["conversations"] == f"  conversations    {N_CONVERSATIONS:>10,}"
    assert re.fullmatch(r"  seconds          +\d+\.\d", lines["seconds"])
    assert "classified" not in lines


def test_sql_runs_several_statements_in_one_session(ingested):
    root, out = ingested["root"], ingested["out"]
    script = Path(root / "queries.sql")
    script.write_text(
        "-- the conversations, then a view over them\n"
        "SELECT count(*) AS n FROM conversations;\n"
        "CREATE TEMPORARY VIEW long_ones AS SELECT * FROM conversations WHERE n_turns >= 2;\n"
        "SELECT count(*) > 0 AS some_long FROM long_ones;\n"
        "SELECT nope FROM long_ones;\n"
    )
    result = wildvalues("sql", "--file", script, "--output", out, "--config", root / "lean.yml", cwd=root)
    assert result.returncode == 2, result.stderr
    headers = [line for line in result.stdout.splitlines() if line.startswith("-- [")]
    assert headers == [
        "-- [1/4] SELECT count(*) AS n FROM conversations",
        "-- [2/4] CREATE TEMPORARY VIEW long_ones AS SELECT * FROM conversations WHERE n_turns >= 2",
        "-- [3/4] SELECT count(*) > 0 AS some_long FROM long_ones",
        "-- [4/4] SELECT nope FROM long_ones",
    ]
    cells = [line.strip("|").strip() for line in result.stdout.splitlines() if line.startswith("|")]
    assert cells == ["n", str(N_CONVERSATIONS), "some_long", "true"]
    # the JVM's own start-up lines come before ours; ours is one line
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower() or "wildvalues" in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(
        "wildvalues: error: statement 4 of 4 query failed: [UNRESOLVED_COLUMN.WITH_SUGGESTION] "
    ), errors[0]
    assert "Traceback" not in result.stderr and "at org.apache" not in result.stderr


def test_sql_needs_a_query_or_a_file(ingested):
    root = ingested["root"]
    result = wildvalues("sql", "--output", ingested["out"], cwd=root)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        'wildvalues: error: give a query or --file FILE (one of them): wildvalues sql "SELECT ..." --output DIR'
    )


def test_a_stage_command_without_its_earlier_tables_says_which_to_run(ingested, tmp_path):
    out = ingested["out"]
    result = wildvalues("taxonomy", "--output", out, "--run-id", "p1", cwd=ingested["root"])
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"wildvalues: error: no classifications table under {out}: "
        f"run `wildvalues classify --output {out} --run-id p1` first (or `wildvalues run`)"
    )
    empty = tmp_path / "empty"
    result = wildvalues("classify", "--output", empty, "--run-id", "r1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"wildvalues: error: no conversations table under {empty}: "
        f"run `wildvalues ingest --input PATH --output {empty} --run-id r1` first (or `wildvalues run`)"
    )
