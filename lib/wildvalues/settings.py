"""Typed settings: the one place defaults live, validated once; `conf/*.yml`, `--config` and flags on top.

`load_settings` merges layers in order (these defaults, the environment profile `conf/<env>.yml`,
a `--config` file, then CLI flags and `--set key=value`) and validates after each layer, so an
unknown key, a wrong type or an out-of-range value is one line naming the key and the file.
Facts found at run time (the resolved taxonomy file, its checksum) are not settings: they live in
`RunFacts`, and `settings_hash` covers settings only, so the same settings hash alike everywhere.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
OpenFraction = Annotated[float, Field(gt=0.0, lt=1.0)]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]

INPUT_FORMATS = (
    "auto",
    "messages",
    "sharegpt",
    "transcript",
    "alpaca",
    "ultrachat",
    "oasst",
    "arena",
    "parquet",
    "delta",
)
CLASSIFIER_NAMES = ("offline", "anthropic")

DEFAULT_K = 25
"""Privacy threshold: a published aggregate row must cover at least this many conversations.

Small-cell rules in official statistics range from 10-11 (e.g. CMS cell suppression) to 100;
the study published aggregates only. We take 25 because our rows carry free-form candidate
value names derived from conversation text, which can be idiosyncratic: at 25 a label is a
pattern shared by many conversations rather than a trace of one user, while at the study's
scale (308k subjective conversations) it is 0.008% and suppresses only the long tail. Runs much
smaller than the study's gain the most from a threshold above the 10-11 minimum.
"""

DEFAULT_WATCHLIST: tuple[str, ...] = (
    "dominance",
    "amorality",
    "deception",
    "manipulation",
    "sexual exploitation",
    "unrestricted freedom",
)

# A value naming a watch term next to one of these words opposes it ("anti-manipulation",
# "deception detection"): protective values must not be flagged as concerning ones.
DEFAULT_EXEMPT_WORDS: tuple[str, ...] = (
    "anti",
    "non",
    "counter",
    "prevention",
    "detection",
    "awareness",
    "avoidance",
    "resistance",
    "protection",
)


class ConfigError(RuntimeError):
    """A settings file that cannot be read, or settings that do not validate."""


class Section(BaseModel):
    """Every settings section: unknown keys are errors, values are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SparkSettings(Section):
    master: str = "local[*]"
    app_name: str = "wildvalues"
    shuffle_partitions: PositiveInt = 8
    # Speculative tasks would call the classifier twice for the same conversation.
    speculation: bool = False
    driver_memory: str = "4g"
    # The local JVM's JIT and collector. C1 only and the serial collector: a run of a few minutes
    # spends most of the JVM's CPU compiling and collecting, not computing (README, Benchmarks).
    # "" leaves the JVM's defaults, for long runs on many cores. Ignored on Databricks. C1 alone
    # reserves 48 MB for compiled code, not tiered's 240 MB: a run of some 400 Spark queries filled
    # it ("CodeCache is full. Compiler has been disabled") and then failed, so it is reserved again.
    jvm_options: str = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m -XX:+UseSerialGC"
    progress: bool | None = None  # None: Spark's progress bar only on a terminal
    log_level: str = "ERROR"
    delta_packages: str | None = None  # Maven coordinates, for machines that can download jars


class TableSettings(Section):
    # "path": Delta tables under <output>/tables/<name>; "catalog": catalog.schema.name (Databricks).
    mode: Literal["path", "catalog"] = "path"
    catalog: str = "main"
    schema_name: str = Field(default="wildvalues", alias="schema")


class IngestSettings(Section):
    format: Literal[INPUT_FORMATS] = "auto"  # type: ignore[valid-type]
    text_field: str = "text"
    id_field: str | None = None
    raw_record_max_chars: PositiveInt = 500
    redact_pii: bool = True
    max_turn_chars: PositiveInt = 200_000
    # keep: tool and function results stay as `tool` turns, shown to the classifier as tool output
    # and never counted as the human's or the AI's values; drop: they are left out.
    tool_turns: Literal["keep", "drop"] = "keep"
    # OpenAssistant trees: top_ranked follows the best-ranked reply at each step (one thread per
    # tree); all makes every root-to-leaf path a conversation.
    oasst_paths: Literal["top_ranked", "all"] = "top_ranked"


class TaxonomySettings(Section):
    # Overridden by the environment variable WILDVALUES_TAXONOMY.
    path: str | None = "../shared/data/values_tree.csv"
    # Kept as written (~ unexpanded) so the settings hash is the same on every machine.
    cache_dir: str = "~/.cache/wildvalues"
    # semantic: embeddings vote on the cluster (lib/wildvalues/taxonomy/placement.py); trigram: the
    # character-trigram matcher, kept for comparison.
    placement: Literal["semantic", "trigram"] = "semantic"
    similarity_threshold: Fraction = 0.55  # trigram: cosine to the nearest tree value
    # semantic: a value this close to a tree value is that value ("similar")...
    # (0.92: from there on, merging into the nearest value is as accurate as the vote)
    merge_similarity: Fraction = 0.92
    # ...otherwise it is a new candidate under the voted cluster ("placed") when the vote's
    # confidence reaches this, else an "unmatched" candidate that keeps its nearest cluster.
    # (0.30: about an even chance that the level-1 cluster is right, in the benchmark)
    placement_threshold: Fraction = 0.30
    neighbours: PositiveInt = 50  # nearest tree values that vote
    # published: values roll up the published tree; discovered: they roll up the run's own tree,
    # built from its values (the study's method), and so do the findings; both: published, with
    # the discovered tree and its level tables beside it (discovered_* tables).
    mode: Literal["published", "discovered", "both"] = "published"
    # Claude picks the level-1 cluster of low-confidence placements among their top candidates
    # (semantic placement only; needs an API key). Answers are cached in placement_adjudications.
    adjudicate: bool = False
    adjudicate_below: Fraction = 0.5  # placed/unmatched values under this confidence are asked about
    adjudication_candidates: Annotated[int, Field(ge=2, le=20)] = 5
    adjudication_model: str | None = None  # None: classifier.anthropic.model


# How the answer comes back: JSON text under `output_config.format`, a `strict: true` tool, or a
# forced tool call (the only one for models without structured outputs).
OUTPUT_SHAPES = ("json_schema", "strict_tool", "forced_tool")
OUTPUT_CHOICES = ("auto", *OUTPUT_SHAPES)
EMBEDDERS = ("model2vec", "sentence-transformers", "lexical")


class EmbeddingSettings(Section):
    """How value names become vectors (lib/wildvalues/embeddings)."""

    # model2vec: a static model, numpy only (the default); sentence-transformers: the study's kind
    # of model (needs the `embeddings` extra, torch); lexical: character n-grams, no model at all.
    embedder: Literal[EMBEDDERS] = "model2vec"  # type: ignore[valid-type]
    # A local model folder, else a hub id downloaded once into cache_dir; the environment variable
    # WILDVALUES_EMBEDDING_MODEL overrides it. When neither can be had the lexical fallback is used
    # and named as such in the run's params and summary.
    model2vec_model: str = "../shared/models/minilm-static"
    model2vec_hub_model: str = "minishlab/potion-base-8M"
    sentence_transformers_model: str = "sentence-transformers/all-mpnet-base-v2"
    cache_dir: str = "~/.cache/wildvalues/models"
    fallback_to_lexical: bool = True
    lexical_dimensions: PositiveInt = 2048
    # More distinct values than this are embedded in Spark tasks (mapInArrow), fewer on the driver.
    spark_min_values: NonNegativeInt = 20_000
    batch_size: PositiveInt = 2048


class DiscoverySettings(Section):
    """Discovery of a run's own four-level tree (lib/wildvalues/taxonomy/discovery.py), as the study did."""

    levels: Annotated[int, Field(ge=2, le=4)] = 4  # level 0 (values) up to the top categories
    base_clusters: PositiveInt | None = None  # level-1 k; None: from the number of distinct values
    values_per_base_cluster: PositiveInt = 12  # sets level-1 k when base_clusters is None
    top_clusters: PositiveInt = 5  # clusters at the top level; the levels between shrink geometrically
    min_values: PositiveInt = 20  # fewer distinct values than this: nothing to discover
    seed: int = 7
    max_iterations: PositiveInt = 50
    # offline: a cluster is named after its most central member; claude: Claude names and
    # describes it from its members and the nearest non-members, as Clio does (needs an API key;
    # answers cached in cluster_names).
    namer: Literal["offline", "claude"] = "offline"
    naming_model: str | None = None  # None: classifier.anthropic.model
    naming_members: Annotated[int, Field(ge=1, le=200)] = 25  # members shown, the most central first
    naming_contrast: Annotated[int, Field(ge=0, le=50)] = 5  # nearest non-members shown


class OfflineSettings(Section):
    chunk_size: NonNegativeInt = 0  # 0: one chunk; the offline classifier costs nothing to rerun
    batch_size: PositiveInt = 2048


REQUEST_KINDS = ("classify", "screen", "adjudicate", "name", "audit", "crosscheck")


class RequestKindSettings(Section):
    """The thinking, effort and output budget of one kind of request (a short structured answer)."""

    # off: as little thinking as the model allows: {"type": "disabled"}, or {"type": "between_tools"}
    # (Claude Sonnet 5.5), or nothing where thinking cannot be turned off (Claude Opus 5.5);
    # adaptive: {"type": "adaptive"}, the model decides; model_default: no thinking field at all.
    thinking: Literal["off", "adaptive", "model_default"] = "off"
    # lowest: the lowest effort the model accepts; model_default: no effort field; or a level.
    effort: Literal["lowest", "model_default", "low", "medium", "high", "xhigh", "max"] = "lowest"
    # Output tokens per answer, thinking included; None: classifier.anthropic.max_tokens for
    # classify, screen and crosscheck, else the kind's own default (KIND_MAX_TOKENS).
    max_tokens: PositiveInt | None = None


# An answer is 100-400 tokens; thinking off leaves it alone, but a model that cannot stop thinking
# (Opus 5.5) still thinks a little at effort low: 4-10x the answer, and a cut answer is asked once
# more with 4x this (claude.py, MAX_TOKENS_RETRY_FACTOR).
KIND_MAX_TOKENS = {"adjudicate": 1024, "name": 1536, "audit": 1024}


class RequestKinds(Section):
    classify: RequestKindSettings = RequestKindSettings()
    screen: RequestKindSettings = RequestKindSettings()
    adjudicate: RequestKindSettings = RequestKindSettings()
    name: RequestKindSettings = RequestKindSettings()
    audit: RequestKindSettings = RequestKindSettings()
    crosscheck: RequestKindSettings = RequestKindSettings()


class PreflightSettings(Section):
    """A few real requests of each kind a Claude run will send, before it spends on the rest
    (lib/wildvalues/classifier/preflight.py; `wildvalues preflight` runs them alone)."""

    enabled: bool = True  # the anthropic classifier's runs start with the preflight
    requests: PositiveInt = 3  # requests per kind, on samples drawn from the input and the tree


PROVIDERS = ("anthropic", "bedrock", "vertex", "databricks")
BEDROCK_PROFILES = ("global", "us", "eu", "jp", "apac")


class BedrockSettings(Section):
    """Claude through Amazon Bedrock (docs/claude.md, "Providers"). Credentials: the AWS chain."""

    region: str | None = None  # None: AWS_REGION / AWS_DEFAULT_REGION, else the profile's region
    profile: str | None = None  # a named AWS profile; None: the default credential chain
    # A cross-region inference profile prefixed to the model id (global, us, eu, jp, apac); None: the base id.
    inference_profile: Literal[BEDROCK_PROFILES] | None = None  # type: ignore[valid-type]


class VertexSettings(Section):
    """Claude through Google Cloud Vertex AI. Credentials: Application Default Credentials."""

    region: str | None = None  # e.g. global, us-east5; None: CLOUD_ML_REGION
    project_id: str | None = None  # None: ANTHROPIC_VERTEX_PROJECT_ID, else the credentials' project


class DatabricksSettings(Section):
    """Claude through a Databricks workspace's model serving (Foundation Model APIs)."""

    host: str | None = None  # https://<workspace>; None: DATABRICKS_HOST, else the cluster's workspace URL
    token_env: str = "DATABRICKS_TOKEN"  # the token's environment variable; on a cluster: the notebook context


class AnthropicSettings(Section):
    """The Claude client's settings; `ClaudeClientSettings` adds what is resolved at run time."""

    model: str = "claude-sonnet-5-5"  # the extraction model (values, response type, task)
    # Where Claude is reached: the Claude API, Amazon Bedrock, Google Cloud Vertex AI or a Databricks
    # workspace (docs/claude.md, "Providers"). Batch mode needs the Claude API.
    provider: Literal[PROVIDERS] = "anthropic"  # type: ignore[valid-type]
    # Claude model id -> its id on the provider, over the documented ones (classifier/providers.py).
    model_ids: dict[str, str] = Field(default_factory=dict)
    bedrock: BedrockSettings = BedrockSettings()
    vertex: VertexSettings = VertexSettings()
    databricks: DatabricksSettings = DatabricksSettings()
    # auto: json_schema where the model has structured outputs, else forced_tool; strict_tool
    # asks for a `strict: true` tool instead (needs structured outputs too).
    output: Literal[OUTPUT_CHOICES] = "auto"  # type: ignore[valid-type]
    prompt_caching: bool = True  # mark the instructions for prompt caching (off: benchmarks only)
    batch_size: PositiveInt = 256  # conversations handed to one classify_batch call
    chunk_size: NonNegativeInt | None = None  # None: classifier.chunk_size
    concurrency: PositiveInt = 64  # requests in flight per Spark task (the calls are I/O-bound)
    max_attempts: PositiveInt = 6  # API calls per conversation before it becomes an error row
    max_tokens: PositiveInt = 2048  # output tokens per classification answer, thinking included
    requests: RequestKinds = RequestKinds()  # thinking, effort and max_tokens per request kind
    preflight: PreflightSettings = PreflightSettings()
    token_budget: PositiveInt = 12_000  # approximate tokens of conversation text kept (start + end)
    backoff_base: NonNegativeFloat = 1.0  # seconds, exponential with full jitter, 5xx and connection errors
    backoff_cap: NonNegativeFloat = 60.0
    timeout: PositiveFloat = 120.0  # seconds per HTTP request
    batch_poll_interval: NonNegativeFloat = 30.0  # seconds between polls of a Message Batch
    max_batch_requests: PositiveInt = 100_000
    burst_seconds: PositiveFloat = 1.0  # seconds' worth of requests / input tokens sent at once
    output_burst_seconds: PositiveFloat = 60.0  # must hold max_tokens of every request in flight
    seed: int | None = None  # seeds the backoff jitter, for reproducible tests


class ClientLimits(Section):
    """Per-minute limits of one Claude client; the defaults are the API's lowest tier."""

    rpm: PositiveInt = 50
    itpm: PositiveInt = 30_000
    otpm: PositiveInt = 8_000


class ClaudeClientSettings(AnthropicSettings):
    """What one Claude client (one per Spark task) runs with: the anthropic section plus what the
    driver resolves at run time. Picklable, and the key never appears in its repr."""

    # The Anthropic key, or the Databricks token (provider databricks); never set for Bedrock or
    # Vertex AI, whose SDK clients read their platform's credentials. None (anthropic): ANTHROPIC_API_KEY.
    api_key: str | None = Field(None, repr=False)
    # None: ANTHROPIC_BASE_URL (anthropic), the SDK's platform endpoint (bedrock, vertex); databricks:
    # the workspace's Anthropic route, resolved by the driver.
    base_url: str | None = None
    platform_model: str | None = None  # the model's id on the provider; None: model
    limits: ClientLimits = ClientLimits()  # the organisation's limits for the model
    output_shape: Literal[OUTPUT_SHAPES] = "forced_tool"  # type: ignore[valid-type]  # resolved from the model
    prompt: Literal["extract", "screen"] = "extract"  # which prompt this client asks
    kind: Literal["classify", "screen", "crosscheck"] = "classify"  # what its classify_one requests are
    # Per request kind: {"thinking": {...} | None, "effort": str | None, "max_tokens": int}, resolved
    # for the model by claude_settings.request_options; empty: no thinking or effort field sent.
    request_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    max_output_tokens: PositiveInt = 64_000  # the model's ceiling for a max_tokens retry
    share: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0  # this task's fraction: 1 / tasks at once


class ClassifierSettings(Section):
    name: Literal[CLASSIFIER_NAMES] = "offline"  # type: ignore[valid-type]
    # A run whose classification error rows exceed this share of the conversations sent fails
    # (exit code 4, cli.EXIT_TOO_MANY_ERRORS) after writing everything; so does a systematic
    # fallback: more than this share of the adjudication, naming or label audit requests failing.
    max_error_share: Fraction = 0.05
    mode: Literal["online", "batch"] = "online"  # anthropic: Messages API or Message Batches API
    partitions: PositiveInt | None = None  # Spark tasks classifying at once; None: default parallelism
    chunk_size: NonNegativeInt = 2000  # conversations per committed chunk: a crash loses one chunk
    secret_scope: str | None = None  # Databricks secret scope holding the API key
    secret_key: str = "anthropic_api_key"
    # Two-pass mode: this (cheap) model decides is_subjective and the task first, with a short
    # prompt; only subjective conversations reach the extraction model. None: one pass.
    screen_model: str | None = None
    offline: OfflineSettings = OfflineSettings()
    anthropic: AnthropicSettings = AnthropicSettings()

    @model_validator(mode="after")
    def _batches_need_the_claude_api(self) -> ClassifierSettings:
        # Message Batches are a Claude API endpoint (classifier/providers.py, FEATURES, with its pages).
        if self.mode == "batch" and self.anthropic.provider != "anthropic":
            raise ValueError(
                f"mode batch needs the Message Batches API, which only the Claude API offers "
                f"(https://platform.claude.com/docs/en/build-with-claude/batch-processing); "
                f"use mode online with provider {self.anthropic.provider}"
            )
        return self

    def chunk_size_for(self, name: str) -> int:
        """The classifier's own chunk size, else the shared one; 0 means a single chunk."""
        own = self.offline.chunk_size if name == "offline" else self.anthropic.chunk_size
        return self.chunk_size if own is None else own

    def batch_size_for(self, name: str) -> int:
        return self.offline.batch_size if name == "offline" else self.anthropic.batch_size


class RateLimits(Section):
    """Per minute, for the whole organisation; each Spark task takes limit / tasks running at once."""

    rpm: PositiveInt
    itpm: PositiveInt
    otpm: PositiveInt


class Prices(Section):
    """List prices in USD per million tokens (https://platform.claude.com/docs/en/about-claude/pricing)."""

    input: NonNegativeFloat
    output: NonNegativeFloat  # thinking tokens are output tokens and billed at this price
    cache_write: NonNegativeFloat  # a 5-minute cache write
    cache_read: NonNegativeFloat
    # A 1-hour cache write (the batch path's TTL); None: 2x input, the pricing page's multiplier.
    cache_write_1h: NonNegativeFloat | None = None

    def one_hour_write(self) -> float:
        return self.input * 2.0 if self.cache_write_1h is None else self.cache_write_1h


THINKING_TYPES = ("adaptive", "enabled", "disabled", "between_tools")
EFFORTS = ("low", "medium", "high", "xhigh", "max")


class ModelEntry(Section):
    """One model's limits, prices and capabilities (the API's published figures)."""

    limits: RateLimits
    prices: Prices
    # Below this many prompt tokens the API caches nothing (and says nothing): the run checks it.
    min_cache_tokens: PositiveInt = 1024
    # Native structured outputs (`output_config.format` and `strict: true` tools); without them
    # the answer is a forced tool call whose input the API does not check against the schema.
    structured_outputs: bool = False
    # Whether `tool_choice` may force a tool (Claude Sonnet 5.5 answers a forced tool with an error).
    forced_tool: bool = True
    # Tokens per (characters / 4) of the model's tokenizer: the 5.x tokenizer counts about 30% more.
    tokenizer_factor: PositiveFloat = 1.0
    # The `thinking.type` values the model accepts (empty: send no `thinking` field at all) and
    # whether it thinks when a request says nothing.
    thinking_types: tuple[Literal[THINKING_TYPES], ...] = ()  # type: ignore[valid-type]
    thinks_by_default: bool = False
    # The `output_config.effort` levels it accepts, lowest first (empty: send no effort), its default,
    # and the highest effort at which thinking may still be turned off (None: at any effort).
    efforts: tuple[Literal[EFFORTS], ...] = ()  # type: ignore[valid-type]
    default_effort: Literal[EFFORTS] | None = None  # type: ignore[valid-type]
    thinking_off_max_effort: Literal[EFFORTS] | None = None  # type: ignore[valid-type]
    max_output_tokens: PositiveInt = 64_000  # the ceiling of a max_tokens retry
    deprecated: bool = False  # usable from a config file, with a warning; never a default


# Default limits: the lowest published tier, "Tier 1" of the rate-limits page
# (https://docs.anthropic.com/en/api/rate-limits: 50 RPM, 30,000 ITPM, 8,000 OTPM for Claude
# Sonnet and Opus). The current page (https://platform.claude.com/docs/en/api/rate-limits) names the
# tiers Start, Build and Scale, with an Evaluation tier below them for new organisations; its
# per-model Start figures for the 5.5 models were not in the stored pages, so the Tier 1 figures,
# lower than any Start figure found, stand in. Raise them in a config file (README, "Rate limits").
LOWEST_TIER = RateLimits(rpm=50, itpm=30_000, otpm=8_000)

# Each fact's page, cited beside it below.
PRICING = "https://platform.claude.com/docs/en/about-claude/pricing"
CACHING = "https://platform.claude.com/docs/en/build-with-claude/prompt-caching"
THINKING = "https://platform.claude.com/docs/en/build-with-claude/thinking-troubleshooting"
DEPRECATIONS = "https://platform.claude.com/docs/en/about-claude/model-deprecations"

DEFAULT_MODELS: dict[str, ModelEntry] = {
    # https://platform.claude.com/docs/en/models/sonnet-5-5/whats-new-sonnet-5-5: adaptive thinking
    # on by default, effort default high; thinking {"type": "disabled"} is a 400, the lowest setting is
    # {"type": "between_tools"}, usable at effort low, medium and high only (400 at xhigh or max);
    # forced tool use (tool_choice any / tool) returns an error; same tokenizer as Sonnet 5.
    # Prices: https://platform.claude.com/docs/en/models/sonnet-5-5/overview ($2 / $10, 5m write
    # $2.50, 1h write $4, 128K max output); cache reads cut from $0.20 to $0.10 on 2026-10-07
    # (PRICING, as the issue reports; the overview page stored here still shows $0.20, and two
    # pricing tools' release notes, e.g. https://github.com/kurofune/claudit/releases/tag/v1.9.2, record the cut).
    # Minimum cacheable prompt 512 (Sonnet 5.5 migration guide; 1,024 on Sonnet 5).
    "claude-sonnet-5-5": ModelEntry(
        limits=LOWEST_TIER,
        prices=Prices(input=2.0, output=10.0, cache_write=2.5, cache_write_1h=4.0, cache_read=0.10),
        min_cache_tokens=512,
        structured_outputs=True,
        forced_tool=False,
        tokenizer_factor=1.3,
        thinking_types=("adaptive", "between_tools"),
        thinks_by_default=True,
        efforts=EFFORTS,
        default_effort="high",
        thinking_off_max_effort="high",
        max_output_tokens=128_000,
    ),
    # https://platform.claude.com/docs/en/models/opus-5-5/whats-new-opus-5-5: thinking cannot be
    # disabled (adaptive, always on; "disabled" is a 400 at every effort), default effort medium,
    # forced tool use returns an error. https://platform.claude.com/docs/en/models/opus-5-5/overview:
    # $4 / $20, 5m write $5, 1h write $8, cache read $0.20, 128K max output.
    # Minimum cacheable prompt 512 (the 5.5 models' migration guides).
    "claude-opus-5-5": ModelEntry(
        limits=LOWEST_TIER,
        prices=Prices(input=4.0, output=20.0, cache_write=5.0, cache_write_1h=8.0, cache_read=0.20),
        min_cache_tokens=512,
        structured_outputs=True,
        forced_tool=False,
        tokenizer_factor=1.3,
        thinking_types=("adaptive",),
        thinks_by_default=True,
        efforts=EFFORTS,
        default_effort="medium",
        max_output_tokens=128_000,
    ),
    # https://platform.claude.com/docs/en/models/haiku-5-5/overview: "for high-volume, latency-sensitive
    # tasks such as classification"; adaptive thinking with effort (default medium); the newer
    # tokenizer counts about 30% more tokens than Haiku 4.5; from $0.10 / $0.50, 5m write $0.125,
    # 1h write $0.20, cache read $0.01 for prompts up to 100,000 tokens (5x above: not modelled, a
    # classification prompt is far below); 128K max output. Thinking can be turned off
    # ({"type": "disabled"}) at low, medium and high effort (Haiku 5.5 migration guide); forced
    # tool_choice is not among the guide's settings that return errors. Minimum cacheable 512.
    # That thinking can be turned off at low, medium and high effort is OpenRouter's Haiku 5.5 page
    # (https://openrouter.ai/anthropic/claude-haiku-5.5-20261007:batch); no platform page stored here says it.
    "claude-haiku-5-5": ModelEntry(
        limits=LOWEST_TIER,
        prices=Prices(input=0.10, output=0.50, cache_write=0.125, cache_write_1h=0.20, cache_read=0.01),
        min_cache_tokens=512,
        structured_outputs=True,
        forced_tool=True,
        tokenizer_factor=1.3,
        thinking_types=("adaptive", "disabled"),
        thinks_by_default=True,
        efforts=EFFORTS,
        default_effort="medium",
        thinking_off_max_effort="high",
        max_output_tokens=128_000,
    ),
    # https://platform.claude.com/docs/en/models/sonnet-5/overview: adaptive thinking on by default,
    # default effort high, manual extended thinking a 400, the new tokenizer; $2 / $10, 5m write
    # $2.50, 1h write $4, cache read $0.20; minimum cacheable 1,024 (Sonnet 5.5 migration guide).
    # Thinking {"type": "disabled"} is accepted (THINKING page: Sonnet 5 takes adaptive and disabled).
    "claude-sonnet-5": ModelEntry(
        limits=LOWEST_TIER,
        prices=Prices(input=2.0, output=10.0, cache_write=2.5, cache_write_1h=4.0, cache_read=0.20),
        min_cache_tokens=1024,
        structured_outputs=True,
        tokenizer_factor=1.3,
        thinking_types=("adaptive", "disabled"),
        thinks_by_default=True,
        efforts=EFFORTS,
        default_effort="high",
        max_output_tokens=128_000,
    ),
    # https://platform.claude.com/docs/en/models/opus-5/overview (legacy): $5 / $25, 5m write $6.25,
    # 1h write $10, cache read $0.50; thinking on by default and disabled only at effort high or
    # below; default effort high; minimum cacheable 512 (CACHING).
    "claude-opus-5": ModelEntry(
        limits=LOWEST_TIER,
        prices=Prices(input=5.0, output=25.0, cache_write=6.25, cache_write_1h=10.0, cache_read=0.50),
        min_cache_tokens=512,
        structured_outputs=True,
        tokenizer_factor=1.3,
        thinking_types=("adaptive", "disabled"),
        thinks_by_default=True,
        efforts=EFFORTS,
        default_effort="high",
        thinking_off_max_effort="high",
        max_output_tokens=128_000,
    ),
    # PRICING: Sonnet 4.6 $3 / $15, 5m write $3.75, 1h write $6, cache read $0.30. Thinking is off
    # unless asked for (THINKING), so no thinking or effort field is sent. Minimum cacheable 1,024
    # (CACHING). The older tokenizer: factor 1.0.
    "claude-sonnet-4-6": ModelEntry(
        limits=LOWEST_TIER,
        prices=Prices(input=3.0, output=15.0, cache_write=3.75, cache_write_1h=6.0, cache_read=0.30),
        min_cache_tokens=1024,
        structured_outputs=True,
    ),
    # PRICING: Haiku 4.5 $1 / $5, 5m write $1.25, 1h write $2, cache read $0.10; extended thinking
    # only, off unless asked for (THINKING); minimum cacheable 4,096 (CACHING).
    "claude-haiku-4-5": ModelEntry(
        limits=LOWEST_TIER,
        prices=Prices(input=1.0, output=5.0, cache_write=1.25, cache_write_1h=2.0, cache_read=0.10),
        min_cache_tokens=4096,
        structured_outputs=True,
    ),
}

# Deprecated ids: not defaults, but a config file may still name them (a warning is printed once).
# DEPRECATIONS: claude-opus-4-5 deprecated on 2026-11-23, retirement 2027-01-22, replacement
# claude-opus-5-5. PRICING: $5 / $25, 5m write $6.25, 1h write $10, cache read $0.50; minimum
# cacheable 4,096 (CACHING); extended thinking only (THINKING).
DEPRECATED_MODELS: dict[str, ModelEntry] = {
    "claude-opus-4-5": ModelEntry(
        limits=LOWEST_TIER,
        prices=Prices(input=5.0, output=25.0, cache_write=6.25, cache_write_1h=10.0, cache_read=0.50),
        min_cache_tokens=4096,
        structured_outputs=True,
        deprecated=True,
    ),
}


_DEPRECATION_WARNED: set[str] = set()


def warn_deprecated_once(model: str) -> None:
    """One line on stderr, once per process, for a deprecated model a config file names."""
    if model in _DEPRECATION_WARNED:
        return
    _DEPRECATION_WARNED.add(model)
    print(
        f"wildvalues: warning: {model} is deprecated and will be retired (see {DEPRECATIONS}); "
        "it is closed to new organisations, and claude-opus-5-5 is its replacement",
        file=sys.stderr,
    )


class AnalyzeSettings(Section):
    """The findings' settings (lib/wildvalues/analysis/findings.py documents how each is used)."""

    max_task_categories: NonNegativeInt = 20  # keyword clusters of task texts; the rest become 'other'
    min_count: PositiveInt = 5  # context tables: minimum margins and minimum n of a significant cell
    alpha: OpenFraction = 0.05
    correction: Literal["bonferroni", "bh"] = "bonferroni"  # as in the study; bh = Benjamini-Hochberg
    min_category_size: PositiveInt = 30  # value invariance: smaller categories give noisy shares
    watchlist: tuple[str, ...] = DEFAULT_WATCHLIST
    watchlist_exempt_words: tuple[str, ...] = DEFAULT_EXEMPT_WORDS
    watchlist_neighbours: Literal["candidates", "all", "none"] = "candidates"
    outlier_quantile: OpenFraction = 0.995
    outlier_min_score: float = 4.605170185988092  # log(100): rarer than 1 in 100 conversations
    anomaly_rate_factor: PositiveFloat = 2.0  # alert when the rate exceeds the previous run's x this
    suppression_k: PositiveInt = DEFAULT_K  # published aggregates drop groups under k conversations

    @field_validator("watchlist", "watchlist_exempt_words", mode="before")
    @classmethod
    def _list_not_string(cls, value: Any) -> Any:
        # A bare string would silently become a list of one-letter terms.
        if isinstance(value, str):
            raise ValueError("must be a list of terms, not a string")
        return value


PII_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_BANK_NUMBER",
    "US_SSN",
    "GOVERNMENT_ID",
    "STREET_ADDRESS",
    "IP_ADDRESS",
    "URL_WITH_CREDENTIALS",
    "DATE_OF_BIRTH",
)


# The placeholder each entity type is replaced by, unless privacy.placeholders says otherwise.
# LOCATION: places found by the NER model of privacy.ner_model (no pattern recognizer finds them).
PII_PLACEHOLDERS: dict[str, str] = {
    "PERSON": "<PERSON>",
    "EMAIL_ADDRESS": "<EMAIL>",
    "PHONE_NUMBER": "<PHONE>",
    "CREDIT_CARD": "<CREDIT_CARD>",
    "IBAN_CODE": "<IBAN>",
    "US_BANK_NUMBER": "<BANK_ACCOUNT>",
    "US_SSN": "<ID>",
    "GOVERNMENT_ID": "<ID>",
    "STREET_ADDRESS": "<ADDRESS>",
    "IP_ADDRESS": "<IP>",
    "URL_WITH_CREDENTIALS": "<URL>",
    "DATE_OF_BIRTH": "<DOB>",
    "LOCATION": "<LOCATION>",
}


class PrivacySettings(Section):
    """What is redacted before text is stored, who counts as one person, and the label auditor."""

    # Presidio entity types detected and replaced (lib/wildvalues/ingest/pii.py).
    entities: tuple[str, ...] = PII_ENTITIES
    # Placeholder per entity type, over PII_PLACEHOLDERS; an entity in neither becomes "<ENTITY_TYPE>".
    placeholders: dict[str, str] = Field(default_factory=dict)
    score_threshold: Fraction = 0.5  # Presidio's score a finding needs to be replaced
    # None: regex-and-context recognizers only (nothing to download). A spaCy model name or folder
    # (e.g. en_core_web_lg, installed separately) adds its named-entity recognizer for names and places.
    ner_model: str | None = None
    # The user or account id field (--user-field); stored only as a salted SHA-256 hash.
    user_field: str | None = None
    # The salt's environment variable; when unset a random salt is kept in <output>/_user_salt
    # (mode 0600), so hashes stay stable across runs of one output. Never logged.
    user_salt_env: str = "WILDVALUES_USER_SALT"
    # Published aggregates need this many distinct users as well as analyze.suppression_k
    # conversations. Without a user field every conversation counts as its own user.
    k_users: PositiveInt = 10
    # Every free-text label that leaves the system is rated 1 (identifies a person) .. 5 (not
    # identifying); labels rated under min_rating are suppressed. offline: PII hits, proper nouns
    # and rare tokens; claude: Claude with a rubric (needs an API key); auto: claude when the
    # classifier is anthropic, else offline.
    audit: Literal["auto", "offline", "claude", "off"] = "auto"
    audit_min_rating: Annotated[int, Field(ge=1, le=5)] = 3
    audit_model: str | None = None  # None: classifier.anthropic.model

    @field_validator("entities", mode="before")
    @classmethod
    def _entities_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("must be a list of entity types, not a string")
        return value


class ValidateSettings(Section):
    pct_sum_tolerance: NonNegativeFloat = 0.5
    # Tables up to this many rows are validated in pandas (GE on Spark costs a job per metric).
    pandas_max_rows: NonNegativeInt = 20_000
    # Tables collected for their suites by this many threads, ahead of the suite being run; 0
    # collects each table when its suite starts.
    fetch_threads: NonNegativeInt = 2


class MlflowSettings(Section):
    experiment: str = "wildvalues"
    top_values_csv_rows: PositiveInt = 100


class RunnerSettings(Section):
    # A progress line per running stage at most this often (seconds); 0 turns progress lines off.
    progress_seconds: NonNegativeFloat = 10.0
    # Small writes (aggregates collected and committed by the driver) in flight beside the stage,
    # so their queries overlap; 0 carries each out before the stage goes on.
    write_threads: NonNegativeInt = 2


class HistorySettings(Section):
    """How many runs the per-run tables keep (lib/wildvalues/io/history.py)."""

    # After each `wildvalues run`, and after the report of the latest run (the Databricks job's
    # last task), the rows of all but the newest keep_runs runs are deleted from every per-run
    # table; 0 keeps every run. Deleted rows stay in Delta history until VACUUM.
    keep_runs: NonNegativeInt = 0


class ReportSettings(Section):
    """The HTML report's screenshots of its interactive views (lib/wildvalues/reporting/screenshots.py)."""

    # auto: taken when Playwright and the browser are both present; true: required (an error
    # otherwise); false: never. They are written beside report.html and logged to MLflow.
    screenshots: Literal["auto"] | bool = "auto"
    browser: str = "/usr/bin/chromium"  # Debian's chromium; Playwright drives it, nothing is downloaded


class CrosscheckSettings(Section):
    """The second judge of `wildvalues crosscheck` (lib/wildvalues/analysis/crosscheck.py) and its sample."""

    # anthropic: another Claude model on the same API (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL);
    # openai: any OpenAI-compatible chat-completions endpoint at base_url, so a non-Claude model judges.
    judge: Literal["anthropic", "openai"] = "anthropic"
    model: str | None = None  # None (anthropic): the first configured Claude model other than the run's
    base_url: str | None = None  # openai: e.g. https://api.example.com/v1
    api_key_env: str = "OPENAI_API_KEY"  # openai: the environment variable holding the key (never logged)
    sample: PositiveInt = 200  # conversations re-classified, stratified on subjectivity x response type
    seed: int = 0  # the sample's order within each stratum
    concurrency: PositiveInt = 8  # openai: requests in flight per Spark task
    max_attempts: PositiveInt = 4  # openai: calls per conversation before it becomes an error row
    max_tokens: PositiveInt = 1024
    timeout: PositiveFloat = 120.0


class Settings(Section):
    """All settings of a run."""

    spark: SparkSettings = SparkSettings()
    tables: TableSettings = TableSettings()
    ingest: IngestSettings = IngestSettings()
    taxonomy: TaxonomySettings = TaxonomySettings()
    embeddings: EmbeddingSettings = EmbeddingSettings()
    discovery: DiscoverySettings = DiscoverySettings()
    classifier: ClassifierSettings = ClassifierSettings()
    models: dict[str, ModelEntry] = Field(default_factory=lambda: dict(DEFAULT_MODELS))
    batch_discount: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    analyze: AnalyzeSettings = AnalyzeSettings()
    validate_: ValidateSettings = Field(default=ValidateSettings(), alias="validate")
    mlflow: MlflowSettings = MlflowSettings()
    runner: RunnerSettings = RunnerSettings()
    history: HistorySettings = HistorySettings()
    crosscheck: CrosscheckSettings = CrosscheckSettings()
    report: ReportSettings = ReportSettings()
    privacy: PrivacySettings = PrivacySettings()

    def model_entry(self, model: str) -> ModelEntry:
        """Limits and prices of a model, or a one-line error naming the known ones."""
        entry = self.models.get(model) or DEPRECATED_MODELS.get(model)
        if entry is None:
            raise ConfigError(
                f"no limits or prices configured for model {model!r} (known: {', '.join(sorted(self.models))})"
            )
        if entry.deprecated:
            warn_deprecated_once(model)
        return entry

    def claude_model(self, chosen: str | None = None) -> str:
        """A task's Claude model: its own setting if given, else the classifier's."""
        return chosen or self.classifier.anthropic.model

    def audit_rater(self) -> str:
        """privacy.audit with auto resolved: claude when the classifier is anthropic, else offline."""
        if self.privacy.audit == "auto":
            return "claude" if self.classifier.name == "anthropic" else "offline"
        return self.privacy.audit

    def claude_models(self, stages: Sequence[str] = ("classify", "taxonomy", "analyze")) -> dict[str, str]:
        """Claude model -> the first of `stages` that calls it with these settings (each needs a key)."""
        calls: list[tuple[str, str]] = []
        if self.classifier.name == "anthropic":
            calls += [("classify", self.classifier.anthropic.model)]
            if self.classifier.screen_model:
                calls += [("classify", self.classifier.screen_model)]
        adjudicating = self.taxonomy.adjudicate and self.taxonomy.placement == "semantic"
        if adjudicating and self.taxonomy.mode != "discovered":  # discovered mode replaces the lineage
            calls += [("taxonomy", self.claude_model(self.taxonomy.adjudication_model))]
        if self.discovery.namer == "claude":
            naming = self.claude_model(self.discovery.naming_model)
            calls += [("discover", naming)] + ([("taxonomy", naming)] if self.taxonomy.mode != "published" else [])
        if self.audit_rater() == "claude":
            calls += [("analyze", self.claude_model(self.privacy.audit_model))]
        models: dict[str, str] = {}
        for stage, model in calls:
            if stage in stages:
                models.setdefault(model, stage)
        return models

    def uses_claude(self, stage: str) -> bool:
        """Whether `stage` calls Claude with these settings, and so needs an API key."""
        return bool(self.claude_models((stage,)))

    def classifier_model(self) -> str:
        """The model name recorded for the run: the Claude model, or 'offline'."""
        return self.classifier.anthropic.model if self.classifier.name == "anthropic" else "offline"

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain data, with the file's key names."""
        return self.model_dump(mode="json", by_alias=True)


@dataclass(frozen=True)
class Layer:
    """One source of settings: its name (a file path or a flag) and its mapping."""

    source: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class RunFacts:
    """What a run found at run time, logged beside the settings but never hashed with them."""

    taxonomy_path: str
    taxonomy_sha256: str
    input_path: str | None = None


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    for key, value in (extra or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_yaml_layer(path: str) -> Layer:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"config {path} is not valid YAML: {str(error).splitlines()[0]}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    return Layer(path, data)


def packaged_profile(env: str) -> str | None:
    """The path of the packaged `conf/<env>.yml`, or None when there is no such profile."""
    path = resources.files("wildvalues").joinpath(f"conf/{env}.yml")
    return str(path) if path.is_file() else None


def parse_assignment(text: str) -> dict[str, Any]:
    """`a.b.c=value` (value read as YAML) as the nested mapping {a: {b: {c: value}}}."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {text!r}: value is not valid YAML: {str(error).splitlines()[0]}") from error
    nested: dict[str, Any] = {}
    node = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return nested


def describe_error(error: ValidationError, source: str) -> str:
    """A pydantic error as one line: the file, the dotted key and what is wrong."""
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    more = error.error_count() - 1
    return f"{source}: {key}: {message}" + (f" (and {more} more)" if more else "")


def load_settings(layers: Sequence[Layer]) -> Settings:
    """The defaults with each layer merged on top, validated after each so errors name their source."""
    merged: dict[str, Any] = Settings().as_dict()
    settings = Settings()
    for layer in layers:
        merged = deep_merge(merged, layer.values)
        try:
            settings = Settings.model_validate(merged)
        except ValidationError as error:
            raise ConfigError(describe_error(error, layer.source)) from None
    return settings


def settings_for(
    env: str | None = None,
    config_path: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    assignments: Sequence[str] = (),
) -> Settings:
    """Defaults, the packaged profile for `env` (WILDVALUES_ENV, else local), a file, flags, `--set`."""
    profile = packaged_profile(env or os.environ.get("WILDVALUES_ENV", "local"))
    layers = [read_yaml_layer(path) for path in (profile, config_path) if path]
    if overrides:
        layers.append(Layer("command-line flags", overrides))
    layers += [Layer(f"--set {text}", parse_assignment(text)) for text in assignments]
    return load_settings(layers)


def settings_hash(settings: Settings) -> str:
    """A short hash of the settings alone: equal settings hash alike on every machine."""
    canonical = json.dumps(settings.as_dict(), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
