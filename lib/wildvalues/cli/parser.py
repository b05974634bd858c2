"""The `wildvalues` command: run, synth, sql, and the tools around them.

Errors a user can fix (missing input, bad config, missing taxonomy, missing API key, failed
validation) end as one line on stderr and a non-zero exit, never a stack trace.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
from collections.abc import Callable, Sequence

from wildvalues.ingest.formats import FORMATS
from wildvalues.pipeline.run_health import EXIT_TOO_MANY_ERRORS as EXIT_TOO_MANY_ERRORS  # 4: most of the work failed
from wildvalues.settings.sections import ConfigError

CLASSIFIER_HELP = "offline (deterministic stand-in, no network) or anthropic (Claude); default: classifier.name"
EXIT_USER_ERROR = 2
EXIT_VALIDATION = 3
# Commands that write to --output (tables, MLflow, report): one at a time per output.
WRITING_COMMANDS = frozenset(
    {"run", "ingest", "classify", "taxonomy", "analyze", "validate", "report", "discover", "crosscheck"}
)


class _HelpFormatter(argparse.HelpFormatter):
    """Help that names each option's default; a None default means "from the settings" and says nothing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        unset = default is None or default is False or default == [] or default == argparse.SUPPRESS
        if not action.option_strings or unset or "%(default)" in text:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _command(sub, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose one-line summary is both its entry in `--help` and its own description."""
    return sub.add_parser(name, help=summary, description=summary)


def _add_wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        action="store_true",
        help="if another command is writing to the same --output, wait for it instead of stopping",
    )


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="your YAML settings, over the defaults and conf/<env>.yml")
    parser.add_argument(
        "--env", choices=["local", "databricks"], default=None, help="settings profile from conf/<env>.yml"
    )
    parser.add_argument("--catalog", default=None, help="tables in <catalog>.<schema> (Databricks)")
    parser.add_argument("--schema", default=None, help="schema of the tables (Databricks)")
    parser.add_argument("--secret-scope", default=None, help="Databricks secret scope with the API key")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one setting, e.g. --set analyze.suppression_k=50 (repeatable; VALUE is read as YAML)",
    )


def _add_classifier_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--classifier", choices=["offline", "anthropic"], default=None, help=CLASSIFIER_HELP)
    # An empty --model means classifier.anthropic.model: the job passes its `model` parameter,
    # empty by default, to every task.
    parser.add_argument("--model", default=None, help="Claude model id (anthropic classifier; empty: the setting)")
    parser.add_argument("--mode", choices=["online", "batch"], default=None, help="anthropic: Messages or Batches API")


def _add_run_wide_options(parser: argparse.ArgumentParser) -> None:
    """The options of `run` that every later stage command takes as well.

    Each stage command resolves its settings from its own arguments, so a stage without them would
    run with other settings than the run's: analyze's label audit asks Claude when the classifier
    is anthropic, taxonomy's adjudication and naming ask the --model. The Databricks job hands
    every task one parameter list; --input is in it, and only ingest reads it."""
    parser.add_argument(
        "--input", default=None, help="the run's input: only ingest reads it (accepted for one job parameter list)"
    )
    _add_classifier_options(parser)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="JSONL file/dir/glob (.gz ok), Parquet or Delta table")
    parser.add_argument("--output", required=True, help="output directory (tables, MLflow store, report)")
    parser.add_argument("--format", choices=FORMATS, default=None, help="input layout (default: auto)")
    parser.add_argument("--text-field", default=None, help="transcript layout: the field holding the text")
    parser.add_argument("--id-field", default=None, help="the field holding the conversation id")
    parser.add_argument(
        "--user-field",
        default=None,
        help="the field holding the user or account id (stored only as a salted hash; groups need privacy.k_users users)",
    )
    _add_classifier_options(parser)
    parser.add_argument("--limit", type=int, default=None, help="only the first N records")
    parser.add_argument("--run-id", default=None, help="reuse a run id (resume); default: a new one")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report at the end")
    _add_wait(parser)
    _add_common(parser)


def _add_estimate_arguments(estimate: argparse.ArgumentParser) -> None:
    """The options of `estimate`, which `preflight` shares."""
    estimate.add_argument("--input", required=True, help="the conversations to estimate for (as `run --input`)")
    estimate.add_argument("--model", default=None, help="the extraction model")
    estimate.add_argument(
        "--screen-model",
        default=None,
        help="two-pass column's screen model (default: classifier.screen_model, else claude-haiku-4-5)",
    )
    estimate.add_argument(
        "--subjective-share", type=float, default=0.44, help="share reaching extraction in two-pass mode (study: 0.44)"
    )
    estimate.add_argument(
        "--mode", choices=["online", "batch"], default=None, help="Messages or Batches API (batch: half price)"
    )
    estimate.add_argument("--format", choices=FORMATS, default=None, help="input layout (default: auto)")
    estimate.add_argument(
        "--output",
        default=None,
        help="scratch directory, where a preflight's measurements are kept (default out/estimate)",
    )
    estimate.add_argument("--json", action="store_true", help="also print the figures as JSON")
    _add_common(estimate)


def _add_synth_arguments(synth: argparse.ArgumentParser) -> None:
    synth.add_argument("--n", type=int, required=True, help="how many conversations")
    synth.add_argument("--output", required=True, help="file to write (.jsonl or .jsonl.gz)")
    synth.add_argument("--seed", type=int, default=0, help="the generator's seed: the same seed, the same file")


def _add_sql_arguments(sql: argparse.ArgumentParser) -> None:
    sql.add_argument(
        "query",
        nargs="?",
        help="Spark SQL: one query, or several separated by ';' (one Spark session serves them all)",
    )
    sql.add_argument("--file", help="read the statements from this file instead (';'-separated)")
    sql.add_argument("--output", required=True, help="the run's output directory")
    sql.add_argument("--max-rows", type=int, default=50, help="rows to print")
    _add_common(sql)


def _add_stage_arguments(stage: argparse.ArgumentParser) -> None:
    """A stage after ingest, run alone on a run's tables."""
    stage.add_argument("--output", required=True, help="the run's output directory")
    stage.add_argument("--run-id", required=True, help="the run whose tables the stage reads and writes")
    _add_run_wide_options(stage)
    _add_wait(stage)
    _add_common(stage)


def _add_report_arguments(report: argparse.ArgumentParser) -> None:
    _add_wait(report)
    report.add_argument("--output", required=True, help="the run's output directory")
    report.add_argument("--run-id", default=None, help="the run to report on (default: the latest)")
    report.add_argument("--no-anomaly-ids", action="store_true", help="leave the anomalies' conversation ids out")
    _add_run_wide_options(report)
    _add_common(report)


def _add_export_arguments(export: argparse.ArgumentParser) -> None:
    export.add_argument("--output", required=True, help="the run's output directory")
    export.add_argument("--to", required=True, help="directory to write the CSV files to")
    export.add_argument("--run-id", default=None, help="the run to export (default: the latest)")
    export.add_argument(
        "--tree", choices=["published", "discovered"], default="published", help="which taxonomy to export"
    )
    _add_common(export)


def _add_compare_arguments(compare: argparse.ArgumentParser) -> None:
    compare.add_argument("run_a", help="the earlier run: an MLflow run id or a wildvalues run id")
    compare.add_argument("run_b", help="the later run, likewise")
    compare.add_argument(
        "--output", default="out/demo", help="output whose MLflow store holds the runs (default out/demo)"
    )
    _add_common(compare)


def _add_discover_arguments(discover: argparse.ArgumentParser) -> None:
    _add_wait(discover)
    discover.add_argument("--output", required=True, help="the run's output directory")
    discover.add_argument("--run-id", default=None, help="the run whose values to use (default: the latest)")
    discover.add_argument("--side", choices=["ai", "human"], default=None, help="one side only (default: both)")
    discover.add_argument("--levels", type=int, default=None, help="levels including the values (2-4, default 4)")
    _add_common(discover)


def _add_crosscheck_arguments(crosscheck: argparse.ArgumentParser) -> None:
    _add_wait(crosscheck)
    crosscheck.add_argument("--output", required=True, help="the run's output directory")
    crosscheck.add_argument("--run-id", default=None, help="the run to check (default: the latest)")
    crosscheck.add_argument("--sample", type=int, default=None, help="conversations in the sample (default 200)")
    crosscheck.add_argument(
        "--model",
        dest="judge_model",
        metavar="ID",
        default=None,
        help="the second judge: a Claude model id, or with --base-url the endpoint's model",
    )
    crosscheck.add_argument("--base-url", default=None, help="an OpenAI-compatible endpoint, e.g. https://host/v1")
    crosscheck.add_argument(
        "--api-key-env", default=None, help="with --base-url: the environment variable holding its key"
    )
    crosscheck.add_argument("--seed", type=int, default=None, help="the sample's seed (default 0)")
    _add_common(crosscheck)


def _add_place_arguments(place: argparse.ArgumentParser) -> None:
    place.add_argument("values", nargs="*", metavar="VALUE", help="value names, e.g. truthfulness")
    place.add_argument("--json", action="store_true", help="a JSON list of placements")
    place.add_argument(
        "--output",
        default=None,
        help="a run's output: Claude's adjudications cached there are reused (read only, never written)",
    )
    _add_common(place)


def _add_emulator_arguments(emulator: argparse.ArgumentParser) -> None:
    from wildvalues.demo.emulator_cli import add_arguments

    add_arguments(emulator)


# The commands in the order `--help` lists them: (name, one-line help, what adds its arguments).
COMMANDS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None]], ...] = (
    ("run", "run the whole pipeline", _add_run_arguments),
    ("synth", "write generated demo conversations (messages layout)", _add_synth_arguments),
    ("sql", "run Spark SQL with every table registered under its name", _add_sql_arguments),
    ("ingest", "run the ingest stage alone", _add_run_arguments),
    *(
        (name, f"run the {name} stage alone", _add_stage_arguments)
        for name in ("classify", "taxonomy", "analyze", "validate")
    ),
    ("estimate", "requests, tokens, cost and duration before anything is spent", _add_estimate_arguments),
    (
        "preflight",
        "a few real Claude requests of each kind a run sends: tokens per answer measured, cost projected",
        _add_estimate_arguments,
    ),
    ("report", "HTML report and PNG plots of a run (latest by default)", _add_report_arguments),
    ("export", "public CSVs in the layout of Anthropic/values-in-the-wild", _add_export_arguments),
    ("compare", "compare two runs (MLflow or wildvalues run ids)", _add_compare_arguments),
    ("discover", "build the run's own four-level tree from its values", _add_discover_arguments),
    ("crosscheck", "judge a stratified sample again with a second model", _add_crosscheck_arguments),
    ("place", "where values land on the published tree (method, score, clusters)", _add_place_arguments),
    ("emulator", "a local emulator of the Messages and Batches APIs", _add_emulator_arguments),
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wildvalues", description="Values in the wild, at scale, on Spark.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, help_text, add_arguments in COMMANDS:
        add_arguments(_command(sub, name, help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(_dispatch(args) or 0)
    except KeyboardInterrupt:
        print("wildvalues: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - user-facing errors end as one line
        return _report_error(error)


def _report_error(error: Exception) -> int:
    from wildvalues.analysis.validate import ValidationFailed
    from wildvalues.cli.user_errors import USER_ERRORS

    if isinstance(error, ValidationFailed):
        print(f"wildvalues: {error}", file=sys.stderr)
        return EXIT_VALIDATION
    if isinstance(error, USER_ERRORS):
        print(f"wildvalues: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    if os.environ.get("WILDVALUES_DEBUG"):
        raise error
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    print(
        f"wildvalues: unexpected {type(error).__name__}: {first[:300]} (set WILDVALUES_DEBUG=1 for details)",
        file=sys.stderr,
    )
    return 1


def _dispatch(args: argparse.Namespace) -> int | None:
    from wildvalues.cli import commands, estimate, values

    name = f"cmd_{args.command.replace('-', '_')}"
    found = [getattr(module, name) for module in (commands, estimate, values) if hasattr(module, name)]
    handler: Callable | None = found[0] if found else None
    if handler is None:
        raise ConfigError(f"unknown command {args.command}")
    if args.command not in WRITING_COMMANDS:
        return handler(args)
    from wildvalues.pipeline import output_lock

    def tell(message: str) -> None:
        print(f"wildvalues: {message}", file=sys.stderr)

    command = f"wildvalues {args.command} --output {args.output}"
    with output_lock.holding(args.output, command, wait=args.wait, on_wait=tell):
        return handler(args)


_exit_code: list[int] = []


def console_entry() -> int:
    """The `wildvalues` command: `main()`, and an exit that skips the interpreter's teardown.

    Freeing every module of a process that is about to end took 1.5 s after a run here (Great
    Expectations, MLflow, spaCy...). Threads are still joined and every exit handler still runs,
    as with `sys.exit`; only the teardown after them is skipped. On Databricks the host process
    goes on after the command, so there the exit is the normal one."""
    if not os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        atexit.register(_exit_without_teardown)  # registered first, so it runs after every other handler
    code = main()
    _exit_code.append(code)
    return code


def _exit_without_teardown() -> None:
    if not _exit_code:  # left through an exception (argparse's own exit, say): the normal exit
        return
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(_exit_code[0])


if __name__ == "__main__":
    sys.exit(console_entry())
