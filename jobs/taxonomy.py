"""Databricks python_wheel_task / CLI entry point: the taxonomy stage alone."""

import sys

from wildvalues.jobs import run_or_exit


def main() -> int:
    return run_or_exit(["taxonomy", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
