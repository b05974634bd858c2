"""Tests for wildvalues.analysis.review: stratified sample and agreement of a filled-in sheet."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession

from wildvalues.analysis import review
from wildvalues.io.schemas import CLASSIFICATIONS, CONVERSATIONS

RUN = "run-review-1"
STRATA_SIZES = {("strong_support", True): 5, ("no_values", False): 3, ("mild_support", True): 1}


def _rows():
    now = datetime.datetime(2025, 2, 1, tzinfo=datetime.UTC)
    conversations, labels = [], []
    for (rtype, subjective), size in STRATA_SIZES.items():
        for i in range(size):
            cid = f"{rtype}-{subjective}-{i}"
            turns = [("user", f"question {cid}"), ("assistant", f"answer {cid}")]
            conversations.append((cid, "test", turns, 2, 20, f"hash-{cid}", now, None, 0, None, None))
            labels.append(
                (
                    cid,
                    subjective,
                    ["helpfulness", "honesty"] if subjective else [],
                    ["autonomy"] if subjective else [],
                    rtype,
                    "a task",
                    "coding",
                    "offline",
                    None,
                    "offline-1",
                    0,
                    0,
                    0,
                    0,
                    None,
                    False,
                    1,
                    None,
                    RUN,
                )
            )
    return conversations, labels


@pytest.fixture(scope="module")
def frames(spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    conversations, labels = _rows()
    return spark.createDataFrame(conversations, CONVERSATIONS), spark.createDataFrame(labels, CLASSIFICATIONS)


@pytest.fixture(scope="module")
def sample(frames: tuple[DataFrame, DataFrame]) -> pd.DataFrame:
    return review.draw_sample(*frames, per_stratum=2, seed=7).toPandas()


def test_sample_sizes_per_stratum(sample):
    sizes = sample.groupby(["response_type", "is_subjective"]).size().to_dict()
    assert sizes == {key: min(2, n) for key, n in STRATA_SIZES.items()}


def test_sheet_layout(sample):
    assert tuple(sample.columns) == review.SHEET_COLUMNS
    assert (sample[list(review.VERDICT_COLUMNS)] == "").all().all()
    row = sample[sample["conversation_id"] == "mild_support-True-0"].iloc[0]
    assert row["text"] == "USER: question mild_support-True-0\n\nASSISTANT: answer mild_support-True-0"
    assert row["ai_values"] == "helpfulness; honesty" and row["human_values"] == "autonomy"
    # Every sampled id belongs to its stratum.
    assert all(
        cid.startswith(f"{r}-{s}-")
        for cid, r, s in sample[["conversation_id", "response_type", "is_subjective"]].itertuples(index=False)
    )


def test_same_seed_same_sample_and_seeds_differ(frames: tuple[DataFrame, DataFrame], sample: pd.DataFrame):
    again: pd.DataFrame = review.draw_sample(*frames, per_stratum=2, seed=7).toPandas()
    assert list(again["conversation_id"]) == list(sample["conversation_id"])
    drawn: list[pd.DataFrame] = [review.draw_sample(*frames, per_stratum=2, seed=s).toPandas() for s in range(4)]
    others = [set(d["conversation_id"]) for d in drawn]
    assert len({frozenset(o) for o in others}) > 1


def test_per_stratum_must_be_positive(frames: tuple[DataFrame, DataFrame]):
    with pytest.raises(ValueError, match=r"^per_stratum must be >= 1$"):
        review.draw_sample(*frames, per_stratum=0, seed=1)


def _sheet() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "conversation_id": ["a", "b", "c", "d"],
            "agree_subjective": ["y", "n", " Y ", ""],
            "agree_response_type": ["yes", "y", np.nan, ""],
            "agree_values": [np.nan, "", None, ""],
        }
    )


def test_agreement_on_handmade_sheet():
    assert review.agreement(_sheet()) == {
        "n_rows": 4,
        "agree_subjective": pytest.approx(2 / 3),
        "agree_subjective_answered": 3,
        "agree_response_type": 1.0,
        "agree_response_type_answered": 2,
        "agree_values": None,
        "agree_values_answered": 0,
        "n_answered": 3,
    }
    assert "66.7% y" in review.format_agreement(review.agreement(_sheet()))


def test_agreement_round_trip_through_csv(tmp_path):
    path = review.write_sheet(_sheet(), str(tmp_path / "sheet.csv"))
    read = pd.read_csv(path, dtype={c: str for c in review.VERDICT_COLUMNS}, keep_default_na=False)
    assert review.agreement(read)["agree_subjective_answered"] == 3


def test_agreement_rejects_typos_and_missing_columns():
    sheet = _sheet()
    sheet.loc[1, "agree_values"] = "maybe"
    with pytest.raises(ValueError, match="row 3 .*agree_values.*maybe"):
        review.agreement(sheet)
    with pytest.raises(ValueError, match="agree_values"):
        review.agreement(_sheet().drop(columns=["agree_values"]))
