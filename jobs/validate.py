"""Databricks python_wheel_task / CLI entry point: the validate stage alone."""

import sys

from wildvalues.jobs import run_or_exit


def main() -> int:
    return run_or_exit(["validate", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
