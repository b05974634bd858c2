"""Tests for wildvalues.reporting.export on handmade level tables written as Delta with TableStore."""

from __future__ import annotations

import csv
import os

import pytest

from wildvalues.analysis.label_audit import SUPPRESSED_LABEL
from wildvalues.io.schemas import LABEL_AUDITS, VALUE_LEVEL, VALUE_TAXONOMY
from wildvalues.io.tables import TableStore
from wildvalues.reporting import export
from wildvalues.settings.sections import TableSettings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PUBLIC_TREE = os.path.join(REPO, "..", "shared", "data", "values_tree.csv")
RUN = "run-export-1"
K = 25
PLANTED = "advice for John Smith at 12 Elm Street"  # in 30 conversations: k alone would publish it


def node(cluster_id, level, parent, n, pct_total, pct_convos=None, name=None, candidate=False, side="ai"):
    """A VALUE_LEVEL row; n_expressions is irrelevant to the export."""
    pct_convos = float(n) if pct_convos is None else pct_convos
    return (side, cluster_id, name or cluster_id, level, parent, candidate, n, n, pct_convos, 2 * n, pct_total, RUN)


# k = 25. Parents normally cover at least their children's conversations; two nodes break that
# on purpose (l2:c under the small l3:b, 'orphan value' under the suppressed l1:b) to show that
# descendants of a suppressed node go too.
LEVELS = {
    3: [
        node("ai_values:l3:a", 3, None, 60, 70.0, name="Practical values"),
        node("ai_values:l3:b", 3, None, 10, 30.0, name="Rare values"),
        node("ai_values:l3:a", 3, None, 100, 100.0, name="Practical values", side="human"),
    ],
    2: [
        node("ai_values:l2:a", 2, "ai_values:l3:a", 55, 50.0, name="Name l2a"),
        node("ai_values:l2:b", 2, "ai_values:l3:a", 20, 20.0, name="Name l2b"),
        node("ai_values:l2:c", 2, "ai_values:l3:b", 30, 30.0, name="Name l2c"),
    ],
    1: [
        node("ai_values:l1:a", 1, "ai_values:l2:a", 50, 45.0, name="Name l1a"),
        node("ai_values:l1:d", 1, "ai_values:l2:a", 25, 5.0, name="Name l1d"),
        node("ai_values:l1:b", 1, "ai_values:l2:b", 26, 20.0, name="Name l1b"),
    ],
    0: [
        node("helpfulness", 0, "ai_values:l1:a", 40, 30.12345, pct_convos=40.12345),
        node("honesty", 0, "ai_values:l1:a", 25, 14.8766, pct_convos=25.0),
        node("secret candidate", 0, "ai_values:l1:a", 3, 1.0, candidate=True),
        node("orphan value", 0, "ai_values:l1:b", 26, 20.0),
        node("clarity", 0, "ai_values:l1:d", 25, 5.0, pct_convos=25.0),
        node("human only value", 0, "ai_values:l1:a", 100, 50.0, side="human"),
        node("planted", 0, "ai_values:l1:a", 30, 10.0, pct_convos=30.0, name=PLANTED, candidate=True),
    ],
}
# The analyze stage's ratings: a value, a cluster name and a description rated under 3.
LABEL_AUDIT_ROWS = [
    (PLANTED, ["value"], 1, "offline", "proper noun John", True, RUN),
    ("Name l1d", ["cluster_name"], 2, "offline", "proper noun Name", True, RUN),
    ("Two", ["cluster_description"], 2, "offline", "rare token two", True, RUN),
    ("helpfulness", ["value"], 5, "published", "", False, RUN),
]
TAXONOMY = [
    ("ai_values:l3:a", "Values of getting things done, well.", "Practical values", 3, None, 31.4),
    ("ai_values:l2:a", "Two", "Name l2a", 2, "ai_values:l3:a", 6.0),
    ("ai_values:l1:a", "One", "Name l1a", 1, "ai_values:l2:a", 1.0),
    ("helpfulness", None, "helpfulness", 0, "ai_values:l1:a", 5.858),
]

EXPECTED_TREE = [
    "cluster_id,description,name,level,parent_cluster_id,pct_total_occurrences",
    "ai_values:l1:a,One,Name l1a,1,ai_values:l2:a,45.0",
    f"ai_values:l1:d,,{SUPPRESSED_LABEL},1,ai_values:l2:a,5.0",  # renamed: clarity keeps its parent
    f"ai_values:l2:a,{SUPPRESSED_LABEL},Name l2a,2,ai_values:l3:a,50.0",
    'ai_values:l3:a,"Values of getting things done, well.",Practical values,3,,70.0',
    "helpfulness,,helpfulness,0,ai_values:l1:a,30.123",
    "honesty,,honesty,0,ai_values:l1:a,14.877",
    "clarity,,clarity,0,ai_values:l1:d,5.0",
]
# Frequencies keep every level-0 node with n >= k (ties by name), as the brief for the file says.
EXPECTED_FREQUENCIES = [
    "value,pct_convos",
    "helpfulness,40.123",
    "orphan value,26.0",
    "clarity,25.0",
    "honesty,25.0",
]


@pytest.fixture(scope="module")
def store(spark, tmp_path_factory):
    table_store = TableStore(spark, str(tmp_path_factory.mktemp("export_out")), TableSettings())
    for level, rows in LEVELS.items():
        table_store.write(f"values_level_{level}", spark.createDataFrame(rows, VALUE_LEVEL))
    table_store.write("value_taxonomy", spark.createDataFrame(TAXONOMY, VALUE_TAXONOMY))
    table_store.write("label_audits", spark.createDataFrame(LABEL_AUDIT_ROWS, LABEL_AUDITS))
    return table_store


@pytest.fixture(scope="module")
def exported(store, tmp_path_factory):
    return export.export_public(store, str(tmp_path_factory.mktemp("public")), K)


def _first_line(path: str) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.readline()


def _lines(path: str) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read().split("\r\n")[:-1]


def test_tree_header_is_the_public_one_byte_for_byte(exported):
    # Line ending included: the public file ends its lines with CRLF.
    assert _first_line(exported.paths[export.TREE_FILE]) == _first_line(PUBLIC_TREE)


def test_frequencies_header(exported):
    assert _first_line(exported.paths[export.FREQUENCIES_FILE]) == "value,pct_convos\r\n"


def test_round_trip_to_exact_rows(exported):
    assert _lines(exported.paths[export.TREE_FILE]) == EXPECTED_TREE
    assert _lines(exported.paths[export.FREQUENCIES_FILE]) == EXPECTED_FREQUENCIES


def test_suppression_counts(exported):
    assert exported.n_suppressed == {
        "values_level_0": 2,  # 'secret candidate' (3 < k) and 'orphan value' (parent suppressed)
        "values_level_1": 1,  # l1:b, under the small l2:b
        "values_level_2": 2,  # l2:b (20 < k) and l2:c (parent suppressed)
        "values_level_3": 1,  # l3:b (10 < k)
        "values_frequencies": 1,
    }
    assert exported.n_suppressed_labels == {
        "values_level_0": 1,  # the planted value, dropped
        "values_level_1": 1,  # "Name l1d", renamed
        "values_level_2": 0,
        "values_level_3": 0,
        "value_taxonomy_descriptions": 1,  # "Two", replaced
        "values_frequencies": 1,  # the planted value
    }


def test_an_output_without_label_audits_is_not_exported(spark, tmp_path):
    unaudited = TableStore(spark, str(tmp_path / "old"), TableSettings())
    for level, rows in LEVELS.items():
        unaudited.write(f"values_level_{level}", spark.createDataFrame(rows, VALUE_LEVEL))
    with pytest.raises(export.Unaudited, match="no label_audits table, so its labels were never audited"):
        export.export_public(unaudited, str(tmp_path / "public"), K)
    assert not (tmp_path / "public").exists()


def test_no_small_node_and_no_orphan(exported):
    with open(exported.paths[export.TREE_FILE], encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    ids = {(int(r["level"]), r["cluster_id"]) for r in rows}
    for row in rows:
        level = int(row["level"])
        if level == 3:
            assert row["parent_cluster_id"] == ""
        else:
            assert (level + 1, row["parent_cluster_id"]) in ids, row
    names = {r["name"] for r in rows}
    assert not names & {"secret candidate", "Rare values", "Name l2b", "Name l2c", "Name l1b", "human only value"}


def test_no_run_ids_in_public_files(exported):
    for path in exported.paths.values():
        with open(path, encoding="utf-8") as handle:
            assert RUN not in handle.read()


def test_given_descriptions_replace_the_table(store, tmp_path):
    result = export.export_public(store, str(tmp_path), K, taxonomy_descriptions={"ai_values:l1:d": "Dee"})
    lines = _lines(result.paths[export.TREE_FILE])
    assert f"ai_values:l1:d,Dee,{SUPPRESSED_LABEL},1,ai_values:l2:a,5.0" in lines
    assert "ai_values:l1:a,,Name l1a,1,ai_values:l2:a,45.0" in lines


def test_format_number_matches_public_style():
    assert [export.format_number(x) for x in (21.41, 31.426, 0.0012, 5.0, -0.0001)] == [
        "21.41",
        "31.426",
        "0.001",
        "5.0",
        "0.0",
    ]
