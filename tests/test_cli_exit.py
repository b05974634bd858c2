"""How the `wildvalues` command ends: its exit code, its output flushed and every exit handler run,
without the interpreter's teardown of every module (except on Databricks, where the host goes on)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# A command whose main() registers an exit handler, prints without flushing and returns 3; an
# object whose finaliser only runs in the interpreter's teardown says whether there was one.
SCRIPT = """
import atexit, sys
import wildvalues.cli.parser as cli

class Teardown:
    def __del__(self):
        print("torn down", flush=True)

kept = Teardown()

def main(argv=None):
    atexit.register(lambda: print("handler ran", flush=True))
    print("work done")
    return 3

cli.main = main
sys.exit(cli.console_entry())
"""


def run_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    script = tmp_path / "command.py"
    script.write_text(SCRIPT)
    environment = {k: v for k, v in os.environ.items() if k != "DATABRICKS_RUNTIME_VERSION"} | env
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=environment, timeout=120)


def test_the_command_exits_with_its_code_after_its_handlers_and_skips_the_teardown(tmp_path):
    result = run_script(tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (3, "work done\nhandler ran\n", "")


def test_on_databricks_the_command_exits_the_normal_way(tmp_path):
    result = run_script(tmp_path, DATABRICKS_RUNTIME_VERSION="15.4")
    assert (result.returncode, result.stdout, result.stderr) == (3, "work done\nhandler ran\ntorn down\n", "")


def test_an_exit_from_argument_parsing_is_the_normal_one():
    command = [sys.executable, "-m", "wildvalues.cli", "run", "--input", "in", "--output", "out", "--no-such-option"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: wildvalues")
    assert result.stderr.splitlines()[-1] == "wildvalues: error: unrecognized arguments: --no-such-option"


def test_an_unexpected_error_is_one_line_and_exit_1_unless_debugging(monkeypatch, capsys, tmp_path):
    import pytest

    from wildvalues.cli import commands, main

    def broken(args):
        raise RuntimeError("the disk said no\nat frame 2")

    monkeypatch.setattr(commands, "cmd_synth", broken)
    argv = ["synth", "--n", "1", "--output", str(tmp_path / "s.jsonl")]
    monkeypatch.delenv("WILDVALUES_DEBUG", raising=False)
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        "wildvalues: unexpected RuntimeError: the disk said no (set WILDVALUES_DEBUG=1 for details)\n"
    )
    monkeypatch.setenv("WILDVALUES_DEBUG", "1")
    with pytest.raises(RuntimeError, match="^the disk said no"):
        main(argv)
