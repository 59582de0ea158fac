"""`signals`: the one console command. Each subcommand lives in its own module.

A command module exposes `register(subparsers)`, which adds its parser(s) and sets
`func=callable(args) -> int` as the parser default. Modules keep heavy imports (pyarrow, duckdb,
moto) inside their functions, so `signals --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Order is the order `signals --help` lists them in.
COMMAND_MODULES: tuple[str, ...] = (
    "signals.local.command",
    "signals.local.demo",
    "signals.chaos.command",
    "signals.query",
    "signals.inventory",
    "signals.compact",
    "signals.invoke",
    "signals.parse_file",
    "signals.ops.status",
    "signals.ops.verify",
    "signals.ops.redrive",
    "signals.trino",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="signals",
        description="Telemetry pipeline: run it locally, query it, check and repair a deployed one.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            status = 2
        else:
            status = int(func(args) or 0)
        sys.stdout.flush()
        return status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`signals status | head`): stop quietly, as other Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
