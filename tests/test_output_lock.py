"""wildvalues.pipeline.output_lock: one writer per output, its holder named, stale locks taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest

from wildvalues.pipeline import output_lock
from wildvalues.pipeline.output_lock import Holder, OutputLocked

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.e2e import wildvalues
else:
    from e2e import wildvalues


def write_lock(output, holder: Holder, age: float = 0.0) -> str:
    os.makedirs(output, exist_ok=True)
    path = output_lock.lock_path(str(output))
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(holder.__dict__, handle)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_holding_writes_the_holder_and_removes_the_lock_after(tmp_path):
    out = tmp_path / "out"
    with output_lock.holding(str(out), "wildvalues run --output out") as holder:
        assert output_lock.read_holder(output_lock.lock_path(str(out))) == holder
        assert holder == Holder(socket.gethostname(), os.getpid(), "wildvalues run --output out", holder.started_at)
    assert not os.path.exists(output_lock.lock_path(str(out)))


def test_a_second_writer_stops_with_one_line_naming_the_holder(tmp_path):
    live = Holder(socket.gethostname(), os.getpid(), "wildvalues run --output x", "2026-12-02 10:00:00 UTC")
    path = write_lock(tmp_path, live)
    with pytest.raises(OutputLocked) as raised:
        output_lock.acquire(str(tmp_path), output_lock.this_process("wildvalues report --output x"))
    assert str(raised.value) == (
        f"output {tmp_path} is locked by 'wildvalues run --output x' (pid {os.getpid()} on "
        f"{socket.gethostname()}, since 2026-12-02 10:00:00 UTC); wait for it (--wait) or, if that "
        f"process is gone for good, delete {path}"
    )
    assert output_lock.read_holder(path) == live


def test_a_lock_whose_process_died_is_taken_over(tmp_path):
    gone = Holder(socket.gethostname(), dead_pid(), "wildvalues run --output x", "2026-12-02 10:00:00 UTC")
    write_lock(tmp_path, gone)
    told: list[str] = []
    me = output_lock.this_process("wildvalues run --output x")
    path = output_lock.acquire(str(tmp_path), me, on_wait=told.append)
    assert output_lock.read_holder(path) == me
    assert told == [f"took over a stale lock on {tmp_path} left by {gone.describe()}"]


def test_another_hosts_lock_is_stale_only_when_its_heartbeat_stopped(tmp_path):
    remote = Holder("driver-elsewhere", 4242, "wildvalues run --output x", "2026-12-02 10:00:00 UTC")
    path = write_lock(tmp_path, remote, age=60)
    assert not output_lock.is_stale(path, remote, stale_after=300)
    assert output_lock.is_stale(path, remote, stale_after=30)
    with pytest.raises(OutputLocked, match="driver-elsewhere"):
        output_lock.acquire(str(tmp_path), output_lock.this_process("c"), stale_after=300)


def test_a_half_written_lock_is_stale_after_a_heartbeat(tmp_path):
    path = output_lock.lock_path(str(tmp_path))
    open(path, "w").close()
    assert not output_lock.is_stale(path, None, stale_after=300)
    old = time.time() - output_lock.HEARTBEAT_SECONDS - 1
    os.utime(path, (old, old))
    assert output_lock.is_stale(path, None, stale_after=300)


def test_wait_takes_the_lock_when_the_holder_releases_it(tmp_path):
    first = output_lock.this_process("first")
    path = output_lock.acquire(str(tmp_path), first)
    second = Holder(first.host, first.pid, "second", first.started_at)
    told: list[str] = []
    threading.Timer(0.5, output_lock.release, (path, first)).start()
    output_lock.acquire(str(tmp_path), second, wait=True, poll_seconds=0.05, on_wait=told.append)
    assert output_lock.read_holder(path) == second
    assert told == [f"waiting for the lock on {tmp_path}, held by {first.describe()}"]


def test_release_leaves_a_lock_taken_over_by_another_process(tmp_path):
    mine = output_lock.this_process("mine")
    path = output_lock.acquire(str(tmp_path), mine)
    theirs = Holder("other-host", 1, "theirs", mine.started_at)
    write_lock(tmp_path, theirs)
    output_lock.release(path, mine)
    assert output_lock.read_holder(path) == theirs


def test_cli_stops_at_once_when_a_live_process_holds_the_output(tmp_path):
    holder_process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = Holder(socket.gethostname(), holder_process.pid, "wildvalues run --output out", "2026-12-02 10:00 UTC")
        write_lock(tmp_path / "out with space", live)
        (tmp_path / "in.jsonl").write_text("{}\n")
        started = time.monotonic()
        result = wildvalues("run", "--input", "in.jsonl", "--output", "out with space", cwd=tmp_path)
        elapsed = time.monotonic() - started
    finally:
        holder_process.kill()
        holder_process.wait()
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        f"wildvalues: error: output out with space is locked by 'wildvalues run --output out' "
        f"(pid {holder_process.pid} on {socket.gethostname()}"
    )
    assert elapsed < 30  # before Spark starts
    assert not (tmp_path / "out with space" / "tables").exists()


def test_cli_takes_over_the_lock_of_a_killed_run(tmp_path):
    gone = Holder(socket.gethostname(), dead_pid(), "wildvalues run --output out", "2026-12-02 10:00 UTC")
    path = write_lock(tmp_path / "out", gone)
    result = wildvalues("report", "--output", "out", cwd=tmp_path)
    assert f"wildvalues: took over a stale lock on out left by {gone.describe()}\n" in result.stderr
    assert result.stderr.endswith("wildvalues: error: no tables under out; run `wildvalues run` first\n")
    assert result.returncode == 2
    assert not os.path.exists(path)
