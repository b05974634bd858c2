"""Publish a run's AI value taxonomy in the layout of the public data set
`Anthropic/values-in-the-wild`: `values_tree.csv` and `values_frequencies.csv`.

Only aggregates leave: nodes covering fewer than k conversations are suppressed (with their
descendants, so no published child lacks its parent), and so are the labels the label auditor
rated identifying (`label_audits`, written by the analyze stage): a value is left out, a cluster
keeps its row under "[suppressed label]". No conversation text, no ids of conversations or runs.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from wildvalues.analysis import label_audit
from wildvalues.analysis.suppression import suppress_small_groups, suppress_tree
from wildvalues.io.registry import DISCOVERED_LEVEL_TABLES, LEVEL_TABLES, Table
from wildvalues.io.tables import ReadableTables
from wildvalues.taxonomy.tree import TREE_COLUMNS  # the public data set's header

TREE_FILE = "values_tree.csv"
FREQUENCIES_FILE = "values_frequencies.csv"
FREQUENCY_COLUMNS: tuple[str, ...] = ("value", "pct_convos")
LEVEL_ORDER: tuple[int, ...] = (1, 2, 3, 0)  # the public file lists levels 1, 2, 3, then 0
DECIMALS = 3  # as in the public file


@dataclass
class ExportResult:
    paths: dict[str, str]  # file name -> path written
    n_suppressed: dict[str, int] = field(default_factory=dict)  # table -> rows left out
    n_suppressed_labels: dict[str, int] = field(default_factory=dict)  # table -> rows dropped or renamed


def format_number(value: float) -> str:
    """Rounded to 3 decimals, shortest form, like the public file ('21.41', '0.001')."""
    return repr(round(float(value), DECIMALS) + 0.0)  # + 0.0 turns -0.0 into 0.0


class WrongTree(ValueError):
    """The output's level tables roll up another tree than the one asked for."""


class Unaudited(ValueError):
    """The output has no label_audits table (written before the label auditor existed)."""


# Which tree to publish: its level tables and the table holding its cluster descriptions.
TREES: dict[str, tuple[tuple[Table, ...], Table]] = {
    "published": (LEVEL_TABLES, Table.VALUE_TAXONOMY),
    "discovered": (DISCOVERED_LEVEL_TABLES, Table.DISCOVERED_TAXONOMY),
}


def _ai_levels(store: ReadableTables, levels: tuple[Table, ...]) -> list[DataFrame]:
    return [store.read(name).filter(F.col("side") == "ai") for name in levels]


def rolls_up_discovered_trees(store: ReadableTables) -> bool:
    """Whether values_level_* hold the discovered AI tree's roll-up (taxonomy.mode discovered):
    their AI level-1 clusters are exactly discovered_values_level_1's (the AI side is published)."""
    if not (store.exists(Table.VALUES_LEVEL_1) and store.exists(Table.DISCOVERED_VALUES_LEVEL_1)):
        return False

    def ai_clusters(name: str) -> set[str]:
        rows = store.read(name).filter(F.col("side") == "ai").select("cluster_id").distinct().collect()
        return {r["cluster_id"] for r in rows}

    ours = ai_clusters(Table.VALUES_LEVEL_1)
    return bool(ours) and ours == ai_clusters(Table.DISCOVERED_VALUES_LEVEL_1)


def _descriptions(store: ReadableTables, given: dict[str, str] | None, table: str) -> dict[str, str]:
    if given is not None:
        return dict(given)
    if not store.exists(table):
        return {}
    rows = store.read(table).filter(F.col("level") > 0).select("cluster_id", "description").collect()
    return {r["cluster_id"]: r["description"] or "" for r in rows}


def tree_rows(levels: list[pd.DataFrame], descriptions: dict[str, str]) -> list[list[str]]:
    """CSV rows (TREE_COLUMNS) of the kept level tables (index = level), in the public order."""
    rows = []
    for level in LEVEL_ORDER:
        table = levels[level].copy()
        table["parent"] = table["parent_cluster_id"].fillna("") if level < 3 else ""
        table = table.sort_values(["parent", "pct_total_occurrences", "cluster_id"], ascending=[True, False, True])
        for node in table.itertuples(index=False):
            rows.append(
                [
                    node.cluster_id,
                    descriptions.get(node.cluster_id, "") if level > 0 else "",
                    node.name,
                    str(level),
                    node.parent,
                    format_number(node.pct_total_occurrences),
                ]
            )
    return rows


def frequency_rows(level0: pd.DataFrame) -> list[list[str]]:
    """CSV rows (FREQUENCY_COLUMNS), most frequent first."""
    ordered = level0.sort_values(["pct_convos", "name"], ascending=[False, True])
    return [[node.name, format_number(node.pct_convos)] for node in ordered.itertuples(index=False)]


def _write_csv(path: str, header: tuple[str, ...], rows: list[list[str]]) -> None:
    # csv's default '\r\n' line ends and minimal quoting are the public file's.
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


_LEVEL_COLUMNS = ["cluster_id", "name", "level", "parent_cluster_id", "pct_convos", "pct_total_occurrences"]


def export_public(
    store: ReadableTables,
    to_dir: str,
    k: int,
    taxonomy_descriptions: dict[str, str] | None = None,
    tree: str = "published",
    k_users: int = 1,
) -> ExportResult:
    """Write values_tree.csv and values_frequencies.csv (AI side) under to_dir.

    Descriptions of levels 1-3 come from `taxonomy_descriptions` (cluster_id -> text) when
    given, else from the `value_taxonomy` table. pct_total_occurrences stays each node's share
    of all AI value expressions (not renormalised after suppression), like the public file.
    """
    level_tables, descriptions_table = TREES[tree]
    if not store.exists(level_tables[0]):
        raise FileNotFoundError(
            f"no {tree} tree in this output (table {level_tables[0]}); for discovered: wildvalues discover"
        )
    if tree == "published" and rolls_up_discovered_trees(store):
        raise WrongTree(
            "this output's values_level_* roll up its discovered trees (taxonomy.mode discovered): "
            "export them with --tree discovered"
        )
    if not store.exists(label_audit.TABLE):
        raise Unaudited(
            f"this output has no {label_audit.TABLE} table, so its labels were never audited: "
            "rerun `wildvalues analyze` on it before exporting"
        )
    hidden = label_audit.suppressed_set(store.read(label_audit.TABLE))
    levels = _ai_levels(store, level_tables)
    kept, suppressed = suppress_tree(levels, k, k_users=k_users)
    kept, n_labels = label_audit.audit_levels(kept, hidden)
    frequent, n_rare = suppress_small_groups(levels[0], "n_conversations", k, k_users)
    frequent, n_frequent_labels = label_audit.drop_rows(frequent, ["name"], hidden)
    descriptions, n_descriptions = label_audit.masked_descriptions(
        _descriptions(store, taxonomy_descriptions, descriptions_table), hidden
    )
    tables = [frame.select(*_LEVEL_COLUMNS).toPandas() for frame in kept]
    os.makedirs(to_dir, exist_ok=True)
    paths = {TREE_FILE: os.path.join(to_dir, TREE_FILE), FREQUENCIES_FILE: os.path.join(to_dir, FREQUENCIES_FILE)}
    _write_csv(paths[TREE_FILE], TREE_COLUMNS, tree_rows(tables, descriptions))
    _write_csv(
        paths[FREQUENCIES_FILE], FREQUENCY_COLUMNS, frequency_rows(frequent.select("name", "pct_convos").toPandas())
    )
    n_suppressed: dict[str, int] = dict(zip(level_tables, suppressed, strict=True))
    n_suppressed["values_frequencies"] = n_rare
    labels: dict[str, int] = dict(zip(level_tables, n_labels, strict=True))
    labels.update({f"{descriptions_table}_descriptions": n_descriptions, "values_frequencies": n_frequent_labels})
    return ExportResult(paths, n_suppressed, labels)
