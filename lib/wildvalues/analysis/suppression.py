"""Suppressing small groups: every published aggregate drops what fewer than k conversations (and k_users people) show."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from wildvalues.settings.sections import DEFAULT_K


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError("k must be an integer >= 1")


def _is_large(df: DataFrame, count_col: str, k: int, users_col: str, k_users: int) -> Column:
    """At least k conversations and k_users distinct users; a null count is unknown size: suppressed."""
    _check_k(k_users)
    large = F.coalesce(F.col(count_col) >= k, F.lit(False))
    if k_users == 1:
        return large
    if users_col not in df.columns:
        raise ValueError(f"k_users = {k_users} needs a distinct-users column {users_col!r}; columns: {df.columns}")
    return large & F.coalesce(F.col(users_col) >= k_users, F.lit(False))


def suppress_small_groups(
    df: DataFrame, count_col: str, k: int = DEFAULT_K, k_users: int = 1, users_col: str = "n_users"
) -> tuple[DataFrame, int]:
    """(rows with count_col >= k and users_col >= k_users, number of rows dropped).

    See DEFAULT_K for the choice of k; k_users (privacy.k_users) keeps one person's many
    conversations from making a group look large.
    """
    kept, small = split_small_groups(df, count_col, k, k_users, users_col)
    return kept, small.count()


def split_small_groups(
    df: DataFrame, count_col: str, k: int = DEFAULT_K, k_users: int = 1, users_col: str = "n_users"
) -> tuple[DataFrame, DataFrame]:
    """(the rows suppress_small_groups keeps, the rows it drops), uncounted: see row_counts."""
    _check_k(k)
    large = _is_large(df, count_col, k, users_col, k_users)
    return df.filter(large), df.filter(~large)


def _is_large_pandas(frame: pd.DataFrame, count_col: str, k: int, users_col: str, k_users: int) -> pd.Series:
    """_is_large on a collected table; a null count compares False, so unknown size is suppressed."""
    _check_k(k_users)
    large = frame[count_col].ge(k)
    if k_users == 1:
        return large
    if users_col not in frame.columns:
        raise ValueError(
            f"k_users = {k_users} needs a distinct-users column {users_col!r}; columns: {list(frame.columns)}"
        )
    return large & frame[users_col].ge(k_users)


def suppress_small_groups_pandas(
    frame: pd.DataFrame, count_col: str, k: int = DEFAULT_K, k_users: int = 1, users_col: str = "n_users"
) -> tuple[pd.DataFrame, int]:
    """suppress_small_groups on a table already collected (the report's): the same rows, no Spark job."""
    _check_k(k)
    large = _is_large_pandas(frame, count_col, k, users_col, k_users)
    return frame[large].reset_index(drop=True), int((~large).sum())


def suppress_tree_pandas(
    level_tables: Sequence[pd.DataFrame],
    k: int = DEFAULT_K,
    count_col: str = "n_conversations",
    k_users: int = 1,
    users_col: str = "n_users",
) -> tuple[list[pd.DataFrame], list[int]]:
    """suppress_tree on the four level tables already collected (the report's): the same rows, no Spark job."""
    _check_k(k)
    if len(level_tables) != 4:
        raise ValueError("suppress_tree needs the four level tables, level 0 first")
    kept: list[pd.DataFrame] = [pd.DataFrame()] * 4
    for level in (3, 2, 1, 0):
        table = level_tables[level]
        keep = _is_large_pandas(table, count_col, k, users_col, k_users)
        if level < 3:
            parents = set(zip(kept[level + 1]["side"], kept[level + 1]["cluster_id"], strict=True))
            pairs = zip(table["side"], table["parent_cluster_id"], strict=True)
            placed = pd.Series([pair in parents for pair in pairs], index=table.index, dtype=bool)
            keep &= placed | table["parent_cluster_id"].isna()
        kept[level] = table[keep].reset_index(drop=True)
    return kept, [len(level_tables[i]) - len(kept[i]) for i in range(4)]


def suppress_tree(
    level_tables: Sequence[DataFrame],
    k: int = DEFAULT_K,
    count_col: str = "n_conversations",
    k_users: int = 1,
    users_col: str = "n_users",
) -> tuple[list[DataFrame], list[int]]:
    """Suppress small nodes in the four level tables (index = level) and every descendant of a
    suppressed node, so no published child lacks its parent. A node is small with fewer than k
    conversations or fewer than k_users distinct users.

    Works top-down on (side, cluster_id) / (side, parent_cluster_id). A node whose parent is null
    in the input (e.g. an unplaced candidate value) is judged on its own count: it was parentless
    already and reveals nothing about a suppressed node. Returns (kept tables, number of rows
    suppressed per level), both indexed by level.
    """
    kept = tree_kept(level_tables, k, count_col, k_users, users_col)
    totals = row_counts([*level_tables, *kept])
    return kept, [totals[i] - totals[4 + i] for i in range(4)]


def tree_kept(
    level_tables: Sequence[DataFrame],
    k: int = DEFAULT_K,
    count_col: str = "n_conversations",
    k_users: int = 1,
    users_col: str = "n_users",
) -> list[DataFrame]:
    """suppress_tree's kept tables, uncounted: a caller with more to count counts all in one row_counts."""
    _check_k(k)
    if len(level_tables) != 4:
        raise ValueError("suppress_tree needs the four level tables, level 0 first")
    kept: list[DataFrame] = [None] * 4  # type: ignore[list-item]
    for level in (3, 2, 1, 0):
        table = level_tables[level]
        large = table.filter(_is_large(table, count_col, k, users_col, k_users))
        if level < 3:
            parents = kept[level + 1].select("side", F.col("cluster_id").alias("parent_cluster_id"))
            placed = large.filter(F.col("parent_cluster_id").isNotNull()).join(
                parents, ["side", "parent_cluster_id"], "left_semi"
            )
            large = placed.select(*table.columns).unionByName(large.filter(F.col("parent_cluster_id").isNull()))
        kept[level] = large
    return kept


def row_counts(frames: Sequence[DataFrame]) -> list[int]:
    """The number of rows of each frame, from one Spark query rather than one count() per frame.

    Frames that share inputs (the kept levels of suppress_tree) are then planned together, and a
    small run pays one query's fixed cost instead of one per frame.
    """
    if not frames:
        return []
    tagged = [frame.select(F.lit(i).alias("_frame")) for i, frame in enumerate(frames)]
    found = {r["_frame"]: r["count"] for r in reduce(DataFrame.unionByName, tagged).groupBy("_frame").count().collect()}
    return [int(found.get(i, 0)) for i in range(len(frames))]
