"""Semantic placement and discovery through the CLI, on the shared Claude run (tests/e2e.py: `run`
with taxonomy.mode both): the embedding cache on a rerun of the taxonomy stage (a copy), `discover`
alone (another copy), `place` and the discovered tree's export.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import mlflow
import pytest
from deltalake import DeltaTable

from wildvalues.io.tracking import tracking_uri
from wildvalues.taxonomy.tree import TREE_COLUMNS, ancestors, load_tree

if TYPE_CHECKING:  # mypy names test modules by their path; pytest puts tests/ on sys.path
    from tests.conftest import TREE_PATH
    from tests.e2e import assert_ok, copy_output, summary_run_id, summary_value, wildvalues
else:
    from conftest import TREE_PATH
    from e2e import assert_ok, copy_output, summary_run_id, summary_value, wildvalues


@pytest.fixture(scope="module")
def run(claude_run):
    return claude_run


def table(run, name) -> list[dict]:
    return DeltaTable(str(run["out"] / "tables" / name)).to_pyarrow_table().to_pylist()


def test_the_run_places_by_meaning_and_names_the_embedder(run):
    stdout = run["result"].stdout
    assert summary_value(stdout, "placement") == "semantic with model2vec:minilm-static:752af54a759e"
    methods = summary_value(stdout, "value expr. (AI)")
    assert re.fullmatch(
        r"\d+  \(exact [\d.]+%, similar [\d.]+%, placed [\d.]+%, adjudicated [\d.]+%, unmatched [\d.]+%\)", methods
    )
    _, mlflow_run_id = summary_run_id(stdout)
    params = mlflow.MlflowClient(tracking_uri(str(run["out"]))).get_run(mlflow_run_id).data.params
    assert (params["placement"], params["embedder"]) == ("semantic", "model2vec:minilm-static:752af54a759e")
    expressions = table(run, "value_expressions")
    # Claude adjudicates the low-confidence placements (tests/test_claude_taxonomy_cli.py checks its answers).
    assert {r["match_method"] for r in expressions} <= {"exact", "similar", "placed", "adjudicated", "unmatched"}
    assert all(r["level_3_cluster_id"] is not None for r in expressions)


def test_the_discovered_trees_have_the_published_layout_and_pass_the_tree_checks(run):
    for name, prefix in (("discovered_taxonomy", "ai_values"), ("discovered_taxonomy_human", "human_values")):
        nodes = table(run, name)
        assert nodes, name
        # On disk each run's tree carries its run id (runs as history); the rest is the published layout.
        assert list(nodes[0]) == [*TREE_COLUMNS, "run_id"]
        assert {n["run_id"] for n in nodes} == {summary_run_id(run["result"].stdout)[0]}
        ids = {n["cluster_id"] for n in nodes}
        assert len(ids) == len(nodes)
        for node in nodes:
            if node["level"] > 0:
                assert node["cluster_id"].startswith(f"{prefix}:l{node['level']}:")
            if node["level"] < 3:
                assert node["parent_cluster_id"] in ids
        for level in range(4):
            total = sum(n["pct_total_occurrences"] for n in nodes if n["level"] == level)
            assert total == pytest.approx(100.0, abs=1e-6)
    # the run validated every discovered level table (exit 0): check the report shows the tree
    html = (run["out"] / "report" / "report.html").read_text()
    assert (run["out"] / "report" / "taxonomy_discovered.png").is_file()
    assert "AI value taxonomy discovered from this run" in html


def test_agreement_with_the_published_tree_is_a_table_and_metrics(run):
    agreement = sorted(table(run, "taxonomy_agreement"), key=lambda r: r["level"])
    assert [r["level"] for r in agreement] == [1, 2, 3]
    for row in agreement:
        assert 0.0 <= row["nmi"] <= 1.0 and -1.0 <= row["ari"] <= 1.0 and row["n_values"] > 0
    _, mlflow_run_id = summary_run_id(run["result"].stdout)
    metrics = mlflow.MlflowClient(tracking_uri(str(run["out"]))).get_run(mlflow_run_id).data.metrics
    assert {level: metrics[f"discovery/level_{level}_nmi"] for level in (1, 2, 3)} == pytest.approx(
        {r["level"]: r["nmi"] for r in agreement}
    )
    published = {n.cluster_id for n in load_tree(TREE_PATH)}
    alignment = table(run, "taxonomy_alignment")
    assert alignment and all(r["published_id"] in published for r in alignment if r["published_id"])


def test_a_rerun_of_the_taxonomy_stage_embeds_nothing_again(run, claude_taxonomy_rerun):
    first = re.search(r"taxonomy: (\d+) of (\d+) text\(s\) embedded", run["result"].stdout)
    assert first and int(first.group(1)) > 0
    lines = re.findall(r"taxonomy: (\d+) of (\d+) text\(s\) embedded", claude_taxonomy_rerun["rerun"].stdout)
    assert lines and {embedded for embedded, _ in lines} == {"0"}
    cached = table(claude_taxonomy_rerun, "value_embeddings")
    keys = [(r["embedder_id"], r["value"]) for r in cached]
    assert len(keys) == len(set(keys))  # each text embedded once per embedder


def test_discover_alone_for_one_side(run, tmp_path):
    out = copy_output(run["out"], tmp_path / "out")
    result = wildvalues("discover", "--output", out, "--side", "ai", "--config", run["config"], cwd=run["root"])
    assert_ok(result)
    assert "discovered tree in discovered_taxonomy (AI)" in result.stdout
    assert re.search(r"level 1: NMI 0\.\d{3}, ARI -?\d\.\d{3}", result.stdout)


def test_place_prints_where_values_land(run):
    result = wildvalues("place", "--json", "honesty", "Helpfulness!", cwd=run["root"])
    assert_ok(result)
    placed = json.loads(result.stdout)
    keys = ["value", "match_method", "match_score", "level_1_cluster_id", "level_2_cluster_id", "level_3_cluster_id"]
    assert [list(p) for p in placed] == [keys, keys]
    l1, l2, l3 = ancestors(load_tree(TREE_PATH))["honesty"]
    assert placed[0] == {
        "value": "honesty",
        "match_method": "exact",
        "match_score": 1.0,
        "level_1_cluster_id": l1,
        "level_2_cluster_id": l2,
        "level_3_cluster_id": l3,
    }
    assert placed[1]["match_method"] == "exact" and placed[1]["value"] == "Helpfulness!"
    text = wildvalues("place", "truthfulness", cwd=run["root"])
    assert_ok(text)
    assert text.stdout.startswith("'truthfulness': ")


def test_export_writes_the_discovered_tree_in_the_public_layout(run):
    import csv

    target = run["root"] / "export_discovered"
    result = wildvalues("export", "--output", run["out"], "--to", target, "--tree", "discovered", cwd=run["root"])
    assert_ok(result)
    with open(target / "values_tree.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(TREE_COLUMNS)
    clusters = [r for r in rows[1:] if r[3] != "0"]
    assert clusters and all(r[0].startswith("ai_values:l") for r in clusters)
