"""The `wildvalues` command run inside the test process, as a subprocess would see it.

`wildvalues.cli.main(argv)` runs with the test session's SparkSession (the commands take the active
session), its own environment and working directory, and its output captured at the
file-descriptor level (print, logging, warnings and the JVM's own writes alike). `SystemExit`
(argparse) becomes the exit code. The result has a `CompletedProcess`'s fields, so a test reads
it the same way whether the command ran here or in a process of its own.

Run a real process instead only where the process itself is what a test proves: an exit code as
the shell sees it, the interpreter's teardown, a kill, a lock held by another process.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

# One command at a time: the environment, the working directory and fds 1 and 2 are the process's.
_ONE_AT_A_TIME = threading.Lock()


@dataclass(frozen=True)
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def run_cli(args: list[str], cwd: str | Path, env: Mapping[str, str]) -> CliResult:
    """`wildvalues *args` in this process, in `cwd`, with exactly `env` as its environment."""
    from wildvalues import cli

    _session()  # the test session's Spark, whichever comes first: a fixture or a command
    forget_mlflow_artifact_locations()
    argv = [str(a) for a in args]
    with _ONE_AT_A_TIME, _environment(env), _working_directory(cwd), _captured() as captured:
        code = _exit_code(cli.main, argv)
    return CliResult(argv, code, captured.stdout, captured.stderr)


def forget_mlflow_artifact_locations() -> None:
    """Start each command without MLflow's process-wide artifact locations, as a new process does.

    MLflow caches each run's artifact repository by run id alone
    (mlflow/tracking/_tracking_service/client.py, `_get_artifact_repo`), so a command on a copied
    output, whose runs keep their ids, would log into the original's artifacts after any earlier
    command in this process had touched them."""
    from mlflow.tracking._tracking_service import utils

    utils._artifact_repos_cache.clear()


def _session() -> None:
    if TYPE_CHECKING:
        from tests.conftest import test_session
    else:
        from conftest import test_session

    test_session()


def _exit_code(main, argv: list[str]) -> int:
    try:
        return int(main(argv) or 0)
    except SystemExit as stop:  # argparse's --help and usage errors, as the shell would see them
        if stop.code is None:
            return 0
        if isinstance(stop.code, int):
            return stop.code
        print(stop.code, file=sys.stderr)
        return 1


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    before = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


@contextlib.contextmanager
def _working_directory(cwd: str | Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(before)


class _Captured:
    stdout = ""
    stderr = ""


@contextlib.contextmanager
def _captured() -> Iterator[_Captured]:
    """fds 1 and 2 (and sys.stdout / sys.stderr over them) into files for the duration."""
    captured = _Captured()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        streams = (sys.stdout, sys.stderr)
        for stream in streams:
            stream.flush()
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout, sys.stderr = _text_stream(1), _text_stream(2)
        try:
            yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = streams
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            captured.stdout = _read(out)
            captured.stderr = _read(err)


def _text_stream(fd: int) -> io.TextIOWrapper:
    """A line-buffered text stream over `fd` that leaves the descriptor open when it is dropped."""
    return io.TextIOWrapper(io.FileIO(fd, "wb", closefd=False), encoding="utf-8", line_buffering=True)


def _read(handle) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", errors="replace")
