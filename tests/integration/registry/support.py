"""Moto fixtures shared by the registry and reconciler integration tests."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from registry.dal import table_input
from shared import registry_keys as rk
from shared.aws import Clients
from shared.layout import Partition, verified_key
from shared.s3events import s3_notification_body
from shared.schema import TABLES

REGION = "us-west-2"
VERIFIED_BUCKET = "verified-bucket"
RAW_BUCKET = "raw-bucket"
REGISTRY_TABLE = "test-tps-telemetry-file-registry-v2"
GLUE_DATABASE = "telemetry-parser-db"
REDRIVE_QUEUE = "telemetry-processing-redrive-queue"

REGISTRY_ENV = {"REGISTRY_TABLE": REGISTRY_TABLE, "GLUE_DATABASE": GLUE_DATABASE}


@dataclass
class CallCounter:
    """Counts AWS requests by `service.Operation`, through botocore's own event hooks."""

    calls: Counter[str] = field(default_factory=Counter)

    def __call__(self, event_name: str, **_: Any) -> None:
        # event_name is "before-call.<service>.<Operation>"
        _, service, operation = event_name.split(".", 2)
        self.calls[f"{service}.{operation}"] += 1

    def service(self, name: str) -> dict[str, int]:
        return {op: n for op, n in self.calls.items() if op.startswith(f"{name}.")}

    def total(self, name: str) -> int:
        return sum(self.service(name).values())

    def reset(self) -> None:
        self.calls.clear()


def counted_clients() -> tuple[Clients, CallCounter]:
    session = boto3.Session(region_name=REGION)
    counter = CallCounter()
    session.events.register("before-call.*.*", counter)
    return Clients(session), counter


def create_registry_table(dynamodb: Any) -> None:
    dynamodb.create_table(**rk.create_table_request(REGISTRY_TABLE))


def create_world(session: boto3.Session | None = None) -> None:
    """Buckets, the registry table, the Glue database and its four tables, the redrive queue."""
    session = session or boto3.Session(region_name=REGION)
    s3 = session.client("s3")
    for bucket in (VERIFIED_BUCKET, RAW_BUCKET):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    create_registry_table(session.client("dynamodb"))
    glue = session.client("glue")
    glue.create_database(DatabaseInput={"Name": GLUE_DATABASE})
    for table in TABLES:
        glue.create_table(DatabaseName=GLUE_DATABASE, TableInput=table_input(table, VERIFIED_BUCKET))
    session.client("sqs").create_queue(QueueName=REDRIVE_QUEUE)


def parquet_bytes(rows: int, source_key: str) -> bytes:
    table = pa.table({"source_key": [source_key] * rows, "source_line": list(range(1, rows + 1))})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def put_verified(
    s3: Any, type_value: str, partition: Partition, name: str, *, rows: int = 3, metadata: bool = True,
    body: bytes | None = None,
) -> str:
    key = verified_key(type_value, partition, name)
    source_key = f"raw/json_telemetry/{partition.day.replace('-', '/')}/{partition.hour}/{name}.gz"
    extra: dict[str, Any] = {}
    if metadata:
        extra["Metadata"] = {
            "rows": str(rows), "schema-version": "1", "source-key": source_key, "source-etag": "abc", "type": type_value
        }
    s3.put_object(
        Bucket=VERIFIED_BUCKET, Key=key, Body=body or parquet_bytes(rows, source_key),
        ContentType="application/vnd.apache.parquet", **extra,
    )
    return key


def sqs_event(bodies: Sequence[str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m-{index}",
                "receiptHandle": f"r-{index}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764100000000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-west-2:123456789012:telemetry-registry-queue",
                "awsRegion": REGION,
            }
            for index, body in enumerate(bodies)
        ]
    }


def notification(s3: Any, key: str, bucket: str = VERIFIED_BUCKET) -> str:
    head = s3.head_object(Bucket=bucket, Key=key)
    return s3_notification_body(
        bucket, key, head["ETag"], head["ContentLength"], event_time="2026-11-25T10:00:00.000Z"
    )


def file_item(dynamodb: Any, key: str) -> dict[str, Any] | None:
    item = dynamodb.get_item(TableName=REGISTRY_TABLE, Key={rk.PK: {"S": f"FILE#{key}"}, rk.SK: {"S": "FILE"}})
    found = item.get("Item")
    if found is None:
        return None
    return {name: next(iter(value.values())) for name, value in found.items()}


def glue_partitions(glue: Any, table: str) -> list[dict[str, Any]]:
    pages = glue.get_paginator("get_partitions").paginate(DatabaseName=GLUE_DATABASE, TableName=table)
    return [partition for page in pages for partition in page["Partitions"]]


def load_event(name: str) -> dict[str, Any]:
    from pathlib import Path  # noqa: PLC0415

    path = Path(__file__).resolve().parents[3] / "events" / name
    loaded: dict[str, Any] = orjson.loads(path.read_bytes())
    return loaded


def iter_items(dynamodb: Any) -> Iterator[dict[str, Any]]:
    """Test inspection only (the code under test never scans)."""
    for page in dynamodb.get_paginator("scan").paginate(TableName=REGISTRY_TABLE):
        yield from page["Items"]
