"""Compare two pipeline runs recorded in MLflow: which shares changed, with 95% intervals.

Response-type and value shares are shares of conversations, the sampled unit: they are rebuilt
as counts from each run's logged metrics (percent x denominator) and compared with Newcombe's
hybrid score interval for a difference of two independent proportions (method 10 in Newcombe
1998), built from one Wilson score interval per run.

Category shares are shares of value expressions, several per conversation and correlated within
it (a coding conversation expresses several practical values). Counting them as independent
makes intervals too narrow, so the taxonomy stage logs each share's cluster-robust standard error
with conversations as clusters (`category_share_errors`, MLflow metric `share/category_se/<name>`), and
the difference gets a Wald interval from the two. Runs logged before those metrics existed fall
back to the independent interval (`Change.interval` says which). `Change.metric` is the MLflow
name (`share/category/<name>`), so the MLflow UI compare view shows the same figures side by side;
runs logged before the names had prefixes compare too (`tracking.stage_metrics` reads both).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from wildvalues.io.tracking import RUN_TAG, mlflow_metric, stage_metrics

TOP_VALUES_ARTIFACT = "top_values.csv"
KINDS: tuple[str, ...] = ("category", "response_type", "value")

# (kind, metric prefix, denominator metric): the pipeline logs these shares in percent.
_METRIC_SHARES: tuple[tuple[str, str, str], ...] = (
    ("category", "pct_category_", "ai_value_expressions"),
    ("response_type", "pct_response_", "subjective"),
)
_SE_PREFIX = "se_"  # se_pct_category_<name>: the share's cluster-robust standard error, in points
_VALUE_DENOMINATOR = "subjective"  # top_values.csv pct_convos: share of subjective conversations
_MLFLOW_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Change:
    """One share in run a and run b (percent), b - a in points and its 95% interval."""

    kind: str  # one of KINDS
    name: str
    a: float
    b: float
    diff: float
    ci_low: float
    ci_high: float
    significant: bool
    interval: str = "newcombe"  # or "clustered": Wald with conversation-clustered standard errors

    @property
    def metric(self) -> str | None:
        """The MLflow metric behind a category or response-type share (as in the UI's compare view)."""
        prefix = {"category": "pct_category_", "response_type": "pct_response_"}.get(self.kind)
        return mlflow_metric(prefix + self.name) if prefix else None


# ---------------------------------------------------------------------------------------------
# Intervals


def _z(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (shares, 0-1)."""
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0 <= successes <= n:
        raise ValueError("successes must be within [0, n]")
    z = _z(alpha)
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    # Clamp float noise at the bounds (p = 0 or 1 give exactly 0 or 1 in exact arithmetic).
    return max(0.0, (centre - half) / denominator), min(1.0, (centre + half) / denominator)


def newcombe_interval(x_a: int, n_a: int, x_b: int, n_b: int, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p_b - p_a (shares, 0-1)."""
    p_a, p_b = x_a / n_a, x_b / n_b
    low_a, high_a = wilson_interval(x_a, n_a, alpha)
    low_b, high_b = wilson_interval(x_b, n_b, alpha)
    diff = p_b - p_a
    return (
        diff - math.sqrt((p_b - low_b) ** 2 + (high_a - p_a) ** 2),
        diff + math.sqrt((high_b - p_b) ** 2 + (p_a - low_a) ** 2),
    )


def clustered_interval(diff: float, se_a: float, se_b: float, alpha: float = 0.05) -> tuple[float, float]:
    """Wald interval for a difference of two independent estimates with these standard errors."""
    half = _z(alpha) * math.hypot(se_a, se_b)
    return diff - half, diff + half


def category_share_errors(expressions: DataFrame, level3: DataFrame) -> DataFrame:
    """Each AI top category's share of AI value expressions (percent) and its cluster-robust
    standard error (points), conversations as clusters: columns name, pct, se.

    The share is a ratio p = sum(y_i) / sum(m_i) over conversations i, with y_i the conversation's
    expressions in the category and m_i all its AI expressions. Its linearised (sandwich)
    variance is n / (n - 1) * sum((y_i - p m_i)^2) / (sum m_i)^2, expanded into sums so that
    conversations without the category need no row: sum(y^2) - 2 p sum(y m) + p^2 sum(m^2).
    """
    ai = expressions.filter(F.col("side") == "ai")
    names = level3.filter(F.col("side") == "ai").select(F.col("cluster_id").alias("level_3_cluster_id"), "name")
    per_conversation = ai.groupBy("conversation_id").agg(F.count(F.lit(1)).alias("m"))
    totals = per_conversation.agg(
        F.count(F.lit(1)).alias("n"), F.sum("m").alias("total"), F.sum(F.col("m") * F.col("m")).alias("smm")
    )
    y, m = F.col("y"), F.col("m")
    sums = (
        ai.join(names, "level_3_cluster_id")
        .groupBy("conversation_id", "name")
        .agg(F.count(F.lit(1)).alias("y"))
        .join(per_conversation, "conversation_id")
        .groupBy("name")
        .agg(F.sum("y").alias("sy"), F.sum(y * y).alias("syy"), F.sum(y * m).alias("sym"))
        .crossJoin(totals)
    )
    p = F.col("sy") / F.col("total")
    squares = F.col("syy") - 2 * p * F.col("sym") + p * p * F.col("smm")
    # Float noise can take the sum of squares just below 0 when every residual is 0.
    variance = F.greatest(squares, F.lit(0.0)) / (F.col("total") * F.col("total")) * F.col("n") / (F.col("n") - 1)
    # n = 1 has no spread to estimate: the standard error is unknown (null), not zero.
    return sums.select("name", (100.0 * p).alias("pct"), F.when(F.col("n") > 1, 100.0 * F.sqrt(variance)).alias("se"))


# ---------------------------------------------------------------------------------------------
# Comparing


def _count(pct: float, n: int) -> int:
    """The count behind a logged percentage (the pipeline logs 100 * count / n)."""
    return min(n, max(0, round(pct * n / 100.0)))


def _change(kind: str, name: str, pct_a: float, n_a: int, pct_b: float, n_b: int, alpha: float) -> Change:
    low, high = newcombe_interval(_count(pct_a, n_a), n_a, _count(pct_b, n_b), n_b, alpha)
    low, high = 100.0 * low, 100.0 * high
    return Change(kind, name, pct_a, pct_b, pct_b - pct_a, low, high, low > 0.0 or high < 0.0)


def _denominator(metrics: Mapping[str, float], key: str) -> int | None:
    value = metrics.get(key)
    return int(round(value)) if value is not None and value > 0 else None


def _has_errors(metrics: Mapping[str, float], prefix: str) -> bool:
    return any(k.startswith(_SE_PREFIX + prefix) for k in metrics)


def _clustered_change(
    kind: str, name: str, pct_a: float, se_a: float, pct_b: float, se_b: float, alpha: float
) -> Change:
    low, high = clustered_interval(pct_b - pct_a, se_a, se_b, alpha)
    return Change(kind, name, pct_a, pct_b, pct_b - pct_a, low, high, low > 0.0 or high < 0.0, "clustered")


def _metric_changes(
    metrics_a: Mapping[str, float], metrics_b: Mapping[str, float], alpha: float, clustered: bool
) -> list[Change]:
    changes = []
    for kind, prefix, denominator in _METRIC_SHARES:
        n_a, n_b = _denominator(metrics_a, denominator), _denominator(metrics_b, denominator)
        if n_a is None or n_b is None:
            continue
        use_errors = clustered and _has_errors(metrics_a, prefix) and _has_errors(metrics_b, prefix)
        names = {k[len(prefix) :] for k in (*metrics_a, *metrics_b) if k.startswith(prefix)}
        for name in names:
            # The pipeline logs only the categories and types that occur: absent means 0%, and
            # a share of 0 has no spread.
            pct_a, pct_b = metrics_a.get(prefix + name, 0.0), metrics_b.get(prefix + name, 0.0)
            if use_errors:
                se_a, se_b = (m.get(_SE_PREFIX + prefix + name, 0.0) for m in (metrics_a, metrics_b))
                changes.append(_clustered_change(kind, name, pct_a, se_a, pct_b, se_b, alpha))
            else:
                changes.append(_change(kind, name, pct_a, n_a, pct_b, n_b, alpha))
    return changes


def _value_changes(
    top_a: pd.DataFrame | None, top_b: pd.DataFrame | None, n_a: int | None, n_b: int | None, alpha: float
) -> list[Change]:
    if top_a is None or top_b is None or n_a is None or n_b is None:
        return []
    shares_a = dict(zip(top_a["name"].astype(str), top_a["pct_convos"].astype(float)))
    shares_b = dict(zip(top_b["name"].astype(str), top_b["pct_convos"].astype(float)))
    # The artifact is a truncated top list: a value missing from one list has an unknown share
    # there (not 0), so only values listed in both runs are compared.
    common = set(shares_a) & set(shares_b)
    return [_change("value", name, shares_a[name], n_a, shares_b[name], n_b, alpha) for name in common]


def _top_values(run: Any, artifacts: Mapping[str, Any] | None) -> pd.DataFrame | None:
    """The run's top_values.csv: from `artifacts` (DataFrame or local path) or downloaded."""
    if artifacts is not None:
        source = artifacts.get(TOP_VALUES_ARTIFACT)
        if source is None:
            return None
        return source if isinstance(source, pd.DataFrame) else pd.read_csv(source)
    return _download_top_values(run, None)


@contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow draws a progress bar per download; it clutters notebook and CLI output."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _download_top_values(run: Any, tracking_uri: str | None) -> pd.DataFrame | None:
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp, _no_progress_bar():
        try:
            if tracking_uri:
                path = mlflow.artifacts.download_artifacts(
                    run_id=run.info.run_id, artifact_path=TOP_VALUES_ARTIFACT, dst_path=tmp, tracking_uri=tracking_uri
                )
            else:
                path = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{run.info.artifact_uri.rstrip('/')}/{TOP_VALUES_ARTIFACT}", dst_path=tmp
                )
        except (MlflowException, OSError):
            return None  # a run stopped before the artifact was logged: compare metrics only
        return pd.read_csv(path) if os.path.isfile(path) else None


def compare_runs(
    run_a: Any,
    run_b: Any,
    artifacts_a: Mapping[str, Any] | None = None,
    artifacts_b: Mapping[str, Any] | None = None,
    alpha: float = 0.05,
    clustered: bool = True,
) -> list[Change]:
    """Changes from run_a to run_b (mlflow.entities.Run) in category shares, response-type shares
    and the top values' pct_convos; sorted by kind, then largest absolute change first.

    `artifacts_*` maps an artifact name ('top_values.csv') to a DataFrame or local file; when
    None the artifact is downloaded from the run. Shares whose denominator metric is missing or
    zero in either run are skipped. `clustered=False` treats value expressions as independent
    for category shares (the old intervals, kept to measure what they got wrong).
    """
    _z(alpha)
    metrics_a, metrics_b = stage_metrics(run_a.data.metrics), stage_metrics(run_b.data.metrics)
    changes = _metric_changes(metrics_a, metrics_b, alpha, clustered)
    changes += _value_changes(
        _top_values(run_a, artifacts_a),
        _top_values(run_b, artifacts_b),
        _denominator(metrics_a, _VALUE_DENOMINATOR),
        _denominator(metrics_b, _VALUE_DENOMINATOR),
        alpha,
    )
    return sorted(changes, key=lambda c: (KINDS.index(c.kind), -abs(c.diff), c.name))


def format_changes(changes: list[Change]) -> str:
    """An aligned text table; '*' marks changes whose interval excludes 0."""
    header = ("", "kind", "name", "a %", "b %", "diff", "95% CI")
    rows = [
        (
            "*" if c.significant else "",
            c.kind,
            c.name,
            f"{c.a:.3f}",
            f"{c.b:.3f}",
            f"{c.diff:+.3f}",
            f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}]",
        )
        for c in changes
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    numeric = {3, 4, 5}

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    footer = f"{sum(c.significant for c in changes)} of {len(changes)} changes significant (* = 95% CI excludes 0)"
    return "\n".join([line(header), *(line(r) for r in rows), footer])


# ---------------------------------------------------------------------------------------------
# MLflow look-ups


def _client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def _experiment_ids(client) -> list[str]:
    return [e.experiment_id for e in client.search_experiments()]


def resolve_run(tracking_uri: str, run_id: str) -> Any:
    """The MLflow run for an MLflow run id or a wildvalues run id (tag wildvalues.run_id)."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    tagged = client.search_runs(
        _experiment_ids(client), filter_string=f"tags.`{RUN_TAG}` = '{run_id}'", order_by=["start_time DESC"]
    )
    if tagged:
        return tagged[0]
    if _MLFLOW_ID.match(run_id):
        try:
            return client.get_run(run_id)
        except MlflowException:
            pass
    raise ValueError(f"no MLflow run with id or {RUN_TAG} {run_id!r} in {tracking_uri}")


def latest_runs(tracking_uri: str, n: int = 2, experiment: str | None = None) -> list[Any]:
    """The n most recently started pipeline runs (tagged wildvalues.run_id), newest first; in one
    experiment when named (a workspace holds other targets' and projects' experiments)."""
    client = _client(tracking_uri)
    if experiment is not None:
        found = client.get_experiment_by_name(experiment)
        ids = [found.experiment_id] if found is not None else []
    else:
        ids = _experiment_ids(client)
    if not ids:
        return []
    return list(
        client.search_runs(ids, filter_string=f"tags.`{RUN_TAG}` != ''", order_by=["start_time DESC"], max_results=n)
    )


def compare_from_mlflow(
    tracking_uri: str, run_a_id: str, run_b_id: str, alpha: float = 0.05, clustered: bool = True
) -> list[Change]:
    """compare_runs for two runs named by MLflow run id or wildvalues run id."""
    run_a, run_b = resolve_run(tracking_uri, run_a_id), resolve_run(tracking_uri, run_b_id)
    artifacts = []
    for run in (run_a, run_b):
        top = _download_top_values(run, tracking_uri)
        artifacts.append({} if top is None else {TOP_VALUES_ARTIFACT: top})
    return compare_runs(run_a, run_b, artifacts[0], artifacts[1], alpha, clustered)


def compare_latest(tracking_uri: str, alpha: float = 0.05, experiment: str | None = None) -> str:
    """The change table of the two most recent runs (older = a), or a note when there are fewer."""
    runs = latest_runs(tracking_uri, 2, experiment)
    if len(runs) < 2:
        return f"only {len(runs)} pipeline run(s) in {tracking_uri}: nothing to compare yet"
    newer, older = runs
    changes = compare_from_mlflow(tracking_uri, older.info.run_id, newer.info.run_id, alpha)
    title = f"run a = {_label(older)}, run b = {_label(newer)}"
    return f"{title}\n{format_changes(changes)}"


def _label(run: Any) -> str:
    return f"{run.data.tags.get(RUN_TAG, '?')} (MLflow {run.info.run_id})"
