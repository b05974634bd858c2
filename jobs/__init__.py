"""Console-script entry points for Databricks python_wheel_task: one module per stage, each a
one-line call of `run_or_exit` with its CLI command.

Installed as `wildvalues.jobs` (setup.py, through the link lib/wildvalues/jobs): the wheel puts no
top-level `jobs` package on a cluster, where it could shadow, or be shadowed by, another one."""

from __future__ import annotations

from wildvalues.cli import main as cli_main


def run_or_exit(argv: list[str]) -> int:
    """`wildvalues *argv`: returns 0 on success, raises SystemExit(code) otherwise.

    A python_wheel_task calls the entry point function and ignores what it returns, so a stage
    that failed by returning its exit code would end as a green task and the job would go on;
    only an exception fails the task. Raising SystemExit keeps the code for a shell as well."""
    code = cli_main(argv)
    if code != 0:
        raise SystemExit(code)
    return code
