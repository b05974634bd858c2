"""Tests for wildvalues.analysis.compare: intervals against independent references and handmade
clustered cases with known answers, and two real MLflow runs in a temporary SQLite store (also
through the `wildvalues compare` CLI)."""

from __future__ import annotations

import math
from statistics import NormalDist
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from pyspark.testing import assertDataFrameEqual
from scipy.stats import binomtest

from wildvalues.analysis import compare
from wildvalues.io import schemas
from wildvalues.io.tracking import RUN_TAG, mlflow_metric

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.e2e import assert_ok, wildvalues
else:
    from e2e import assert_ok, wildvalues

Z95 = NormalDist().inv_cdf(0.975)

# ---------------------------------------------------------------------------------------------
# Intervals


@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (5, 10), (10, 10), (56, 70), (3, 1000), (802, 1500)])
def test_wilson_matches_scipy(k, n):
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = compare.wilson_interval(k, n)
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)


def test_wilson_other_alpha_matches_scipy():
    expected = binomtest(30, 200).proportion_ci(confidence_level=0.99, method="wilson")
    assert compare.wilson_interval(30, 200, alpha=0.01) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_wilson_rejects_bad_input():
    for args, message in (
        ((1, 0), "n must be positive"),
        ((-1, 10), "successes must be within"),
        ((11, 10), "successes must be within"),
    ):
        with pytest.raises(ValueError, match=message):
            compare.wilson_interval(*args)


def test_newcombe_matches_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873-890, table II example (a): 56/70 vs 48/80,
    # method 10 (hybrid score): 0.0524 to 0.3339. Here the difference is b - a.
    low, high = compare.newcombe_interval(48, 80, 56, 70)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_clustered_interval_is_wald_on_the_two_errors():
    low, high = compare.clustered_interval(5.0, 3.0, 4.0)  # sqrt(3^2 + 4^2) = 5
    assert (low, high) == pytest.approx((5.0 - 5 * Z95, 5.0 + 5 * Z95), abs=1e-12)
    assert compare.clustered_interval(-1.0, 0.0, 0.0) == (-1.0, -1.0)


# ---------------------------------------------------------------------------------------------
# Conversation-clustered standard errors of category shares (Spark, handmade data)

LEVEL3 = [("ai", "c-prac", "Practical values"), ("ai", "c-epis", "Epistemic values"), ("human", "h-prac", "Practical")]
ERRORS_SCHEMA = "name string, pct double, se double"


def _expressions(spark, conversations: list[list[str]]):
    """value_expressions rows: conversation i expresses one AI value per level-3 id listed."""
    rows = [
        (f"c{i}", "ai", f"v{j}", f"v{j}", "exact", 1.0, "l1", "l2", cluster, "run")
        for i, clusters in enumerate(conversations)
        for j, cluster in enumerate(clusters)
    ]
    # A human-side expression in every conversation: not an AI expression, never counted.
    rows += [(f"c{i}", "human", "h", "h", "exact", 1.0, "l1", "l2", "h-prac", "run") for i in range(len(conversations))]
    return spark.createDataFrame(rows, schemas.VALUE_EXPRESSIONS)


def _level3(spark):
    rows = [(side, cid, name, 3, None, False, 1, 1, 1.0, 1, 1.0, "run") for side, cid, name in LEVEL3]
    return spark.createDataFrame(rows, schemas.VALUE_LEVEL)


def test_identical_conversations_give_zero_width(spark):
    # Every conversation has the same make-up (one practical, one epistemic): resampling
    # conversations cannot move the shares, so the standard error is exactly 0.
    expressions = _expressions(spark, [["c-prac", "c-epis"]] * 6)
    expected = spark.createDataFrame([("Practical values", 50.0, 0.0), ("Epistemic values", 50.0, 0.0)], ERRORS_SCHEMA)
    assertDataFrameEqual(compare.category_share_errors(expressions, _level3(spark)), expected)


def test_clustered_error_is_wider_by_the_design_effect(spark):
    # n = 10 conversations of m = 4 expressions each, all four in one category: 3 practical,
    # 7 epistemic. Per conversation the share is 0 or 1, so the information is that of 10
    # conversations, not 40 expressions: var = p(1-p) / (n-1) (n / (n-1) small-sample factor
    # included) against p(1-p) / (n m) when expressions count as independent; the standard
    # error is sqrt(n m / (n - 1)) = sqrt(40 / 9) = 2.108 times wider.
    n, m = 10, 4
    expressions = _expressions(spark, [["c-prac"] * m] * 3 + [["c-epis"] * m] * 7)
    se = 100.0 * math.sqrt(0.3 * 0.7 / (n - 1))
    expected = spark.createDataFrame([("Practical values", 30.0, se), ("Epistemic values", 70.0, se)], ERRORS_SCHEMA)
    result = compare.category_share_errors(expressions, _level3(spark))
    assertDataFrameEqual(result, expected, rtol=1e-12)
    naive = 100.0 * math.sqrt(0.3 * 0.7 / (n * m))
    assert se / naive == pytest.approx(math.sqrt(40 / 9), rel=1e-12)


def test_one_value_per_conversation_is_the_binomial_error(spark):
    # With one expression per conversation nothing is clustered: sqrt(p(1-p)/n) times the
    # n / (n-1) factor's square root, i.e. sqrt(p(1-p)/(n-1)) = sqrt(0.25 / 3) at 2 of 4.
    expressions = _expressions(spark, [["c-prac"], ["c-prac"], ["c-epis"], ["c-epis"]])
    se = 100.0 * math.sqrt(0.25 / 3)
    expected = spark.createDataFrame([("Practical values", 50.0, se), ("Epistemic values", 50.0, se)], ERRORS_SCHEMA)
    assertDataFrameEqual(compare.category_share_errors(expressions, _level3(spark)), expected, rtol=1e-12)


def test_one_conversation_has_no_error_estimate(spark):
    expressions = _expressions(spark, [["c-prac", "c-epis", "c-epis"]])
    expected = spark.createDataFrame(
        [("Practical values", 100.0 / 3, None), ("Epistemic values", 200.0 / 3, None)], ERRORS_SCHEMA
    )
    assertDataFrameEqual(compare.category_share_errors(expressions, _level3(spark)), expected, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Two real MLflow runs

RUN_A, RUN_B = "20250101T000000Z-aaaaaaaa", "20250108T000000Z-bbbbbbbb"
METRICS_A = {
    "subjective": 1000.0,
    "ai_value_expressions": 4000.0,
    "pct_category_practical": 30.0,
    "pct_category_epistemic": 20.0,
    "pct_response_strong_support": 28.0,
    "pct_response_reframing": 6.5,
}
METRICS_B = {
    "subjective": 1000.0,
    "ai_value_expressions": 4000.0,
    "pct_category_practical": 30.5,  # +0.5 points on 4000: not significant
    "pct_category_epistemic": 25.0,  # +5 points on 4000: significant
    "pct_response_strong_support": 40.0,  # +12 points on 1000: significant
    "pct_response_reframing": 6.0,  # -0.5 points on 1000: not significant
    "pct_response_mild_resistance": 3.0,  # absent in a (0%): +3 points, significant
}
TOP_A = [("helpfulness", 23.0), ("transparency", 17.0), ("only in a", 5.0)]
TOP_B = [("helpfulness", 23.5), ("transparency", 12.0), ("only in b", 4.0)]


def _top_values(rows: list[tuple[str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(name, name, False, int(pct * 10), pct, int(pct * 40), pct / 4) for name, pct in rows],
        columns=[
            "cluster_id",
            "name",
            "is_candidate",
            "n_conversations",
            "pct_convos",
            "n_expressions",
            "pct_total_occurrences",
        ],
    )


def _log_run(client, experiment_id: str, run_tag: str, metrics: dict, top: list, folder) -> str:
    run = client.create_run(experiment_id, tags={RUN_TAG: run_tag})
    for key, value in metrics.items():  # under their MLflow names, as the pipeline logs them
        client.log_metric(run.info.run_id, mlflow_metric(key), value)
    path = folder / run_tag / compare.TOP_VALUES_ARTIFACT
    path.parent.mkdir(parents=True)
    _top_values(top).to_csv(path, index=False)
    client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(tracking uri, MLflow id of run a, of run b) in a fresh SQLite store."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("compare-test", artifact_location=(root / "artifacts").as_uri())
    id_a = _log_run(client, experiment_id, RUN_A, METRICS_A, TOP_A, root / "files")
    id_b = _log_run(client, experiment_id, RUN_B, METRICS_B, TOP_B, root / "files")
    return uri, id_a, id_b


EXPECTED = {
    # (kind, name): (a, b, diff, significant)
    ("category", "epistemic"): (20.0, 25.0, 5.0, True),
    ("category", "practical"): (30.0, 30.5, 0.5, False),
    ("response_type", "strong_support"): (28.0, 40.0, 12.0, True),
    ("response_type", "mild_resistance"): (0.0, 3.0, 3.0, True),
    ("response_type", "reframing"): (6.5, 6.0, -0.5, False),
    ("value", "transparency"): (17.0, 12.0, -5.0, True),
    ("value", "helpfulness"): (23.0, 23.5, 0.5, False),
}


def _check(changes: list[compare.Change]) -> None:
    assert {(c.kind, c.name) for c in changes} == set(EXPECTED)  # values listed in one run only are left out
    for c in changes:
        a, b, diff, significant = EXPECTED[(c.kind, c.name)]
        assert (c.a, c.b, c.diff, c.significant) == (a, b, diff, significant), c
        assert c.ci_low <= c.diff <= c.ci_high
        assert significant == (c.ci_low > 0 or c.ci_high < 0)


def test_compare_from_mlflow_by_wildvalues_run_ids(store):
    uri, _, _ = store
    changes = compare.compare_from_mlflow(uri, RUN_A, RUN_B)
    _check(changes)
    # Sorted by kind, then the largest absolute change first.
    assert [(c.kind, c.name) for c in changes][:2] == [("category", "epistemic"), ("category", "practical")]
    assert changes[0].metric == "share/category/epistemic"  # the MLflow metric it lines up with
    assert next(c for c in changes if c.kind == "value").metric is None


def test_compare_from_mlflow_by_mlflow_run_ids(store):
    uri, id_a, id_b = store
    _check(compare.compare_from_mlflow(uri, id_a, id_b))


def test_compare_runs_downloads_artifacts_itself(store):
    from mlflow.tracking import MlflowClient

    uri, id_a, id_b = store
    client = MlflowClient(tracking_uri=uri)
    _check(compare.compare_runs(client.get_run(id_a), client.get_run(id_b)))


def test_compare_runs_with_given_artifacts_and_interval_values(store):
    from mlflow.tracking import MlflowClient

    uri, id_a, id_b = store
    client = MlflowClient(tracking_uri=uri)
    changes = compare.compare_runs(
        client.get_run(id_a),
        client.get_run(id_b),
        {compare.TOP_VALUES_ARTIFACT: _top_values(TOP_A)},
        {compare.TOP_VALUES_ARTIFACT: _top_values(TOP_B)},
    )
    _check(changes)
    strong = next(c for c in changes if c.name == "strong_support")
    low, high = compare.newcombe_interval(280, 1000, 400, 1000)
    assert (strong.ci_low, strong.ci_high) == pytest.approx((100 * low, 100 * high))


def test_compare_runs_without_denominator_skips_the_kind():
    # An older run without ai_value_expressions: categories cannot be compared, the rest can.
    run_a = SimpleNamespace(data=SimpleNamespace(metrics=dict(METRICS_A)))
    run_b = SimpleNamespace(
        data=SimpleNamespace(metrics={k: v for k, v in METRICS_B.items() if k != "ai_value_expressions"})
    )
    changes = compare.compare_runs(run_a, run_b, {}, {})
    assert {c.kind for c in changes} == {"response_type"}


def test_a_run_logged_before_the_prefixes_compares_with_a_newer_one():
    old = SimpleNamespace(data=SimpleNamespace(metrics=dict(METRICS_A)))  # unprefixed names
    new = SimpleNamespace(data=SimpleNamespace(metrics={mlflow_metric(k): v for k, v in METRICS_B.items()}))
    changes = compare.compare_runs(old, new, {}, {})
    expected = {key: value for key, value in EXPECTED.items() if key[0] != "value"}
    assert {(c.kind, c.name): (c.a, c.b, c.diff, c.significant) for c in changes} == expected


def test_format_changes_marks_significant_rows(store):
    uri, _, _ = store
    changes = compare.compare_from_mlflow(uri, RUN_A, RUN_B)
    text = compare.format_changes(changes)
    lines = text.splitlines()
    assert lines[0].split() == ["kind", "name", "a", "%", "b", "%", "diff", "95%", "CI"]
    rows = lines[1:-1]
    assert len(rows) == len(changes)
    for change, line in zip(changes, rows):
        assert line.startswith("*") == change.significant
        assert change.name in line and f"{change.diff:+.3f}" in line
    # Aligned: the name column starts at the same offset on every row.
    assert len({line.index(c.name) for c, line in zip(changes, rows)}) == 1
    assert lines[-1].startswith("4 of 7 changes significant")


def test_unknown_run_id_is_a_clear_error(store):
    uri, _, _ = store
    with pytest.raises(ValueError, match="no MLflow run"):
        compare.compare_from_mlflow(uri, RUN_A, "no-such-run")


def test_compare_latest(store, tmp_path):
    uri, _, _ = store
    text = compare.compare_latest(uri)
    assert text.startswith(f"run a = {RUN_A}") and f"run b = {RUN_B}" in text
    assert "only" in compare.compare_latest(f"sqlite:///{tmp_path}/empty.db")


# ---------------------------------------------------------------------------------------------
# Runs that log clustered standard errors (se_pct_category_*), as the taxonomy stage does now

RUN_C, RUN_D = "20250115T000000Z-cccccccc", "20250122T000000Z-dddddddd"
# +5 points on epistemic is significant when its 4,000 expressions count as independent, not
# with standard errors of 2 points per run (half-width 1.96 * sqrt(8) = 5.54 > 5).
ERRORS = {"se_pct_category_practical": 2.0, "se_pct_category_epistemic": 2.0}
CLUSTERED = {
    **EXPECTED,
    ("category", "epistemic"): (20.0, 25.0, 5.0, False),
}


@pytest.fixture(scope="module")
def clustered_store(tmp_path_factory):
    """(output directory whose mlflow.db holds runs c and d, tracking uri)."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("clustered")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("compare-clustered", artifact_location=(root / "artifacts").as_uri())
    _log_run(client, experiment_id, RUN_C, {**METRICS_A, **ERRORS}, TOP_A, root / "files")
    _log_run(client, experiment_id, RUN_D, {**METRICS_B, **ERRORS}, TOP_B, root / "files")
    return root, uri


def test_category_changes_use_the_clustered_errors(clustered_store):
    _, uri = clustered_store
    changes = compare.compare_from_mlflow(uri, RUN_C, RUN_D)
    assert {(c.kind, c.name): (c.a, c.b, c.diff, c.significant) for c in changes} == CLUSTERED
    assert {(c.kind, c.interval) for c in changes} == {
        ("category", "clustered"),
        ("response_type", "newcombe"),
        ("value", "newcombe"),
    }
    epistemic = next(c for c in changes if c.name == "epistemic")
    half = Z95 * math.sqrt(8.0)
    assert (epistemic.ci_low, epistemic.ci_high) == pytest.approx((5.0 - half, 5.0 + half), abs=1e-9)


def test_clustered_false_gives_the_independent_intervals(clustered_store):
    _, uri = clustered_store
    _check(compare.compare_from_mlflow(uri, RUN_C, RUN_D, clustered=False))


def test_a_run_without_errors_falls_back_to_independent_intervals():
    # An older run logged no se_ metrics: its categories are compared as before, and say so.
    run_a = SimpleNamespace(data=SimpleNamespace(metrics=dict(METRICS_A)))
    run_b = SimpleNamespace(data=SimpleNamespace(metrics={**METRICS_B, **ERRORS}))
    changes = compare.compare_runs(run_a, run_b, {}, {})
    categories = {c.name: (c.significant, c.interval) for c in changes if c.kind == "category"}
    assert categories == {"epistemic": (True, "newcombe"), "practical": (False, "newcombe")}


def test_compare_cli(clustered_store):
    root, _ = clustered_store
    result = wildvalues("compare", RUN_C, RUN_D, "--output", root, cwd=root)
    assert_ok(result)
    lines = result.stdout.splitlines()
    epistemic = next(line for line in lines if " epistemic " in line)
    assert not epistemic.startswith("*") and "+5.000" in epistemic
    assert lines[-1] == "3 of 7 changes significant (* = 95% CI excludes 0)"
