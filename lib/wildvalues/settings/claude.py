"""The classifier's settings: offline or Claude, request kinds, providers, client limits, and the model table (prices, rate limits, capabilities) from Anthropic's documentation."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from wildvalues.settings.sections import (
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Section,
)

CLASSIFIER_NAMES = ("offline", "anthropic")


# How the answer comes back: JSON text under `output_config.format`, a `strict: true` tool, or a
# forced tool call (the only one for models without structured outputs).
OUTPUT_SHAPES = ("json_schema", "strict_tool", "forced_tool")


OUTPUT_CHOICES = ("auto", *OUTPUT_SHAPES)


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
