"""Moto world for the parser handler: raw, verified and quarantine buckets and the registry table."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from shared import registry_keys as rk
from shared.aws import Clients
from shared.s3events import s3_notification_body

REGION = "us-west-2"
RAW_BUCKET = "signals-raw-dev"
VERIFIED_BUCKET = "signals-verified-dev"
QUARANTINE_BUCKET = "signals-quarantine-dev"
REGISTRY_TABLE = "dev-tps-telemetry-file-registry-v2"
PARSER_ENV = {
    "VERIFIED_BUCKET": VERIFIED_BUCKET,
    "QUARANTINE_BUCKET": QUARANTINE_BUCKET,
    "REGISTRY_TABLE": REGISTRY_TABLE,
    # The raw objects below carry fixed 2026 event times: a wide window keeps them inside it.
    "EVENT_TIME_PAST_DAYS": "36500",
}
EVENTS = Path(__file__).resolve().parents[3] / "events"


@pytest.fixture
def aws() -> Iterator[boto3.Session]:
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        s3 = session.client("s3")
        for bucket in (RAW_BUCKET, VERIFIED_BUCKET, QUARANTINE_BUCKET):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        session.client("dynamodb").create_table(
            TableName=REGISTRY_TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": rk.PK, "AttributeType": "S"},
                                  {"AttributeName": rk.SK, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": rk.PK, "KeyType": "HASH"}, {"AttributeName": rk.SK, "KeyType": "RANGE"}],
        )
        yield session


@pytest.fixture
def s3(aws: boto3.Session) -> Any:
    return aws.client("s3")


@pytest.fixture
def clients(aws: boto3.Session) -> Clients:
    return Clients(aws)


def put_raw(s3: Any, key: str, lines: list[bytes], *, bucket: str = RAW_BUCKET) -> str:
    """Put a gzip JSONL raw object; returns its ETag."""
    response = s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(b"\n".join(lines) + b"\n"))
    return str(response["ETag"]).strip('"')


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {"Records": [
        {"messageId": f"message-{index}", "receiptHandle": f"handle-{index}", "body": body,
         "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs",
         "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:telemetry-processing-queue", "awsRegion": REGION}
        for index, body in enumerate(bodies)
    ]}


def notification(key: str, etag: str, size: int = 100, bucket: str = RAW_BUCKET) -> str:
    return s3_notification_body(bucket, key, etag, size, event_time="2026-11-25T19:05:00.000Z")


def sample_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def keys(s3: Any, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
