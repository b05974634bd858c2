"""What the report shows, read from a run's tables with small groups suppressed: the report's data, no drawing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from wildvalues.analysis import label_audit
from wildvalues.analysis.suppression import suppress_small_groups_pandas, suppress_tree, suppress_tree_pandas
from wildvalues.io.registry import DISCOVERED_LEVEL_TABLES, LEVEL_TABLES, Table
from wildvalues.io.tables import ReadableTables
from wildvalues.reporting.export import rolls_up_discovered_trees

MAX_ANOMALY_ROWS = 200


@dataclass
class ReportData:
    """What the report shows, already suppressed below k and collected to pandas."""

    run_id: str
    k: int
    k_users: int = 1  # a shown group also covers this many distinct users (privacy.k_users)
    levels: list[pd.DataFrame] | None = None  # AI side, index = level
    response_types: pd.DataFrame | None = None
    context: pd.DataFrame | None = None  # value_context cells, context_kind = 'task_category'
    mirroring: pd.DataFrame | None = None
    anomalies: pd.DataFrame | None = None  # None when ids are omitted or the table is missing
    n_anomalies: int | None = None
    discovered_levels: list[pd.DataFrame] | None = None  # the run's own AI tree, when discovered
    new_values: pd.DataFrame | None = None  # AI values the published tree lacks (candidates)
    new_clusters: pd.DataFrame | None = None  # discovered level-1 clusters with little published overlap
    agreement: pd.DataFrame | None = None  # NMI / ARI per level against the published tree
    crosscheck: pd.DataFrame | None = None  # the second-model cross-check's measures, when run
    crosscheck_confusion: pd.DataFrame | None = None  # its response-type cells of at least k
    n_suppressed: dict[str, int] = field(default_factory=dict)
    n_rows: dict[str, int] = field(default_factory=dict)  # the level tables' AI rows before k
    n_suppressed_labels: dict[str, int] = field(default_factory=dict)  # rows dropped or renamed by the audit
    hidden: frozenset[str] = frozenset()  # labels the auditor suppressed
    notes: list[str] = field(default_factory=list)


def latest_run_id(store: ReadableTables) -> str | None:
    """The newest run id of the output (runs registry), or None."""
    from wildvalues.io.history import run_ids

    runs = run_ids(store)
    return runs[-1] if runs else None


def _run_table(store: ReadableTables, name: str, run_id: str, notes: list[str]) -> DataFrame | None:
    """The table's rows of this run, or None (with a note) when the table is missing."""
    if not store.exists(name):
        notes.append(f"table {name} not found: section left out")
        return None
    return store.read(name).filter(F.col("run_id") == run_id)


def _note_if_empty(frame: pd.DataFrame, store: ReadableTables, name: str, run_id: str, notes: list[str]) -> None:
    if len(frame):
        return
    rest = store.read(name).filter(F.col("run_id") != run_id).select("run_id").distinct().limit(3).collect()
    others = sorted(r["run_id"] for r in rest)
    held = f" (it holds run {', '.join(others)})" if others else ""
    notes.append(f"table {name} has no rows to show for run {run_id}{held}")


def _load_levels(store: ReadableTables, run_id: str, k: int, data: ReportData) -> None:
    tables = [_run_table(store, name, run_id, data.notes) for name in LEVEL_TABLES]
    present = [t for t in tables if t is not None]
    if len(present) < len(tables):
        return
    # One collect per level, then k and the audit in pandas (in Spark each count re-runs the joins).
    collected = [t.filter(F.col("side") == "ai").drop("run_id").toPandas() for t in present]
    kept, suppressed = suppress_tree_pandas(collected, k, k_users=data.k_users)
    data.levels, n_labels = label_audit.audit_levels_pandas(kept, data.hidden)
    data.n_suppressed.update(zip(LEVEL_TABLES, suppressed, strict=True))
    data.n_rows.update({name: len(frame) for name, frame in zip(LEVEL_TABLES, collected, strict=True)})
    data.n_suppressed_labels.update(zip(LEVEL_TABLES, n_labels, strict=True))
    if not suppressed[3]:  # rows k removed are said by suppression_summary, not as a missing run
        _note_if_empty(data.levels[3], store, Table.VALUES_LEVEL_3, run_id, data.notes)


NEW_CLUSTER_OVERLAP = 0.5  # a discovered cluster sharing less than this with any published one is new


def _load_discovered(store: ReadableTables, run_id: str, k: int, data: ReportData) -> None:
    """The discovered AI tree (suppressed like the published one), and what the published tree lacks."""
    names = DISCOVERED_LEVEL_TABLES
    if not all(store.exists(name) for name in names):
        return  # discovery was not asked for: no section, no note
    tables = [store.read(name).filter((F.col("run_id") == run_id) & (F.col("side") == "ai")) for name in names]
    kept, suppressed = suppress_tree(tables, k, k_users=data.k_users)
    kept, n_labels = label_audit.audit_levels(kept, data.hidden)
    data.discovered_levels = [frame.drop("run_id").toPandas() for frame in kept]
    data.n_suppressed.update({name: n for name, n in zip(names, suppressed, strict=True)})
    data.n_suppressed_labels.update({name: n for name, n in zip(names, n_labels, strict=True)})
    if data.levels is not None and rolls_up_discovered_trees(store):
        data.notes.append(
            "taxonomy.mode discovered: the AI value taxonomy, the top values and the findings in this report "
            "roll up this run's own discovered trees, not the published one"
        )
    if store.exists(Table.TAXONOMY_AGREEMENT):
        data.agreement = (
            store.read(Table.TAXONOMY_AGREEMENT).filter(F.col("run_id") == run_id).orderBy("level").toPandas()
        )
    if store.exists(Table.TAXONOMY_ALIGNMENT):
        aligned = store.read(Table.TAXONOMY_ALIGNMENT).filter((F.col("run_id") == run_id) & (F.col("level") == 1))
        level1 = kept[1].select(F.col("cluster_id").alias("discovered_id"), "name", "n_conversations")
        data.new_clusters = (
            aligned.filter(F.col("overlap_share") < NEW_CLUSTER_OVERLAP)
            .join(level1, "discovered_id")
            .orderBy(F.desc("n_conversations"), "discovered_id")
            .select("name", "n_conversations", "overlap_share", "published_name")
            .toPandas()
        )


def _load_new_values(data: ReportData) -> None:
    if data.levels is None:
        return
    level0 = data.levels[0]
    data.new_values = level0[level0["is_candidate"]].sort_values(
        ["n_conversations", "cluster_id"], ascending=[False, True]
    )


def _load_small(
    store: ReadableTables,
    name: str,
    run_id: str,
    count_col: str,
    k: int,
    data: ReportData,
    where: Callable[[DataFrame], DataFrame] = lambda df: df,
    labelled: tuple[str, ...] = (),
) -> pd.DataFrame | None:
    table = _run_table(store, name, run_id, data.notes)
    if table is None:
        return None
    # One collect, then k and the audit in pandas: a Spark count per filter costs a job each.
    frame, n_suppressed = suppress_small_groups_pandas(
        where(table).drop("run_id").toPandas(), count_col, k, data.k_users
    )
    data.n_suppressed[name] = n_suppressed
    if labelled:
        frame, data.n_suppressed_labels[name] = label_audit.drop_rows_pandas(frame, labelled, data.hidden)
    if not len(frame) and not n_suppressed:
        _note_if_empty(frame, store, name, run_id, data.notes)
    return frame


def _load_anomalies(store: ReadableTables, run_id: str, include_ids: bool, max_rows: int, data: ReportData) -> None:
    table = _run_table(store, Table.VALUE_ANOMALIES, run_id, data.notes)
    if table is None:
        return
    data.n_anomalies = table.count()
    if not include_ids:
        return
    top = table.orderBy(F.desc("score"), "conversation_id").limit(max_rows)
    hidden = sorted(data.hidden)
    flagged = F.transform(
        "flagged_values", lambda v: F.when(v.isin(*hidden), F.lit(label_audit.SUPPRESSED_LABEL)).otherwise(v)
    )
    data.anomalies = top.select(
        "conversation_id",
        "reason",
        F.array_join(flagged if hidden else "flagged_values", "; ").alias("flagged_values"),
        "score",
    ).toPandas()


def _load_audit(store: ReadableTables, run_id: str, data: ReportData) -> None:
    """The labels the analyze stage's auditor suppressed (a note when the output predates it)."""
    if not store.exists(label_audit.TABLE):
        data.notes.append(f"table {label_audit.TABLE} not found: labels are shown unaudited (rerun wildvalues analyze)")
        return
    data.hidden = label_audit.suppressed_set(store.read(label_audit.TABLE).filter(F.col("run_id") == run_id))


def load_report_data(
    store: ReadableTables,
    run_id: str,
    k: int,
    include_anomaly_ids: bool = True,
    max_anomaly_rows: int = MAX_ANOMALY_ROWS,
    k_users: int = 1,
) -> ReportData:
    """The report's tables for one run, suppressed below k conversations or k_users distinct users."""
    data = ReportData(run_id=run_id, k=k, k_users=k_users)
    _load_audit(store, run_id, data)
    _load_levels(store, run_id, k, data)
    data.response_types = _load_small(store, Table.RESPONSE_TYPES, run_id, "n_conversations", k, data)
    data.context = _load_small(
        store,
        Table.VALUE_CONTEXT,
        run_id,
        "n",
        k,
        data,
        lambda df: df.filter(F.col("context_kind") == "task_category"),
        labelled=("value", "context"),
    )
    data.mirroring = _load_small(store, Table.VALUE_MIRRORING, run_id, "n_conversations", k, data)
    _load_discovered(store, run_id, k, data)
    _load_new_values(data)
    _load_anomalies(store, run_id, include_anomaly_ids, max_anomaly_rows, data)
    _load_crosscheck(store, run_id, k, data)
    return data


def _load_crosscheck(store: ReadableTables, run_id: str, k: int, data: ReportData) -> None:
    """The cross-check's measures, and its confusion cells of at least k conversations."""
    if not (store.exists(Table.CROSSCHECK_AGREEMENT) and store.exists(Table.CROSSCHECK_CONFUSION)):
        return  # no cross-check was run: no section, no note
    measures = store.read(Table.CROSSCHECK_AGREEMENT).filter(F.col("run_id") == run_id)
    data.crosscheck = measures.drop("run_id").toPandas()
    if not len(data.crosscheck):
        data.crosscheck = None
        return
    cells = store.read(Table.CROSSCHECK_CONFUSION).filter(F.col("run_id") == run_id)
    kept, n_suppressed = suppress_small_groups_pandas(
        cells.drop("run_id").toPandas(), "n_conversations", k, data.k_users
    )
    data.n_suppressed[Table.CROSSCHECK_CONFUSION] = n_suppressed
    data.crosscheck_confusion = kept
