"""The label auditor: the offline rubric on planted identifying labels and generic ones, its Spark
inputs, the analyze stage's `label_audits` table and the public tables and top_values.csv without
the planted label; Claude as the rater through the real SDK against the emulator, cached."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from wildvalues.analysis import label_audit
from wildvalues.analysis.label_audit import SUPPRESSED_LABEL, Rating, pii_finder, rate_label
from wildvalues.io.schemas import (
    CLASSIFICATIONS,
    CONVERSATIONS,
    LABEL_AUDITS,
    VALUE_EXPRESSIONS,
    VALUE_LEVEL,
    VALUE_TAXONOMY,
)
from wildvalues.io.tables import TableStore
from wildvalues.pipeline.runner import Runner
from wildvalues.settings import Settings
from wildvalues.settings.sections import PrivacySettings
from wildvalues.stages import stage_named

RUN = "run-audit"
K = 2
PLANTED = "advice for John Smith at 12 Elm Street"
# Presidio's address recognizer finds "12 Elm Street"; the capitalised words and the number add to it.
NOUNS = "pii STREET_ADDRESS; proper noun John; proper noun Smith; proper noun Elm; proper noun Street; number"
KNOWN = label_audit.vocabulary(
    ["helpfulness", "Harm prevention", "Respect for user autonomy", "Protecting people from harm and misuse"]
)
COUNTS = {"loyalty": 5, "kowalczyk": 1, "microsoft": 10}


# ---------------------------------------------------------------------------------------------
# The offline rubric, pure


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        (
            PLANTED,
            Rating(
                1,
                (
                    *NOUNS.split("; ")[:-1],
                    *("rare token advice", "rare token elm", "rare token john", "rare token smith"),
                    *("rare token street", "number"),
                ),
            ),
        ),
        (
            "write to jane.doe@example.com",
            Rating(1, ("pii EMAIL_ADDRESS", *(f"rare token {t}" for t in ("com", "doe", "example", "jane", "write")))),
        ),
        ("call 555-123-4567 for help", Rating(1, ("pii PHONE_NUMBER", "rare token help", "number"))),
        ("loyalty to Kowalczyk", Rating(2, ("proper noun Kowalczyk", "rare token kowalczyk"))),
        ("loyalty to Microsoft", Rating(3, ("proper noun Microsoft",))),
        ("helpfulness about zymurgy", Rating(4, ("rare token zymurgy",))),
        ("helpfulness in 2024", Rating(4, ("number",))),
        ("helpfulness", Rating(5, ())),
        ("Harm prevention", Rating(5, ())),
        ("respect for user autonomy", Rating(5, ())),
        ("Respect For User Autonomy", Rating(5, ())),
    ],
)
def test_the_offline_rubric_rates_planted_labels_low_and_generic_ones_five(label, expected):
    assert rate_label(label, KNOWN, COUNTS, K) == expected


def test_without_token_counts_rarity_is_left_out():
    assert rate_label("helpfulness about zymurgy", KNOWN, None, K) == Rating(5, ())
    assert rate_label(PLANTED, KNOWN, None, K).rating == 1


def test_the_pii_detector_is_a_callable_that_can_be_swapped():
    presidio = pii_finder(PrivacySettings())
    assert presidio("mail ana.ruiz@example.com or call (415) 867-5309") == ["EMAIL_ADDRESS", "PHONE_NUMBER"]
    assert presidio("an <EMAIL> placeholder already redacted") == []
    only_emails = pii_finder(PrivacySettings(entities=("EMAIL_ADDRESS",)))  # the run's settings apply
    assert only_emails("mail ana.ruiz@example.com or call (415) 867-5309") == ["EMAIL_ADDRESS"]

    def names_ada(text: str) -> list[str]:
        return ["PERSON"] if "Ada" in text else []

    assert rate_label("kindness to Ada", KNOWN, {"ada": 50, "kindness": 50}, K, names_ada) == Rating(
        1, ("pii PERSON", "proper noun Ada")
    )


# ---------------------------------------------------------------------------------------------
# Spark: the token counts and the tables labels leave through


def test_tokens_are_counted_once_per_conversation_and_only_the_wanted_ones(spark):
    texts = spark.createDataFrame(
        [("c1", "Loyalty to Kowalczyk"), ("c1", "kowalczyk again"), ("c2", "loyalty"), ("c3", "LOYALTY, honesty")],
        "conversation_id string, text string",
    )
    counts = label_audit.token_conversations(texts, ["kowalczyk", "loyalty", "absent"])
    assertDataFrameEqual(
        counts,
        spark.createDataFrame([("kowalczyk", 1), ("loyalty", 3)], "token string, n_conversations long"),
    )


def level(cluster_id, name, lvl, parent, n, candidate=False):
    return ("ai", cluster_id, name, lvl, parent, candidate, n, n, 100.0 * n / 6, n, 10.0 * n, RUN)


LEVELS = {
    0: [
        level("t0", "helpfulness", 0, "t1", 6),
        level("cand-planted", PLANTED, 0, "t1", 2, True),
        level("cand-harm", "harm prevention", 0, "t1", 2, True),
    ],
    1: [level("t1", "Harm avoidance", 1, "t2", 6)],
    2: [level("t2", "Harm prevention values", 2, "t3", 6)],
    3: [level("t3", "Protective values", 3, None, 6)],
}


def test_a_suppressed_value_is_dropped_and_a_suppressed_cluster_keeps_its_counts_renamed(spark):
    frames = [spark.createDataFrame(LEVELS[lvl], VALUE_LEVEL) for lvl in range(4)]
    kept, counts = label_audit.audit_levels(frames, frozenset({PLANTED, "Harm avoidance"}))
    assert counts == [1, 1, 0, 0]
    assertDataFrameEqual(kept[0], spark.createDataFrame([LEVELS[0][0], LEVELS[0][2]], VALUE_LEVEL))
    renamed = level("t1", SUPPRESSED_LABEL, 1, "t2", 6)
    assertDataFrameEqual(kept[1], spark.createDataFrame([renamed], VALUE_LEVEL))
    assertDataFrameEqual(kept[2], frames[2])
    untouched, none = label_audit.audit_levels(frames, frozenset())
    assert none == [0, 0, 0, 0] and untouched[0] is frames[0]


def test_the_pandas_audit_drops_and_renames_the_rows_spark_does(spark):
    frames = [spark.createDataFrame(LEVELS[lvl], VALUE_LEVEL) for lvl in range(4)]
    hidden = frozenset({PLANTED, "Harm avoidance"})
    kept, counts = label_audit.audit_levels(frames, hidden)
    kept_pd, counts_pd = label_audit.audit_levels_pandas([f.toPandas() for f in frames], hidden)
    assert counts_pd == counts == [1, 1, 0, 0]
    for spark_kept, pandas_kept in zip(kept, kept_pd, strict=True):
        assertDataFrameEqual(spark.createDataFrame(pandas_kept, VALUE_LEVEL), spark_kept)
    dropped, n = label_audit.drop_rows_pandas(frames[0].toPandas(), ["name"], hidden)
    assert n == 1
    assertDataFrameEqual(spark.createDataFrame(dropped, VALUE_LEVEL), kept[0])


# ---------------------------------------------------------------------------------------------
# The analyze stage: label_audits, the public tables and top_values.csv


def classification(cid, ai):
    return (cid, True, ai, [], "strong_support", "help with code", "coding help", "offline", None, "offline-1")


CLASSIFIED = [
    classification("c1", ["helpfulness", PLANTED]),
    classification("c2", ["helpfulness", PLANTED]),
    classification("c3", ["helpfulness", "harm prevention"]),
    classification("c4", ["helpfulness", "harm prevention"]),
    classification("c5", ["helpfulness"]),
    classification("c6", ["helpfulness"]),
]
TAXONOMY = [
    ("t3", "Values that protect people from harm", "Protective values", 3, None, None),
    ("t2", "Preventing harm to people", "Harm prevention values", 2, "t3", None),
    ("t1", "Avoiding harm and being helpful", "Harm avoidance", 1, "t2", None),
    ("t0", None, "helpfulness", 0, "t1", None),
]


def write_inputs(spark, store: TableStore) -> None:
    """The tables the analyze stage reads, by hand: six conversations, one planted label seen in two."""
    rows = [(*row, 0, 0, 0, 0, None, False, 1, None, RUN) for row in CLASSIFIED]
    store.write("classifications", spark.createDataFrame(rows, CLASSIFICATIONS))
    expressions = [
        (row[0], "ai", value, value, "exact", 1.0, "t1", "t2", "t3", RUN) for row in CLASSIFIED for value in row[2]
    ]
    store.write("value_expressions", spark.createDataFrame(expressions, VALUE_EXPRESSIONS))
    store.write("value_taxonomy", spark.createDataFrame(TAXONOMY, VALUE_TAXONOMY))
    # No user ids: each conversation is its own user.
    now = datetime.datetime(2025, 2, 1, tzinfo=datetime.UTC)
    turns = [("user", "q"), ("assistant", "a")]
    conversations = [(row[0], "test", turns, 2, 2, f"h-{row[0]}", now, None, 0, None, None) for row in CLASSIFIED]
    store.write("conversations", spark.createDataFrame(conversations, CONVERSATIONS))
    for lvl, rows in LEVELS.items():
        store.write(f"values_level_{lvl}", spark.createDataFrame(rows, VALUE_LEVEL))


def audit(label, kind, rating, rater, reasons="", suppressed=False):
    return (label, [kind], rating, rater, reasons, suppressed, RUN)


PUBLISHED_ROWS = [
    audit("Harm avoidance", "cluster_name", 5, "published"),
    audit("Harm prevention values", "cluster_name", 5, "published"),
    audit("Protective values", "cluster_name", 5, "published"),
    audit("helpfulness", "value", 5, "published"),
]


def analyze(spark, out, privacy: dict, anthropic: dict | None = None) -> tuple[Runner, dict]:
    """The real analyze stage through the runner over the handmade tables under `out`."""
    findings = {"suppression_k": K, "min_count": 1}  # min_count 1: the planted value gets a context cell
    # k_users 1: six conversations of six people could never reach the default of 10.
    sections = {"analyze": findings, "privacy": {"k_users": 1, **privacy}, "classifier": {"anthropic": anthropic or {}}}
    settings = Settings.model_validate(sections)
    store = TableStore(spark, str(out), settings.tables)
    if not store.exists("classifications"):
        write_inputs(spark, store)
    runner = Runner(spark, settings, store, RUN, log=lambda line: None)
    runner.run_stage(stage_named("analyze"))
    return runner, dict(runner.metrics)  # the stage's metrics, as MLflow gets them


@pytest.fixture(scope="module")
def offline_audit(spark, tmp_path_factory):
    return analyze(spark, tmp_path_factory.mktemp("audit_offline"), {"audit": "offline"})


def test_label_audits_rates_each_label_once_with_its_kind_and_rater(spark, offline_audit):
    runner, _ = offline_audit
    expected = [
        *PUBLISHED_ROWS,
        audit(PLANTED, "value", 1, "offline", NOUNS, suppressed=True),
        audit("coding help", "task_category", 5, "offline"),
        audit("harm prevention", "value", 5, "offline"),
    ]
    assertDataFrameEqual(runner.store.read("label_audits"), spark.createDataFrame(expected, LABEL_AUDITS))


def test_the_public_tables_and_top_values_leave_the_planted_label_out(spark, offline_audit, tmp_path):
    runner, summary = offline_audit
    public = runner.store.read("public_values_level_0")
    assertDataFrameEqual(public, spark.createDataFrame([LEVELS[0][0], LEVELS[0][2]], VALUE_LEVEL))
    planted_cells = runner.store.read("value_context").filter(f"value = '{PLANTED}'").count()
    assert planted_cells == 1, "k alone keeps the planted cell: the auditor must drop it"
    assert runner.store.read("public_value_context").filter(f"value = '{PLANTED}'").count() == 0
    assert summary["suppressed_labels_public_values_level_0"] == 1
    assert summary["suppressed_labels_public_value_context"] == planted_cells
    assert summary["suppressed_public_values_level_0"] == 0, "k = 2 suppressed nothing"
    assert (summary["label_audit_labels"], summary["label_audit_rated"], summary["label_audit_suppressed"]) == (7, 3, 1)
    top = Path(runner.store.output_dir, "top_values.csv").read_text(encoding="utf-8")
    assert PLANTED not in top and "harm prevention" in top and "helpfulness" in top


def test_the_export_drops_the_planted_label(spark, offline_audit, tmp_path):
    from wildvalues.reporting import export

    runner, _ = offline_audit
    result = export.export_public(runner.store, str(tmp_path), K)
    tree = (tmp_path / export.TREE_FILE).read_text(encoding="utf-8")
    frequencies = (tmp_path / export.FREQUENCIES_FILE).read_text(encoding="utf-8")
    assert "harm prevention" in tree and "harm prevention" in frequencies
    assert PLANTED not in tree and PLANTED not in frequencies
    assert result.n_suppressed_labels["values_level_0"] == 1
    assert result.n_suppressed_labels["values_frequencies"] == 1


def test_audit_off_writes_an_empty_table_and_suppresses_nothing(spark, tmp_path):
    runner, summary = analyze(spark, tmp_path, {"audit": "off"})
    assert runner.store.read("label_audits").count() == 0
    assert summary["label_audit_labels"] == 0 and summary["suppressed_labels_public_values_level_0"] == 0
    names = {r["name"] for r in runner.store.read("public_values_level_0").collect()}
    assert names == {"helpfulness", PLANTED, "harm prevention"}


# ---------------------------------------------------------------------------------------------
# Claude as the rater: the real SDK against the emulator, cached in label_audit_cache

MODEL = Settings().classifier.anthropic.model


@pytest.fixture
def claude_env(monkeypatch, make_emulator):
    def start(**kwargs):
        emulator = make_emulator(**kwargs)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-audit-0000")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.base_url)
        return emulator

    return start


def test_claude_rates_the_planted_label_low_and_a_rerun_asks_nothing(spark, tmp_path, claude_env):
    emulator = claude_env()
    runner, summary = analyze(spark, tmp_path, {"audit": "claude"})
    expected = [
        *PUBLISHED_ROWS,
        audit(PLANTED, "value", 1, MODEL, NOUNS, suppressed=True),
        audit("coding help", "task_category", 5, MODEL, "generic"),
        audit("harm prevention", "value", 5, MODEL, "generic"),
    ]
    assertDataFrameEqual(runner.store.read("label_audits"), spark.createDataFrame(expected, LABEL_AUDITS))
    assert len(emulator.request_log) == 3, "one request per unpublished label"
    assert (summary["label_audit_requests"], summary["label_audit_cache_hits"], summary["label_audit_failures"]) == (
        3,
        0,
        0,
    )
    assert summary["label_audit_input_tokens"] > 0 and summary["label_audit_cost_usd"] > 0
    assert summary["suppressed_labels_public_values_level_0"] == 1
    assert runner.store.read("label_audit_cache").count() == 3

    _, again = analyze(spark, tmp_path, {"audit": "claude"})
    assert len(emulator.request_log) == 3, "the rerun sent no request"
    assert (again["label_audit_requests"], again["label_audit_cache_hits"], again["label_audit_cost_usd"]) == (
        0,
        3,
        0.0,
    )


def test_failed_ratings_fall_back_to_the_offline_rubric_and_are_counted(spark, tmp_path, claude_env):
    claude_env(fault_rate=1.0, fault_kinds=["server_error"])
    runner, summary = analyze(spark, tmp_path, {"audit": "claude"}, {"max_attempts": 1, "backoff_base": 0.0})
    assert summary["label_audit_failures"] == 3
    rows = {r["label"]: (r["rating"], r["rater"], r["suppressed"]) for r in runner.store.read("label_audits").collect()}
    assert rows[PLANTED] == (1, "offline (fallback)", True)
    assert rows["harm prevention"] == (5, "offline (fallback)", False)
    assert runner.store.read("label_audit_cache").count() == 0, "failed answers are not cached"
