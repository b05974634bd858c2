"""`wildvalues emulator` and `python -m wildvalues.demo.emulator_cli`: the emulator's options, and serving until
interrupted."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from wildvalues.demo.emulator import DEFAULT_FAULT_KINDS, FAULT_KINDS, LABELLINGS, UNKNOWN_MODELS, Emulator


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--rpm", type=float, default=4_000, help="requests per minute")
    parser.add_argument("--itpm", type=float, default=2_000_000, help="input tokens per minute")
    parser.add_argument("--otpm", type=float, default=400_000, help="output tokens per minute")
    parser.add_argument("--burst-seconds", type=float, default=60.0, help="bucket size in seconds of each limit")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="time each answer takes")
    parser.add_argument("--latency-jitter-ms", type=float, default=0.0, help="random extra latency, up to this")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests answered with a fault")
    parser.add_argument(
        "--fault-kinds", default=",".join(DEFAULT_FAULT_KINDS), help=f"comma-separated, from {','.join(FAULT_KINDS)}"
    )
    parser.add_argument(
        "--batch-processing-s", type=float, default=0.5, help="seconds before a Message Batch has ended"
    )
    parser.add_argument(
        "--batch-duration-s", type=float, default=3600.0, help="emulated seconds a batch's entries are spread over"
    )
    parser.add_argument(
        "--unknown-models",
        choices=UNKNOWN_MODELS,
        default="not_found",
        help="not_found: 404 as the API; generic: a stand-in model that accepts every shape",
    )
    parser.add_argument(
        "--thinking-tokens", type=int, default=None, help="thinking tokens per answer where a model thinks"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault and latency draws")
    parser.add_argument(
        "--labelling", choices=LABELLINGS, default="offline", help="second: a different judge, for the cross-check"
    )
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C, printing the base URL to use as ANTHROPIC_BASE_URL."""
    emulator = Emulator(
        args.port,
        host=args.host,
        rpm=args.rpm,
        itpm=args.itpm,
        otpm=args.otpm,
        burst_seconds=args.burst_seconds,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        fault_rate=args.fault_rate,
        fault_kinds=tuple(k for k in args.fault_kinds.split(",") if k),
        batch_processing_s=args.batch_processing_s,
        batch_duration_s=args.batch_duration_s,
        unknown_models=args.unknown_models,
        thinking_tokens=args.thinking_tokens,
        seed=args.seed,
        labelling=args.labelling,
    )
    emulator.start()
    # Announced inside the try: a Ctrl-C right after the line, before this thread reached the loop,
    # would otherwise end the process by SIGINT (exit -2) instead of stopping it cleanly.
    try:
        print(
            f"Anthropic API emulator at {emulator.base_url} (export ANTHROPIC_BASE_URL={emulator.base_url}); "
            f"stats at {emulator.base_url}/emulator/stats; Ctrl-C stops",
            flush=True,
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="wildvalues emulator", description=__doc__.splitlines()[0]))
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
