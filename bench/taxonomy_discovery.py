"""Benchmark: re-discover the published taxonomy from its own level-0 values and align the two.

    .venv/bin/python bench/taxonomy_discovery.py [--features centroid|text|blend] [--seed 7]

Embeds the published tree's 3,307 values with the default embedder (model2vec), weights them by
their pct_total_occurrences, discovers a four-level tree with the published level-1 size as the
base k (266) and 5 top clusters, aligns it with the published tree and prints JSON: NMI and
adjusted Rand index per level, and the seconds discovery took (embedding the values excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import time

from wildvalues.pipeline.spark import build_session
from wildvalues.settings.sections import DiscoverySettings, EmbeddingSettings, SparkSettings
from wildvalues.taxonomy.discovery import HIGHER_LEVEL_FEATURES, align, discover_tree
from wildvalues.taxonomy.embeddings import build_embedder, resolve_embedder
from wildvalues.taxonomy.tree import load_tree, resolve_tree_path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREE_PATH = os.path.join(REPO, "..", "shared", "data", "values_tree.csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", choices=("centroid", "text", "blend"), default=HIGHER_LEVEL_FEATURES)
    parser.add_argument("--seed", type=int, default=DiscoverySettings().seed)
    args = parser.parse_args()

    published = load_tree(resolve_tree_path(TREE_PATH, download=False))
    leaves = sorted((node for node in published if node.level == 0), key=lambda node: node.cluster_id)
    values = [node.cluster_id for node in leaves]  # level 0: cluster_id is the value itself
    weights = [node.pct_total_occurrences for node in leaves]
    base = sum(1 for node in published if node.level == 1)
    top = sum(1 for node in published if node.level == max(n.level for n in published))
    settings = DiscoverySettings(levels=4, base_clusters=base, top_clusters=top, seed=args.seed)

    embedder = build_embedder(resolve_embedder(EmbeddingSettings()))
    vectors = embedder.embed(values)
    spark = build_session(SparkSettings(master="local[2]", shuffle_partitions=2, progress=False))
    try:
        started = time.monotonic()
        tree = discover_tree(spark, values, weights, vectors, embedder.embed, settings, features=args.features)
        seconds = time.monotonic() - started
    finally:
        spark.stop()

    _, agreements = align(tree.nodes, published)
    result: dict[str, object] = {
        f"level_{a.level}": {"nmi": round(a.nmi, 4), "ari": round(a.ari, 4)} for a in agreements
    }
    result["seconds"] = round(seconds, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
