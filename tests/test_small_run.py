"""What MLflow records of a run (metric groups, the input dataset, the description, the experiment
kind, the report link) and what the report and the CLI say when k = 25 conversations and 10 users
suppress much of a small run, then the report again with the advised smaller k (on a copy).

The run is the shared offline run (tests/e2e.py): 240 conversations from twelve accounts.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import pytest
from deltalake import DeltaTable

from wildvalues.io.tracking import EXPERIMENT_KIND_TAG, NOTE_TAG, OTHER_PREFIX, REPORT_TAG, tracking_uri

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.e2e import MALFORMED, OFFLINE_N, assert_ok, copy_output, summary_run_id, summary_value, wildvalues
else:
    from e2e import MALFORMED, OFFLINE_N, assert_ok, copy_output, summary_run_id, summary_value, wildvalues

N = OFFLINE_N
RECORDS = OFFLINE_N + len(MALFORMED)
K = 25


@pytest.fixture(scope="module")
def small(offline_run):
    out = offline_run["out"]
    run_id, mlflow_run_id = summary_run_id(offline_run["result"].stdout)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(str(out)))
    return {
        "root": offline_run["root"],
        "config": offline_run["config"],
        "source": offline_run["input"],
        "out": out,
        "result": offline_run["result"],
        "run_id": run_id,
        "client": client,
        "run": client.get_run(mlflow_run_id),
    }


def ai_rows(out, name: str) -> int:
    rows = DeltaTable(str(out / "tables" / name)).to_pyarrow_table().to_pylist()
    return sum(r["side"] == "ai" for r in rows)


class _SuppressionTable(HTMLParser):
    """The report's per-table suppression counts (the data-* attributes of its rows) and its summary."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self.summary = ""
        self._in_summary = False

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        if tag == "tr" and "data-table" in found:
            self.counts[found["data-table"] or ""] = int(found["data-suppressed"] or 0)
        self._in_summary = self._in_summary or found.get("id") == "suppression-summary"

    def handle_endtag(self, tag):
        if tag == "p":
            self._in_summary = False

    def handle_data(self, data):
        if self._in_summary:
            self.summary += data


def suppression_in(html: str) -> _SuppressionTable:
    parsed = _SuppressionTable()
    parsed.feed(html)
    return parsed


def expected_sentence(out, counts: dict[str, int], k: int, k_users: int, advice: str) -> str:
    users = f" and {k_users} distinct users" if k_users > 1 else ""
    tables = sum(1 for n in counts.values() if n)
    return (
        f"k = {k} conversations{users} suppressed {counts['values_level_0']} of {ai_rows(out, 'values_level_0')} "
        f"AI values and {counts['values_level_3']} of {ai_rows(out, 'values_level_3')} top categories "
        f"({sum(counts.values())} rows in {tables} table(s)). For internal use only, build the report with a "
        f"smaller k: wildvalues report --output <output> {advice} (the public tables and exports keep k)."
    )


ADVICE = "--set analyze.suppression_k=5 --set privacy.k_users=5"


def test_every_metric_is_grouped_by_prefix(small):
    metrics = small["run"].data.metrics
    assert [k for k in metrics if "/" not in k or k.startswith(OTHER_PREFIX)] == []
    assert (metrics["counts/input_records"], metrics["counts/conversations"]) == (RECORDS, N)
    assert sum(v for k, v in metrics.items() if k.startswith("share/category/")) == pytest.approx(100.0)
    assert {k for k in metrics if k.startswith("seconds/")} == {
        f"seconds/{s}" for s in ("ingest", "classify", "taxonomy", "analyze", "validate", "report", "total")
    }
    assert metrics["validation/suites_failed"] == 0


def test_the_input_is_an_mlflow_dataset(small):
    run = small["run"]
    assert run.inputs is not None
    (logged,) = run.inputs.dataset_inputs
    assert logged.dataset.name == "input" and re.fullmatch(r"[0-9a-f]{8}", logged.dataset.digest)
    assert (logged.dataset.source_type, logged.dataset.source) == ("local", f'{{"uri": "{small["source"]}"}}')
    assert logged.dataset.profile == f'{{"num_rows": {RECORDS}}}'


def test_the_run_describes_itself_and_links_its_report(small, tmp_path):
    run, client, out = small["run"], small["client"], small["out"]
    link = f"{run.info.artifact_uri}/report/report.html"
    assert run.data.tags[REPORT_TAG] == link
    logged = client.download_artifacts(run.info.run_id, "report/report.html", str(tmp_path))
    assert Path(logged).read_text(encoding="utf-8") == (out / "report" / "report.html").read_text(encoding="utf-8")
    note = run.data.tags[NOTE_TAG].splitlines()
    assert note[0].startswith(f"wildvalues run `{small['run_id']}`: classifier offline (")
    assert f"on `{small['source']}` (auto)" in note[0]
    assert note[2] == f"- input records {RECORDS}, conversations {N}, quarantined {len(MALFORMED)}"
    assert "- validation: every suite passed" in note
    assert note[-1] == f"Report: `{out / 'report' / 'report.html'}`, and in this run's artifacts: {link}"
    assert client.get_experiment(run.info.experiment_id).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_the_report_and_the_cli_say_what_k_suppressed(small):
    out = small["out"]
    parsed = suppression_in((out / "report" / "report.html").read_text(encoding="utf-8"))
    sentence = expected_sentence(out, parsed.counts, K, 10, ADVICE)
    assert parsed.counts["values_level_0"] > 0  # the point of the data set: k removed values
    assert parsed.summary == sentence
    assert summary_value(small["result"].stdout, "suppressed") == sentence


def test_no_message_names_a_run_twice(small):
    run_id = small["run_id"]
    html = (small["out"] / "report" / "report.html").read_text(encoding="utf-8")
    lines = [*small["result"].stdout.splitlines(), *small["result"].stderr.splitlines(), *html.splitlines()]
    assert [line for line in lines if line.count(run_id) > 1] == []


def test_the_advised_smaller_k_shows_more(small, tmp_path):
    out = copy_output(small["out"], tmp_path / "out")
    before = suppression_in((out / "report" / "report.html").read_text(encoding="utf-8"))
    result = wildvalues("report", "--output", out, "--config", small["config"], *ADVICE.split(), cwd=small["root"])
    assert_ok(result)
    parsed = suppression_in((out / "report" / "report.html").read_text(encoding="utf-8"))
    assert parsed.counts["values_level_0"] < before.counts["values_level_0"]
    advice = "--set analyze.suppression_k=1 --set privacy.k_users=1"
    lines = result.stdout.splitlines()
    assert f"report for run {small['run_id']}: {out / 'report' / 'report.html'}" in lines
    assert lines[-1] == "  " + expected_sentence(out, parsed.counts, 5, 5, advice)
    print(before.summary, parsed.summary, sep="\n")  # shown with -s: the figures the README quotes
