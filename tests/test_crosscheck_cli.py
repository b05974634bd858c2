"""`wildvalues crosscheck` end to end: a run classified by Claude (emulator A, the offline rule),
then a stratified sample judged again by a second emulator instance with another labelling rule,
as a second Claude model and as an OpenAI-compatible endpoint through the official `openai` SDK.

The figures in the tables are checked against values computed here independently: the second
judge's labels from the emulator's rule applied to the stored conversations, kappa by hand from
those labels, Jaccard from the stored cluster sets, the confusion cells by counting.

The run is the shared Claude run (tests/e2e.py); the cross-checks work on a copy of its output.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from typing import TYPE_CHECKING

import mlflow
import pytest
from deltalake import DeltaTable

from wildvalues.analysis.crosscheck import allocate
from wildvalues.classifier.base import Conversation, Turn
from wildvalues.demo.emulator import Emulator
from wildvalues.demo.emulator_answers import relabel
from wildvalues.io.tracking import tracking_uri
from wildvalues.settings import Settings

if TYPE_CHECKING:  # mypy names test modules by their path; pytest puts tests/ on sys.path
    from tests.conftest import TREE_PATH
    from tests.e2e import CLAUDE_KEY, CLAUDE_N, assert_ok, claude_env, copy_output, wildvalues
else:
    from conftest import TREE_PATH
    from e2e import CLAUDE_KEY, CLAUDE_N, assert_ok, claude_env, copy_output, wildvalues

DEFAULTS = Settings()
RUN_MODEL = DEFAULTS.classifier.anthropic.model  # the run's classifier (the default model)
KNOWN_MODELS = ", ".join(sorted(DEFAULTS.models))
SAMPLE = 60
ANTHROPIC_KEY = CLAUDE_KEY
OPENAI_KEY = "sk-openai-crosscheck-SECRET-8888"
MEASURES = (
    "kappa_subjective",
    "agreement_subjective",
    "kappa_response_type",
    "agreement_response_type",
    "jaccard_ai_level_1",
    "overlap_ai_level_3_shares",
    "jaccard_human_level_1",
    "overlap_human_level_3_shares",
)


@pytest.fixture(scope="module")
def emulators(claude_emulator):
    """The emulator that classified the shared Claude run, and a second judge with another rule."""
    second = Emulator(tree_path=TREE_PATH, labelling="second").start()
    yield claude_emulator, second
    second.stop()


def env_for(emulator: Emulator, **extra) -> dict:
    return claude_env(emulator.base_url, **extra)


@pytest.fixture(scope="module")
def run(claude_run, emulators, tmp_path_factory):
    """A copy of the shared Claude run's output, cross-checked by the second judge."""
    _, second = emulators
    root = claude_run["root"]
    out = copy_output(claude_run["out"], tmp_path_factory.mktemp("crosscheck") / "out")
    config = claude_run["config"]
    before = second.stats()["requests"]
    check = wildvalues(
        "crosscheck", "--output", out, "--sample", SAMPLE, "--config", config, cwd=root, env=env_for(second)
    )
    assert_ok(check)
    return {
        "root": root,
        "out": out,
        "config": config,
        "run_id": claude_run["run_id"],
        "mlflow_run_id": claude_run["mlflow_run_id"],
        "check": check,
        "calls": second.stats()["requests"] - before,
    }


def table(out, name) -> list[dict]:
    return DeltaTable(str(out / "tables" / name)).to_pyarrow_table().to_pylist()


def agreement(out) -> dict[str, dict]:
    return {row["measure"]: row for row in table(out, "crosscheck_agreement")}


def hand_kappa(pairs: list[tuple]) -> float:
    """Cohen's kappa from its definition: (observed - chance) / (1 - chance)."""
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    chance = sum(first[label] * second[label] for label in set(first) | set(second)) / n**2
    return (observed - chance) / (1 - chance)


def test_the_second_judge_labels_the_sample_by_its_own_rule(run, payload_fn):
    conversations = {r["conversation_id"]: r for r in table(run["out"], "conversations")}
    classifications = {r["conversation_id"]: r for r in table(run["out"], "classifications")}
    labels = table(run["out"], "crosscheck_labels")
    assert len(labels) == SAMPLE
    for row in labels:
        turns = tuple(Turn(t["role"], t["text"]) for t in conversations[row["conversation_id"]]["turns"])
        parsed = Conversation("emulated", turns)
        second = relabel(payload_fn(parsed), parsed)
        first = classifications[row["conversation_id"]]
        assert (row["second_is_subjective"], row["second_response_type"]) == (
            second["is_subjective"],
            second["response_type"],
        )
        assert (row["first_is_subjective"], row["first_response_type"]) == (
            first["is_subjective"],
            first["response_type"],
        )
        assert row["run_id"] == run["run_id"]
    assert {"conversation_id", "stratum"} < set(labels[0]) and "task" not in labels[0]  # no text columns


def test_the_sample_is_stratified_on_subjectivity_and_response_type(run):
    strata = Counter(
        f"{'subjective' if r['is_subjective'] else 'objective'}/{r['response_type']}"
        for r in table(run["out"], "classifications")
    )
    sampled = Counter(r["stratum"] for r in table(run["out"], "crosscheck_labels"))
    assert dict(sampled) == allocate(strata, SAMPLE)


def test_agreement_is_below_one_and_matches_independent_computation(run):
    labels = table(run["out"], "crosscheck_labels")
    measures = agreement(run["out"])
    assert list(measures) == list(MEASURES)
    subjective = [(r["first_is_subjective"], r["second_is_subjective"]) for r in labels]
    response = [(r["first_response_type"], r["second_response_type"]) for r in labels]
    assert measures["kappa_subjective"]["value"] == pytest.approx(hand_kappa(subjective))
    assert measures["kappa_response_type"]["value"] == pytest.approx(hand_kappa(response))
    assert measures["kappa_subjective"]["value"] < 1 and measures["kappa_response_type"]["value"] < 1
    assert measures["agreement_subjective"]["value"] == pytest.approx(sum(a == b for a, b in subjective) / SAMPLE)
    for side in ("ai", "human"):
        pairs = [(set(r[f"first_{side}_clusters"]), set(r[f"second_{side}_clusters"])) for r in labels]
        defined = [len(a & b) / len(a | b) for a, b in pairs if a | b]
        row = measures[f"jaccard_{side}_level_1"]
        assert (row["value"], row["n_conversations"]) == (pytest.approx(sum(defined) / len(defined)), len(defined))
        assert [r[f"{side}_jaccard"] for r in labels] == [
            pytest.approx(len(a & b) / len(a | b)) if a | b else None for a, b in pairs
        ]
    assert measures["jaccard_ai_level_1"]["value"] < 1
    assert {(r["first_model"], r["second_model"]) for r in measures.values()} == {(RUN_MODEL, "claude-haiku-4-5")}
    cells = {
        (r["first_response_type"], r["second_response_type"]): r["n_conversations"]
        for r in table(run["out"], "crosscheck_confusion")
    }
    assert cells == dict(Counter(response))


def test_the_kappas_are_printed_by_name_and_in_mlflow_and_the_report(run):
    stdout = run["check"].stdout
    measures = agreement(run["out"])
    for name in ("kappa_subjective", "kappa_response_type", "jaccard_ai_level_1"):
        match = re.search(rf"^  {name}\s+(-?\d\.\d{{3}})", stdout, re.M)
        assert match, stdout
        assert float(match.group(1)) == pytest.approx(measures[name]["value"], abs=5e-4)
    metrics = mlflow.MlflowClient(tracking_uri(str(run["out"]))).get_run(run["mlflow_run_id"]).data.metrics
    for name in MEASURES:
        assert metrics[f"crosscheck/{name}"] == pytest.approx(measures[name]["value"])
    assert metrics["crosscheck/compared"] == SAMPLE and metrics["crosscheck/errors"] == 0
    html = (run["out"] / "report" / "report.html").read_text()
    assert '<h2 id="crosscheck">Second-model cross-check</h2>' in html
    assert f'<td>kappa_subjective</td><td class="num">{measures["kappa_subjective"]["value"]:.3f}</td>' in html
    assert run["calls"] == SAMPLE  # one request per sampled conversation, no faults configured


def test_a_rerun_calls_nothing_and_finds_the_same_agreement(run, emulators):
    _, second = emulators
    before, measures = second.stats()["requests"], agreement(run["out"])
    result = wildvalues(
        "crosscheck",
        "--output",
        run["out"],
        "--sample",
        SAMPLE,
        "--config",
        run["config"],
        cwd=run["root"],
        env=env_for(second),
    )
    assert_ok(result)
    assert second.stats()["requests"] == before
    assert agreement(run["out"]) == measures


def test_an_openai_compatible_judge_agrees_as_the_same_rule_does(run, emulators):
    _, second = emulators
    claude_measures = agreement(run["out"])
    before = second.stats()["by_path"].get("/v1/chat/completions", {}).get("200", 0)
    result = wildvalues(
        "crosscheck", "--output", run["out"], "--sample", SAMPLE, "--config", run["config"],
        "--base-url", f"{second.base_url}/v1", "--model", "judge-x", "--api-key-env", "JUDGE_KEY",
        cwd=run["root"], env=env_for(second, JUDGE_KEY=OPENAI_KEY),
    )  # fmt: skip
    assert_ok(result)
    assert second.stats()["by_path"]["/v1/chat/completions"]["200"] - before == SAMPLE
    measures = agreement(run["out"])
    assert {m: r["value"] for m, r in measures.items()} == {m: r["value"] for m, r in claude_measures.items()}
    assert {r["second_model"] for r in measures.values()} == {"openai:judge-x"}
    params = mlflow.MlflowClient(tracking_uri(str(run["out"]))).get_run(run["mlflow_run_id"]).data.params
    for secret in (OPENAI_KEY, ANTHROPIC_KEY):
        assert secret not in result.stdout + result.stderr + run["check"].stdout + run["check"].stderr
        assert secret not in json.dumps(params)
        for folder, _, files in os.walk(run["out"] / "tables"):
            for name in files:
                with open(os.path.join(folder, name), "rb") as handle:
                    assert secret.encode() not in handle.read(), os.path.join(folder, name)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ("--sample", "100000"),
            rf"--sample 100000 is larger than the {CLAUDE_N} conversation\(s\) run \S+ classified",
        ),
        (
            ("--sample", "10", "--model", "claude-nope"),
            rf"no limits or prices configured for model 'claude-nope' \(known: {re.escape(KNOWN_MODELS)}\)",
        ),
        (
            ("--sample", "10", "--model", RUN_MODEL),
            rf"the second judge must differ from the run's classifier \({re.escape(RUN_MODEL)}\)",
        ),
        (
            ("--base-url", "http://127.0.0.1:9/v1"),
            r"the OpenAI-compatible judge needs an API key: OPENAI_API_KEY is not set",
        ),
        (("--sample", "0"), r"--sample must be a positive number"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run, emulators, extra, message):
    env = {k: v for k, v in env_for(emulators[1]).items() if k != "OPENAI_API_KEY"}
    result = wildvalues(
        "crosscheck", "--output", run["out"], *extra, "--config", run["config"], cwd=run["root"], env=env
    )
    assert result.returncode == 2, result.stderr
    # Checks that need the run's tables come after Spark starts, whose JVM prints its own warnings first.
    errors = [line for line in result.stderr.splitlines() if line.startswith("wildvalues")]
    assert len(errors) == 1 and re.fullmatch(rf"wildvalues: error: {message}", errors[0]), result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_output_is_one_line_and_exit_2(tmp_path):
    result = wildvalues("crosscheck", "--output", tmp_path / "none", cwd=tmp_path, env=env_for(Emulator()))
    assert result.returncode == 2
    assert result.stderr == f"wildvalues: error: no tables under {tmp_path / 'none'}; run `wildvalues run` first\n"
