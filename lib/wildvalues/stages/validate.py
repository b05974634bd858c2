"""The validate stage: a Great Expectations suite per table; a failed suite fails the run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wildvalues.io.registry import VALIDATED_TABLES
from wildvalues.pipeline.stage import Artifact, Log, Metrics, Stage, StageInputs, StageRun
from wildvalues.stages.summaries import ValidateSummary

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def run_validate(inputs: StageInputs) -> StageRun[ValidateSummary]:
    """Great Expectations suites on every table present; a failed suite fails the run (exit 3)."""
    import json

    from wildvalues.analysis.validate import Validator, raise_on_failure, validate_tables

    settings = inputs.settings.validate_
    validator = Validator(settings.pct_sum_tolerance, settings.pandas_max_rows, settings.fetch_threads)
    frames: dict[str, DataFrame] = {
        name: inputs.tables.read(name) for name in VALIDATED_TABLES if inputs.tables.exists(name)
    }
    results = validate_tables(validator, frames)
    summary = [r.as_dict() for r in results]
    yield Artifact("validation/results.json", json.dumps({"suites": summary}, indent=2, default=str), keep_file=False)
    yield Metrics({f"validation_{r.table}_success": 1.0 if r.success else 0.0 for r in results})
    yield Metrics({"validation_suites_failed": sum(not r.success for r in results)})
    raise_on_failure(results)
    yield Log(f"{len(results)} suite(s) passed, {sum(r.n_expectations for r in results)} expectations")
    return ValidateSummary(summary)


VALIDATE = Stage(
    "validate",
    reads=VALIDATED_TABLES,
    writes=(),
    run=run_validate,
    description="Great Expectations suites on every table",
    imports=("great_expectations",),
    is_validation=True,
)
