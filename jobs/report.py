"""Databricks python_wheel_task / CLI entry point: the HTML report of a run."""

import sys

from wildvalues.cli import main as cli_main


def main() -> int:
    return cli_main(["report", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
