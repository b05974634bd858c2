"""The settings' sections other than the classifier's: Spark, tables, ingest, taxonomy, embeddings, discovery, analysis, privacy, validation, MLflow, the runner, history, the report, the cross-check."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
    # Further Spark properties for a session the pipeline builds (ignored on Databricks and in a
    # notebook, whose session is already made). For small inputs, {"spark.sql.codegen.wholeStage":
    # "false", "spark.sql.adaptive.enabled": "false"} spends less CPU: compiling each query and
    # re-planning it cost more than they save on a few hundred rows (Testing).
    conf: dict[str, str] = {}

    @field_validator("conf")
    @classmethod
    def _spark_properties(cls, conf: dict[str, str]) -> dict[str, str]:
        wrong = [key for key in conf if not key.startswith("spark.")]
        if wrong:
            raise ValueError(f"not Spark properties (they start with 'spark.'): {', '.join(sorted(wrong))}")
        return conf


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
