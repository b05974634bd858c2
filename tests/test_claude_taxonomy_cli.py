"""Claude in the taxonomy stage through the CLI: the shared Claude run (tests/e2e.py: `run
--classifier anthropic` against the emulator with taxonomy.mode both, adjudication and the Claude
namer); a rerun of the taxonomy stage on a copy that asks Claude nothing again; then the taxonomy
stage again in taxonomy.mode discovered on another copy, and the export and report of that
discovered-mode output.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import mlflow
import pytest
from deltalake import DeltaTable

from wildvalues.classifier.cost import usage_usd
from wildvalues.io.tracking import tracking_uri
from wildvalues.settings import Settings

if TYPE_CHECKING:  # mypy names test modules by their path; pytest puts tests/ on sys.path
    from tests.e2e import assert_ok, copy_output, summary_run_id, wildvalues
    from tests.test_readme_commands import README_INPUT, wildvalues_argvs
else:
    from e2e import assert_ok, copy_output, summary_run_id, wildvalues
    from test_readme_commands import README_INPUT, wildvalues_argvs

USAGE = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


@pytest.fixture(scope="module")
def emulator(claude_emulator):
    return claude_emulator


@pytest.fixture(scope="module")
def run(claude_run):
    return claude_run


@pytest.fixture(scope="module")
def discovered(claude_taxonomy_rerun, emulator, tmp_path_factory):
    """The taxonomy stage again on a copy of the rerun output, in taxonomy.mode discovered."""
    run = claude_taxonomy_rerun
    out = copy_output(run["out"], tmp_path_factory.mktemp("discovered") / "out")
    args = ("--output", out, *run["args"][2:])
    before = len(emulator.request_log)
    result = wildvalues(
        "taxonomy", *args, "--set", "taxonomy.mode=discovered", "--run-id", run["run_id"], cwd=run["root"],
        env=run["env"],
    )  # fmt: skip
    assert_ok(result)
    return {**run, "out": out, "result": result, "requests": len(emulator.request_log) - before}


def table(run, name) -> list[dict]:
    return DeltaTable(str(run["out"] / "tables" / name)).to_pyarrow_table().to_pylist()


def metrics_of(run) -> dict[str, float]:
    _, mlflow_run_id = summary_run_id(run["result"].stdout)
    return mlflow.MlflowClient(tracking_uri(str(run["out"]))).get_run(mlflow_run_id).data.metrics


def test_low_confidence_values_were_adjudicated_billed_and_cached(run):
    adjudications = table(run, "placement_adjudications")
    metrics = metrics_of(run)
    assert adjudications, "a 300-conversation run has low-confidence values"
    assert metrics["adjudication/requests"] == metrics["adjudication/values"] == len(adjudications)
    assert metrics["adjudication/failures"] == 0
    chose = sum(r["chosen_cluster_id"] is not None for r in adjudications)
    assert (metrics["adjudication/chose_cluster"], metrics["adjudication/chose_none"]) == (
        chose,
        len(adjudications) - chose,
    )
    tokens = {name: sum(r[name] for r in adjudications) for name in USAGE}
    prices = Settings().model_entry(adjudications[0]["model"]).prices
    assert metrics["cost/adjudication_usd"] == pytest.approx(usage_usd(tokens, prices), rel=1e-9)
    assert all(r["chosen_cluster_id"] in (None, *r["candidate_ids"]) for r in adjudications)
    expressions = table(run, "value_expressions")
    adjudicated = {r["value"] for r in expressions if r["match_method"] == "adjudicated"}
    assert adjudicated == {r["value"] for r in adjudications if r["chosen_cluster_id"] is not None}


def test_claude_named_the_discovered_clusters(run):
    names = table(run, "cluster_names")
    metrics = metrics_of(run)
    assert len(names) == metrics["naming/ai_requests"] + metrics["naming/human_requests"]
    given = {(r["name"], r["description"]) for r in names}
    for tree in ("discovered_taxonomy", "discovered_taxonomy_human"):
        clusters = [r for r in table(run, tree) if r["level"] >= 1]
        assert clusters and {(r["name"], r["description"]) for r in clusters} <= given, tree
    assert all(r["description"].startswith("Values of ") for r in names)


def test_a_rerun_of_the_taxonomy_stage_asks_claude_nothing_again(claude_taxonomy_rerun):
    again = claude_taxonomy_rerun["rerun"]
    assert claude_taxonomy_rerun["rerun_requests"] == []
    match = re.search(r"adjudication: (\d+) low-confidence value\(s\), (\d+) from the cache, 0 asked", again.stdout)
    assert match and match.group(1) == match.group(2)
    assert re.search(r"naming: 0 ai cluster name\(s\) from ", again.stdout)


def test_place_shows_claude_verdicts_when_adjudication_is_on(run, tree):
    result = wildvalues(
        "place",
        "--json",
        "--set",
        "taxonomy.adjudicate=true",
        "grief support",
        "quantum decoherence",
        cwd=run["root"],
        env=run["env"],
    )
    assert_ok(result)
    grief, quantum = json.loads(result.stdout)
    mental_health = next(n for n in tree if n.level == 1 and n.name == "Mental health sensitivity and support")
    assert (grief["match_method"], grief["level_1_cluster_id"]) == ("adjudicated", mental_health.cluster_id)
    assert quantum["match_method"] == "unmatched", "Claude (the emulator) found no candidate cluster for it"


def test_place_with_the_output_asks_only_what_the_runs_cache_lacks_and_writes_nothing(run, emulator, tree):
    """`place --output`: the values the run had Claude adjudicate come from placement_adjudications
    (read, never written); a value it never saw is asked as without --output."""
    cache = run["out"] / "tables" / "placement_adjudications"
    version = DeltaTable(str(cache)).version()
    seen = sorted(table(run, "placement_adjudications"), key=lambda r: r["value"])
    assert seen and "grief support" not in {r["value"] for r in seen}
    before = len(emulator.request_log)
    result = wildvalues(
        "place", "--json", "--output", run["out"], "--config", run["config"],
        "--set", "taxonomy.adjudicate=true", "--set", "taxonomy.adjudicate_below=0.9",
        *(r["value"] for r in seen), "grief support",
        cwd=run["root"], env=run["env"],
    )  # fmt: skip
    assert_ok(result)
    *from_cache, asked = json.loads(result.stdout)
    assert [(p["match_method"], p["level_1_cluster_id"]) for p in from_cache if p["match_method"] == "adjudicated"] == [
        ("adjudicated", r["chosen_cluster_id"]) for r in seen if r["chosen_cluster_id"] is not None
    ]
    assert [p["value"] for p in from_cache if p["match_method"] == "unmatched"] == [
        r["value"] for r in seen if r["chosen_cluster_id"] is None
    ]
    mental_health = next(n for n in tree if n.level == 1 and n.name == "Mental health sensitivity and support")
    assert (asked["match_method"], asked["level_1_cluster_id"]) == ("adjudicated", mental_health.cluster_id)
    sent = [e["path"] for e in emulator.request_log[before:]]
    assert sent == ["/v1/messages"], "only the value the run never saw is asked"
    assert DeltaTable(str(cache)).version() == version, "the cache is read, never written"


def test_in_discovered_mode_the_level_tables_roll_up_the_discovered_trees(discovered):
    run = discovered
    assert run["requests"] == 0, "names come from the cache, and adjudication is skipped"
    assert "adjudication skipped: taxonomy.mode discovered" in run["result"].stdout
    discovered = {
        side: {r["cluster_id"]: r for r in table(run, name)}
        for side, name in (("ai", "discovered_taxonomy"), ("human", "discovered_taxonomy_human"))
    }
    for level in range(4):
        rows = table(run, f"values_level_{level}")
        assert rows == table(run, f"discovered_values_level_{level}")
        if level:
            assert rows and all(r["cluster_id"] in discovered[r["side"]] for r in rows)
    for row in table(run, "value_expressions"):
        tree = discovered[row["side"]]
        parent = tree[row["value"]]["parent_cluster_id"]
        assert row["level_1_cluster_id"] == parent
        assert row["level_2_cluster_id"] == tree[parent]["parent_cluster_id"]


def test_the_published_export_refuses_a_discovered_mode_output(discovered):
    run = discovered
    target = run["root"] / "export"
    refused = wildvalues("export", "--output", run["out"], "--to", target, cwd=run["root"], env=run["env"])
    assert (refused.returncode, "Traceback" in refused.stderr) == (2, False)
    assert refused.stderr.strip().splitlines()[-1] == (
        "wildvalues: error: this output's values_level_* roll up its discovered trees "
        "(taxonomy.mode discovered): export them with --tree discovered"
    )
    ok = wildvalues("export", "--output", run["out"], "--to", target, "--tree", "discovered", cwd=run["root"])
    assert_ok(ok)


def test_the_report_says_its_levels_are_the_discovered_trees(discovered):
    run = discovered
    result = wildvalues("report", "--output", run["out"], cwd=run["root"], env=run["env"])
    assert_ok(result)
    html = (run["out"] / "report" / "report.html").read_text(encoding="utf-8")
    assert (
        "taxonomy.mode discovered: the AI value taxonomy, the top values and the findings in this report "
        "roll up this run&#x27;s own discovered trees, not the published one"
    ) in html


def test_the_summary_counts_claude_work_and_adds_up_its_cost():
    from wildvalues.cli.summary import claude_taxonomy_lines
    from wildvalues.stages.summaries import (
        Adjudication,
        AnalyzeSummary,
        ClassifySummary,
        ClaudeRatings,
        ClaudeTokens,
        LabelAudit,
        Naming,
        TaxonomySummary,
    )

    def classified(cost_usd: float) -> ClassifySummary:
        tokens = ClaudeTokens(0, 0, 0, 0, 0, 0.0, cost_usd)
        return ClassifySummary(3, 0, 3, 2, 66.7, 1.0, tokens)

    def findings(audit: LabelAudit) -> AnalyzeSummary:
        return AnalyzeSummary(0, 0.0, False, audit)

    placed = TaxonomySummary(
        7,
        {},
        Adjudication(values=7, chose_cluster=4, chose_none=2, requests=6, failures=1, cost_usd=0.5),
        (Naming("ai", 10, 2, 0.25), Naming("human", 3, 0, 0.125)),
    )
    assert claude_taxonomy_lines(classified(1.25), placed, None) == [
        "  adjudicated               7  low-confidence value(s): 4 given a cluster, 2 new (asked 6, failed 1)",
        "  clusters named           11  by Claude now (2 failed, named offline)",
        "  Claude cost          2.1250  USD, this run's calls (list prices, batch discount applied)",
    ]
    assert claude_taxonomy_lines(None, None, None) == []
    audited = findings(LabelAudit(40, 2, ClaudeRatings(requests=12, failures=1, cost_usd=0.03125)))
    assert claude_taxonomy_lines(classified(1.0), None, audited) == [
        "  labels audited           40  2 suppressed as identifying (asked Claude 12, failed 1)",
        "  Claude cost          1.0312  USD, this run's calls (list prices, batch discount applied)",
    ]
    offline = findings(LabelAudit(40, 0))
    assert claude_taxonomy_lines(None, None, offline) == ["  labels audited           40  0 suppressed as identifying"]


def test_estimate_takes_its_figures_from_the_runs_answers_and_from_count_tokens(run, emulator, tmp_path):
    """On a copy of the run's output without its preflight, with the key: output tokens per answer
    from the run's cached answers, the tokenizer factor from count_tokens (the emulator's) on a
    sample of 100 of the input's conversations."""
    out = copy_output(run["out"], tmp_path / "out")
    (out / "preflight.json").unlink()  # else the preflight's figures come first
    before = len(emulator.request_log)
    result = wildvalues(
        "estimate", "--input", run["source"], "--output", out, "--config", run["config"],
        cwd=run["root"], env=run["env"],
    )  # fmt: skip
    assert_ok(result)
    output = re.search(
        r"^    (\S+) classify: ([\d,.]+) output tokens, thinking included \(measured: (\d+) cached answers\)$",
        result.stdout,
        re.M,
    )
    assert output, result.stdout
    model, answers = output.group(1), int(output.group(3))
    cached = [row for row in table(run, "classification_cache") if row["model"] == model]
    assert answers == len(cached) > 0
    assert float(output.group(2).replace(",", "")) == round(sum(row["output_tokens"] for row in cached) / answers, 1)
    assert re.search(
        rf"^    {re.escape(model)} classify: tokenizer x[\d.]+ \(measured: count_tokens on 100 conversations ",
        result.stdout,
        re.M,
    ), result.stdout
    sent = [entry["path"] for entry in emulator.request_log[before:]]
    assert set(sent) == {"/v1/messages/count_tokens"} and len(sent) >= 100  # counted, nothing paid for


def test_the_shared_run_is_the_readmes_command(run):
    """The README's `run --classifier anthropic` (online) is what this run ran, its paths filled and
    the taxonomy's options after it."""
    online = wildvalues_argvs("run")[0]
    paths = {README_INPUT: str(run["source"]), "out/mine": str(run["out"])}
    readme = [paths.get(arg, arg) for arg in online]
    assert run["result"].args[: len(readme)] == readme
