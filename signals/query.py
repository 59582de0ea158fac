"""`signals query "SQL"`: Athena SQL (Trino) over the Glue tables.

Unqualified table names are the Glue database's (`telemetry-parser-db`); other databases by name:
`telemetry_alerts_local.int_lock_compacted_daily`, `"local-tps_s3_inventory".raw_inventory`.

Against `local` (the default), the local Athena engine answers (`signals.sql.engine.LocalEngine`,
the one the embedded endpoint's Athena runs, so both give the same rows): each table the SQL names
is read as Athena would (the partitions Glue lists, partitions projection yields, an Iceberg
table's current snapshot), and the SQL, transpiled to DuckDB, runs over them in UTC. A partition
that is not in Glue is invisible, as it is to Athena. Failures are Athena's (`COLUMN_NOT_FOUND: ...`).

Against a deployed env, Athena runs the SQL in the `{env}-tps-telemetry-human-wg` workgroup (its
name from the stack outputs) with the Glue database as the default, and the results are paged back.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from signals.env import ENVIRONMENTS, Environment, EnvironmentNotFound, Output, resolve

FORMATS = ("table", "csv", "json")


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


class QueryFailed(RuntimeError):
    pass


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "query",
        help="SQL over the Glue tables (local: DuckDB over the partitions Glue lists; an env: Athena)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sql", help="the query, e.g. \"SELECT count(*) FROM telemetry_lock_flat\"")
    parser.add_argument("--env", default="local", choices=ENVIRONMENTS, help="local (default) or a deployed env")
    parser.add_argument("--profile", help="AWS profile for a deployed env (default platform-{env})")
    parser.add_argument("--format", default="table", choices=FORMATS, help="output format (default table)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for Athena (default 300)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        env = resolve(args.env, args.profile)
        result = query(env, args.sql, timeout=args.timeout)
    except (EnvironmentNotFound, QueryFailed) as exc:
        print(f"signals query: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(render(result, args.format))
    return 0


def query(env: Environment, sql: str, *, timeout: float = 300.0) -> QueryResult:
    if env.name == "local":
        return query_local(env, sql)
    return query_athena(env, sql, timeout=timeout)


# --- local: the local Athena engine (signals.sql) -------------------------------------------------


def query_local(env: Environment, sql: str) -> QueryResult:
    """The SQL on the local engine, the one the embedded endpoint's Athena runs (same rows)."""
    from signals.sql.engine import LocalEngine  # noqa: PLC0415 (heavy: duckdb, pyarrow, sqlglot)
    from signals.sql.errors import QueryError  # noqa: PLC0415

    engine = LocalEngine(env.session, env.endpoint_url, database=env.output(Output.GLUE_DATABASE))
    try:
        result = engine.execute(sql)
    except QueryError as exc:
        raise QueryFailed(str(exc)) from None
    rows = [tuple(_utc(value) for value in row) for row in result.rows]
    return QueryResult(columns=result.columns, rows=rows)


def _utc(value: Any) -> Any:
    """Timestamps are UTC (the session's zone): say so on the value."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# --- a deployed env: Athena ----------------------------------------------------------------------


def query_athena(env: Environment, sql: str, *, timeout: float = 300.0, poll: float = 0.5,
                 workgroup: str | None = None) -> QueryResult:
    """The SQL on Athena, in `workgroup` (default the env's human workgroup)."""
    athena = env.client("athena")
    workgroup = workgroup or env.outputs.get(Output.HUMAN_WORKGROUP) or f"{env.name}-tps-telemetry-human-wg"
    execution_id = athena.start_query_execution(
        QueryString=sql,
        WorkGroup=workgroup,
        QueryExecutionContext={"Database": env.output(Output.GLUE_DATABASE)},
    )["QueryExecutionId"]
    deadline = time.monotonic() + timeout
    while True:
        status = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Status"]
        state = status["State"]
        if state == "SUCCEEDED":
            break
        if state in ("FAILED", "CANCELLED"):
            raise QueryFailed(f"Athena query {execution_id} {state.lower()}: {status.get('StateChangeReason', '')}")
        if time.monotonic() > deadline:
            athena.stop_query_execution(QueryExecutionId=execution_id)
            raise QueryFailed(f"Athena query {execution_id} still {state.lower()} after {timeout:.0f} s; stopped")
        time.sleep(poll)
    columns: list[str] = []
    types: list[str] = []
    rows: list[tuple[Any, ...]] = []
    first = True
    for page in athena.get_paginator("get_query_results").paginate(QueryExecutionId=execution_id):
        result_set = page["ResultSet"]
        if first:
            info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
            columns = [c["Name"] for c in info]
            types = [c.get("Type", "varchar") for c in info]
        page_rows = [[cell.get("VarCharValue") for cell in row.get("Data", [])] for row in result_set.get("Rows", [])]
        if first and page_rows and page_rows[0] == columns:
            page_rows = page_rows[1:]  # SELECT results repeat the header as the first row
        first = False
        rows.extend(tuple(_athena_value(v, t) for v, t in zip(row, types, strict=False)) for row in page_rows)
    return QueryResult(columns=columns, rows=rows)


def _athena_value(value: str | None, athena_type: str) -> Any:
    if value is None:
        return None
    try:
        if athena_type in ("tinyint", "smallint", "integer", "bigint"):
            return int(value)
        if athena_type in ("double", "float", "real", "decimal"):
            return float(value)
        if athena_type == "boolean":
            return value.lower() == "true"
        if athena_type in ("timestamp", "timestamp with time zone"):
            return datetime.fromisoformat(value.removesuffix(" UTC")).replace(tzinfo=UTC)
        if athena_type == "date":
            return date.fromisoformat(value)
    except ValueError:
        return value
    return value


# --- output --------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-able form of a result value (timestamps RFC 3339 UTC, maps as objects)."""
    if isinstance(value, datetime):
        micros = value.microsecond
        timespec = "seconds" if micros == 0 else "milliseconds" if micros % 1000 == 0 else "microseconds"
        return value.isoformat(timespec=timespec).replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list) and all(isinstance(item, tuple) and len(item) == 2 for item in value):
        return {str(k): _plain(v) for k, v in value}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def _text(value: Any) -> str:
    plain = _plain(value)
    if plain is None:
        return ""
    if isinstance(plain, dict | list):
        return json.dumps(plain, separators=(",", ":"), sort_keys=True)
    if isinstance(plain, bool):
        return "true" if plain else "false"
    return str(plain)


def render(result: QueryResult, output_format: str, *, max_width: int = 80) -> str:
    if output_format == "json":
        records = [dict(zip(result.columns, (_plain(v) for v in row), strict=True)) for row in result.rows]
        return json.dumps(records, indent=2) + "\n"
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([_text(v) for v in row] for row in result.rows)
        return buffer.getvalue()
    return render_table(result.columns, ([_text(v) for v in row] for row in result.rows), max_width=max_width) + (
        f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})\n"
    )


def render_table(columns: Sequence[str], rows: Iterable[Sequence[str]], *, max_width: int = 80) -> str:
    cells = [[_clip(c, max_width) for c in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
        "-+-".join("-" * w for w in widths),
    ]
    lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"


def _clip(text: str, width: int) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 3] + "..."
