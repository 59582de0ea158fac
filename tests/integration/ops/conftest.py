"""A hand-built pipeline in moto: the resources `signals status/redrive` read, wired like the stack's.

No functions run here; tests put objects and items in place as the pipeline would, then break one
thing at a time and read the status lines.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from moto import mock_aws

from shared import registry_keys
from shared.iceberg_properties import iceberg_table_properties
from shared.layout import Partition, verified_key
from shared.schema import AUDIT_TABLES, COMPACTED_TABLES, TABLES, glue_columns, glue_partition_keys
from signals.env import Environment, Output

RAW = "test-signal-data-lake-raw"
VERIFIED = "test-verified-parquet-v2-abc"
QUARANTINE = "test-parquet-output-simple-quarantine-abc"
TABLE = "test-tps-telemetry-file-registry-v2"
DATABASE = "telemetry-parser-db"
ARTIFACTS = "test-dbt-artifacts-abc"
AUDIT_DATABASE = "telemetry_alerts_test_dq_audit"
ALERTS_DATABASE = "telemetry_alerts_test"
DBT = "test-signal-data-lake-dbt"


def put_iceberg_table(session: boto3.Session, database: str, spec: Any, properties: dict[str, str]) -> str:
    """An Iceberg table as CloudFormation leaves it: its first metadata file (written with pyiceberg's
    model) under the table's Location, and a Glue table pointing at it. Returns the metadata location."""
    from pyiceberg.table.metadata import new_table_metadata  # noqa: PLC0415
    from pyiceberg.table.sorting import UNSORTED_SORT_ORDER  # noqa: PLC0415

    from shared.iceberg import pyiceberg_partition_spec, pyiceberg_schema  # noqa: PLC0415

    location = f"s3://{DBT}/{spec.data_prefix.rstrip('/')}"
    metadata = new_table_metadata(schema=pyiceberg_schema(spec), partition_spec=pyiceberg_partition_spec(spec),
                                  sort_order=UNSORTED_SORT_ORDER, location=location, properties=properties)
    key = f"{spec.data_prefix}metadata/00000-{spec.name}.metadata.json"
    session.client("s3").put_object(Bucket=DBT, Key=key, Body=metadata.model_dump_json().encode())
    glue = session.client("glue")
    if _has_table(glue, database, spec.name):
        glue.delete_table(DatabaseName=database, Name=spec.name)
    glue.create_table(DatabaseName=database, TableInput={
        "Name": spec.name, "TableType": "EXTERNAL_TABLE",
        "Parameters": {"table_type": "ICEBERG", "metadata_location": f"s3://{DBT}/{key}"}})
    return f"s3://{DBT}/{key}"


def _has_table(glue: Any, database: str, name: str) -> bool:
    try:
        glue.get_table(DatabaseName=database, Name=name)
    except glue.exceptions.EntityNotFoundException:
        return False
    return True

QUEUE_OUTPUTS = {
    "telemetry-processing-queue": (Output.TELEMETRY_QUEUE_URL, Output.TELEMETRY_DLQ_URL),
    "otlp-logs-processing-queue": (Output.OTLP_QUEUE_URL, Output.OTLP_DLQ_URL),
    "telemetry-processing-redrive-queue": (Output.REDRIVE_QUEUE_URL, Output.REDRIVE_DLQ_URL),
    "telemetry-registry-queue": (Output.REGISTRY_QUEUE_URL, Output.REGISTRY_DLQ_URL),
}


def _item(values: dict[str, Any]) -> dict[str, Any]:
    serializer = TypeSerializer()
    return {name: serializer.serialize(value) for name, value in values.items()}


@dataclass
class Pipeline:
    """The env plus helpers that do what a healthy pipeline would have done."""

    env: Environment

    @property
    def s3(self) -> Any:
        return self.env.client("s3")

    @property
    def sqs(self) -> Any:
        return self.env.client("sqs")

    @property
    def dynamodb(self) -> Any:
        return self.env.client("dynamodb")

    @property
    def glue(self) -> Any:
        return self.env.client("glue")

    def put_raw(self, source: str, hour: datetime, name: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
        key = f"raw/{source}/{hour:%Y/%m/%d/%H}/{name}.gz"
        body = gzip.compress(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
        etag = self.s3.put_object(Bucket=RAW, Key=key, Body=body)["ETag"].strip('"')
        return {"key": key, "etag": etag, "size": len(body)}

    def record_processed(self, raw_object_key: str, outputs: list[str]) -> None:
        self.dynamodb.put_item(TableName=TABLE, Item=_item({
            **registry_keys.raw_key(RAW, raw_object_key), "item_type": "raw", "raw_bucket": RAW,
            "raw_key": raw_object_key, "source": raw_object_key.split("/")[1], "outputs": outputs,
            "processed_at": datetime.now(UTC).isoformat(),
        }))

    def put_verified(self, type_value: str, partition: Partition, name: str, rows: int, source_key: str) -> str:
        key = verified_key(type_value, partition, name)
        self.s3.put_object(Bucket=VERIFIED, Key=key, Body=b"PAR1-not-really", Metadata={
            "rows": str(rows), "schema-version": "1", "source-key": source_key, "type": type_value})
        return key

    def register_file(self, key: str, type_value: str, partition: Partition, rows: int, *,
                      status: str = registry_keys.STATUS_REGISTERED, last_error: str = "",
                      at: datetime | None = None) -> None:
        table = next(t.name for t in TABLES if t.type_value == type_value)
        now = (at or datetime.now(UTC)).isoformat()
        self.dynamodb.put_item(TableName=TABLE, Item=_item({
            **registry_keys.file_key(key), "item_type": "file", "verified_key": key, "type": type_value,
            "table": table, "day": partition.day, "hour": partition.hour, "rows": rows, "status": status,
            "attempts": 1, "last_error": last_error, "created_at": now, "updated_at": now,
        }))

    def add_partition(self, type_value: str, partition: Partition, *, in_registry: bool = True,
                      in_glue: bool = True) -> None:
        table = next(t for t in TABLES if t.type_value == type_value)
        if in_registry:
            self.dynamodb.put_item(TableName=TABLE, Item=_item({
                **registry_keys.partition_key(table.name, partition.day, partition.hour), "item_type": "partition",
                "table": table.name, "day": partition.day, "hour": partition.hour,
            }))
        if in_glue:
            location = f"s3://{VERIFIED}/{table.location_prefix}{partition.path}/"
            self.glue.create_partition(DatabaseName=DATABASE, TableName=table.name, PartitionInput={
                "Values": partition.values, "StorageDescriptor": {"Location": location}})

    def deliver(self, type_value: str, partition: Partition, name: str, rows: int, raw_object_key: str) -> str:
        """A verified file the way the whole pipeline leaves it: written, registered, partitioned."""
        key = self.put_verified(type_value, partition, name, rows, raw_object_key)
        self.register_file(key, type_value, partition, rows)
        table = next(t for t in TABLES if t.type_value == type_value)
        known = self.dynamodb.get_item(TableName=TABLE, Key=_item(
            registry_keys.partition_key(table.name, partition.day, partition.hour)))
        if "Item" not in known:
            self.add_partition(type_value, partition)
        return key

    def put_quarantine(self, source: str, partition: Partition, name: str, reasons: list[str]) -> None:
        lines = [json.dumps({"reason": r, "errors": [], "source_key": "raw/x", "line": i + 1, "original": "{}"})
                 for i, r in enumerate(reasons)]
        self.s3.put_object(Bucket=QUARANTINE, Key=f"quarantine/source={source}/{partition.path}/{name}.jsonl.gz",
                           Body=gzip.compress("\n".join(lines).encode() + b"\n"))

    def reconciler_ran(self, at: datetime, errors: int = 0) -> None:
        self.dynamodb.put_item(TableName=TABLE, Item=_item({
            **registry_keys.reconciler_state_key(), "last_run_at": at.isoformat().replace("+00:00", "Z"),
            "last_summary": {"partitions_recreated": 0, "raw_redriven": 2, "errors": errors, "complete": 1},
        }))

    def compactor_ran(self, at: datetime, *, watermark: str | None, outcome: str = "succeeded",
                      results: list[dict[str, Any]] | None = None, report: bool = True) -> str:
        """What a compactor run leaves: its state item (watermark, last run) and its run report."""
        run_id = f"run-{at:%H%M%S%f}"
        results = results if results is not None else [
            {"unique_id": "compaction.int_lock_compacted_daily.2026-11-25", "status": "success",
             "relation_name": "int_lock_compacted_daily", "day": "2026-11-25", "message": "5 inserted, 0 replaced",
             "adapter_response": {"verified_rows": 7, "inserted": 5, "natural_duplicates": 2,
                                  "conflicting_duplicates": 0, "conflicts_recorded": 0, "late_rows": 0}}]
        totals = {name: sum(int(r["adapter_response"].get(name, 0)) for r in results)
                  for name in ("verified_rows", "inserted", "natural_duplicates", "conflicting_duplicates",
                               "conflicts_recorded", "late_rows")}
        self.dynamodb.put_item(TableName=TABLE, Item=_item({
            **registry_keys.compactor_state_key(), "item_type": "compactor_state", "watermark": watermark,
            "last_run_id": run_id, "last_run_at": at.isoformat().replace("+00:00", "Z"), "last_outcome": outcome,
            "last_summary": {**totals, "days_compacted": sum(r["status"] == "success" for r in results),
                             "days_failed": sum(r["status"] == "error" for r in results)},
        }))
        if report:
            document = json.dumps({"metadata": {"invocation_id": run_id, "engine": "athena"}, "results": results})
            for key in (f"compactor/run_results/{at:%Y/%m/%d}/{run_id}.json", "compactor/latest/run_results.json"):
                self.s3.put_object(Bucket=ARTIFACTS, Key=key, Body=document.encode())
        return run_id

    def registered_at(self, verified_key: str) -> str:
        item = self.dynamodb.get_item(TableName=TABLE, Key=_item(registry_keys.file_key(verified_key)))["Item"]
        return str(item["updated_at"]["S"])

    def queue_url(self, output: str) -> str:
        return self.env.output(output)


def _create_resources(session: boto3.Session) -> dict[str, str]:
    s3 = session.client("s3")
    for bucket in (RAW, VERIFIED, QUARANTINE, ARTIFACTS, DBT):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    sqs = session.client("sqs")
    outputs = {Output.RAW_BUCKET: RAW, Output.VERIFIED_BUCKET: VERIFIED, Output.QUARANTINE_BUCKET: QUARANTINE,
               Output.REGISTRY_TABLE: TABLE, Output.GLUE_DATABASE: DATABASE, Output.ARTIFACTS_BUCKET: ARTIFACTS,
               Output.AUDIT_DATABASE: AUDIT_DATABASE, Output.ALERTS_DATABASE: ALERTS_DATABASE}
    for name, (queue_output, dlq_output) in QUEUE_OUTPUTS.items():
        dlq_url = sqs.create_queue(QueueName=f"{name}_dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue_url = sqs.create_queue(QueueName=name, Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}),
            "VisibilityTimeout": "30"})["QueueUrl"]
        outputs[queue_output], outputs[dlq_output] = queue_url, dlq_url
    session.client("dynamodb").create_table(**registry_keys.create_table_request(TABLE))
    firehose = session.client("firehose")
    for output, source in ((Output.TELEMETRY_FIREHOSE, "json_telemetry"), (Output.OTLP_FIREHOSE, "otlp_logs")):
        stream = f"{source}-firehose"
        firehose.create_delivery_stream(DeliveryStreamName=stream, ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose", "BucketARN": f"arn:aws:s3:::{RAW}",
            "Prefix": f"raw/{source}/!{{timestamp:yyyy/MM/dd/HH}}/",
            "ErrorOutputPrefix": f"errors/{source}/!{{firehose:error-output-type}}/!{{timestamp:yyyy/MM/dd/HH}}/",
            "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 64}, "CompressionFormat": "GZIP"})
        outputs[output] = stream
    glue = session.client("glue")
    glue.create_database(DatabaseInput={"Name": DATABASE})
    for table in TABLES:
        glue.create_table(DatabaseName=DATABASE, TableInput={
            "Name": table.name, "TableType": "EXTERNAL_TABLE", "PartitionKeys": glue_partition_keys(),
            "StorageDescriptor": {"Columns": glue_columns(table),
                                  "Location": f"s3://{VERIFIED}/{table.location_prefix}"},
        })
    for database, specs in ((ALERTS_DATABASE, COMPACTED_TABLES), (AUDIT_DATABASE, AUDIT_TABLES)):
        glue.create_database(DatabaseInput={"Name": database})
        for spec in specs:
            put_iceberg_table(session, database, spec, iceberg_table_properties())
    return outputs


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    with mock_aws():
        session = boto3.Session(region_name="us-west-2")
        outputs = _create_resources(session)
        yield Pipeline(Environment(name="test", session=session, outputs=outputs))


@dataclass(frozen=True)
class Clock:
    now: datetime
    hour: datetime
    part: Partition


@pytest.fixture
def clock() -> Clock:
    """The test's own now and hour. Checks read S3's LastModified (the real clock): the conflicts line
    counts the run reports stamped within the hour it inspects, and ages run from it. So now is taken
    when the test starts, not when its module was imported (under load a run of the suite crossed an
    hour between the two, in CI's rehearsal), and a test within 5 s of an hour's end waits for the next."""
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    if (left := (hour + timedelta(hours=1) - now).total_seconds()) < 5:
        time.sleep(left + 0.1)
        now = datetime.now(UTC)
        hour = now.replace(minute=0, second=0, microsecond=0)
    return Clock(now, hour, Partition.from_datetime(hour))
