"""The contract between a stage and the runner: what a stage is given and what it hands back.

A stage's function gets `StageInputs` (the session, typed settings, read-only lazy access to the
tables it declares, and what it asked the runner to resolve) and is a generator: it yields
`Write`, `Artifact`, `Log`, `Metrics` and `InputRead` requests and returns its summary. It never writes,
logs or tracks anything itself; the runner carries out each request before the stage goes on,
so a DataFrame that called a paid API is written exactly once, when the stage yields it, and
everything after reads the written table instead of recomputing it. One exception: a small write
(an aggregate) may still be running when the stage goes on, so that its query overlaps the next;
a read of that table waits for it, and `Committed` waits for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

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


Request = Write | Committed | Artifact | Log | Metrics | InputRead
StageRun = Generator[Request, None, dict[str, Any]]


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


@dataclass(frozen=True)
class StageInputs:
    spark: SparkSession
    settings: Settings
    run_id: str
    tables: Tables
    options: StageOptions = DEFAULT_OPTIONS
    raw: DataFrame | None = None  # the input records (stages that need "input")
    tree: Sequence[TreeNode] = ()  # the taxonomy (stages that need "tree")
    embedder: EmbedderSpec | None = None  # the resolved embedder (stages that need "embedder")
    api_key: str | None = None  # stages that need "api_key", with the anthropic classifier
    judge_key: str | None = None  # the cross-check's second judge's key (stages that need "judge_key")
    users: UserHasher | None = None  # reads and hashes user ids (stages that need "users", with a user field)
    baseline: Mapping[str, float] = field(default_factory=dict)  # the previous comparable run's metrics
    run_metrics: Mapping[str, float] = field(default_factory=dict)  # this run's metrics so far
    # For requests made inside a callback, where a generator cannot yield (a Message Batch is
    # recorded the moment the API creates it): the runner carries it out at once.
    emit: Callable[[Request], None] | None = None


Need = Literal["input", "tree", "embedder", "api_key", "judge_key", "users", "baseline", "run_metrics"]


@dataclass(frozen=True)
class Stage:
    """A stage declared once: its name, the tables it reads and writes, and its function."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    run: Callable[[StageInputs], StageRun]
    needs: frozenset[Need] = frozenset()
    description: str = ""
    # Modules the stage imports when it runs, slow enough (seconds) for the runner to import them
    # earlier, while it waits on an earlier stage's Spark jobs.
    imports: tuple[str, ...] = ()
