"""The published values tree (values_tree.csv): locating, downloading and loading it, no Spark."""

from __future__ import annotations

import csv
import os
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass

from wildvalues.settings import RunFacts, Settings, file_sha256

TREE_COLUMNS: tuple[str, ...] = (
    "cluster_id",
    "description",
    "name",
    "level",
    "parent_cluster_id",
    "pct_total_occurrences",
)
HUB_URL = "https://huggingface.co/datasets/Anthropic/values-in-the-wild/resolve/main/values_tree.csv"
TREE_ENV_VAR = "WILDVALUES_TAXONOMY"
URL_ENV_VAR = "WILDVALUES_TAXONOMY_URL"  # a mirror of the hub file, for networks that need one


class TaxonomyError(RuntimeError):
    """The taxonomy file is missing, unreadable or not the published layout."""


@dataclass(frozen=True)
class TreeNode:
    cluster_id: str
    description: str
    name: str
    level: int
    parent_cluster_id: str | None
    pct_total_occurrences: float


def resolve_tree_path(configured: str | None, cache_dir: str | None = None, download: bool = True) -> str:
    """The tree's path: the environment variable, else the setting, else a cached hub download."""
    path = os.environ.get(TREE_ENV_VAR) or configured
    if path and os.path.isfile(path):
        return path
    if download and cache_dir:
        target = os.path.join(cache_dir, "values_tree.csv")
        if os.path.isfile(target):
            return target
        try:
            os.makedirs(cache_dir, exist_ok=True)
            urllib.request.urlretrieve(os.environ.get(URL_ENV_VAR) or HUB_URL, target + ".part")
            load_tree(target + ".part")  # a proxy's error page must not be cached as the tree
            os.replace(target + ".part", target)
            return target
        except (OSError, TaxonomyError):
            if os.path.exists(target + ".part"):
                os.remove(target + ".part")
    raise TaxonomyError(
        f"taxonomy not found at {path or '(unset)'} and the Hugging Face hub is unreachable; "
        f"download values_tree.csv from the data set Anthropic/values-in-the-wild and set "
        f"taxonomy.path in conf/ or {TREE_ENV_VAR}"
    )


def load_tree(path: str) -> list[TreeNode]:
    """Parse values_tree.csv, checking the published header and the parent links."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = tuple(reader.fieldnames or ())
            if header != TREE_COLUMNS:
                raise TaxonomyError(f"{path}: expected columns {','.join(TREE_COLUMNS)}, found {','.join(header)}")
            nodes = [_parse_row(row, path, i + 2) for i, row in enumerate(reader)]
    except (OSError, UnicodeDecodeError) as error:
        raise TaxonomyError(f"cannot read taxonomy {path}: {error}") from error
    _check_parents(nodes, path)
    return nodes


def _parse_row(row: dict, path: str, line: int) -> TreeNode:
    try:
        level = int(row["level"])
        pct = float(row["pct_total_occurrences"] or 0.0)
    except ValueError as error:
        raise TaxonomyError(f"{path}:{line}: bad level or percentage ({error})") from error
    return TreeNode(
        cluster_id=row["cluster_id"],
        description=row["description"] or "",
        name=row["name"],
        level=level,
        parent_cluster_id=row["parent_cluster_id"] or None,
        pct_total_occurrences=pct,
    )


def _check_parents(nodes: Iterable[TreeNode], path: str) -> None:
    by_id = {n.cluster_id: n for n in nodes}
    for node in by_id.values():
        if node.level == 3:
            continue
        parent = by_id.get(node.parent_cluster_id or "")
        if parent is None or parent.level != node.level + 1:
            raise TaxonomyError(f"{path}: node {node.cluster_id!r} has no parent one level up")


def ancestors(nodes: Iterable[TreeNode]) -> dict[str, tuple[str, str, str]]:
    """For each level-0 value, its (level-1, level-2, level-3) cluster ids."""
    by_id = {n.cluster_id: n for n in nodes}
    result = {}
    for node in by_id.values():
        if node.level != 0:
            continue
        # load_tree's parent check: every node below level 3 has a parent one level up.
        assert node.parent_cluster_id is not None
        l1 = by_id[node.parent_cluster_id]
        assert l1.parent_cluster_id is not None
        l2 = by_id[l1.parent_cluster_id]
        assert l2.parent_cluster_id is not None
        result[node.cluster_id] = (l1.cluster_id, l2.cluster_id, l2.parent_cluster_id)
    return result


def lineages(nodes: Iterable[TreeNode], depth: int = 3) -> dict[str, tuple[str | None, ...]]:
    """For each level-0 value, the ids of its clusters one to `depth` levels up (None above the top)."""
    by_id = {n.cluster_id: n for n in nodes}
    result: dict[str, tuple[str | None, ...]] = {}
    for node in by_id.values():
        if node.level != 0:
            continue
        path: list[str | None] = []
        parent = node.parent_cluster_id
        while len(path) < depth:
            path.append(parent)
            parent = by_id[parent].parent_cluster_id if parent is not None else None
        result[node.cluster_id] = tuple(path)
    return result


def resolve_taxonomy(settings: Settings) -> tuple[list[TreeNode], RunFacts]:
    """The published tree and the facts about it (where it was found, its checksum)."""
    path = resolve_tree_path(settings.taxonomy.path, os.path.expanduser(settings.taxonomy.cache_dir))
    tree = load_tree(path)
    return tree, RunFacts(taxonomy_path=os.path.abspath(path), taxonomy_sha256=file_sha256(path))
