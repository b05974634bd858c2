"""`--help` explains every command: a one-line description, and help with its default on every option."""

from __future__ import annotations

import argparse

import pytest

from wildvalues.cli import build_parser


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_option_has_help_and_the_command_a_description(name):
    command = subcommands()[name]
    assert command.description and "\n" not in command.description
    missing = [a.option_strings or a.dest for a in command._actions if not a.help]
    assert missing == []


def test_help_names_defaults_that_are_values_not_settings():
    commands = subcommands()
    synth, sql = commands["synth"].format_help(), commands["sql"].format_help()
    assert "the generator's seed: the same seed, the same file (default: 0)" in " ".join(synth.split())
    assert "rows to print (default: 50)" in " ".join(sql.split())
    # A None default means "from the settings": no "(default: None)" noise.
    assert "default: None" not in commands["run"].format_help()


def test_stage_commands_take_the_run_wide_options():
    """Every stage after ingest takes the options of `run` that settle its settings, so one
    parameter list serves every task of the Databricks job; ingest keeps the input's own options."""
    commands = subcommands()

    def options(name: str) -> set[str]:
        return {option for action in commands[name]._actions for option in action.option_strings}

    run_wide = {"--input", "--classifier", "--model", "--mode", "--secret-scope", "--catalog", "--schema", "--set"}
    for name in ("ingest", "classify", "taxonomy", "analyze", "validate", "report"):
        assert run_wide <= options(name), name
    assert {"--user-field", "--id-field", "--limit"} <= options("ingest")
    for name in ("classify", "taxonomy", "analyze", "validate", "report"):
        assert not {"--user-field", "--id-field", "--limit"} & options(name), name
