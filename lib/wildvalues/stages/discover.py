"""The discover stage (not part of `wildvalues run`): a run's own tree from its placed values."""

from __future__ import annotations

from pyspark.sql import functions as F

from wildvalues.io.registry import DISCOVERY_TABLES, Table
from wildvalues.pipeline.stage import Metrics, Stage, StageInputs, StageRun, always
from wildvalues.settings import Settings
from wildvalues.stages.summaries import DiscoverSummary
from wildvalues.stages.taxonomy import discovered_tables, level_agreement
from wildvalues.taxonomy import embedding_cache


def run_discover(inputs: StageInputs) -> StageRun[DiscoverSummary]:
    """The run's own tree from its placed values, alone (`wildvalues discover`)."""
    labels = inputs.tables.read(Table.CLASSIFICATIONS)
    n_subjective = labels.filter(F.col("is_subjective")).count()
    expressions = inputs.tables.read(Table.VALUE_EXPRESSIONS)
    result, _ = yield from discovered_tables(inputs, list(inputs.tree), expressions, n_subjective)
    yield Metrics(result)
    return DiscoverSummary(level_agreement(result, inputs.settings.discovery.levels))


def discover_claude_models(settings: Settings) -> tuple[str, ...]:
    """The namer's model, when Claude names the discovered clusters."""
    return (settings.claude_model(settings.discovery.naming_model),) if settings.discovery.namer == "claude" else ()


# Not part of `wildvalues run` (the taxonomy stage discovers when taxonomy.mode asks for it):
# `wildvalues discover` runs it alone over an output's placed values.
DISCOVER = Stage(
    "discover",
    reads=(
        Table.CLASSIFICATIONS,
        Table.CONVERSATIONS,
        Table.VALUE_EXPRESSIONS,
        embedding_cache.TABLE,
        Table.CLUSTER_NAMES,
    ),
    writes=(embedding_cache.TABLE, Table.CLUSTER_NAMES, *DISCOVERY_TABLES),
    run=run_discover,
    needs=frozenset({"tree"}),
    description="the run's own four-level tree, its level tables and its alignment with the published tree",
    claude_models=discover_claude_models,
    embeds=always,  # discovery clusters values by meaning, whatever the placement
)
