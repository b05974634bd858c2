"""Taxonomy discovery (lib/wildvalues/taxonomy/discovery.py) on values whose true groups are known."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import cast

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from wildvalues.classifier.taxonomy_prompts import NamingRequest
from wildvalues.settings.sections import DiscoverySettings, EmbeddingSettings
from wildvalues.taxonomy.discovery import (
    ClusterAlignment,
    DiscoveredTree,
    LevelAgreement,
    align,
    discover_tree,
    level_sizes,
)
from wildvalues.taxonomy.embeddings import build_embedder, resolve_embedder
from wildvalues.taxonomy.tree import TreeNode

GROUPS: dict[str, list[str]] = {
    "family": [
        "family",
        "mother",
        "father",
        "sister",
        "brother",
        "grandmother",
        "parenting",
        "siblings",
        "marriage",
        "relatives",
    ],
    "money": ["money", "salary", "savings", "budget", "wealth", "income", "investment", "profit", "finances", "taxes"],
    "safety": ["safety", "security", "danger", "injury", "accident", "hazard", "emergency", "caution", "harm", "risk"],
    "truth": [
        "honesty",
        "truthfulness",
        "truth",
        "candor",
        "sincerity",
        "accuracy",
        "transparency",
        "lying",
        "deception",
        "facts",
    ],
    "nature": [
        "nature",
        "forest",
        "wildlife",
        "ocean",
        "trees",
        "animals",
        "ecology",
        "environment",
        "rivers",
        "plants",
    ],
    "art": ["art", "music", "painting", "poetry", "sculpture", "dance", "theatre", "creativity", "melody", "drawing"],
}
VALUES = [value for members in GROUPS.values() for value in members]
TRUTH = [group for group, members in GROUPS.items() for _ in members]
WEIGHTS = [float(1 + (7 * i) % 13) for i in range(len(VALUES))]  # uneven, fixed expression counts
# values_per_base_cluster=10: level-1 k = 60 / 10 = 6, the number of true groups; then 3, then 2.
SETTINGS = DiscoverySettings(levels=4, values_per_base_cluster=10, top_clusters=2, seed=7)
MIN_LEVEL1_NMI = 0.8  # k-means on the static model's vectors of these words; 1.0 is a perfect recovery


@pytest.fixture(scope="module")
def embedder():
    return build_embedder(resolve_embedder(EmbeddingSettings()))


@pytest.fixture(scope="module")
def discovered(spark, embedder) -> DiscoveredTree:
    return discover_tree(spark, VALUES, WEIGHTS, embedder.embed(VALUES), embedder.embed, SETTINGS)


def check_tree(nodes: Sequence[TreeNode], levels: int) -> None:
    """The values_tree.csv invariants: unique ids, a parent one level up, shares summing to 100."""
    by_id = {node.cluster_id: node for node in nodes}
    assert len(by_id) == len(nodes), "cluster ids are unique"
    assert {node.level for node in nodes} == set(range(levels))
    for node in nodes:
        if node.level == levels - 1:
            assert node.parent_cluster_id is None
        else:
            parent = by_id[node.parent_cluster_id or ""]
            assert parent.level == node.level + 1
    for level in range(levels):
        shares = [node.pct_total_occurrences for node in nodes if node.level == level]
        assert math.fsum(shares) == pytest.approx(100.0, abs=1e-6)
    children: dict[str, float] = defaultdict(float)
    for node in nodes:
        if node.parent_cluster_id:
            children[node.parent_cluster_id] += node.pct_total_occurrences
    for parent_id, share in children.items():
        assert share == pytest.approx(by_id[parent_id].pct_total_occurrences, abs=1e-9)


def test_level_one_recovers_the_true_groups(discovered):
    predicted = [discovered.assignment[value] for value in VALUES]
    assert normalized_mutual_info_score(TRUTH, predicted) >= MIN_LEVEL1_NMI


def test_discovered_nodes_form_a_valid_tree(discovered):
    nodes = discovered.nodes
    check_tree(nodes, SETTINGS.levels)
    counts = [sum(1 for node in nodes if node.level == level) for level in range(SETTINGS.levels)]
    assert level_sizes(len(VALUES), SETTINGS) == [6, 3, 2]
    assert counts[:2] == [len(VALUES), 6]
    assert 1 <= counts[2] <= 3
    assert counts[3] == SETTINGS.top_clusters
    leaves = [node for node in nodes if node.level == 0]
    assert [node.cluster_id for node in leaves] == VALUES
    assert all(node.name == node.cluster_id and node.description == "" for node in leaves)
    assert discovered.assignment == {node.cluster_id: node.parent_cluster_id for node in leaves}
    for node in nodes:
        if node.level >= 1:
            assert node.cluster_id.startswith(f"ai:l{node.level}:") and len(node.cluster_id.split(":")[2]) == 4
            assert node.name and node.description
    level1_names = {node.name for node in nodes if node.level == 1}
    assert level1_names <= set(VALUES), "offline names are the clusters' most central members"


def test_discovery_is_deterministic(spark, embedder, discovered):
    again = discover_tree(spark, VALUES, WEIGHTS, embedder.embed(VALUES), embedder.embed, SETTINGS)
    assert again == discovered


class InitialNamer:
    """A namer that gives many clusters the same name (the first letter of the central member)."""

    def name_all(self, requests: Sequence[NamingRequest]) -> list[tuple[str, str]]:
        return [(r.central[0][0], f"starting like {r.central[0]}") for r in requests]


def test_parents_with_the_same_name_are_merged(spark, embedder):
    tree = discover_tree(
        spark, VALUES, WEIGHTS, embedder.embed(VALUES), embedder.embed, SETTINGS, prefix="x", namer=InitialNamer()
    )
    check_tree(tree.nodes, SETTINGS.levels)
    for level in range(1, SETTINGS.levels):
        names = [node.name for node in tree.nodes if node.level == level]
        assert len(names) == len(set(names)), f"level {level} names are unique after merging"
    assert set(tree.assignment) == set(VALUES)


def test_too_few_values_is_an_error(spark, embedder):
    values = VALUES[:5]
    with pytest.raises(ValueError, match=r"at least 20 distinct values \(min_values\), got 5"):
        discover_tree(
            spark, values, WEIGHTS[:5], embedder.embed(values), embedder.embed, DiscoverySettings(min_values=20)
        )


def _node(cluster_id: str, level: int, parent: str | None, name: str | None = None) -> TreeNode:
    return TreeNode(cluster_id, "", name or cluster_id, level, parent, 0.0)


def test_align_on_handmade_trees():
    # Published: P1 = a-d, P2 = e-h and z (z only here); top T1 = {P1}, T2 = {P2}.
    published = [_node(v, 0, "pub:l1:1") for v in "abcd"] + [_node(v, 0, "pub:l1:2") for v in "efghz"]
    published += [_node("pub:l1:1", 1, "pub:l2:1", "First"), _node("pub:l1:2", 1, "pub:l2:2", "Second")]
    published += [_node("pub:l2:1", 2, None, "Top one"), _node("pub:l2:2", 2, None, "Top two")]
    # Discovered: D1 = a-c, D2 = d-h, D3 = y (y only here); top X1 = {D1, D2}, X2 = {D3}.
    discovered = [_node(v, 0, "ai:l1:0000") for v in "abc"] + [_node(v, 0, "ai:l1:0001") for v in "defgh"]
    discovered += [_node("y", 0, "ai:l1:0002")]
    discovered += [_node("ai:l1:0000", 1, "ai:l2:0000"), _node("ai:l1:0001", 1, "ai:l2:0000")]
    discovered += [_node("ai:l1:0002", 1, "ai:l2:0001"), _node("ai:l2:0000", 2, None), _node("ai:l2:0001", 2, None)]

    alignments, agreements = align(discovered, published)

    assert alignments == [
        ClusterAlignment("ai:l1:0000", 1, "pub:l1:1", "First", 1.0, 3),
        ClusterAlignment("ai:l1:0001", 1, "pub:l1:2", "Second", 0.8, 5),
        ClusterAlignment("ai:l1:0002", 1, None, None, 0.0, 0),
        ClusterAlignment("ai:l2:0000", 2, "pub:l2:1", "Top one", 0.5, 8),  # a 4-4 tie: the smaller id
        ClusterAlignment("ai:l2:0001", 2, None, None, 0.0, 0),
    ]
    # Level 1 over a-h: joint counts D1/P1 3, D2/P1 1, D2/P2 4 (n = 8).
    joint = np.array([[3, 0], [1, 4]]) / 8
    rows, cols = joint.sum(axis=1), joint.sum(axis=0)
    mutual = sum(p * math.log(p / (rows[i] * cols[j])) for (i, j), p in np.ndenumerate(joint) if p)
    entropy_rows, entropy_cols = (-sum(p * math.log(p) for p in marginal) for marginal in (rows, cols))
    nmi = mutual / ((entropy_rows + entropy_cols) / 2)
    # Adjusted Rand: pairs together in both 9, in D 13, in P 12, of 28 pairs: (9 - 39/7) / (12.5 - 39/7).
    ari = 48 / 97
    close = cast(float, pytest.approx(nmi)), cast(float, pytest.approx(ari))  # compare equal to floats near them
    assert agreements == [
        LevelAgreement(1, *close, 8),
        LevelAgreement(2, 0.0, 0.0, 8),  # every shared value under one discovered top cluster
    ]
