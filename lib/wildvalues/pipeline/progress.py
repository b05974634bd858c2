"""Progress lines for long stages: what is done, the rate over wall time, and the time left.

The formatting is pure (numbers and a clock reading in, one line out) so it is tested exactly;
`StageProgress` is the runner's poller: a daemon thread that reads Spark's StatusTracker for the
stage's job group and hands at most one line every `every` seconds to the runner's log. Plain
lines, never a redrawn bar, so logs in files, CI and Databricks stay readable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Snapshot:
    """Where a stage stands: Spark tasks of its running jobs, and records when a counter knows them."""

    tasks_done: int = 0
    tasks_total: int = 0
    records: int | None = None
    records_total: int | None = None
    unit: str = "records"
    jobs: tuple[int, ...] = ()  # the running jobs the tasks belong to


def format_duration(seconds: float) -> str:
    """45s, 3m05s, 2h07m: short enough for a progress line."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _rate(amount: float, elapsed: float) -> float:
    return amount / elapsed if elapsed > 0 else 0.0


def time_left(snapshot: Snapshot, elapsed: float, busy: float | None = None) -> float | None:
    """Seconds left at the rate so far (over wall time); None while nothing is done yet.

    Records are timed over `elapsed`; tasks over `busy`, the seconds their jobs have been running
    (a stage runs several jobs one after another, each with its own tasks)."""
    if snapshot.records is not None and snapshot.records_total:
        done, total, seconds = snapshot.records, snapshot.records_total, elapsed
    else:
        done, total = snapshot.tasks_done, snapshot.tasks_total
        seconds = elapsed if busy is None else busy
    if done <= 0 or total <= 0 or seconds <= 0:
        return None
    return max(0.0, total - done) * seconds / done


def format_progress(stage: str, snapshot: Snapshot, elapsed: float, busy: float | None = None) -> str:
    """One progress line: `classify: 40/80 tasks in 20s, 2.0 tasks/s, 1m10s elapsed, ~20s left`.

    `busy`: the seconds the running jobs have run, when known (the tasks' rate is over it)."""
    tasks_seconds = elapsed if busy is None else busy
    parts = []
    if snapshot.tasks_total:
        since = f" in {format_duration(busy)}" if busy is not None else ""
        parts.append(f"{snapshot.tasks_done:,}/{snapshot.tasks_total:,} tasks{since}")
    if snapshot.records is not None:
        total = f"/{snapshot.records_total:,}" if snapshot.records_total is not None else ""
        parts.append(f"{snapshot.records:,}{total} {snapshot.unit}")
        parts.append(f"{_rate(snapshot.records, elapsed):,.1f} {snapshot.unit}/s")
    elif snapshot.tasks_total:
        parts.append(f"{_rate(snapshot.tasks_done, tasks_seconds):,.1f} tasks/s")
    parts.append(f"{format_duration(elapsed)} elapsed")
    left = time_left(snapshot, elapsed, busy)
    parts.append(f"~{format_duration(left)} left" if left is not None else "time left unknown")
    return f"{stage}: " + ", ".join(parts)


def spark_snapshot(context: Any, group: str) -> Snapshot:
    """Tasks done and in total over the stages of the group's running jobs (StatusTracker numbers).

    Stages neither running nor complete are left out: a skipped stage never completes a task and
    would make the time left endless."""
    tracker = context.statusTracker()
    active = set(tracker.getActiveStageIds())
    done = total = 0
    running = []
    for job_id in sorted(tracker.getJobIdsForGroup(group)):
        job = tracker.getJobInfo(job_id)
        if job is None or job.status != "RUNNING":
            continue
        running.append(job_id)
        for stage_id in job.stageIds:
            stage = tracker.getStageInfo(stage_id)
            if stage is None or (stage_id not in active and stage.numCompletedTasks < stage.numTasks):
                continue
            done += stage.numCompletedTasks
            total += stage.numTasks
    return Snapshot(done, total, jobs=tuple(running))


class StageProgress:
    """While a stage runs, log a progress line every `every` seconds (0: never).

    Nothing is logged while no Spark job of the group runs (the driver is reading, writing Delta
    or waiting on the API), so a quiet stage stays quiet. Spark is asked every second at most, so
    that when the running jobs change, the time they have run starts again near the change."""

    def __init__(
        self,
        stage: str,
        read: Callable[[], Snapshot],
        log: Callable[[str], None],
        every: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stage, self.read, self.log, self.every, self.clock = stage, read, log, every, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = self._jobs_since = clock()
        self._jobs: tuple[int, ...] = ()

    def __enter__(self) -> StageProgress:
        self.started = self._jobs_since = self.clock()
        if self.every > 0:
            self._thread = threading.Thread(target=self._loop, name=f"progress-{self.stage}", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def tick(self) -> str | None:
        """The line for now, or None when no task of the stage is running."""
        try:
            snapshot = self.read()
        except Exception:  # noqa: BLE001 - progress is advisory; a closing SparkContext must not fail the stage
            return None
        now = self.clock()
        if snapshot.jobs != self._jobs:
            self._jobs, self._jobs_since = snapshot.jobs, now
        if snapshot.tasks_total == 0 and snapshot.records is None:
            return None
        busy = now - self._jobs_since if snapshot.jobs else None
        return format_progress(self.stage, snapshot, now - self.started, busy)

    def _loop(self) -> None:
        shown = self.clock()
        while not self._stop.wait(min(self.every, 1.0)):
            line = self.tick()
            if line is not None and self.clock() - shown >= self.every:
                shown = self.clock()
                self.log(line)
