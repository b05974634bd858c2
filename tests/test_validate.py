"""Great Expectations suites: pass on good tables, fail on corrupted ones naming the expectation."""

from __future__ import annotations

import datetime

import pytest
from pyspark.sql import DataFrame

from wildvalues.analysis.validate import ValidationFailed, Validator, raise_on_failure, validate_tables
from wildvalues.io import schemas

RUN = "run-val"
NOW = datetime.datetime(2025, 2, 3, 4, 5, 6)


def conversation(cid, content_hash="h"):
    return (cid, "in.jsonl", [("user", "q"), ("assistant", "a")], 2, 2, content_hash, NOW, None, 0, None, None)


def classification(cid, response_type="strong_support", subjective=True):
    return (
        cid,
        subjective,
        ["honesty"],
        [],
        response_type,
        "a task",
        None,
        "offline",
        None,
        "offline-1",
        0,
        0,
        0,
        0,
        None,
        False,
        1,
        "k-" + cid,
        RUN,
    )


def level_row(cluster_id, level, parent, pct, side="ai", n=1, n_users=None):
    return (side, cluster_id, cluster_id, level, parent, False, n, n if n_users is None else n_users, 50.0, n, pct, RUN)


def expression(cid, value, side="ai"):
    return (cid, side, value, value, "exact", 1.0, "L1A", "L2", "L3", RUN)


LEVELS = {
    0: [
        level_row("v1", 0, "L1A", 60.0),
        level_row("v2", 0, "L1B", 40.0),
        level_row("v1", 0, "L1A", 100.0, side="human"),
    ],
    1: [
        level_row("L1A", 1, "L2", 60.0),
        level_row("L1B", 1, "L2", 40.0),
        level_row("L1A", 1, "L2", 100.0, side="human"),
    ],
    2: [level_row("L2", 2, "L3", 100.0), level_row("L2", 2, "L3", 100.0, side="human")],
    3: [level_row("L3", 3, None, 100.0), level_row("L3", 3, None, 100.0, side="human")],
}


def good_rows() -> dict[str, list]:
    return {
        "conversations": [conversation("c1"), conversation("c2")],
        "quarantine": [("in.jsonl", 3, None, "{bad", "invalid JSON: Expecting value", RUN)],
        "classifications": [classification("c1"), classification("c2", "no_values", subjective=False)],
        "classification_errors": [],
        "value_expressions": [expression("c1", "v1"), expression("c1", "v2"), expression("c1", "v1", "human")],
        **{f"values_level_{level}": rows for level, rows in LEVELS.items()},
        "run_counts": [(RUN, 3, 1, 2)],
    }


def frames(spark, rows: dict[str, list]) -> dict[str, DataFrame]:
    return {name: spark.createDataFrame(data, schemas.TABLES[name]) for name, data in rows.items()}


@pytest.fixture(scope="module")
def validator():
    return Validator(pct_tolerance=0.5)


def failures(validator, spark, rows) -> str:
    """The ValidationFailed message for these tables (fails the test when validation passes)."""
    results = validate_tables(validator, frames(spark, rows))
    with pytest.raises(ValidationFailed) as caught:
        raise_on_failure(results)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_good_tables_pass_every_suite(spark, validator):
    results = validate_tables(validator, frames(spark, good_rows()))
    assert [(r.table, r.success, r.failures) for r in results] == [(name, True, []) for name in good_rows()]
    assert all(r.n_expectations >= 2 for r in results)
    raise_on_failure(results)  # does not raise


def test_duplicate_conversation_id_in_classifications(spark, validator):
    rows = {"classifications": [classification("c1"), classification("c2"), classification("c1", "mild_support")]}
    message = failures(validator, spark, rows)
    assert message.startswith("validation failed: suite 'classifications' failed: ")
    assert "expect_column_values_to_be_unique(column=conversation_id)" in message
    assert "2 unexpected" in message  # both c1 rows are non-unique
    assert "expect_column_values_to_be_in_set" not in message


def test_response_type_outside_the_set(spark, validator):
    rows = {"classifications": [classification("c1"), classification("c2", "enthusiastic_agreement")]}
    message = failures(validator, spark, rows)
    assert "suite 'classifications' failed: expect_column_values_to_be_in_set(column=response_type" in message
    assert "1 unexpected" in message and "enthusiastic_agreement" in message
    assert "to_be_unique" not in message


def test_level_1_node_whose_parent_is_missing_from_level_2(spark, validator):
    rows = {
        "values_level_1": [level_row("L1A", 1, "L2", 60.0), level_row("L1B", 1, "L2-gone", 40.0)],
        "values_level_2": [level_row("L2", 2, "L3", 100.0)],
        "values_level_3": [level_row("L3", 3, None, 100.0)],
    }
    message = failures(validator, spark, rows)
    assert message.startswith("validation failed: suite 'values_level_1' failed: ")
    assert "expect_column_values_to_be_in_set(column=parent_found, value_set=[True]) 1 unexpected" in message
    assert "values_level_2" not in message


def test_parent_must_be_on_the_same_side(spark, validator):
    rows = {
        "values_level_2": [level_row("L2", 2, "L3", 100.0), level_row("L2", 2, "L3", 100.0, side="human")],
        "values_level_3": [level_row("L3", 3, None, 100.0)],  # only the ai side has the top node
    }
    message = failures(validator, spark, rows)
    assert "suite 'values_level_2' failed: expect_column_values_to_be_in_set(column=parent_found" in message


def test_pct_total_occurrences_not_summing_to_100(spark, validator):
    rows = {"values_level_3": [level_row("L3A", 3, None, 60.0), level_row("L3B", 3, None, 39.0)]}
    message = failures(validator, spark, rows)
    assert message.startswith("validation failed: suite 'values_level_3' failed: ")
    assert "expect_column_values_to_be_between(column=side_pct_total_sum, min_value=99.5, max_value=100.5)" in message
    # within the tolerance passes
    ok = {"values_level_3": [level_row("L3A", 3, None, 60.0), level_row("L3B", 3, None, 39.6)]}
    raise_on_failure(validate_tables(validator, frames(spark, ok)))


def test_more_users_than_conversations(spark, validator):
    rows = good_rows()
    rows["values_level_2"] = [
        level_row("L2", 2, "L3", 100.0, n=3, n_users=4),
        level_row("L2", 2, "L3", 100.0, side="human"),
    ]
    message = failures(validator, spark, rows)
    assert (
        "suite 'values_level_2' failed: expect_column_pair_values_a_to_be_greater_than_b"
        "(column_A=n_conversations, column_B=n_users) 1 unexpected" in message
    )


def test_run_counts_where_input_is_not_kept_plus_quarantined(spark, validator):
    message = failures(validator, spark, {"run_counts": [(RUN, 10, 2, 7)]})
    assert message.startswith("validation failed: suite 'run_counts' failed: ")
    assert (
        "expect_column_values_to_be_between(column=unaccounted_records, min_value=0.0, max_value=0.0) 1 unexpected"
        in message
    )


@pytest.mark.parametrize(
    "table, rows, column",
    [
        ("conversations", [conversation("c1"), conversation("c2", content_hash=None)], "content_hash"),
        ("classifications", [classification("c1")[:5] + (None,) + classification("c1")[6:]], "task"),
        ("quarantine", [("in.jsonl", 1, None, "{", None, RUN)], "reason"),
        ("values_level_0", [level_row("v1", 0, "L1A", 100.0)[:-1] + (None,)], "run_id"),
    ],
)
def test_null_in_a_required_column(spark, validator, table, rows, column):
    message = failures(validator, spark, {table: rows})
    assert message.startswith(f"validation failed: suite '{table}' failed: ")
    assert f"expect_column_values_to_not_be_null(column={column}) 1 unexpected" in message


def test_nullable_columns_may_be_null(spark, validator):
    # line_number / conversation_id / raw_record of quarantine and task_category of
    # classifications are nullable by schema: nulls there are fine.
    rows = {
        "quarantine": [("t.parquet", None, None, None, "duplicate", RUN)],
        "classifications": [classification("c1")],
    }
    raise_on_failure(validate_tables(validator, frames(spark, rows)))


def test_columns_in_the_wrong_order(spark, validator):
    frame = frames(spark, {"run_counts": [(RUN, 3, 1, 2)]})["run_counts"]
    reordered = frame.select("run_id", "n_conversations", "n_quarantined", "n_input")
    results = validate_tables(validator, {"run_counts": reordered})
    assert [(r.table, r.success) for r in results] == [("run_counts", False)]
    assert results[0].failures[0].startswith("expect_table_columns_to_match_ordered_list")


def test_several_failures_are_all_named(spark, validator):
    rows = good_rows()
    rows["classifications"] = [classification("c1"), classification("c1", "bogus")]
    rows["run_counts"] = [(RUN, 4, 1, 2)]
    message = failures(validator, spark, rows)
    assert "suite 'classifications' failed: " in message and "suite 'run_counts' failed: " in message
    assert "column=conversation_id" in message and "column=response_type" in message
    assert "column=unaccounted_records" in message
    assert "suite 'conversations'" not in message


def test_run_validate_stage_on_delta_tables(spark, tmp_path):
    from wildvalues.io.tables import TableStore
    from wildvalues.pipeline.runner import Runner
    from wildvalues.settings import Settings
    from wildvalues.stages import stage_named

    settings = Settings.model_validate({"validate": {"pct_sum_tolerance": 0.5}})
    store = TableStore(spark, str(tmp_path), settings.tables)
    for name, frame in frames(spark, good_rows()).items():
        store.write(name, frame)
    ctx = Runner(spark, settings, store, RUN)
    summary = ctx.run_stage(stage_named("validate")).suites
    assert [(s["table"], s["success"]) for s in summary] == [
        (name, True)
        for name in (
            "conversations",
            "quarantine",
            "classifications",
            "classification_errors",
            "value_expressions",
            "values_level_0",
            "values_level_1",
            "values_level_2",
            "values_level_3",
            "run_counts",
        )
    ]
    assert ctx.metrics["validation_suites_failed"] == 0.0

    store.write("run_counts", frames(spark, {"run_counts": [(RUN, 9, 1, 2)]})["run_counts"])
    with pytest.raises(
        ValidationFailed,
        match=r"suite 'run_counts' failed: expect_column_values_to_be_between\(column=unaccounted_records",
    ):
        ctx.run_stage(stage_named("validate"))
    assert ctx.metrics["validation_suites_failed"] == 1.0
    assert ctx.metrics["validation_run_counts_success"] == 0.0


def crosscheck_label(cid: str, second_type: str = "mild_support", ai_jaccard: float | None = 0.5) -> tuple:
    return (
        cid,
        "subjective/mild_support",
        True,
        True,
        "mild_support",
        second_type,
        ["a"],
        ["a", "b"],
        [],
        [],
        ai_jaccard,
        None,
        "r1",
    )


def test_the_crosscheck_tables_pass_and_their_faults_are_named(spark, validator):
    good: dict[str, list] = {
        "crosscheck_agreement": [
            ("kappa_subjective", 0.4, 10, "m1", "m2", "r1"),
            ("jaccard_ai_level_1", None, 0, "m1", "m2", "r1"),
        ],
        "crosscheck_confusion": [("mild_support", "reframing", 3, 2, "r1")],
        "crosscheck_labels": [crosscheck_label("c1"), crosscheck_label("c2", ai_jaccard=None)],
    }
    results = validate_tables(validator, frames(spark, good))
    assert [(r.table, r.success, r.failures) for r in results] == [(name, True, []) for name in good]
    bad: dict[str, list] = {
        "crosscheck_agreement": [
            ("kappa_subjective", 1.5, 10, "m1", "m2", "r1"),
            ("kappa_subjective", 0.2, 10, "m1", "m2", "r1"),
        ],
        "crosscheck_confusion": [("mild_support", "reframing", 0, 0, "r1")],
        "crosscheck_labels": [crosscheck_label("c1", "enthusiastic"), crosscheck_label("c2", ai_jaccard=1.2)],
    }
    message = failures(validator, spark, bad)
    assert "suite 'crosscheck_agreement' failed: " in message
    assert "expect_column_values_to_be_unique(column=measure)" in message
    assert "expect_column_values_to_be_between(column=value" in message
    assert "suite 'crosscheck_confusion' failed: expect_column_values_to_be_between(column=n_conversations" in message
    assert "expect_column_values_to_be_in_set(column=second_response_type" in message
    assert "expect_column_values_to_be_between(column=ai_jaccard" in message


def test_label_audits_hold_each_label_once_with_a_rating_from_1_to_5(spark, validator):
    def audit(label: str, rating: int) -> tuple:
        return (label, ["value"], rating, "offline", "", rating < 3, RUN)

    good = {"label_audits": [audit("helpfulness", 5), audit("advice for John Smith", 1)]}
    results = validate_tables(validator, frames(spark, good))
    assert [(r.table, r.success, r.failures) for r in results] == [("label_audits", True, [])]
    message = failures(validator, spark, {"label_audits": [audit("helpfulness", 5), audit("helpfulness", 0)]})
    assert "suite 'label_audits' failed: " in message
    assert "expect_column_values_to_be_unique(column=label)" in message
    assert "expect_column_values_to_be_between(column=rating" in message


def test_tables_collected_ahead_get_the_results_of_tables_collected_in_turn(spark):
    rows = {**good_rows(), "classifications": [classification("c1"), classification("c1", "enthusiastic")]}
    ahead = validate_tables(Validator(pct_tolerance=0.5, fetch_threads=3), frames(spark, rows))
    in_turn = validate_tables(Validator(pct_tolerance=0.5, fetch_threads=0), frames(spark, rows))
    assert [r.as_dict() for r in ahead] == [r.as_dict() for r in in_turn]
    assert [r.table for r in ahead if not r.success] == ["classifications"]


def test_the_collects_ahead_run_in_the_callers_spark_job_group(spark, validator):
    context = spark.sparkContext
    ungrouped = set(context.statusTracker().getJobIdsForGroup(None))
    context.setJobGroup("validate-ahead", "validate-ahead")
    try:
        results = validate_tables(validator, frames(spark, good_rows()))
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
    assert all(r.success for r in results)
    tracker = context.statusTracker()
    # Jobs outside the group started meanwhile: none may be the pool's (their stages are named after
    # its threads' call site); another thread of this worker may run its own.
    others = set(tracker.getJobIdsForGroup(None)) - ungrouped
    pool_sites = [
        stage.name
        for job in filter(None, map(tracker.getJobInfo, others))
        for stage in filter(None, map(tracker.getStageInfo, job.stageIds))
        if "concurrent/futures/thread.py" in stage.name
    ]
    assert pool_sites == []
    assert len(context.statusTracker().getJobIdsForGroup("validate-ahead")) >= len(results)
