"""Databricks python_wheel_task / CLI entry point: the classify stage alone."""

import sys

from wildvalues.jobs import run_or_exit


def main() -> int:
    return run_or_exit(["classify", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
