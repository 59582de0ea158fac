"""`signals status`: the playbook's fast checks in one report, one line per check.

Exit 0 when nothing failed (warnings included), 1 when any check failed, 2 when the env cannot be
reached at all. `--json` prints the same report as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from signals.ops.checks import CheckResult, Level, StatusContext, run_checks, worst
from signals.ops.common import (
    add_env_arguments,
    environment_from_args,
    hour_label,
    hour_start,
    paint,
    parse_time,
    use_colour,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status", help="one line per pipeline check: ok / warn / fail with the figure behind it",
        description="Raw arriving, queue depths and ages, DLQs, verified output and quarantine for the hour, "
                    "registry failures, Glue tables and partitions, the reconciler's last run. "
                    "Exit 1 when any check fails.")
    add_env_arguments(parser)
    parser.add_argument("--hour", type=parse_time, default=None, metavar="YYYY-MM-DDTHH",
                        help="UTC hour the hour-based checks look at (ISO 8601, default the current hour)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    env = environment_from_args(args)
    if env is None:
        return 1  # one line said why (no stack running, no such env): nothing to check
    now = datetime.now(UTC)
    ctx = StatusContext(env=env, hour=hour_start(args.hour or now), now=now)
    results = run_checks(ctx)
    if args.json:
        counts = {level.value: sum(r.level is level for r in results) for level in Level}
        print(json.dumps({"env": env.name, "hour": hour_label(ctx.hour), "generated_at": now.isoformat(),
                          "result": worst(results).value, "counts": counts,
                          "checks": [r.as_json() for r in results]}, indent=2, default=str))
    else:
        render(results, env.name, hour_label(ctx.hour), sys.stdout)
    return 1 if worst(results) is Level.FAIL else 0


def render(results: list[CheckResult], env_name: str, hour: str, out: TextIO) -> None:
    colour = use_colour(out)
    width = max((len(r.check) for r in results), default=10)
    out.write(paint(f"signals status  env={env_name}  hour={hour} UTC", "bold", colour) + "\n")
    for result in results:
        level = paint(f"{result.level.value:<4}", result.level.value, colour)
        out.write(f"{level}  {result.check:<{width}}  {result.figure}\n")
        if result.action:
            out.write(f"{'':<4}  {'':<{width}}  -> {result.action}\n")
    counts = {name: sum(r.level.value == name for r in results) for name in ("ok", "warn", "fail")}
    out.write(f"{counts['ok']} ok, {counts['warn']} warn, {counts['fail']} fail\n")
