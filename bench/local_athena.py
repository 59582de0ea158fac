"""The local Athena: what the engine and the Athena API add to DuckDB over the same Parquet files.

    .venv/bin/python bench/local_athena.py [--files 24] [--rows 5000] [--runs 5]

A local stack on free ports; `--files` verified lock files of `--rows` rows each are written to the
verified bucket (the registry registers their partitions), then one aggregate query runs `--runs`
times three ways, medians side by side:

- baseline: DuckDB alone, `read_parquet` over the same files copied to local disk;
- engine: `signals.sql.engine.LocalEngine.execute` (Glue lists the partitions, S3 reads, transpile, DuckDB);
- Athena API: boto3 StartQueryExecution, GetQueryExecution polled every 20 ms, GetQueryResults, on
  the stack's endpoint (the engine on a worker thread, plus the result CSV written to S3).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from shared.arrow import arrow_schema
from shared.layout import Partition
from shared.schema import DEVICE_TABLES, DeviceType
from signals.env import Output
from signals.local.stack import LocalSettings, LocalStack
from signals.local.wiring import LocalTimings
from signals.sql.engine import LocalEngine

SQL = ("SELECT bolt_state, count(*) AS events, round(avg(battery_pct), 1) AS avg_battery "
       "FROM telemetry_lock_flat GROUP BY bolt_state ORDER BY bolt_state")


def lock_file(rows: int, seed: int) -> bytes:
    table = DEVICE_TABLES[DeviceType.LOCK]
    now = datetime.now(UTC)
    columns: dict[str, Any] = {name: [None] * rows for name in table.column_names}
    columns.update(
        event_id=[f"b{seed}-{i}" for i in range(rows)], device_id=[f"dev-{i % 97}" for i in range(rows)],
        device_type=["lock"] * rows, event_name=["bolt_changed"] * rows, event_time=[now] * rows,
        received_at=[now] * rows, battery_pct=[i % 100 for i in range(rows)],
        bolt_state=["locked" if i % 3 else "unlocked" for i in range(rows)],
        source_key=[f"raw/json_telemetry/b{seed}.gz"] * rows, source_line=list(range(1, rows + 1)),
    )
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pydict(columns, schema=arrow_schema(table)), buffer)
    return buffer.getvalue()


def median_seconds(action: Any, runs: int) -> tuple[float, Any]:
    timings, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), result


def athena_query(stack: LocalStack) -> list[list[str | None]]:
    athena = stack.client("athena")
    execution_id = athena.start_query_execution(
        QueryString=SQL, WorkGroup=stack.outputs[Output.HUMAN_WORKGROUP],
        QueryExecutionContext={"Database": stack.outputs[Output.GLUE_DATABASE]})["QueryExecutionId"]
    while True:
        state = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Status"]["State"]
        if state == "SUCCEEDED":
            break
        if state in ("FAILED", "CANCELLED"):
            raise SystemExit(f"query {state}")
        time.sleep(0.02)
    rows = athena.get_query_results(QueryExecutionId=execution_id)["ResultSet"]["Rows"]
    return [[cell.get("VarCharValue") for cell in row["Data"]] for row in rows[1:]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    home = tempfile.mkdtemp(prefix="bench-athena-")
    os.environ["SIGNALS_HOME"] = home
    settings = LocalSettings(port=0, aws_port=0, write_state=False, run_schedules=False,
                             timings=LocalTimings(buffer_seconds=0.5))
    with LocalStack(settings) as stack:
        s3 = stack.client("s3")
        bucket = stack.outputs[Output.VERIFIED_BUCKET]
        local_dir = Path(home) / "files"
        local_dir.mkdir()
        for index in range(args.files):
            body = lock_file(args.rows, index)
            partition = Partition.from_epoch_ms(int(time.time() * 1000) - index * 3_600_000)
            key = f"telemetry_flat/type=lock/{partition.path}/bench-{uuid.uuid4()}.parquet"
            s3.put_object(Bucket=bucket, Key=key, Body=body,
                          Metadata={"row-count": str(args.rows), "table": "telemetry_lock_flat"})
            (local_dir / f"{index}.parquet").write_bytes(body)
        if not stack.wait_until_drained(120):
            print("the registry did not drain", file=sys.stderr)
            return 1
        engine = LocalEngine(stack.session(), stack.aws_endpoint_url, database=stack.outputs[Output.GLUE_DATABASE])
        duck_sql = SQL.replace("FROM telemetry_lock_flat", f"FROM read_parquet('{local_dir}/*.parquet')")

        baseline, expected = median_seconds(lambda: duckdb.sql(duck_sql).fetchall(), args.runs)
        through_engine, result = median_seconds(lambda: engine.execute(SQL), args.runs)
        through_api, api_rows = median_seconds(lambda: athena_query(stack), args.runs)
        total = sum(row[1] for row in expected)
        if result.rows != expected or [int(r[1] or 0) for r in api_rows] != [row[1] for row in expected]:
            print(f"results differ: {expected} / {result.rows} / {api_rows}", file=sys.stderr)
            return 1
        if total != args.files * args.rows:
            print(f"counted {total} rows, wrote {args.files * args.rows}", file=sys.stderr)
            return 1
    print(f"{args.files} files x {args.rows} rows, median of {args.runs} runs")
    print(f"  DuckDB alone (local files)   {baseline * 1000:8.1f} ms   1.00x")
    print(f"  LocalEngine.execute          {through_engine * 1000:8.1f} ms   {through_engine / baseline:5.1f}x")
    print(f"  Athena API (start/poll/get)  {through_api * 1000:8.1f} ms   {through_api / baseline:5.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
