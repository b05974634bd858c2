"""Databricks python_wheel_task / CLI entry point: the whole pipeline in one task."""

import sys

from wildvalues.cli import main as cli_main


def main() -> int:
    return cli_main(["run", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
