"""Reconciler cost against a registry of 100,000 items with 10 failures, on moto's server.

Counts requests by operation (botocore event hooks) and time for one reconciler run at two table
sizes (10,000 and 100,000 registered items) with the same window content, side by side with a
named baseline measured in the same run: a scan-based repair (1) that finds pending/failed items
by scanning the table with a filter, which is what a registry without a status index would need.
Target: no Scan, and a request count that does not grow with the table.

    .venv/bin/python bench/reconciler_cost.py [--sizes 10000,100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import socket
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from reconciler.app import build_handler
from registry.dal import table_input
from shared import registry_keys as rk
from shared.aws import Clients
from shared.layout import Partition, verified_key
from shared.schema import TABLES

REGION = "us-west-2"
VERIFIED = "bench-verified"
RAW = "bench-raw"
DATABASE = "bench-db"
TABLE = "bench-registry"
QUEUE = "bench-redrive"
FAILURES = 10
WINDOW_FILES = 200
WINDOW_RAW = 50


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Counting:
    """Requests by operation (before-call) and DynamoDB items read (after-call), per session."""

    def __init__(self, session: boto3.Session) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        session.events.register("before-call.*.*", self.count_call)
        session.events.register("after-call.*.*", self.time_call)
        session.events.register("after-call.dynamodb.*", self.count_items_read)

    def count_call(self, event_name: str, context: dict[str, Any], **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        self.calls[f"{service}.{operation}"] += 1
        context["bench_started"] = time.perf_counter()

    def time_call(self, event_name: str, context: dict[str, Any], **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        now = time.perf_counter()
        self.seconds[f"{service}.{operation}"] += now - context.get("bench_started", now)

    def count_items_read(self, event_name: str, parsed: dict[str, Any], **_: Any) -> None:
        operation = event_name.split(".", 2)[2]
        if operation in {"Scan", "Query"}:
            read = int(parsed.get("ScannedCount", 0))
        elif operation == "BatchGetItem":
            read = sum(len(items) for items in parsed.get("Responses", {}).values())
        elif operation == "GetItem":
            read = int("Item" in parsed)
        else:
            return
        self.calls["dynamodb items read"] += read


def av(value: str | int) -> dict[str, str]:
    return {"N": str(value)} if isinstance(value, int) else {"S": value}


def file_item(key: str, partition: Partition, status: str, updated_at: str) -> dict[str, Any]:
    values: dict[str, str | int] = {
        **rk.file_key(key), "item_type": "file", "verified_key": key, "bucket": VERIFIED, "type": "lock",
        "table": "telemetry_lock_flat", "day": partition.day, "hour": partition.hour, "rows": 500, "size": 40_000,
        "etag": "0123456789abcdef0123456789abcdef", "source_key": "raw/json_telemetry/2026/01/01/00/x.gz",
        "status": status, "attempts": 1, "created_at": updated_at, "updated_at": updated_at,
    }
    return {name: av(value) for name, value in values.items()}


def batch_write(dynamodb: Any, items: list[dict[str, Any]]) -> None:
    def write(chunk: list[dict[str, Any]]) -> None:
        pending = {TABLE: [{"PutRequest": {"Item": item}} for item in chunk]}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    chunks = [items[start:start + 25] for start in range(0, len(items), 25)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, chunks))


def setup_world(session: boto3.Session) -> str:
    s3, dynamodb, glue, sqs = (session.client(name) for name in ("s3", "dynamodb", "glue", "sqs"))
    for bucket in (VERIFIED, RAW):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    dynamodb.create_table(**rk.create_table_request(TABLE))
    glue.create_database(DatabaseInput={"Name": DATABASE})
    for table in TABLES:
        glue.create_table(DatabaseName=DATABASE, TableInput=table_input(table, VERIFIED))
    url: str = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]

    # The window's content, the same at every table size: registered files with their objects and
    # partitions, raw objects with processing records.
    now = datetime.now(UTC)
    hours = [Partition.from_datetime(now - timedelta(hours=back)) for back in range(1, 6)]
    items, partition_items = [], []
    for n in range(WINDOW_FILES):
        partition = hours[n % len(hours)]
        key = verified_key("lock", partition, f"w{n:031x}")
        s3.put_object(Bucket=VERIFIED, Key=key, Body=b"PAR1", Metadata={"rows": "1", "source-key": "k"})
        item = file_item(key, partition, rk.STATUS_REGISTERED, "2026-01-01T00:00:00.000Z")
        item["etag"] = av(s3.head_object(Bucket=VERIFIED, Key=key)["ETag"].strip('"'))
        items.append(item)
    for partition in hours:
        partition_items.append({name: av(value) for name, value in {
            **rk.partition_key("telemetry_lock_flat", partition.day, partition.hour), "item_type": "partition",
            "table": "telemetry_lock_flat", "day": partition.day, "hour": partition.hour,
            "created_at": "2026-01-01T00:00:00.000Z"}.items()})
        descriptor = glue.get_table(DatabaseName=DATABASE, Name="telemetry_lock_flat")["Table"]["StorageDescriptor"]
        descriptor["Location"] += f"{partition.path}/"
        glue.create_partition(DatabaseName=DATABASE, TableName="telemetry_lock_flat",
                              PartitionInput={"Values": partition.values, "StorageDescriptor": descriptor})
    for n in range(WINDOW_RAW):
        partition = hours[n % len(hours)]
        key = f"raw/json_telemetry/{partition.day.replace('-', '/')}/{partition.hour}/telemetry-1-{n:06d}.gz"
        s3.put_object(Bucket=RAW, Key=key, Body=b"{}\n")
        partition_items.append({**{name: av(value) for name, value in rk.raw_key(RAW, key).items()},
                                "item_type": av("raw")})
    batch_write(dynamodb, items + partition_items)
    return url


def grow_table(dynamodb: Any, start: int, stop: int) -> None:
    """Registered files in old partitions, outside every window."""
    items = []
    for n in range(start, stop):
        partition = Partition(f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}", f"{n % 24:02d}")
        items.append(file_item(verified_key("lock", partition, f"{n:032x}"), partition, rk.STATUS_REGISTERED,
                               f"2025-06-01T00:00:{n % 60:02d}.000Z"))
    batch_write(dynamodb, items)


def plant_failures(session: boto3.Session) -> None:
    """10 files whose partition never made it to Glue (same state before every run)."""
    dynamodb, glue = session.client("dynamodb"), session.client("glue")
    partition = Partition("2025-12-31", "23")
    with contextlib.suppress(ClientError):
        glue.delete_partition(DatabaseName=DATABASE, TableName="telemetry_lock_flat", PartitionValues=partition.values)
    dynamodb.delete_item(TableName=TABLE, Key={name: av(value) for name, value in
                                               rk.partition_key("telemetry_lock_flat", partition.day,
                                                                partition.hour).items()})
    dynamodb.delete_item(TableName=TABLE, Key={name: av(value) for name, value in rk.reconciler_state_key().items()})
    batch_write(dynamodb, [
        {**file_item(verified_key("lock", partition, f"f{n:031x}"), partition, rk.STATUS_PARTITION_FAILED,
                     "2026-01-01T00:00:00.000Z"), "last_error": av("InternalServiceException: boom")}
        for n in range(FAILURES)
    ])


def run_reconciler(url: str) -> tuple[float, Counter[str], dict[str, Any]]:
    session = boto3.Session(region_name=REGION)
    counting = Counting(session)
    environ = {"REGISTRY_TABLE": TABLE, "GLUE_DATABASE": DATABASE, "VERIFIED_BUCKET": VERIFIED, "RAW_BUCKET": RAW,
               "REDRIVE_QUEUE_URL": url, "REGISTRY_GRACE_MINUTES": "0", "RAW_GRACE_MINUTES": "0"}
    handler = build_handler(environ, Clients(session))
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # EMF blob and logs
        summary = handler({}, None)
    return time.perf_counter() - started, counting.calls, {**summary, "seconds_by_operation": counting.seconds}


def run_scan_baseline() -> tuple[float, Counter[str], dict[str, Any]]:
    """Repair (1) without the status index: scan the whole table for pending/failed files."""
    session = boto3.Session(region_name=REGION)
    counting = Counting(session)
    dynamodb = session.client("dynamodb")
    started = time.perf_counter()
    found = 0
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=TABLE, FilterExpression="#s IN (:p, :f)", ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":p": av(rk.STATUS_PARTITION_PENDING), ":f": av(rk.STATUS_PARTITION_FAILED)},
    ):
        found += page["Count"]
    return time.perf_counter() - started, counting.calls, {"found": found, "seconds_by_operation": counting.seconds}


def requests(calls: Counter[str]) -> int:
    return sum(n for operation, n in calls.items() if operation != "dynamodb items read")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="registered items, comma-separated, ascending")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION,
                       "POWERTOOLS_METRICS_NAMESPACE": "Bench", "POWERTOOLS_TRACE_DISABLED": "true",
                       "POWERTOOLS_LOG_LEVEL": "WARNING"})
    rows: dict[str, dict[str, Any]] = {}
    try:
        session = boto3.Session(region_name=REGION)
        url = setup_world(session)
        loaded = 0
        for size in sizes:
            print(f"growing the table to {size} registered items ...", flush=True)
            grow_table(session.client("dynamodb"), loaded, size)
            loaded = size
            for name, runner in (("reconciler", lambda: run_reconciler(url)), ("scan baseline", run_scan_baseline)):
                outcomes = []
                for _ in range(args.runs):
                    plant_failures(session)
                    outcomes.append(runner())
                seconds = statistics.median(elapsed for elapsed, _, _ in outcomes)
                _, calls, summary = outcomes[0]
                rows[f"{name} @{size}"] = {"seconds": seconds, "calls": calls, "summary": summary}
                print(f"  {name}: {seconds:.2f} s, {requests(calls)} requests", flush=True)
    finally:
        server.stop()

    columns = list(rows)
    operations = sorted({op for row in rows.values() for op in row["calls"]})
    print(f"\nreconciler run vs scan-based repair (1); {FAILURES} failed files, window: {WINDOW_FILES} files, "
          f"{WINDOW_RAW} raw objects; median of {args.runs} runs (moto server)")
    print(f"{'':<30}" + "".join(f"{column:>24}" for column in columns))
    print(f"{'seconds (median)':<30}" + "".join(f"{rows[c]['seconds']:>24.2f}" for c in columns))
    print(f"{'requests (total)':<30}" + "".join(f"{requests(rows[c]['calls']):>24}" for c in columns))
    for operation in operations:
        print(f"{operation:<30}" + "".join(f"{rows[c]['calls'].get(operation, 0):>24}" for c in columns))
    print("seconds spent in the slowest operations (first run):")
    for column in columns:
        slowest = rows[column]["summary"]["seconds_by_operation"].most_common(2)
        print(f"  {column:<28}" + ", ".join(f"{operation} {seconds:.2f} s" for operation, seconds in slowest))
    first, last = sizes[0], sizes[-1]
    for name in ("reconciler", "scan baseline"):
        small, large = rows[f"{name} @{first}"], rows[f"{name} @{last}"]
        print(f"{name}: requests x{requests(large['calls']) / requests(small['calls']):.2f}, "
              f"items read x{large['calls']['dynamodb items read'] / small['calls']['dynamodb items read']:.2f}, "
              f"time x{large['seconds'] / small['seconds']:.2f} from {first} to {last} items")
    print("reconciler summary:", rows[f"reconciler @{last}"]["summary"]["counts"])


if __name__ == "__main__":
    main()
