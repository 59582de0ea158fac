"""The ingester against moto: two Firehose streams delivering to a raw bucket, as the template wires them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ingester.app import build_handler
from ingester.firehose import FirehoseSink, RecordSink
from shared.aws import Clients
from tests.unit.ingester.fakes import STREAMS, FakeContext

RAW_BUCKET = "signals-raw-test"
PREFIXES = {"telemetry-stream": "raw/json_telemetry/", "otlp-stream": "raw/otlp_logs/"}


@dataclass
class Stack:
    clients: Clients
    invoke: Callable[[dict[str, Any]], dict[str, Any]]

    def handler(self, sink: RecordSink | None = None, **environ: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        handler = build_handler({**STREAMS, **environ}, self.clients, sink=sink)
        return lambda event: handler(event, FakeContext())

    def firehose_sink(self) -> FirehoseSink:
        return FirehoseSink(self.clients.client("firehose"))

    def raw_lines(self, prefix: str) -> list[bytes]:
        """Every line of every raw object under `prefix` (order kept within an object only)."""
        s3 = self.clients.client("s3")
        lines: list[bytes] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=RAW_BUCKET, Prefix=prefix):
            for item in page.get("Contents", []):
                data = s3.get_object(Bucket=RAW_BUCKET, Key=item["Key"])["Body"].read()
                assert data.endswith(b"\n")
                lines.extend(data[:-1].split(b"\n"))
        return lines

    def raw_object_count(self, prefix: str) -> int:
        response = self.clients.client("s3").list_objects_v2(Bucket=RAW_BUCKET, Prefix=prefix)
        return int(response.get("KeyCount", 0))


@pytest.fixture
def stack() -> Iterator[Stack]:
    with mock_aws():
        session = boto3.Session(region_name="us-west-2")
        session.client("s3").create_bucket(Bucket=RAW_BUCKET,
                                           CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        firehose = session.client("firehose")
        for stream, prefix in PREFIXES.items():
            firehose.create_delivery_stream(
                DeliveryStreamName=stream,
                DeliveryStreamType="DirectPut",
                ExtendedS3DestinationConfiguration={
                    "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                    "BucketARN": f"arn:aws:s3:::{RAW_BUCKET}",
                    "Prefix": prefix,
                    "ErrorOutputPrefix": "errors/",
                },
            )
        clients = Clients(session)
        handler = build_handler(STREAMS, clients)
        yield Stack(clients=clients, invoke=lambda event: handler(event, FakeContext()))
