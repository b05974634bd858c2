"""The one runner: reads a stage's inputs, carries out its writes, times it, logs and tracks it.

Stages (`wildvalues.stages`) never touch storage or MLflow: they yield requests, and this class
carries each out before the stage continues. The CLI, the `jobs/` entry points, the notebooks
and the benchmarks all run stages through it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import importlib
import os
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from pyspark import SparkContext
from pyspark.sql import DataFrame, SparkSession

from wildvalues.ingest.users import UserHasher, resolve_salt
from wildvalues.io import history, registry
from wildvalues.io.tables import TableStore
from wildvalues.io.tracking import INPUT_PARAM, Tracker, code_version
from wildvalues.pipeline.progress import Snapshot, StageProgress, spark_snapshot
from wildvalues.pipeline.stage import (
    DEFAULT_OPTIONS,
    Artifact,
    ClaudeAccess,
    Committed,
    InputRead,
    Log,
    Metrics,
    Provided,
    Request,
    Stage,
    StageInputs,
    StageOptions,
    Tables,
    Write,
)
from wildvalues.settings import RunFacts, Settings, settings_hash
from wildvalues.taxonomy.embeddings import EmbedderSpec, build_embedder, resolve_embedder
from wildvalues.taxonomy.tree import TreeNode, resolve_taxonomy

if TYPE_CHECKING:
    from wildvalues.io.readers import InputFiles


@dataclass(frozen=True)
class RunTotals:
    """The whole run's time and rate, recorded once its validation passed."""

    seconds: float
    conversations_per_second: float


def new_run_id() -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def print_log(message: str) -> None:
    print(f"[wildvalues] {message}", flush=True)


@dataclass
class Runner:
    """Runs declared stages for one run id against one table store and (optionally) one MLflow run."""

    spark: SparkSession
    settings: Settings
    store: TableStore
    run_id: str
    tracker: Tracker | None = None
    input_path: str | None = None
    log: Callable[[str], None] = print_log
    local_dir: str = ""  # where under the output the artifacts' files are kept (a past run's report: its own)
    metrics: dict[str, float] = field(default_factory=dict)
    # What the run's summary prints beside the stages' own summaries.
    stage_seconds: dict[str, float] = field(default_factory=dict)
    totals: RunTotals | None = None  # once the validation passed
    input_files: InputFiles | None = None  # the input's files by reader, when read from files
    conversations: int = 0  # the input records kept as conversations (InputRead)
    _tree: list[TreeNode] | None = None
    _facts: RunFacts | None = None
    _embedder: EmbedderSpec | None = None
    _behind: _WriteBehind = field(init=False, repr=False, default_factory=lambda: _WriteBehind())
    _preloads: _Preloads = field(init=False, repr=False, default_factory=lambda: _Preloads(()))

    # -- facts resolved once per run

    def tree(self) -> list[TreeNode]:
        if self._tree is None:
            self._tree, self._facts = resolve_taxonomy(self.settings)
        return self._tree

    def facts(self) -> RunFacts:
        self.tree()
        assert self._facts is not None
        return RunFacts(self._facts.taxonomy_path, self._facts.taxonomy_sha256, self.input_path)

    def embedder(self) -> EmbedderSpec:
        """The embedder the settings ask for, resolved once; a lexical fallback is said out loud."""
        if self._embedder is None:
            self._embedder = resolve_embedder(self.settings.embeddings)
            if self._embedder.fallback_reason:
                self.log(
                    f"embeddings: using the lexical fallback (spelling, not meaning): {self._embedder.fallback_reason}"
                )
        return self._embedder

    def embedder_name(self) -> str:
        """The embedder as params and summaries name it: its id, and 'fallback' when it is one."""
        spec = self.embedder()
        name = build_embedder(spec).id
        return f"{name} (fallback)" if spec.fallback_reason else name

    def claude_access(self, stage: Stage) -> ClaudeAccess | None:
        """The credential for the Claude models the stage calls under these settings; None when it calls none."""
        models = stage.claude_models(self.settings)
        if not models:
            return None
        from wildvalues.classifier.claude_settings import require_api_key

        return ClaudeAccess(require_api_key(self.settings, self.spark), models)

    def judge_key(self) -> str:
        """The key of the cross-check's second judge: Anthropic's, or the env var the settings name."""
        from wildvalues.classifier.claude_settings import require_judge_key

        return require_judge_key(self.settings, self.spark)

    def user_hasher(self) -> UserHasher | None:
        """Hashes the user field's ids under the output's salt; None without a user field."""
        privacy = self.settings.privacy
        if not privacy.user_field:
            return None
        return UserHasher(privacy.user_field, resolve_salt(privacy.user_salt_env, self.store.output_dir))

    # -- tracking

    def record(self, values: Mapping[str, Any]) -> None:
        clean = {k: float(v) for k, v in values.items() if v is not None}
        self.metrics.update(clean)
        if self.tracker:
            self.tracker.metrics(clean)

    def log_run_params(self) -> None:
        """The run's settings (hashed and as YAML) and facts, once per MLflow run."""
        if not self.tracker:
            return
        facts = self.facts()
        self.tracker.params(
            {
                INPUT_PARAM: self.input_path or "",
                "format": self.settings.ingest.format,
                "classifier": self.settings.classifier.name,
                "model": self.settings.classifier_model(),
                "taxonomy_source": facts.taxonomy_path,
                "taxonomy_sha256": facts.taxonomy_sha256,
                "config_hash": settings_hash(self.settings),
                "placement": self.settings.taxonomy.placement,
                "embedder": self.embedder_name() if self.uses_embeddings() else "none",
                "code_version": code_version(),
                "run_id": self.run_id,
            }
        )
        self.tracker.config(self.settings.as_dict())

    def uses_embeddings(self) -> bool:
        return self.settings.uses_embeddings()

    def baseline(self) -> dict[str, float]:
        """The previous comparable run's metrics (same experiment, same input source)."""
        return self.tracker.previous_run_metrics("anomaly_rate") if self.tracker else {}

    # -- running

    def run(self, stages: Iterable[Stage], options: StageOptions = DEFAULT_OPTIONS) -> dict[str, Any]:
        """Each stage in order, its typed summary by its name; the total time and overall rate recorded after the validation."""
        started = time.monotonic()
        summaries: dict[str, Any] = {}
        stages = tuple(stages)
        self._preloads = _Preloads(module for stage in stages for module in stage.imports)
        for stage in stages:
            summaries[stage.name] = self.run_stage(stage, options)
            if stage.is_validation:
                self._record_totals(started)
        return summaries

    def _record_totals(self, started: float) -> None:
        elapsed = time.monotonic() - started
        rate = self.conversations / elapsed if elapsed else 0.0
        self.totals = RunTotals(elapsed, rate)
        self.record({"seconds_total": elapsed, "conversations_per_second": rate})

    def run_stage(self, stage: Stage, options: StageOptions = DEFAULT_OPTIONS) -> Any:
        """One stage: its inputs resolved, its requests carried out in order, its time and Spark jobs recorded."""
        self.log(f"{stage.name}: started")
        start = time.monotonic()
        jobs = _SparkJobs(self.spark, f"wildvalues-{self.run_id}-{stage.name}")
        threads = self.settings.runner.write_threads if self._writes_behind() else 0
        self._behind = _WriteBehind(jobs, threads, on_long_wait=self._preloads.import_next)
        work = stage.run(self._inputs(stage, options))
        with jobs.progress(stage.name, self.settings.runner.progress_seconds, self.log):
            try:
                request = next(work)
                while True:
                    self._carry_out(stage, request)
                    request = next(work)
            except StopIteration as finished:
                summary = finished.value
                self._behind.close()
            except BaseException:
                with contextlib.suppress(Exception):  # the stage's own error is the one to report
                    self._behind.close()
                work.close()  # runs the stage's cleanup (unpersist) before the error goes on
                raise
        seconds = time.monotonic() - start
        n_jobs = jobs.finish()
        self.stage_seconds[stage.name] = seconds
        self.record({f"seconds_{stage.name}": seconds, f"spark_jobs_{stage.name}": n_jobs})
        jobs_note = f", {n_jobs} Spark job(s)" if n_jobs is not None else ""
        self.log(f"{stage.name}: done in {seconds:.1f}s{jobs_note}")
        return summary

    def _inputs(self, stage: Stage, options: StageOptions) -> StageInputs:
        """The stage's inputs, each declared need resolved before it starts (a one-line error when one cannot be)."""
        allowed = (*stage.reads, *stage.writes)
        # A stage sees only its own run's rows of the per-run tables.
        view = history.RunView(self.store, self.run_id)
        raw = self._read_input(stage) if "input" in stage.needs else None
        tree = self.tree() if "tree" in stage.needs else ()
        provided = Provided(
            raw=raw,
            embedder=self.embedder() if stage.embeds(self.settings) else None,
            claude=self.claude_access(stage),
            judge_key=self.judge_key() if "judge_key" in stage.needs else None,
        )
        return StageInputs(
            stage=stage.name,
            spark=self.spark,
            settings=self.settings,
            run_id=self.run_id,
            tables=Tables(self._after_write(view.read), self._after_write(view.exists), allowed),
            emit=lambda request: self._carry_out(stage, request),
            options=options,
            provided=provided,
            tree=tree,
            users=self.user_hasher() if "users" in stage.needs else None,
            baseline=self.baseline() if "baseline" in stage.needs else {},
            run_metrics=dict(self.metrics) if "run_metrics" in stage.needs else {},
        )

    def _writes_behind(self) -> bool:
        """Small writes can go on in the background where the driver commits them (path tables without the Delta jars)."""
        from wildvalues.io.delta_io import native_delta_available

        return self.store.mode == "path" and not native_delta_available(self.spark)

    def _after_write(self, look: Callable[[str], Any]) -> Callable[[str], Any]:
        """`look` (a read or an existence check) once the table's pending write has committed."""

        def waited(name: str) -> Any:
            self._behind.wait(name)
            return look(name)

        return waited

    def _read_input(self, stage: Stage) -> DataFrame:
        from wildvalues.io.readers import InputError, input_files, is_delta_table, read_raw_records

        if not self.input_path:
            raise InputError(f"the {stage.name} stage needs --input")
        path = self.input_path
        files = None if is_delta_table(path) else input_files(path)
        if files and files.skipped:
            self._log_skipped_files(stage, path, files.skipped)
        if files and self.settings.ingest.format not in ("parquet", "delta"):
            self.log(f"{stage.name}: reading {files.describe()}")
            self.input_files = files
            self.record(
                {
                    "input_files_jsonl": len(files.jsonl),
                    "input_files_json_array": len(files.json_arrays),
                    "input_files_parquet": len(files.parquet),
                }
            )
        return read_raw_records(self.spark, path, self.settings.ingest.format, files=files)

    def _log_skipped_files(self, stage: Stage, path: str, skipped: tuple[str, ...]) -> None:
        names = ", ".join(os.path.relpath(f, path) if os.path.isdir(path) else f for f in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        self.log(f"{stage.name}: skipped {len(skipped)} hidden or _-prefixed file(s): {names}{more}")

    def _carry_out(self, stage: Stage, request: Request) -> None:
        if isinstance(request, Write):
            self._write(stage, request)
        elif isinstance(request, Committed):
            self._behind.wait_all()
        elif isinstance(request, Metrics):
            self.record(request.values)
        elif isinstance(request, Artifact):
            self._artifact(request)
        elif isinstance(request, Log):
            self.log(f"{stage.name}: {request.message}")
        elif isinstance(request, InputRead):
            self.conversations = request.conversations
            if self.tracker and self.input_path:
                self.tracker.input_dataset(self.input_path, request.digest, request.rows)
        else:
            raise TypeError(f"stage {stage.name} yielded {request!r}, not a request")

    def _write(self, stage: Stage, request: Write) -> None:
        if request.table not in stage.writes:
            raise ValueError(f"stage {stage.name} wrote {request.table!r}, which it does not declare")
        if request.mode == "create":
            self._behind.wait(request.table)
            if not self.store.exists(request.table):
                self.store.write(request.table, request.frame, small=request.small)
            return
        frame, run_id = request.frame, None
        if registry.is_history(request.table, frame.columns):
            frame, run_id = history.stamped(request.table, frame, self.run_id), self.run_id
        write = partial(self.store.write, request.table, frame, mode=request.mode, run_id=run_id, small=request.small)
        if request.small:
            self._behind.submit(request.table, write)
        else:
            self._behind.wait(request.table)
            write()

    def _artifact(self, artifact: Artifact) -> None:
        folder = os.path.dirname(artifact.name) or None
        if not artifact.keep_file:
            if self.tracker:
                text = artifact.content if isinstance(artifact.content, str) else artifact.content.decode()
                self.tracker.text(text, artifact.name)
            return
        path = os.path.join(self.store.output_dir, self.local_dir, artifact.name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(artifact.content, bytes):
            with open(path, "wb") as handle:
                handle.write(artifact.content)
        else:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(artifact.content)
        if self.tracker:
            self.tracker.artifact(path, folder)

    # -- what commands ask of the store, kept here so nothing else reads it

    def runs(self) -> list[str]:
        """The output's run ids, oldest first."""
        return history.run_ids(self.store)

    def latest_run_id(self) -> str | None:
        runs = self.runs()
        return runs[-1] if runs else None

    def require_run(self, run_id: str) -> None:
        """A one-line error unless ingest created `run_id` in this output."""
        history.require_run(run_id, self.runs(), self.store.output_dir)

    def apply_retention(self) -> list[str]:
        """Deletes the rows of all but the newest `history.keep_runs` runs from every per-run table."""
        expired = [r for r in history.expired_runs(self.runs(), self.settings.history.keep_runs) if r != self.run_id]
        if not expired:
            return []
        for name in self.store.names():
            columns = self.store.read(name).columns
            if registry.is_history(name, columns) and registry.RUN_COLUMN in columns:
                self.store.delete_runs(name, expired)
        self.log(
            f"history: kept the newest {self.settings.history.keep_runs} run(s), deleted the rows of "
            f"{len(expired)} older run(s): {', '.join(expired)} (in Delta history until VACUUM)"
        )
        return expired


WAIT_GRACE_SECONDS = 0.25


class _Preloads:
    """Modules later stages import (`Stage.imports`), imported while the driver only waits on Spark.

    Great Expectations takes 2 s to import: in the validate stage that is 2 s of the run, while
    an analysis write commits it is time the driver had idle. The import runs in the thread that
    waits, so the runner never imports in two threads at once."""

    def __init__(self, modules: Iterable[str]) -> None:
        self.todo = deque(dict.fromkeys(modules))

    def import_next(self) -> bool:
        """Import the next module not imported yet; False when none is left."""
        while self.todo:
            name = self.todo.popleft()
            if name in sys.modules:
                continue
            # A module that fails here fails again in its stage, which reports it in its own words.
            with contextlib.suppress(Exception):
                importlib.import_module(name)
            return True
        return False


class _WriteBehind:
    """Small writes carried out by background threads while the stage builds its next frame.

    A small write is a query (collect as Arrow) and one Delta commit from the driver; a stage's
    requests come one at a time, so without this each query ran alone on a mostly idle machine.
    A read of a table, or another write to it, waits for its pending write, and the stage ends
    only when every write has committed (the first failure is raised then). `on_long_wait`:
    called once in each wait on writes that outlasts WAIT_GRACE_SECONDS."""

    def __init__(
        self, jobs: _SparkJobs | None = None, threads: int = 0, on_long_wait: Callable[[], object] = lambda: None
    ) -> None:
        self.jobs = jobs
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="wildvalues-write") if threads else None
        self.pending: dict[str, Future[None]] = {}
        self.on_long_wait = on_long_wait

    def submit(self, table: str, write: Callable[[], None]) -> None:
        self.wait(table)
        if self.pool is None:
            write()
            return

        def in_stage_group() -> None:
            if self.jobs is not None:
                self.jobs.join()  # the thread's jobs count as the stage's, and show in its progress
            write()

        self.pending[table] = self.pool.submit(in_stage_group)

    def wait(self, table: str) -> None:
        future = self.pending.pop(table, None)
        if future is not None:
            self._use_the_wait([future])
            future.result()

    def wait_all(self) -> None:
        """Every pending write finished; the first that failed raises its error."""
        futures, self.pending = list(self.pending.values()), {}
        self._use_the_wait(futures)
        concurrent.futures.wait(futures)
        for future in futures:
            future.result()

    def _use_the_wait(self, futures: list[Future[None]]) -> None:
        # A write still running after the grace is likely a query of seconds: worth filling with
        # one import (one: an import of 2 s at the end of a wait of 2.5 s would stand in the run's
        # way). Over a commit of a tenth of a second, any import would.
        _, running = concurrent.futures.wait(futures, timeout=WAIT_GRACE_SECONDS)
        if running:
            self.on_long_wait()

    def close(self) -> None:
        try:
            self.wait_all()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True)


class _SparkJobs:
    """Counts the Spark jobs a stage starts (a job group per stage), so repeated actions show up.

    None where the session has no SparkContext to ask (Spark Connect, serverless).
    """

    def __init__(self, spark: SparkSession, group: str) -> None:
        self.group = group
        self.context: SparkContext | None
        try:
            self.context = spark.sparkContext
        except Exception:  # noqa: BLE001 - Spark Connect raises its own error types here
            self.context = None
            return
        self.context.setJobGroup(group, group)

    def join(self) -> None:
        """Put the calling thread's jobs in the stage's group (Spark keeps the group per thread)."""
        if self.context is not None:
            self.context.setJobGroup(self.group, self.group)

    def progress(self, stage: str, every: float, log: Callable[[str], None]) -> StageProgress:
        """Progress lines from the group's running jobs while the stage runs (none without a SparkContext)."""
        context = self.context
        if context is None:
            return StageProgress(stage, Snapshot, log, 0)
        return StageProgress(stage, lambda: spark_snapshot(context, self.group), log, every)

    def finish(self) -> int | None:
        if self.context is None:
            return None
        jobs = len(self.context.statusTracker().getJobIdsForGroup(self.group))
        self.context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
        return jobs


def runner_for_output(
    output_dir: str, settings: Settings, spark: SparkSession | None = None, run_id: str = "notebook"
) -> Runner:
    """A runner over an existing output (no MLflow run): for notebooks and read-only commands."""
    from wildvalues.pipeline.spark import build_session

    session = spark or build_session(settings.spark)
    return Runner(session, settings, TableStore(session, output_dir, settings.tables), run_id)
