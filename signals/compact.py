"""`signals compact`: run one compaction now, synchronously, and print what it did per table and day.

On `local` (the default) the compactor runs in this process with the local engine (DuckDB +
pyiceberg) against the running stack's embedded AWS, exactly as its schedule runs it; on a deployed
env it invokes the `telemetry-compactor` Lambda (RequestResponse) and prints its result. Without
`--day` the run is incremental (the days with files registered since the last run); `--day` forces a
recompute of those days (of `--table`, default every table), which changes nothing when the
compacted table is already right. Exit status 1 when any table-day failed or another run holds the
lease.

    signals compact                       # what changed since the last run
    signals compact --day 2026-11-25 --table lock --json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final, TextIO

from signals.env import Environment, EnvironmentNotFound, Output
from signals.ops.common import add_env_arguments, environment_from_args

COLUMNS: Final = ("table", "day", "read", "inserted", "replaced", "refreshed", "natural dups", "conflicts", "late",
                  "outcome")
#: A Lambda runs at most 15 minutes; the invoke waits a little longer than that.
INVOKE_READ_TIMEOUT_S: Final = 910


class CompactFailed(RuntimeError):
    pass


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compact",
        help="run one compaction now (verified -> deduplicated Iceberg tables) and print its counts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_env_arguments(parser)
    parser.add_argument("--table", action="append", default=[],
                        help="a compacted table, its verified table or a type (lock, ...); repeatable")
    parser.add_argument("--day", action="append", default=[], help="recompute this day (YYYY-MM-DD); repeatable")
    parser.add_argument("--json", action="store_true", help="print the run's result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    env = environment_from_args(args)
    if env is None:
        return 1
    event: dict[str, Any] = {}
    if args.table:
        event["tables"] = list(args.table)
    if args.day:
        event["days"] = list(args.day)
    try:
        result = compact(env, event)
    except (CompactFailed, EnvironmentNotFound, ValueError) as exc:
        print(f"signals compact: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(result, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print_result(result, sys.stdout)
    failed = bool(result.get("days_failed")) or result.get("skipped") is not None or bool(result.get("errors"))
    return 1 if failed else 0


def compact(env: Environment, event: Mapping[str, Any]) -> dict[str, Any]:
    if env.endpoint_url is not None:
        return compact_local(env, event)
    return invoke_lambda(env, event)


def local_environ(env: Environment) -> dict[str, str]:
    """The compactor's environment for the local stack, from its state file's outputs."""
    from shared.schema import alerts_database, audit_database  # noqa: PLC0415

    missing = [key for key in (Output.DBT_BUCKET, Output.ARTIFACTS_BUCKET) if key not in env.outputs]
    if missing:
        raise CompactFailed(f"the running local stack has no {', '.join(missing)} output (it predates the "
                            "compacted layer): restart `signals local`")
    return {
        "REGISTRY_TABLE": env.output(Output.REGISTRY_TABLE),
        "GLUE_DATABASE": env.output(Output.GLUE_DATABASE),
        "ALERTS_DATABASE": env.outputs.get(Output.ALERTS_DATABASE) or alerts_database(env.name),
        "AUDIT_DATABASE": env.outputs.get(Output.AUDIT_DATABASE) or audit_database(env.name),
        "VERIFIED_BUCKET": env.output(Output.VERIFIED_BUCKET),
        "DBT_BUCKET": env.output(Output.DBT_BUCKET),
        "ARTIFACTS_BUCKET": env.output(Output.ARTIFACTS_BUCKET),
        "ATHENA_WORKGROUP": env.outputs.get(Output.DBT_WORKGROUP) or f"{env.name}-tps-telemetry-dbt-wg",
        "COMPACTOR_ENGINE": "local",
        # `signals compact` right after sending data should see it: moto's index has no propagation delay.
        "SETTLE_SECONDS": "0",
    }


def compact_local(env: Environment, event: Mapping[str, Any]) -> dict[str, Any]:
    import logging  # noqa: PLC0415

    from compactor import app  # noqa: PLC0415
    from shared.aws import Clients  # noqa: PLC0415

    class EnvClients(Clients):
        def client(self, service: str) -> Any:
            with self._lock:
                if service not in self._clients:
                    self._clients[service] = env.client(service)
                return self._clients[service]

    # The function's JSON log lines go to stderr (warnings and errors only), so stdout is the result.
    log_handler = app.logger.registered_handler
    if isinstance(log_handler, logging.StreamHandler):
        log_handler.stream = sys.stderr  # not setStream: it flushes the old stream, which may be closed
    app.logger.setLevel(logging.WARNING)
    handle = app.build_handler(local_environ(env), EnvClients(env.session))
    stdout = sys.stdout
    try:
        sys.stdout = sys.stderr  # the EMF metrics line too
        return handle(dict(event), None)
    finally:
        sys.stdout = stdout


def invoke_lambda(env: Environment, event: Mapping[str, Any]) -> dict[str, Any]:
    from botocore.config import Config  # noqa: PLC0415

    function = env.outputs.get(Output.COMPACTOR_FUNCTION) or "telemetry-compactor"
    client = env.session.client("lambda", config=Config(read_timeout=INVOKE_READ_TIMEOUT_S,
                                                        retries={"max_attempts": 1}))
    response = client.invoke(FunctionName=function, InvocationType="RequestResponse",
                             Payload=json.dumps(dict(event)).encode())
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        message = payload.get("errorMessage") if isinstance(payload, dict) else payload
        raise CompactFailed(f"{function} failed: {message}")
    if not isinstance(payload, dict):
        raise CompactFailed(f"{function} returned {payload!r}, not a run result")
    return payload


def print_result(result: Mapping[str, Any], out: TextIO) -> None:
    if result.get("skipped"):
        out.write(f"nothing ran: {result['skipped']}\n")
        return
    days: Sequence[Mapping[str, Any]] = result.get("days") or []
    if days:
        from signals.query import render_table  # noqa: PLC0415

        rows = [[str(d["table"]), str(d["day"]), str(d["verified_rows"]), str(d["inserted"]), str(d["replaced"]),
                 str(d.get("refreshed", 0)),
                 str(d["natural_duplicates"]), str(d["conflicting_duplicates"]), str(d["late_rows"]),
                 str(d["outcome"])] for d in days]
        out.write(render_table(COLUMNS, rows, max_width=100))
        for d in days:
            if d.get("error"):
                out.write(f"{d['table']}/day={d['day']} {d['outcome']}: {d['error']}\n")
    elif result.get("forced"):
        out.write("nothing to compact for those days\n")
    else:
        out.write("nothing to compact: no verified files registered since the last run\n")
    totals = result.get("totals") or {}
    out.write(
        f"run {result.get('run_id')} ({result.get('engine')} engine): {result.get('days_compacted', 0)} day(s) "
        f"compacted, {result.get('days_failed', 0)} failed; {totals.get('inserted', 0)} rows inserted, "
        f"{totals.get('natural_duplicates', 0)} natural duplicates dropped, "
        f"{totals.get('conflicting_duplicates', 0)} conflicting ({totals.get('conflicts_recorded', 0)} newly "
        f"recorded in duplicate_conflicts), {totals.get('late_rows', 0)} late rows\n"
    )
    if not result.get("complete", True):
        out.write("stopped before the time ran out: the next run resumes\n")
    out.write(f"lag: {float(result.get('lag_seconds') or 0):.0f} s (oldest registered file not yet compacted)\n")
    if result.get("report"):
        out.write(f"report: {result['report']}\n")
    for error in result.get("errors") or []:
        out.write(f"error: {error}\n")
