"""One writer per output: a lock file that names its holder and that a killed holder cannot keep.

The lock is a file created with O_CREAT | O_EXCL (atomic on local disks, NFS and Databricks
volumes alike, unlike flock, which FUSE-mounted volumes do not share between drivers), holding
the holder's host, pid, command and start time as JSON. The holder touches it every
`HEARTBEAT_SECONDS`; a lock is stale when its holder's process is gone (same host) or its
heartbeat is older than `stale_after` seconds (another host), and a stale lock is taken over.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

LOCK_FILE = "_wildvalues.lock"
HEARTBEAT_SECONDS = 20.0
DEFAULT_STALE_AFTER = 300.0
DEFAULT_POLL_SECONDS = 2.0


class OutputLocked(RuntimeError):
    """Another live process holds the output's lock."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    command: str
    started_at: str

    def describe(self) -> str:
        return f"{self.command!r} (pid {self.pid} on {self.host}, since {self.started_at})"


def this_process(command: str) -> Holder:
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Holder(socket.gethostname(), os.getpid(), command, started)


def lock_path(output: str) -> str:
    return os.path.join(output, LOCK_FILE)


def read_holder(path: str) -> Holder | None:
    """The holder written in a lock file; None when it is gone or half-written."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return Holder(str(data["host"]), int(data["pid"]), str(data["command"]), str(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def is_stale(path: str, holder: Holder | None, stale_after: float, now: float | None = None) -> bool:
    """A lock whose holder died: its process is gone (this host) or its heartbeat stopped."""
    try:
        age = (time.time() if now is None else now) - os.path.getmtime(path)
    except OSError:
        return True  # removed meanwhile: nothing holds it
    if holder is None:
        # Half-written by a process killed between create and write; give a live writer a moment.
        return age > HEARTBEAT_SECONDS
    if holder.host == socket.gethostname():
        return not process_alive(holder.pid)
    return age > stale_after


def _try_create(path: str, holder: Holder) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(holder.__dict__, handle)
    return True


def acquire(
    output: str,
    holder: Holder,
    wait: bool = False,
    stale_after: float = DEFAULT_STALE_AFTER,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    on_wait: Callable[[str], None] | None = None,
) -> str:
    """Take the output's lock (creating the output directory), or raise OutputLocked in one line."""
    os.makedirs(output, exist_ok=True)
    path = lock_path(output)
    announced = False
    while not _try_create(path, holder):
        current = read_holder(path)
        if is_stale(path, current, stale_after):
            _remove_stale(path, current, on_wait)
            continue
        who = current.describe() if current else "a process that is still writing it"
        if not wait:
            raise OutputLocked(
                f"output {output} is locked by {who}; wait for it (--wait) or, if that process is gone "
                f"for good, delete {path}"
            )
        if on_wait and not announced:
            on_wait(f"waiting for the lock on {output}, held by {who}")
            announced = True
        time.sleep(poll_seconds)
    return path


def _remove_stale(path: str, holder: Holder | None, on_wait: Callable[[str], None] | None) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        return  # another process took it over first: try again
    if on_wait:
        who = holder.describe() if holder else "an unknown process"
        on_wait(f"took over a stale lock on {os.path.dirname(path)} left by {who}")


def release(path: str, holder: Holder) -> None:
    """Remove the lock if it is still ours (a takeover after a long pause must not be undone)."""
    if read_holder(path) == holder:
        with suppress(FileNotFoundError):
            os.remove(path)


def _heartbeat(path: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            os.utime(path)
        except OSError:
            return


@contextmanager
def holding(
    output: str,
    command: str,
    wait: bool = False,
    stale_after: float = DEFAULT_STALE_AFTER,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[Holder]:
    """The output's lock for the duration of the block, kept fresh by a heartbeat thread."""
    holder = this_process(command)
    created = not os.path.isdir(output)
    path = acquire(output, holder, wait=wait, stale_after=stale_after, on_wait=on_wait)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(path, stop), name="wildvalues-lock-heartbeat", daemon=True)
    beat.start()
    try:
        yield holder
    finally:
        stop.set()
        release(path, holder)
        # A command that failed before writing anything leaves no output directory behind.
        if created and os.path.isdir(output) and not os.listdir(output):
            os.rmdir(output)
