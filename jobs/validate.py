"""Databricks python_wheel_task / CLI entry point: the validate stage alone."""

import sys

from wildvalues.cli import main as cli_main


def main() -> int:
    return cli_main(["validate", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
