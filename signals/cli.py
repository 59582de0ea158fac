"""`signals`: the one console command. Each subcommand lives in its own module.

A command module exposes `register(subparsers)`, which adds its parser(s) and sets
`func=callable(args) -> int` as the parser default. Modules keep heavy imports (pyarrow, duckdb,
moto) inside their functions, so `signals --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Order is the order `signals --help` lists them in.
COMMAND_MODULES: tuple[str, ...] = (
    "signals.local.command",
    "signals.local.demo",
    "signals.query",
    "signals.parse_file",
    "signals.ops.status",
    "signals.ops.verify",
    "signals.ops.redrive",
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
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
