"""The `wildvalues` command: the parser, what each command does, the docs generator, the notebooks' entry."""

from wildvalues.cli.parser import build_parser, console_entry, main

__all__ = ["build_parser", "console_entry", "main"]
