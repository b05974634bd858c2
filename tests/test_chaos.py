"""What real clusters do to a run, through the real `wildvalues` CLI: the cases of bench/chaos.py the suite can afford.

SLOW (about three full runs): one uninterrupted run over a directory of damaged files beside
generated conversations, in a process of its own on a fresh output (the reference, during which a
second run on the same output, in this process, must stop at once), and one run killed with
`kill -9` in the middle of classify, then rerun in this process. The inputs and the kill come from
`wildvalues.demo.chaos`, which bench/chaos.py runs at scale.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from typing import TYPE_CHECKING

import pytest
import yaml
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from wildvalues.demo import chaos
from wildvalues.io.delta_io import read_delta
from wildvalues.pipeline.output_lock import read_holder

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.e2e import LEAN_CONFIG, assert_ok, cli_env, wildvalues
else:
    from e2e import LEAN_CONFIG, assert_ok, cli_env, wildvalues

N_SYNTH = 40
GZIP_RECORDS = 120
GZIP_DAMAGE_LINE = 55  # where truncated_gzip(120) cuts the stream
# Ten conversations per committed chunk, so that a kill after the first chunk lands mid-stage.
CONFIG = {**LEAN_CONFIG, "classifier": {"offline": {"chunk_size": 10}}}
REASONS = StructType(
    [
        StructField("file", StringType(), False),
        StructField("line_number", LongType(), True),
        StructField("conversation_id", StringType(), True),
        StructField("reason", StringType(), False),
    ]
)
DEEP = "invalid JSON: maximum recursion depth exceeded while decoding a JSON array from a unicode string"
WRONG_LAYOUT = (
    "unrecognised layout: no 'messages', 'conversation', 'contents', 'conversations', 'conversation_a'/'conversation_b', "
    "'replies', 'instruction'/'output', 'data' or 'text' field (keys: price, sku)"
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory of damaged files and generated conversations, with spaces in every path."""
    root = tmp_path_factory.mktemp("chaos") / "work dir"
    folder = root / "in put"
    chaos.write_malformed(str(folder), gzip_records=GZIP_RECORDS)
    assert_ok(wildvalues("synth", "--n", N_SYNTH, "--output", folder / "conversations.jsonl", cwd=root.parent))
    (root / "settings.yml").write_text(yaml.safe_dump(CONFIG))
    return root


def run_command(workdir, output: str) -> list[str]:
    # One run id, as a resumed job has: the rerun after a kill replaces that run's rows.
    return [sys.executable, "-m", "wildvalues.cli", "run", "--input", str(workdir / "in put"),
            "--output", str(workdir / output), "--config", str(workdir / "settings.yml"), "--no-report",
            "--run-id", "chaos-run"]  # fmt: skip


@pytest.fixture(scope="module")
def reference(workdir):
    """An uninterrupted run; while it holds its output, a second run on that output is started."""
    output = str(workdir / "reference out")
    first = chaos.start(run_command(workdir, "reference out"), cli_env())
    chaos.wait_for(os.path.join(output, chaos.LOCK_FILE))
    holder = read_holder(os.path.join(output, chaos.LOCK_FILE))
    started = time.monotonic()
    second = wildvalues(*run_command(workdir, "reference out")[3:], cwd=workdir)
    second_seconds = time.monotonic() - started
    log, _ = first.communicate(timeout=1800)
    assert first.returncode == 0, log[-5000:]
    assert "Traceback" not in log, log[-5000:]
    return {"out": output, "log": log, "holder": holder, "second": second, "second_seconds": second_seconds}


@pytest.fixture(scope="module")
def killed_and_rerun(workdir):
    """The same run killed with kill -9 after classify's first committed chunk, then run again."""
    output = str(workdir / "killed out")
    command = run_command(workdir, "killed out")
    killed, before = chaos.kill_when(command, cli_env(), "classify: chunk 1/", 0.5)
    lock = read_holder(os.path.join(output, chaos.LOCK_FILE))
    cached = chaos.cached_keys(output)
    # The kill needs a process of its own; the rerun that takes over its lock does not.
    rerun = wildvalues(*command[3:], cwd=workdir)
    code, log = rerun.returncode, rerun.stdout + rerun.stderr
    assert code == 0, log[-5000:]
    return {"out": output, "killed": killed, "before": before, "lock": lock, "cached": cached, "log": log}


def test_a_second_run_on_a_busy_output_stops_at_once_naming_the_holder(workdir, reference):
    second, holder = reference["second"], reference["holder"]
    output = workdir / "reference out"
    assert holder is not None and holder.command == f"wildvalues run --output {output}"
    assert second.returncode == 2
    assert second.stdout == ""
    assert second.stderr == (
        f"wildvalues: error: output {output} is locked by {holder.describe()}; wait for it (--wait) or, "
        f"if that process is gone for good, delete {output / chaos.LOCK_FILE}\n"
    )
    assert reference["second_seconds"] < 30  # before Spark starts


def test_damaged_files_are_quarantined_each_with_its_reason(spark, workdir, reference):
    quarantine = read_delta(spark, os.path.join(reference["out"], "tables", "quarantine"))
    actual = quarantine.select(F.col("source_file").alias("file"), "line_number", "conversation_id", "reason")
    damage = (
        f"damaged gzip stream near compressed byte 3130 (line {GZIP_DAMAGE_LINE} on): "
        "Compressed file ended before the end-of-stream marker was reached"
    )
    expected = [
        ("deep.jsonl", 1, None, DEEP),
        ("deep_object.jsonl", 1, None, DEEP),
        ("image_only.jsonl", 1, "i1", "no assistant turn with text"),
        ("nul_bytes.jsonl", 1, None, "invalid JSON: Expecting value"),
        ("numbers_as_content.jsonl", 1, "c1", "turn 1 content is a number, expected text"),
        ("truncated.jsonl.gz", GZIP_DAMAGE_LINE, None, damage),
        ("wrong_schema.parquet", 1, None, WRONG_LAYOUT),
        ("wrong_schema.parquet", 2, None, WRONG_LAYOUT),
    ]
    # Full paths: a path with spaces must come back as written, not URL-encoded.
    in_put = str(workdir / "in put")
    located = [(os.path.join(in_put, name), *rest) for name, *rest in expected]
    assertDataFrameEqual(actual, spark.createDataFrame(located, REASONS))
    assert quarantine.select("run_id").distinct().count() == 1


def test_damaged_files_keep_what_is_readable_and_flag_what_was_cut(spark, workdir, reference):
    conversations = read_delta(spark, os.path.join(reference["out"], "tables", "conversations"))
    kept = conversations.filter(~F.col("conversation_id").startswith("synth-")).select(
        "conversation_id", F.col("source").alias("file"), "n_turns", "cut_chars"
    )
    before_damage = [(f"g{i}", "truncated.jsonl.gz", 2, 0) for i in range(GZIP_DAMAGE_LINE - 1)]
    expected = [
        ("b1", "bom_crlf.jsonl", 2, 0),
        ("b2", "bom_crlf.jsonl", 2, 0),
        ("h1", "huge_line.jsonl", 2, 20_000_000 - 200_000),
        ("u1", "invalid_utf8.jsonl", 2, 0),
        ("m1", "many_turns.jsonl", 50_000, 0),
        *before_damage,
    ]
    schema = "conversation_id string, file string, n_turns int, cut_chars long"
    in_put = str(workdir / "in put")
    located = [(cid, os.path.join(in_put, name), *rest) for cid, name, *rest in expected]
    assertDataFrameEqual(kept, spark.createDataFrame(located, schema))
    assert conversations.filter(F.col("conversation_id").startswith("synth-")).count() == N_SYNTH


def test_the_run_log_lists_skipped_files_and_the_cut(reference):
    log = reference["log"]
    assert "[wildvalues] ingest: skipped 2 hidden or _-prefixed file(s): .hidden.jsonl, _SUCCESS\n" in log
    assert "[wildvalues] ingest: reading 11 JSON-lines files, 1 Parquet file\n" in log
    assert "ingest: cut 1 conversation(s) with turns over ingest.max_turn_chars = 200,000 characters" in log
    assert "ingest: kept 1 record(s) with invalid UTF-8 bytes, each replaced by U+FFFD\n" in log


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("empty_file", "input holds no records: {path} (1 file(s), all empty or blank)"),
        ("empty_gz", "input holds no records: {path} (1 file(s), all empty or blank)"),
        ("blank_dir", "input holds no records: {path} (1 file(s), all empty or blank)"),
        ("hidden_only", "input not found: {path} (only 2 hidden or _-prefixed file(s))"),
        ("missing", "input not found: {path}"),
    ],
)
def test_inputs_without_records_are_one_line_errors(tmp_path, label, message):
    path = chaos.write_error_inputs(str(tmp_path / "bad inputs"))[label]
    result = wildvalues("run", "--input", path, "--output", tmp_path / "out dir", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"wildvalues: error: {message.format(path=path)}\n"
    assert not (tmp_path / "out dir").exists()


def test_kill_during_classify_leaves_a_stale_lock_that_the_rerun_takes_over(killed_and_rerun):
    assert killed_and_rerun["killed"], killed_and_rerun["before"][-3000:]
    assert "classify: chunk 1/" in killed_and_rerun["before"]
    assert "classify: done" not in killed_and_rerun["before"]
    lock = killed_and_rerun["lock"]
    assert lock is not None and lock.host == socket.gethostname()
    assert (
        f"wildvalues: took over a stale lock on {killed_and_rerun['out']} left by {lock.describe()}\n"
        in (killed_and_rerun["log"])
    )
    assert "Traceback" not in killed_and_rerun["log"]


def test_the_rerun_sends_only_what_the_killed_run_left_unanswered(killed_and_rerun):
    out = killed_and_rerun["out"]
    # Chunks are drawn by a hash of the cache key, so the first holds about ten, not exactly ten.
    assert 0 < killed_and_rerun["cached"] < chaos.cached_keys(out)
    # One cache row per answer: no content was answered twice.
    assert len(chaos.rows(out, "classification_cache")) == chaos.cached_keys(out)
    pending = re.search(r"classify: (\d+) conversation\(s\) to classify with offline", killed_and_rerun["log"])
    assert pending is not None, killed_and_rerun["log"][-3000:]
    # Each uncached content is at least one conversation; each cached one spares at least one.
    uncached = chaos.cached_keys(out) - killed_and_rerun["cached"]
    assert uncached <= int(pending.group(1)) <= len(chaos.rows(out, "conversations")) - killed_and_rerun["cached"]


def test_the_rerun_after_a_kill_equals_an_uninterrupted_run(reference, killed_and_rerun):
    out = killed_and_rerun["out"]
    assert chaos.fingerprint(out) == chaos.fingerprint(reference["out"])
    assert chaos.tables_state(out)["readable"]
    kept = N_SYNTH + 5 + GZIP_DAMAGE_LINE - 1
    assert chaos.counts(out) == {
        "input_records": kept + 8,
        "kept": kept,
        "quarantined": 8,
        "classified": kept,
        "classification_errors": 0,
        "duplicate_ids": 0,
        "lost": 0,
        "run_ids": 1,
    }
