"""Human review of the classifier: a stratified sample sheet and the agreement it yields.

The sheet is INTERNAL: it holds conversation text (PII-redacted at ingest) so that a reviewer
can judge the labels. Keep it inside the review team; never publish it.
"""

from __future__ import annotations

import math

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

STRATA: tuple[str, ...] = ("response_type", "is_subjective")
VERDICT_COLUMNS: tuple[str, ...] = ("agree_subjective", "agree_response_type", "agree_values")
SHEET_COLUMNS: tuple[str, ...] = (
    "conversation_id",
    "is_subjective",
    "response_type",
    "ai_values",
    "human_values",
    "task",
    "task_category",
    "text",
    *VERDICT_COLUMNS,
)
_YES = {"y", "yes"}
_NO = {"n", "no"}


def draw_sample(conversations: DataFrame, classifications: DataFrame, per_stratum: int, seed: int) -> DataFrame:
    """Up to per_stratum conversations per (response_type, is_subjective) with their labels, the
    conversation text and empty verdict columns (SHEET_COLUMNS), ordered by stratum.

    The draw orders each stratum by a hash of (conversation_id, seed): the same seed gives the
    same sample however the data is partitioned, which Spark's rand() does not promise.
    """
    if per_stratum < 1:
        raise ValueError("per_stratum must be >= 1")
    turn_text = lambda t: F.concat(F.upper(t["role"]), F.lit(": "), t["text"])  # noqa: E731
    text = conversations.select("conversation_id", F.array_join(F.transform("turns", turn_text), "\n\n").alias("text"))
    order = Window.partitionBy(*STRATA).orderBy(F.xxhash64("conversation_id", F.lit(seed)), "conversation_id")
    drawn = (
        classifications.select(
            "conversation_id",
            "is_subjective",
            "response_type",
            F.array_join("ai_values", "; ").alias("ai_values"),
            F.array_join("human_values", "; ").alias("human_values"),
            "task",
            "task_category",
        )
        .withColumn("_rank", F.row_number().over(order))
        .filter(F.col("_rank") <= per_stratum)
        .join(text, "conversation_id")
    )
    verdicts = [F.lit("").alias(c) for c in VERDICT_COLUMNS]
    return drawn.orderBy(*STRATA, "_rank").select(*SHEET_COLUMNS[: -len(VERDICT_COLUMNS)], *verdicts)


def write_sheet(sample: pd.DataFrame, path: str) -> str:
    """The sample as a CSV sheet for a reviewer (UTF-8, header row); returns the path."""
    sample.to_csv(path, index=False)
    return path


def _verdict(cell: object, column: str, row: int) -> bool | None:
    """True for y/yes, False for n/no, None for an empty cell; anything else is a typo to fix."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    text = str(cell).strip().lower()
    if not text:
        return None
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise ValueError(f"row {row + 2} of the sheet, column {column}: {cell!r} is not y or n")


def agreement(sheet: pd.DataFrame) -> dict:
    """Per verdict column: share of 'y' among answered cells (None if none answered) and the
    answered count (`<column>_answered`); plus n_rows and n_answered (rows with any verdict)."""
    missing = [c for c in VERDICT_COLUMNS if c not in sheet.columns]
    if missing:
        raise ValueError(f"the sheet lacks the verdict column(s) {missing}")
    result: dict = {"n_rows": len(sheet)}
    answered_rows = pd.Series(False, index=sheet.index)
    for column in VERDICT_COLUMNS:
        verdicts = [_verdict(cell, column, i) for i, cell in enumerate(sheet[column].tolist())]
        answered = [v for v in verdicts if v is not None]
        answered_rows |= pd.Series([v is not None for v in verdicts], index=sheet.index)
        result[column] = sum(answered) / len(answered) if answered else None
        result[f"{column}_answered"] = len(answered)
    result["n_answered"] = int(answered_rows.sum())
    return result


def format_agreement(result: dict) -> str:
    """A few lines for the notebook: answered counts and the share of 'y' per verdict."""
    lines = [f"rows {result['n_rows']}, answered {result['n_answered']}"]
    for column in VERDICT_COLUMNS:
        share = result[column]
        shown = "n/a" if share is None else f"{100 * share:.1f}% y"
        lines.append(f"  {column:<20} {shown:>10}  ({result[f'{column}_answered']} answered)")
    return "\n".join(lines)
