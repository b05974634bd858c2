"""The contract between a stage and the runner: what a stage is given and what it hands back.

A stage's function gets `StageInputs` (the session, typed settings, read-only lazy access to the
tables it declares, and what it asked the runner to resolve) and is a generator: it yields
`Write`, `Artifact`, `Log`, `Metrics` and `InputRead` requests and returns its typed summary
(what the CLI prints of it). It never writes, logs or tracks anything itself; the runner carries
out each request before the stage goes on, so a DataFrame that called a paid API is written
exactly once, when the stage yields it, and everything after reads the written table instead of
recomputing it. One exception: a small write (an aggregate) may still be running when the stage
goes on, so that its query overlaps the next; a read of that table waits for it, and `Committed`
waits for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from wildvalues.ingest.users import UserHasher
    from wildvalues.settings import Settings
    from wildvalues.taxonomy.embeddings import EmbedderSpec
    from wildvalues.taxonomy.tree import TreeNode

WriteMode = Literal["overwrite", "append", "create"]


@dataclass(frozen=True)
class Write:
    """Write `frame` to `table`; "create" writes only when the table does not exist yet.

    `small`: the frame is an aggregate the driver can hold (a level table, a findings table), so
    where Delta is written without the Spark jars it is collected and committed by the driver,
    sparing a Spark write job and its Python workers (about a second per table)."""

    table: str
    frame: DataFrame
    mode: WriteMode = "overwrite"
    small: bool = False


@dataclass(frozen=True)
class Committed:
    """Wait until every write requested so far has committed (small writes may still be running
    when the stage goes on): before unpersisting a frame those writes read."""


@dataclass(frozen=True)
class Artifact:
    """A file of the run: kept under the output directory (unless `keep_file` is False) and in MLflow."""

    name: str  # relative path, e.g. "report/report.html"; its folder is the MLflow artifact path
    content: bytes | str
    keep_file: bool = True


@dataclass(frozen=True)
class Log:
    message: str


@dataclass(frozen=True)
class Metrics:
    values: Mapping[str, float | int | None]


@dataclass(frozen=True)
class InputRead:
    """What the stage read of the run's input: its records and their order-independent fingerprint."""

    rows: int
    digest: str
    conversations: int  # the records kept as conversations: the run's size in its conversations/s


Request = Write | Committed | Artifact | Log | Metrics | InputRead
Summary = TypeVar("Summary")
# A stage's function: its requests, then its typed summary (what the CLI prints of it).
StageRun = Generator[Request, None, Summary]


class TableNotDeclared(KeyError):
    """A stage asked for a table it does not declare: the declaration is the contract."""


class Tables:
    """Read-only, lazy access to the tables a stage declares (reads and its own writes)."""

    def __init__(self, read: Callable[[str], DataFrame], exists: Callable[[str], bool], allowed: Sequence[str]) -> None:
        self._read = read
        self._exists = exists
        self._allowed = frozenset(allowed)

    def _check(self, name: str) -> None:
        if name not in self._allowed:
            raise TableNotDeclared(f"table {name!r} is not declared by this stage")

    def read(self, name: str) -> DataFrame:
        self._check(name)
        return self._read(name)

    def exists(self, name: str) -> bool:
        self._check(name)
        return self._exists(name)


@dataclass(frozen=True)
class StageOptions:
    """Per-invocation choices that are not settings (they do not change what a run means)."""

    limit: int | None = None  # ingest: only the first N records
    include_anomaly_ids: bool = True  # report: list the anomalies' conversation ids
    sides: tuple[str, ...] = ("ai", "human")  # discovery: whose values get a tree of their own


DEFAULT_OPTIONS = StageOptions()


Given = TypeVar("Given")


class NotProvided(LookupError):
    """A stage read an input it does not declare (or that its settings do not call for)."""


@dataclass(frozen=True)
class ClaudeAccess:
    """How a stage reaches Claude: the credential, and the models the stage declares it calls."""

    api_key: str
    models: tuple[str, ...]

    def key_for(self, model: str) -> str:
        """The credential for `model`; a model the stage did not declare is refused (the preflight checked only those)."""
        if model not in self.models:
            raise NotProvided(
                f"model {model!r} is not among the Claude models the stage declares ({', '.join(self.models)})"
            )
        return self.api_key


@dataclass(frozen=True)
class Provided:
    """What the runner resolved for a stage's declared needs; None where the stage declares no such need."""

    raw: DataFrame | None = None
    claude: ClaudeAccess | None = None
    judge_key: str | None = None
    embedder: EmbedderSpec | None = None


@dataclass(frozen=True)
class StageInputs:
    """What a stage is given: what every stage gets, and what it declares it needs (typed, see the properties)."""

    stage: str
    spark: SparkSession
    settings: Settings
    run_id: str
    tables: Tables
    # For requests made inside a callback, where a generator cannot yield (a Message Batch is
    # recorded the moment the API creates it): the runner carries it out at once.
    emit: Callable[[Request], None]
    options: StageOptions = DEFAULT_OPTIONS
    provided: Provided = Provided()
    tree: Sequence[TreeNode] = ()  # the taxonomy (stages that need "tree")
    users: UserHasher | None = None  # reads and hashes user ids (stages that need "users"); None without a user field
    baseline: Mapping[str, float] = field(default_factory=dict)  # the previous comparable run's metrics
    run_metrics: Mapping[str, float] = field(default_factory=dict)  # this run's metrics so far

    @property
    def raw(self) -> DataFrame:
        """The input records (stages that need "input")."""
        return self._given(self.provided.raw, 'the input records (need "input")')

    @property
    def claude(self) -> ClaudeAccess:
        """The credential for the Claude models the stage declares it calls with these settings."""
        return self._given(self.provided.claude, "Claude (Stage.claude_models names no model under these settings)")

    @property
    def judge_key(self) -> str:
        """The cross-check's second judge's key (stages that need "judge_key")."""
        return self._given(self.provided.judge_key, 'the second judge\'s key (need "judge_key")')

    @property
    def embedder(self) -> EmbedderSpec:
        """The resolved embedder (stages whose `Stage.embeds` is true under these settings)."""
        return self._given(self.provided.embedder, "the embedder (Stage.embeds is false under these settings)")

    def _given(self, value: Given | None, what: str) -> Given:
        if value is None:
            raise NotProvided(f"stage {self.stage} reads {what}, which it does not declare")
        return value


Need = Literal["input", "tree", "judge_key", "users", "baseline", "run_metrics"]


def calls_no_claude(settings: Settings) -> tuple[str, ...]:
    return ()


def never(settings: Settings) -> bool:
    return False


def always(settings: Settings) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """A stage declared once: its name, the tables it reads and writes, its function, and what is special about it."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    run: Callable[[StageInputs], StageRun[Any]]
    needs: frozenset[Need] = frozenset()
    description: str = ""
    # Modules the stage imports when it runs, slow enough (seconds) for the runner to import them
    # earlier, while it waits on an earlier stage's Spark jobs.
    imports: tuple[str, ...] = ()
    # The Claude models the stage calls under these settings: the preflight checks them and the
    # runner resolves a credential (`StageInputs.claude`) only when there is one.
    claude_models: Callable[[Settings], tuple[str, ...]] = calls_no_claude
    # Whether the stage embeds texts under these settings: the runner resolves the embedder then.
    embeds: Callable[[Settings], bool] = never
    # The run's checks: its total time and rate are recorded once it passed (what follows is extra).
    is_validation: bool = False
    # `wildvalues run --no-report` leaves it out.
    optional_in_run: bool = False


def claude_models(stages: Iterable[Stage], settings: Settings) -> dict[str, str]:
    """Claude model -> the first of `stages` that calls it with these settings (each needs a key)."""
    models: dict[str, str] = {}
    for stage in stages:
        for model in stage.claude_models(settings):
            models.setdefault(model, stage.name)
    return models
