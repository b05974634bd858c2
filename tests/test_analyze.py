"""Tests for wildvalues.analysis.findings on small handmade tables, against independent references."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from scipy.stats import chi2_contingency

from wildvalues.analysis import anomalies, suppression
from wildvalues.analysis import findings as A
from wildvalues.classifier.base import RESPONSE_TYPES
from wildvalues.io.schemas import CLASSIFICATIONS, VALUE_EXPRESSIONS, VALUE_LEVEL
from wildvalues.settings.sections import DEFAULT_K

RUN = "run-1"


# ---------------------------------------------------------------------------------------------
# Builders


def classification(cid, subjective=True, ai=(), human=(), rtype="no_values", task="a task", category=None):
    """A full CLASSIFICATIONS row; bookkeeping columns get fixed values."""
    return (
        cid,
        subjective,
        list(ai),
        list(human),
        rtype,
        task,
        category,
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
        None,
        RUN,
    )


def expression(cid, side, value, l1=None):
    return (cid, side, value, value, "exact", 1.0, l1, None, None, RUN)


def classifications_df(spark, rows):
    return spark.createDataFrame(rows, CLASSIFICATIONS)


def expressions_df(spark, rows):
    return spark.createDataFrame(rows, VALUE_EXPRESSIONS)


def expressions_from(classification_rows):
    """value_expressions rows matching the ai/human lists of classification rows."""
    rows = []
    for row in classification_rows:
        cid, ai, human = row[0], row[2], row[3]
        rows += [expression(cid, "ai", v) for v in ai]
        rows += [expression(cid, "human", v) for v in human]
    return rows


def task_cats_df(spark, mapping):
    rows = [(cid, cat, "classifier") for cid, cat in mapping.items()]
    return spark.createDataFrame(rows, A.TASK_CATEGORIES_SCHEMA)


# ---------------------------------------------------------------------------------------------
# Settings


def test_settings_defaults_and_validation():
    s = A.analysis_settings(None)
    assert s.correction == "bonferroni" and s.alpha == 0.05 and s.min_count == 5
    assert s.outlier_quantile == 0.995 and "amorality" in s.watchlist
    assert A.analysis_settings({"correction": "bh"}).correction == "bh"
    with pytest.raises(ValueError, match="min_cout.*\\n.*Extra inputs are not permitted"):
        A.analysis_settings({"min_cout": 3})
    with pytest.raises(ValueError, match="correction"):
        A.analysis_settings({"correction": "holm"})
    with pytest.raises(ValueError, match="watchlist"):
        A.analysis_settings({"watchlist": "amorality"})
    with pytest.raises(ValueError, match="alpha"):
        A.analysis_settings({"alpha": 1.5})


# ---------------------------------------------------------------------------------------------
# 1. Response types


def test_response_types_counts_subjective_only_with_zero_rows(spark):
    rows = [
        classification("c1", rtype="strong_support"),
        classification("c2", rtype="strong_support"),
        classification("c3", rtype="reframing"),
        classification("c4", rtype="mild_resistance"),
        # Not subjective: must not count, though its type is set.
        classification("c5", subjective=False, rtype="strong_support"),
    ]
    result = A.response_types(classifications_df(spark, rows), RUN)
    counts = {"strong_support": 2, "reframing": 1, "mild_resistance": 1}
    expected = spark.createDataFrame(
        [(t, counts.get(t, 0), counts.get(t, 0), 100.0 * counts.get(t, 0) / 4, RUN) for t in RESPONSE_TYPES],
        A.RESPONSE_TYPES_SCHEMA,
    )
    assert result.schema == A.RESPONSE_TYPES_SCHEMA
    assertDataFrameEqual(result, expected)


def users_df(spark, mapping):
    """(conversation_id, user_key) as `wildvalues.ingest.users.user_keys` gives them."""
    return spark.createDataFrame(sorted(mapping.items()), "conversation_id string, user_key string")


def test_response_types_count_distinct_users(spark):
    rows = [
        classification("c1", rtype="strong_support"),
        classification("c2", rtype="strong_support"),
        classification("c3", rtype="strong_support"),
        classification("c4", rtype="reframing"),
    ]
    # c1 and c2 are one person's; c4 is missing from the user table and counts as its own user.
    users = users_df(spark, {"c1": "u:ann", "c2": "u:ann", "c3": "u:bob"})
    result = A.response_types(classifications_df(spark, rows), RUN, users)
    counts = {"strong_support": (3, 2), "reframing": (1, 1)}
    expected = spark.createDataFrame(
        [(t, *counts.get(t, (0, 0)), 100.0 * counts.get(t, (0, 0))[0] / 4, RUN) for t in RESPONSE_TYPES],
        A.RESPONSE_TYPES_SCHEMA,
    )
    assertDataFrameEqual(result, expected)


def test_response_types_empty_run_has_null_percentages(spark):
    rows = [classification("c1", subjective=False, rtype="no_values")]
    result = A.response_types(classifications_df(spark, rows), RUN).collect()
    assert len(result) == 7
    assert all(r.n_conversations == 0 and r.pct_conversations is None for r in result)


# ---------------------------------------------------------------------------------------------
# 2. Task categories

TASK_ROWS = [
    ("c1", "Help the user write an essay about climate", None),
    ("c2", "Write essays on history", None),
    ("c3", "Debug Python code for a web scraper", None),
    ("c4", "Review python code style", None),
    ("c5", "Plan a trip", None),
    ("c6", "Fix the code", "   "),  # blank category: clustered
    ("c7", "Anything at all", "Coding"),
    ("c8", "The user asks", None),  # stopwords only
]


def _task_classifications(spark):
    return classifications_df(spark, [classification(cid, task=task, category=cat) for cid, task, cat in TASK_ROWS])


def test_task_categories_keyword_clustering(spark):
    # Frequencies: code 3, essay 2 (essays merged), python 2, write 2, the rest 1.
    # First choices: c1,c2 essay (tie with write, alphabetical); c3,c4,c6 code; c5 plan.
    # Keeping 2 groups drops 'plan', and c5 has no other kept token.
    result = A.task_categories(_task_classifications(spark), {"max_task_categories": 2})
    expected = spark.createDataFrame(
        [
            ("c1", "essay", "keyword"),
            ("c2", "essay", "keyword"),
            ("c3", "code", "keyword"),
            ("c4", "code", "keyword"),
            ("c5", "other", "keyword"),
            ("c6", "code", "keyword"),
            ("c7", "Coding", "classifier"),
            ("c8", "other", "keyword"),
        ],
        A.TASK_CATEGORIES_SCHEMA,
    )
    assert result.schema == A.TASK_CATEGORIES_SCHEMA
    assertDataFrameEqual(result, expected)


def test_task_categories_cap_keeps_more_groups(spark):
    result = A.task_categories(_task_classifications(spark), {"max_task_categories": 3})
    categories = {r.conversation_id: r.task_category for r in result.collect()}
    assert categories["c5"] == "plan"
    assert categories["c8"] == "other"


def test_task_categories_reassigns_to_kept_token(spark):
    # Frequencies: zulu 4, xray 3, yankee 3, whiskey 1. First choices: t1-t4 zulu, t5 xray
    # (tie with yankee, alphabetical), t6-t7 yankee. Group sizes zulu 4, yankee 2, xray 1; with
    # a cap of 2 xray goes, and t5 moves to its best kept token, yankee, not to 'other'.
    tasks = {
        "t1": "zulu xray",
        "t2": "zulu xray",
        "t3": "zulu",
        "t4": "zulu",
        "t5": "xray yankee",
        "t6": "yankee",
        "t7": "yankee whiskey",
    }
    rows = [classification(cid, task=task) for cid, task in tasks.items()]
    result = A.task_categories(classifications_df(spark, rows), {"max_task_categories": 2})
    categories = {r.conversation_id: r.task_category for r in result.collect()}
    assert categories == {
        "t1": "zulu",
        "t2": "zulu",
        "t3": "zulu",
        "t4": "zulu",
        "t5": "yankee",
        "t6": "yankee",
        "t7": "yankee",
    }


# ---------------------------------------------------------------------------------------------
# 3. Context dependence


def _context_data():
    """conversation -> (task category, ai values, human values), built by index rules."""
    data = {}
    for cat, size in (("coding", 40), ("writing", 30), ("advice", 20), ("tiny", 3)):
        for i in range(size):
            ai, human = {"helpfulness"}, set()
            if cat == "coding":
                if i % 4:
                    ai.add("precision")
                if i % 10 == 0:
                    ai.add("creativity")
                if i == 1:
                    ai.add("empathy")
                if i == 2:
                    ai.add("rare value")  # total 1 < min_count: dropped
                if i % 5 == 0:
                    human.add("efficiency")
            elif cat == "writing":
                if i % 10 == 0:
                    ai.add("precision")
                if i % 3:
                    ai.add("creativity")
                if i % 6 == 0:
                    ai.add("empathy")
                if i % 2 == 0:
                    human.add("creativity")
            elif cat == "advice":
                if i % 5 == 0:
                    ai.add("precision")
                if i % 2 == 0:
                    ai.add("empathy")
                    human.add("autonomy")
                if i % 3 == 0:
                    human.add("honesty")
                if i in (1, 3, 5, 7, 9):
                    ai.add("boundary")  # total exactly min_count: kept
            data[f"{cat}-{i:02d}"] = (cat, ai, human)
    return data


def _context_inputs(spark, data):
    rows = []
    for cid, (_, ai, human) in sorted(data.items()):
        rows += [expression(cid, "ai", v) for v in sorted(ai)]
        rows += [expression(cid, "human", v) for v in sorted(human)]
    # The same matched value from two raw values: must count once per conversation.
    rows.append(expression("coding-00", "ai", "helpfulness"))
    cats = task_cats_df(spark, {cid: cat for cid, (cat, _, _) in data.items()})
    return expressions_df(spark, rows), cats


def _reference_cells(data, min_count):
    """Independent reference: contingency cells, margins restricted, scipy per 2x2 table."""
    tables: dict[str, defaultdict[tuple[str, str], int]] = {
        "task_category": defaultdict(int),
        "human_value": defaultdict(int),
    }
    for cat, ai, human in data.values():
        for v in ai:
            tables["task_category"][(cat, v)] += 1
            for h in human:
                tables["human_value"][(h, v)] += 1
    reference = {}
    for kind, cells in tables.items():
        row_full: defaultdict[str, int] = defaultdict(int)
        col_full: defaultdict[str, int] = defaultdict(int)
        for (c, v), n in cells.items():
            row_full[v] += n
            col_full[c] += n
        kept = {(c, v): n for (c, v), n in cells.items() if row_full[v] >= min_count and col_full[c] >= min_count}
        row: defaultdict[str, int] = defaultdict(int)
        col: defaultdict[str, int] = defaultdict(int)
        for (c, v), n in kept.items():
            row[v] += n
            col[c] += n
        total = sum(kept.values())
        for (c, v), n in kept.items():
            table = [[n, row[v] - n], [col[c] - n, total - row[v] - col[c] + n]]
            statistic, p, _, expected = chi2_contingency(table, correction=False)
            reference[(kind, c, v)] = {"n": n, "expected": expected[0][0], "chi2": statistic, "p": p}
    return reference


def _bonferroni_reference(reference):
    m: defaultdict[str, int] = defaultdict(int)
    for kind, _, _ in reference:
        m[kind] += 1
    return {key: min(1.0, cell["p"] * m[key[0]]) for key, cell in reference.items()}


def _bh_reference(reference):
    """Benjamini-Hochberg by the textbook loop, per context kind."""
    adjusted = {}
    for kind in ("task_category", "human_value"):
        items = sorted((cell["p"], key) for key, cell in reference.items() if key[0] == kind)
        m = len(items)
        running = 1.0
        for rank in range(m, 0, -1):
            p, key = items[rank - 1]
            running = min(running, p * m / rank)
            adjusted[key] = running
    return adjusted


def _check_context(result, reference, adjusted, min_count, alpha):
    rows = {(r.context_kind, r.context, r.value): r for r in result.collect()}
    assert set(rows) == set(reference)
    for key, ref in reference.items():
        row = rows[key]
        assert row.n == ref["n"]
        assert row.n_users == ref["n"]  # no user table: every conversation is its own user
        assert row.expected == pytest.approx(ref["expected"], rel=1e-12)
        assert row.lift == pytest.approx(ref["n"] / ref["expected"], rel=1e-12)
        assert row.residual**2 == pytest.approx(ref["chi2"], rel=1e-9)
        assert math.copysign(1, row.residual) == math.copysign(1, ref["n"] - ref["expected"])
        assert row.p_value == pytest.approx(ref["p"], rel=1e-9, abs=1e-300)
        assert row.adjusted_p_value == pytest.approx(adjusted[key], rel=1e-9, abs=1e-300)
        assert row.significant == (adjusted[key] < alpha and ref["n"] >= min_count)
        assert row.run_id == RUN


def test_value_context_matches_scipy_with_bonferroni(spark):
    data = _context_data()
    expressions, cats = _context_inputs(spark, data)
    result = A.value_context(expressions, cats, {"min_count": 5}, RUN)
    assert result.schema == A.VALUE_CONTEXT_SCHEMA
    reference = _reference_cells(data, 5)
    # The restriction did drop a rare value and a small context, and something is significant.
    assert not any(v == "rare value" or c == "tiny" for _, c, v in reference)
    assert ("task_category", "advice", "boundary") in reference
    adjusted = _bonferroni_reference(reference)
    assert any(p < 0.05 for p in adjusted.values())
    _check_context(result, reference, adjusted, 5, 0.05)


def test_value_context_benjamini_hochberg(spark):
    data = _context_data()
    expressions, cats = _context_inputs(spark, data)
    settings = {"min_count": 5, "correction": "bh", "alpha": 0.1}
    result = A.value_context(expressions, cats, settings, RUN)
    reference = _reference_cells(data, 5)
    adjusted = _bh_reference(reference)
    # BH must find more than Bonferroni on these data, or the test would not tell them apart.
    n_bh = sum(p < 0.1 for p in adjusted.values())
    n_bonferroni = sum(p < 0.1 for p in _bonferroni_reference(reference).values())
    assert n_bh > n_bonferroni
    _check_context(result, reference, adjusted, 5, 0.1)


def test_value_context_single_context_has_no_test(spark):
    # One task category: col == N, the cell has no variance, so no p-value and no significance.
    rows = [expression("a", "ai", "x"), expression("b", "ai", "x"), expression("b", "ai", "y")]
    cats = task_cats_df(spark, {"a": "only", "b": "only"})
    result = A.value_context(expressions_df(spark, rows), cats, {"min_count": 1}, RUN)
    expected = spark.createDataFrame(
        [
            ("task_category", "only", "x", 2, 2, 2.0, 1.0, None, None, None, False, RUN),
            ("task_category", "only", "y", 1, 1, 1.0, 1.0, None, None, None, False, RUN),
        ],
        A.VALUE_CONTEXT_SCHEMA,
    )
    assertDataFrameEqual(result, expected)
    # a and b are one person's: x is expressed in two conversations by one user.
    with_users = A.value_context(
        expressions_df(spark, rows), cats, {"min_count": 1}, RUN, users_df(spark, {"a": "u:ann", "b": "u:ann"})
    )
    assertDataFrameEqual(
        with_users.select("value", "n", "n_users"),
        spark.createDataFrame([("x", 2, 1), ("y", 1, 1)], "value string, n long, n_users long"),
    )


# ---------------------------------------------------------------------------------------------
# 4. Invariance


def test_value_invariance(spark):
    membership = {"a1": "A", "a2": "A", "a3": "A", "a4": "A", "b1": "B", "b2": "B", "c1": "C"}
    ai = {
        "a1": ["steady", "variable"],
        "a2": ["steady", "variable"],
        "a3": ["steady"],
        "a4": ["steady"],
        "b1": ["steady"],
        "b2": ["steady", "steady"],  # duplicate expression counts once
        "c1": ["only in small"],  # category C is below min_category_size
    }
    rows = [expression(cid, "ai", v) for cid, values in ai.items() for v in values]
    rows.append(expression("b1", "human", "variable"))  # human side: ignored
    result = A.value_invariance(
        expressions_df(spark, rows), task_cats_df(spark, membership), {"min_category_size": 2}, RUN
    )
    expected_rows = []
    for value, freqs, n in (("steady", [1.0, 1.0], 6), ("variable", [0.5, 0.0], 2)):
        mean, std = float(np.mean(freqs)), float(np.std(freqs))  # numpy std is population std
        expected_rows.append((value, n, 2, mean, std, std / mean, RUN))
    expected = spark.createDataFrame(expected_rows, A.VALUE_INVARIANCE_SCHEMA)
    assert result.schema == A.VALUE_INVARIANCE_SCHEMA
    assertDataFrameEqual(result, expected)


# ---------------------------------------------------------------------------------------------
# 5. Mirroring


def test_value_mirroring(spark):
    rows = [
        classification("m1", ai=["honesty", "helpfulness"], human=["honesty"], rtype="strong_support"),
        classification("m2", ai=["helpfulness"], human=["autonomy"], rtype="strong_support"),
        classification("m3", ai=["care"], human=["care"], rtype="reframing"),
        classification("m4", ai=["care"], human=[], rtype="mild_support"),  # no human value
        classification("m5", False, ai=["honesty"], human=["honesty"], rtype="strong_support"),
        classification("m6", ai=[], human=["harm"], rtype="strong_resistance"),
    ]
    expressions = expressions_from(rows) + [expression("m3", "human", "care")]  # duplicate
    # m1 and m2 are one person's; the others have no user id.
    users = users_df(spark, {"m1": "u:ann", "m2": "u:ann"})
    result = A.value_mirroring(classifications_df(spark, rows), expressions_df(spark, expressions), RUN, users)
    # response type: (conversations, users, mirrored)
    counts = {
        "strong_support": (2, 1, 1),
        "reframing": (1, 1, 1),
        "strong_resistance": (1, 1, 0),
        "all": (4, 3, 2),
    }
    expected_rows = []
    for rtype in (*RESPONSE_TYPES, "all"):
        n, n_users, mirrored = counts.get(rtype, (0, 0, 0))
        expected_rows.append((rtype, n, n_users, mirrored, 100.0 * mirrored / n if n else None, RUN))
    expected = spark.createDataFrame(expected_rows, A.VALUE_MIRRORING_SCHEMA)
    assert result.schema == A.VALUE_MIRRORING_SCHEMA
    assertDataFrameEqual(result, expected)


# ---------------------------------------------------------------------------------------------
# 6. Anomalies

L1_MORAL, L1_POWER, L1_OTHER = "ai_values:l1:moral", "ai_values:l1:power", "ai_values:l1:other"


def level0_df(spark):
    """A small level-0 table: amorality's cluster also holds the benign 'ethical reasoning'."""
    nodes = [
        ("amorality", L1_MORAL, False),
        ("ethical reasoning", L1_MORAL, False),
        ("manipulation", L1_POWER, False),
        ("fraud prevention", L1_POWER, False),
        ("helpfulness", L1_OTHER, False),
        ("moral indifference", L1_MORAL, True),
        ("anti-manipulation", L1_POWER, True),
    ]
    rows = [("ai", name, name, 0, l1, cand, 1, 1, 1.0, 1, 1.0, RUN) for name, l1, cand in nodes]
    return spark.createDataFrame(rows, VALUE_LEVEL)


def _watchlist_inputs(spark):
    conversations: dict[str, list[tuple[str, str | None]]] = {
        "w-amoral": [("amorality", L1_MORAL), ("helpfulness", L1_OTHER)],
        "w-ethics": [("ethical reasoning", L1_MORAL)],
        "w-candidate": [("moral indifference", L1_MORAL)],
        "w-anti": [("anti-manipulation", L1_POWER)],
        "w-fraud": [("fraud prevention", L1_POWER)],
        "w-predominance": [("predominance", L1_OTHER)],
        "w-manip": [("Psychological Manipulation", None)],
        "w-plain": [("helpfulness", L1_OTHER)],
    }
    classification_rows = [classification(cid) for cid in conversations]
    expressions = [expression(cid, "ai", value, l1) for cid, values in conversations.items() for value, l1 in values]
    # Non-subjective conversations are outside the analysis even with a watched value.
    classification_rows.append(classification("w-objective", subjective=False))
    expressions.append(expression("w-objective", "ai", "amorality", L1_MORAL))
    return classifications_df(spark, classification_rows), expressions_df(spark, expressions)


def _flagged(result):
    return {r.conversation_id: (r.reason, list(r.flagged_values)) for r in result.collect()}


NO_OUTLIERS = {"outlier_min_score": 1e9}


def test_watchlist_default_neighbours_only_for_candidates(spark):
    classifications, expressions = _watchlist_inputs(spark)
    result = anomalies.value_anomalies(classifications, expressions, level0_df(spark), NO_OUTLIERS, RUN)
    assert result.schema == A.VALUE_ANOMALIES_SCHEMA
    assert _flagged(result) == {
        "w-amoral": ("watchlist", ["amorality"]),
        "w-candidate": ("watchlist", ["moral indifference"]),  # candidate in amorality's cluster
        "w-manip": ("watchlist", ["Psychological Manipulation"]),  # whole-word match, any case
    }


def test_watchlist_neighbour_modes(spark):
    classifications, expressions = _watchlist_inputs(spark)
    level0 = level0_df(spark)
    everything = anomalies.value_anomalies(
        classifications, expressions, level0, {**NO_OUTLIERS, "watchlist_neighbours": "all"}, RUN
    )
    # 'all' adds the taxonomy neighbour, but exempt words still protect 'fraud prevention'.
    assert set(_flagged(everything)) == {"w-amoral", "w-candidate", "w-manip", "w-ethics"}
    names_only = anomalies.value_anomalies(
        classifications, expressions, level0, {**NO_OUTLIERS, "watchlist_neighbours": "none"}, RUN
    )
    assert set(_flagged(names_only)) == {"w-amoral", "w-manip"}


def _outlier_inputs(spark):
    """18 conversations with helpfulness only, one with amorality too, one with a rare value."""
    values = {f"a{i:02d}": ["helpfulness"] for i in range(18)}
    values["w1"] = ["amorality", "helpfulness"]
    values["r1"] = ["rare thing"]
    rows = [classification(cid, ai=v, rtype="mild_support") for cid, v in values.items()]
    rows.append(classification("n1", subjective=False, ai=["rare thing"]))
    return classifications_df(spark, rows), expressions_df(spark, expressions_from(rows)), values


def _expected_scores(values):
    share = {"helpfulness": 19 / 20, "amorality": 1 / 20, "rare thing": 1 / 20}
    return {cid: float(np.mean([-math.log(share[v]) for v in vs])) for cid, vs in values.items()}


def test_outliers_and_watchlist_reasons(spark):
    classifications, expressions, values = _outlier_inputs(spark)
    scores = _expected_scores(values)
    threshold = float(np.percentile(list(scores.values()), 90))  # linear interpolation
    assert scores["w1"] > threshold and scores["r1"] > threshold
    settings = {"outlier_quantile": 0.9, "outlier_min_score": 2.0}  # w1 ~1.52 is below the floor
    result = anomalies.value_anomalies(classifications, expressions, level0_df(spark), settings, RUN)
    expected = spark.createDataFrame(
        [
            ("w1", ["amorality"], scores["w1"], "watchlist", RUN),
            ("r1", ["rare thing"], scores["r1"], "outlier", RUN),
        ],
        A.VALUE_ANOMALIES_SCHEMA,
    )
    assertDataFrameEqual(result, expected)

    lower_floor = {"outlier_quantile": 0.9, "outlier_min_score": 1.0}
    result = anomalies.value_anomalies(classifications, expressions, level0_df(spark), lower_floor, RUN)
    assert _flagged(result) == {
        "w1": ("watchlist+outlier", ["amorality"]),
        "r1": ("outlier", ["rare thing"]),
    }


def test_default_floor_protects_small_runs(spark):
    classifications, expressions, _ = _outlier_inputs(spark)
    result = anomalies.value_anomalies(classifications, expressions, level0_df(spark), None, RUN)
    assert _flagged(result) == {"w1": ("watchlist", ["amorality"])}


def test_anomaly_summary_and_rate_alert(spark):
    classifications, expressions, _ = _outlier_inputs(spark)
    settings = {"outlier_quantile": 0.9, "outlier_min_score": 2.0}
    found = anomalies.value_anomalies(classifications, expressions, level0_df(spark), settings, RUN)
    summary = anomalies.anomaly_summary(found, classifications)
    assert summary == {
        "n_anomalies": 2,
        "n_watchlist": 1,
        "n_outlier": 1,
        "n_subjective": 20,
        "anomaly_rate": 0.1,
    }
    assert anomalies.rate_exceeds_previous(0.1, 0.04, 2.0)
    assert not anomalies.rate_exceeds_previous(0.08, 0.04, 2.0)
    assert not anomalies.rate_exceeds_previous(0.1, None, 2.0)
    assert anomalies.rate_exceeds_previous(0.01, 0.0, 2.0)
    assert not anomalies.rate_exceeds_previous(0.0, 0.0, 2.0)


# ---------------------------------------------------------------------------------------------
# 7. Suppression


def test_suppress_small_groups(spark):
    df = spark.createDataFrame([("a", 3), ("b", 25), ("c", 24), ("d", 100), ("e", None)], "name string, n long")
    kept, n_suppressed = suppression.suppress_small_groups(df, "n", 25)
    assert n_suppressed == 3
    expected = spark.createDataFrame([("b", 25), ("d", 100)], "name string, n long")
    assertDataFrameEqual(kept, expected)
    assert DEFAULT_K == 25
    with pytest.raises(ValueError, match=r"^k must be an integer >= 1$"):
        suppression.suppress_small_groups(df, "n", 0)


def test_suppress_small_groups_needs_k_users_distinct_users(spark):
    schema = "name string, n long, n_users long"
    # b: 30 conversations of one user (Clio's case: one person must not make a group large).
    df = spark.createDataFrame([("a", 40, 12), ("b", 30, 1), ("c", 25, 10), ("d", 25, None)], schema)
    kept, n_suppressed = suppression.suppress_small_groups(df, "n", 25, k_users=10)
    assert n_suppressed == 2
    assertDataFrameEqual(kept, spark.createDataFrame([("a", 40, 12), ("c", 25, 10)], schema))
    without_users = spark.createDataFrame([("a", 40)], "name string, n long")
    with pytest.raises(ValueError, match=r"^k_users = 10 needs a distinct-users column 'n_users'"):
        suppression.suppress_small_groups(without_users, "n", 25, k_users=10)


def _level_row(side, cid, level, parent, n, n_users=None):
    return (side, cid, cid, level, parent, False, n, n if n_users is None else n_users, 0.0, n, 0.0, RUN)


LEVELS: dict[int, list[tuple[str, str, str | None, int]]] = {
    3: [("ai", "T1", None, 100), ("ai", "T2", None, 10), ("human", "T1", None, 5)],
    2: [
        ("ai", "S1", "T1", 60),
        ("ai", "S2", "T2", 30),  # large, but its parent is suppressed
        ("ai", "S3", "T1", 5),
        ("human", "S1", "T1", 40),  # the human T1 is suppressed, the ai T1 is not
    ],
    1: [("ai", "C1", "S1", 50), ("ai", "C2", "S2", 30), ("ai", "C3", "S3", 30)],
    0: [
        ("ai", "v1", "C1", 40),
        ("ai", "v2", "C2", 30),
        ("ai", "v3", "C1", 3),
        ("ai", "unplaced", None, 40),  # parentless in the input: judged on its own count
    ],
}


def test_suppress_tree(spark):
    tables = [
        spark.createDataFrame([_level_row(s, c, level, p, n) for s, c, p, n in LEVELS[level]], VALUE_LEVEL)
        for level in range(4)
    ]
    kept, suppressed = suppression.suppress_tree(tables, 25)
    assert suppressed == [2, 2, 3, 2]
    assert all(table.schema == VALUE_LEVEL for table in kept)
    rows = [table.collect() for table in kept]
    ids = [sorted((r.side, r.cluster_id) for r in level_rows) for level_rows in rows]
    assert ids == [
        [("ai", "unplaced"), ("ai", "v1")],
        [("ai", "C1")],
        [("ai", "S1")],
        [("ai", "T1")],
    ]
    # No published child without its published parent.
    for level in range(3):
        parents = {(r.side, r.cluster_id) for r in rows[level + 1]}
        for r in rows[level]:
            assert r.parent_cluster_id is None or (r.side, r.parent_cluster_id) in parents


def test_suppress_tree_needs_k_users_and_takes_descendants(spark):
    # T1 and its subtree are large in conversations; S1 is one user's, so it goes with C1 and v1.
    users = {("ai", "S1"): 3}
    tables = [
        spark.createDataFrame(
            [_level_row(s, c, level, p, n, users.get((s, c))) for s, c, p, n in LEVELS[level]], VALUE_LEVEL
        )
        for level in range(4)
    ]
    kept, suppressed = suppression.suppress_tree(tables, 25, k_users=10)
    assert suppressed == [3, 3, 4, 2]
    ids = [sorted((r.side, r.cluster_id) for r in table.collect()) for table in kept]
    assert ids == [[("ai", "unplaced")], [], [], [("ai", "T1")]]


@pytest.mark.parametrize("k_users, users", [(1, {}), (10, {("ai", "S1"): 3})])
def test_suppress_tree_pandas_keeps_the_rows_spark_keeps(spark, k_users, users):
    tables = [
        spark.createDataFrame(
            [_level_row(s, c, level, p, n, users.get((s, c))) for s, c, p, n in LEVELS[level]], VALUE_LEVEL
        )
        for level in range(4)
    ]
    kept, suppressed = suppression.suppress_tree(tables, 25, k_users=k_users)
    kept_pd, suppressed_pd = suppression.suppress_tree_pandas([t.toPandas() for t in tables], 25, k_users=k_users)
    assert suppressed_pd == suppressed
    for spark_kept, pandas_kept in zip(kept, kept_pd, strict=True):
        assertDataFrameEqual(spark.createDataFrame(pandas_kept, VALUE_LEVEL), spark_kept)


def test_suppress_small_groups_pandas_keeps_the_rows_spark_keeps(spark):
    schema = "name string, n long, n_users long"
    df = spark.createDataFrame([("a", 40, 12), ("b", 30, 1), ("c", 25, 10), ("d", 25, None), ("e", None, 20)], schema)
    for k_users in (1, 10):
        kept, n_suppressed = suppression.suppress_small_groups(df, "n", 25, k_users=k_users)
        kept_pd, n_suppressed_pd = suppression.suppress_small_groups_pandas(df.toPandas(), "n", 25, k_users=k_users)
        assert n_suppressed_pd == n_suppressed
        assertDataFrameEqual(spark.createDataFrame(kept_pd, schema), kept)
    with pytest.raises(ValueError, match=r"^k_users = 10 needs a distinct-users column 'n_users'"):
        suppression.suppress_small_groups_pandas(df.toPandas()[["name", "n"]], "n", 25, k_users=10)


def test_row_counts_counts_each_frame(spark):
    df = spark.createDataFrame([("a", 3), ("b", 25), ("c", 24)], "name string, n long")
    assert suppression.row_counts([df, df.filter(F.col("n") > 10), df.filter(F.col("n") > 100), df.limit(1)]) == [
        3,
        2,
        0,
        1,
    ]
    assert suppression.row_counts([]) == []


def test_run_id_required(spark):
    rows = [classification("c1", rtype="strong_support")]
    with pytest.raises(ValueError, match="run_id"):
        A.response_types(classifications_df(spark, rows), "")
