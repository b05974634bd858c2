"""The pipeline's stages, declared once, in run order.

`STAGES` is the one list the CLI (`wildvalues run` and `wildvalues <stage>`), the `jobs/` entry
points, the notebooks and the bundle's job tasks follow. Each stage names the tables it reads and
writes; its function turns input DataFrames (and typed settings) into `Write` requests, metrics
and artifacts, and the runner (`wildvalues.pipeline.runner`) does every read, write, timing and log.
"""

from __future__ import annotations

from wildvalues.pipeline.stage import Stage
from wildvalues.stages.analyze import ANALYZE
from wildvalues.stages.classify import CLASSIFY
from wildvalues.stages.crosscheck import CROSSCHECK
from wildvalues.stages.discover import DISCOVER
from wildvalues.stages.ingest import INGEST
from wildvalues.stages.report import REPORT
from wildvalues.stages.taxonomy import TAXONOMY
from wildvalues.stages.validate import VALIDATE

STAGES: tuple[Stage, ...] = (INGEST, CLASSIFY, TAXONOMY, ANALYZE, VALIDATE, REPORT)
# Run alone by their commands, never by `wildvalues run`.
ALONE: tuple[Stage, ...] = (DISCOVER, CROSSCHECK)


def stage_named(name: str) -> Stage:
    for stage in (*STAGES, *ALONE):
        if stage.name == name:
            return stage
    raise KeyError(f"no stage {name!r}; stages: {', '.join(s.name for s in STAGES)}")


__all__ = ["ALONE", "CROSSCHECK", "DISCOVER", "STAGES", "stage_named"]
