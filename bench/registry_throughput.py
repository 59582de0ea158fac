"""Registering 10,000 verified files in 50 partitions against moto's server.

Prints files/s, Glue calls and DynamoDB requests per file for the registry handler, side by side
with a named baseline measured in the same run: a naive registrar that HEADs, writes and calls
BatchCreatePartition once per file (what the registry would cost without batching and without
partitions on record). Requests are counted by operation with botocore event hooks.

    .venv/bin/python bench/registry_throughput.py [--files 10000] [--partitions 50] [--runs 3]
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
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from registry.app import build_handler
from registry.dal import table_input
from shared import registry_keys as rk
from shared.aws import Clients
from shared.layout import Partition, verified_key
from shared.s3events import s3_notification_body
from shared.schema import TABLES, TABLES_BY_TYPE

REGION = "us-west-2"
BUCKET = "bench-verified"
DATABASE = "bench-db"
TABLE = "bench-registry"
ENV = {"REGISTRY_TABLE": TABLE, "GLUE_DATABASE": DATABASE}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Counting:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, event_name: str, **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        self.calls[f"{service}.{operation}"] += 1

    def total(self, service: str) -> int:
        return sum(n for op, n in self.calls.items() if op.startswith(f"{service}."))


def counted_session() -> tuple[boto3.Session, Counting]:
    session = boto3.Session(region_name=REGION)
    counting = Counting()
    session.events.register("before-call.*.*", counting)
    return session, counting


def create_registry_table(dynamodb: Any) -> None:
    dynamodb.create_table(**rk.create_table_request(TABLE))


def reset_catalog_and_table(session: boto3.Session) -> None:
    dynamodb, glue = session.client("dynamodb"), session.client("glue")
    with contextlib.suppress(ClientError):
        dynamodb.delete_table(TableName=TABLE)
    create_registry_table(dynamodb)
    with contextlib.suppress(ClientError):
        glue.delete_database(Name=DATABASE)
    glue.create_database(DatabaseInput={"Name": DATABASE})
    for table in TABLES:
        glue.create_table(DatabaseName=DATABASE, TableInput=table_input(table, BUCKET))


def put_files(session: boto3.Session, files: int, partitions: int, order: str) -> list[str]:
    s3 = session.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    hours = [Partition(f"2026-11-{20 + index // 24:02d}", f"{index % 24:02d}") for index in range(partitions)]
    if order == "interleaved":  # every batch spans 10 partitions: the worst case for per-batch grouping
        keys = [verified_key("lock", hours[n % partitions], f"{n:032x}") for n in range(files)]
    else:  # files of one hour arrive together, as the parser writes them
        keys = [verified_key("lock", hours[n * partitions // files], f"{n:032x}") for n in range(files)]
    body = b"PAR1" + b"\0" * 2048 + b"PAR1"
    metadata = {"rows": "500", "schema-version": "1", "source-key": "raw/json_telemetry/x.gz", "source-etag": "e",
                "type": "lock"}
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata=metadata), keys))
    return keys


def sqs_events(keys: list[str], batch_size: int) -> list[dict[str, Any]]:
    bodies = [s3_notification_body(BUCKET, key, "etag", 2056, event_time="2026-11-25T10:00:00.000Z") for key in keys]
    return [
        {"Records": [{"messageId": f"{start + i}", "receiptHandle": "r", "body": body, "attributes": {},
                      "messageAttributes": {}, "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:::q",
                      "awsRegion": REGION}
                     for i, body in enumerate(bodies[start:start + batch_size])]}
        for start in range(0, len(bodies), batch_size)
    ]


def run_registry(keys: list[str], batch_size: int) -> tuple[float, Counting]:
    session, counting = counted_session()
    handler = build_handler(ENV, Clients(session))
    events = sqs_events(keys, batch_size)
    started = time.perf_counter()
    for event in events:
        with contextlib.redirect_stdout(io.StringIO()):  # EMF blobs and logs, one per invocation
            response = handler(event, None)
        if response["batchItemFailures"]:
            raise SystemExit(f"registry failed messages: {response['batchItemFailures'][:3]}")
    return time.perf_counter() - started, counting


def run_naive(keys: list[str]) -> tuple[float, Counting]:
    """Baseline: per file one HEAD, one PutItem and one single-entry BatchCreatePartition."""
    session, counting = counted_session()
    s3, dynamodb, glue = session.client("s3"), session.client("dynamodb"), session.client("glue")
    descriptors: dict[str, dict[str, Any]] = {}

    def register(key: str) -> None:
        head = s3.head_object(Bucket=BUCKET, Key=key)
        parts = key.split("/")
        type_value, day, hour = parts[1][5:], parts[2][4:], parts[3][5:]
        table = TABLES_BY_TYPE[type_value].name
        if table not in descriptors:
            descriptors[table] = glue.get_table(DatabaseName=DATABASE, Name=table)["Table"]["StorageDescriptor"]
        descriptor = {**descriptors[table], "Location": f"{descriptors[table]['Location']}day={day}/hour={hour}/"}
        glue.batch_create_partition(DatabaseName=DATABASE, TableName=table,
                                    PartitionInputList=[{"Values": [day, hour], "StorageDescriptor": descriptor}])
        dynamodb.put_item(TableName=TABLE, Item={
            **{name: {"S": value} for name, value in rk.file_key(key).items()},
            "etag": {"S": head["ETag"]}, "status": {"S": "registered"}, "updated_at": {"S": "2026-11-25T10:00:00Z"},
        })

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:  # same concurrency as the registry's worker pool
        list(pool.map(register, keys))
    return time.perf_counter() - started, counting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--order", choices=("interleaved", "grouped"), default="interleaved",
                        help="notification order: partitions interleaved (default) or grouped by hour")
    parser.add_argument("--batch-size", type=int, default=10, help="SQS messages per invocation (default 10)")
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION,
                       "POWERTOOLS_METRICS_NAMESPACE": "Bench", "POWERTOOLS_TRACE_DISABLED": "true",
                       "POWERTOOLS_LOG_LEVEL": "WARNING"})
    try:
        setup = boto3.Session(region_name=REGION)
        print(f"uploading {args.files} objects in {args.partitions} partitions ...", flush=True)
        keys = put_files(setup, args.files, args.partitions, args.order)
        results: dict[str, list[tuple[float, Counting]]] = {"registry": [], "naive": []}
        for run in range(args.runs):
            for name in ("registry", "naive"):
                reset_catalog_and_table(setup)
                outcome = run_registry(keys, args.batch_size) if name == "registry" else run_naive(keys)
                results[name].append(outcome)
                print(f"run {run + 1} {name}: {args.files / outcome[0]:.0f} files/s", flush=True)
    finally:
        server.stop()

    def row(name: str) -> dict[str, float]:
        seconds = statistics.median(elapsed for elapsed, _ in results[name])
        counting = results[name][0][1]
        return {
            "files/s": args.files / seconds,
            "glue calls": counting.total("glue"),
            "glue BatchCreatePartition": counting.calls["glue.BatchCreatePartition"],
            "dynamodb requests/file": counting.total("dynamodb") / args.files,
            "s3 requests/file": counting.total("s3") / args.files,
        }

    registry, naive = row("registry"), row("naive")
    print(f"\n{args.files} files, {args.partitions} partitions ({args.order}), SQS batch {args.batch_size}, "
          f"median of {args.runs} runs (moto server)")
    print(f"{'metric':<28}{'registry':>14}{'naive baseline':>16}{'ratio':>10}")
    for metric in registry:
        ratio = registry[metric] / naive[metric] if naive[metric] else float("nan")
        print(f"{metric:<28}{registry[metric]:>14.2f}{naive[metric]:>16.2f}{ratio:>10.3f}")
    print("registry calls by operation:", dict(sorted(results["registry"][0][1].calls.items())))


if __name__ == "__main__":
    main()
