"""`signals query "SQL"`: SQL over the Glue tables, like Athena.

Against `local` (the default), DuckDB answers: for each Glue table the SQL names, the partitions
Glue lists are read from the embedded S3 (every object under each partition's location, as Athena
does), with the table's explicit Arrow schema from `shared.arrow` (Hive `timestamp` carries no unit:
device tables are ms, OTLP us) plus the `day` and `hour` partition columns, and registered as a view
of the same name. A partition that is not in Glue is invisible, as it is to Athena. Sessions run in
UTC.

Against a deployed env, Athena runs the SQL in the `{env}-tps-telemetry-human-wg` workgroup (its
name from the stack outputs) on the Glue database, and the results are paged back.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
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


# --- local: DuckDB over what Glue lists ----------------------------------------------------------


def _mentions(sql: str, name: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", sql, flags=re.IGNORECASE) is not None


def query_local(env: Environment, sql: str) -> QueryResult:
    import duckdb  # noqa: PLC0415 (heavy: loaded when a local query runs, not for `signals --help`)

    glue = env.client("glue")
    s3 = env.client("s3")
    database = env.output(Output.GLUE_DATABASE)
    try:
        names = [t["Name"] for page in glue.get_paginator("get_tables").paginate(DatabaseName=database)
                 for t in page["TableList"]]
    except Exception as exc:
        raise QueryFailed(f"cannot list the Glue tables of {database}: {exc}") from None
    connection = duckdb.connect()
    table: Any = None
    try:
        connection.execute("SET TimeZone='UTC'")
        for name in names:
            if _mentions(sql, name):
                connection.register(name, glue_table_data(glue, s3, database, name))
        try:
            # DuckDB 2.0: `.arrow()` is a RecordBatchReader and `fetch_arrow_table` is gone; this is the Table.
            relation = connection.sql(sql)
            table = relation.to_arrow_table() if relation is not None else None
        except duckdb.Error as exc:
            raise QueryFailed(str(exc)) from None
    finally:
        connection.close()
    if table is None:  # a statement without a result (SET, ...)
        return QueryResult(columns=[], rows=[])
    return QueryResult(columns=list(table.column_names), rows=[tuple(row.values()) for row in table.to_pylist()])


def glue_table_data(glue: Any, s3: Any, database: str, table_name: str) -> Any:
    """One Glue table as an Arrow table: the files of its listed partitions plus the partition columns."""
    import pyarrow as pa  # noqa: PLC0415 (heavy, see query_local)

    from shared.arrow import arrow_schema  # noqa: PLC0415 (imports pyarrow)
    from shared.schema import TABLES  # noqa: PLC0415

    spec = next((t for t in TABLES if t.name == table_name), None)
    table = glue.get_table(DatabaseName=database, Name=table_name)["Table"]
    partition_keys = [key["Name"] for key in table.get("PartitionKeys") or []]
    schema = arrow_schema(spec) if spec is not None else None
    pages = glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=table_name)
    partitions = [p for page in pages for p in page["Partitions"]]
    jobs: list[tuple[str, str, list[str]]] = []
    for partition in partitions:
        bucket, prefix = _split_s3_url(partition["StorageDescriptor"]["Location"])
        for key in _data_keys(s3, bucket, prefix):
            jobs.append((bucket, key, list(partition["Values"])))
    with ThreadPoolExecutor(max_workers=8) as pool:
        pieces = list(pool.map(lambda job: _read_file(s3, job[0], job[1], schema), jobs))
    string_type = pa.string()
    tables = []
    for (_, _, values), piece in zip(jobs, pieces, strict=True):
        with_keys = piece
        for key_name, value in zip(partition_keys, values, strict=False):
            column = pa.array([value] * piece.num_rows, string_type)
            with_keys = with_keys.append_column(pa.field(key_name, string_type), column)
        tables.append(with_keys)
    if tables:
        return pa.concat_tables(tables, promote_options="permissive")
    empty_schema = schema if schema is not None else pa.schema([])
    for key_name in partition_keys:
        empty_schema = empty_schema.append(pa.field(key_name, string_type))
    return empty_schema.empty_table()


def _split_s3_url(location: str) -> tuple[str, str]:
    without_scheme = re.sub(r"^s3a?://", "", location)
    bucket, _, prefix = without_scheme.partition("/")
    return bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/"


def _data_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Objects Athena would read under a partition: not directory markers, not `_`/`.` hidden files."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            name = item["Key"].rsplit("/", 1)[-1]
            if item["Key"].endswith("/") or not name or name[0] in "._" or item.get("Size", 0) == 0:
                continue
            keys.append(item["Key"])
    return keys


def _read_file(s3: Any, bucket: str, key: str, schema: Any) -> Any:
    """One Parquet object, conformed to the table's schema (a column the file lacks reads as nulls)."""
    import pyarrow as pa  # noqa: PLC0415 (heavy, see query_local)
    import pyarrow.parquet as pq  # noqa: PLC0415

    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    if schema is None:
        return table
    columns = [
        table.column(field.name).cast(field.type) if field.name in table.column_names
        else pa.nulls(table.num_rows, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema.remove_metadata())


# --- a deployed env: Athena ----------------------------------------------------------------------


def query_athena(env: Environment, sql: str, *, timeout: float = 300.0, poll: float = 0.5) -> QueryResult:
    athena = env.client("athena")
    workgroup = env.outputs.get(Output.HUMAN_WORKGROUP) or f"{env.name}-tps-telemetry-human-wg"
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
