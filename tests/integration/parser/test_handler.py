"""The parser handler against moto: SQS batches of S3 notifications to verified, quarantine, registry."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest

from parser.app import build_handler
from shared import registry_keys as rk
from shared.aws import Clients
from shared.layout import output_name, parse_verified_key
from tests.integration.parser.conftest import (
    PARSER_ENV,
    QUARANTINE_BUCKET,
    RAW_BUCKET,
    REGISTRY_TABLE,
    VERIFIED_BUCKET,
    keys,
    notification,
    put_raw,
    sample_event,
    sqs_event,
)

RAW_KEY = "raw/json_telemetry/2026/11/25/19/telemetry-stream-1-2026-11-25-19-04-58-3f2a9c1e.gz"


def device_line(event_id: str, device_type: str = "lock", **fields: Any) -> bytes:
    event = {"event_id": event_id, "device_id": "dev-1", "device_type": device_type, "event_name": "ping",
             "event_time": "2026-11-25T18:59:30.250Z", "received_at": "2026-11-25T19:00:00.000Z", **fields}
    return orjson.dumps(event)


LINES = [
    device_line("e1", battery_pct=80, bolt_state="locked"),
    device_line("e2", "bridge", uptime_s=10, network_type="wifi"),
    device_line("e3", "video_doorbell", event_time="2026-11-25T20:10:00+01:00", motion_detected=True),
    b"",
    b'{"not json',
    device_line("e4", battery_pct=101),
]


def test_sqs_sample_event_processes_its_object_and_acks_the_test_event(s3: Any, clients: Clients) -> None:
    event = sample_event("parser_sqs_s3.json")
    body = json.loads(event["Records"][0]["body"])
    s3_object = body["Records"][0]["s3"]
    assert s3_object["bucket"]["name"] == RAW_BUCKET
    key = s3_object["object"]["key"].replace("+", " ")
    put_raw(s3, key, LINES, bucket=s3_object["bucket"]["name"])

    response = build_handler(PARSER_ENV, clients)(event, None)

    assert response == {"batchItemFailures": []}
    verified = keys(s3, VERIFIED_BUCKET)
    assert [parse_verified_key(k).type_value for k in verified] == ["bridge", "lock", "video_doorbell"]  # type: ignore[union-attr]
    item = clients.client("dynamodb").get_item(TableName=REGISTRY_TABLE, Key={
        name: {"S": value} for name, value in rk.raw_key(s3_object["bucket"]["name"], key).items()})["Item"]
    assert item["raw_key"]["S"] == key  # `+` in the notification is a space in the key


def test_outputs_metadata_quarantine_and_processing_record(s3: Any, clients: Clients) -> None:
    etag = put_raw(s3, RAW_KEY, LINES)
    response = build_handler(PARSER_ENV, clients)(sqs_event(notification(RAW_KEY, etag)), None)
    assert response == {"batchItemFailures": []}

    name = output_name(RAW_BUCKET, RAW_KEY, etag)
    verified = keys(s3, VERIFIED_BUCKET)
    assert verified == [
        f"telemetry_flat/type=bridge/day=2026-11-25/hour=18/{name}.parquet",
        f"telemetry_flat/type=lock/day=2026-11-25/hour=18/{name}.parquet",
        # 20:10 at +01:00 is 19:10 UTC
        f"telemetry_flat/type=video_doorbell/day=2026-11-25/hour=19/{name}.parquet",
    ]
    head = s3.head_object(Bucket=VERIFIED_BUCKET, Key=verified[1])
    assert head["ContentType"] == "application/vnd.apache.parquet"
    assert head["Metadata"] == {"rows": "1", "schema-version": "1", "source-key": RAW_KEY, "source-etag": etag,
                                "type": "lock"}

    [quarantine_key] = keys(s3, QUARANTINE_BUCKET)
    assert quarantine_key.startswith("quarantine/source=json_telemetry/day=")
    assert quarantine_key.endswith(f"/{name}.jsonl.gz")
    body = s3.get_object(Bucket=QUARANTINE_BUCKET, Key=quarantine_key)["Body"].read()
    records = [json.loads(line) for line in gzip.decompress(body).splitlines()]
    assert [(r["reason"], r["line"]) for r in records] == [("invalid_json", 5), ("invalid_value", 6)]
    assert records[1]["errors"][0]["field"] == "battery_pct"
    assert records[1]["source_key"] == RAW_KEY
    assert records[0]["original"] == '{"not json'

    item = clients.client("dynamodb").get_item(TableName=REGISTRY_TABLE, Key={
        name: {"S": value} for name, value in rk.raw_key(RAW_BUCKET, RAW_KEY).items()})["Item"]
    assert item["item_type"] == {"S": "raw"}
    assert item["etag"] == {"S": etag}
    assert item["source"] == {"S": "json_telemetry"}
    assert item["rows_out"] == {"M": {"lock": {"N": "1"}, "bridge": {"N": "1"}, "video_doorbell": {"N": "1"}}}
    assert item["quarantined"] == {"N": "2"}
    assert item["blank_lines"] == {"N": "1"}
    assert item["quarantine_key"] == {"S": quarantine_key}
    assert sorted(v["S"] for v in item["outputs"]["L"]) == verified


def test_the_same_message_twice_overwrites_its_own_output(s3: Any, clients: Clients) -> None:
    etag = put_raw(s3, RAW_KEY, LINES)
    handler = build_handler(PARSER_ENV, clients)
    handler(sqs_event(notification(RAW_KEY, etag)), None)
    first = (keys(s3, VERIFIED_BUCKET), keys(s3, QUARANTINE_BUCKET))
    handler(sqs_event(notification(RAW_KEY, etag)), None)
    assert (keys(s3, VERIFIED_BUCKET), keys(s3, QUARANTINE_BUCKET)) == first


def test_one_unreadable_object_and_one_poison_message_fail_alone(s3: Any, clients: Clients) -> None:
    etag = put_raw(s3, RAW_KEY, LINES)
    event = sqs_event(
        notification("raw/json_telemetry/2026/11/25/19/gone.gz", "0" * 32),  # NoSuchKey
        notification(RAW_KEY, etag),
        "this is not an S3 notification",
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": RAW_BUCKET}),
    )
    response = build_handler(PARSER_ENV, clients)(event, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}, {"itemIdentifier": "message-2"}]}
    assert len(keys(s3, VERIFIED_BUCKET)) == 3


def test_several_records_in_one_body_are_all_processed(s3: Any, clients: Clients) -> None:
    first_key, second_key = RAW_KEY, RAW_KEY.replace(".gz", "-b.gz")
    first, second = put_raw(s3, first_key, LINES[:1]), put_raw(s3, second_key, LINES[1:2])
    body = json.loads(notification(first_key, first))
    body["Records"] += json.loads(notification(second_key, second))["Records"]
    assert build_handler(PARSER_ENV, clients)(sqs_event(json.dumps(body)), None) == {"batchItemFailures": []}
    assert len(keys(s3, VERIFIED_BUCKET)) == 2


def test_a_registry_outage_fails_the_message(s3: Any, clients: Clients) -> None:
    etag = put_raw(s3, RAW_KEY, LINES)
    env = {**PARSER_ENV, "REGISTRY_TABLE": "no-such-table"}
    response = build_handler(env, clients)(sqs_event(notification(RAW_KEY, etag)), None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}


def test_a_key_outside_raw_is_acknowledged_without_output(s3: Any, clients: Clients) -> None:
    etag = put_raw(s3, "errors/processing-failed/x.gz", LINES)
    response = build_handler(PARSER_ENV, clients)(sqs_event(notification("errors/processing-failed/x.gz", etag)), None)
    assert response == {"batchItemFailures": []}
    assert keys(s3, VERIFIED_BUCKET) == []


def test_otlp_object_becomes_otlp_rows_with_microsecond_timestamps(s3: Any, clients: Clients, tmp_path: Path) -> None:
    request = {"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeLogs": [{"scope": {"name": "app"}, "logRecords": [
            {"timeUnixNano": "1795633200123456789", "severityNumber": 9, "body": {"stringValue": "hello"}},
            {"timeUnixNano": "1795633200123456789", "severityNumber": 99},
        ]}],
    }]}
    key = "raw/otlp_logs/2026/11/25/19/otlp-stream-1-2026-11-25-19-04-58-aa.gz"
    etag = put_raw(s3, key, [orjson.dumps(request)])
    assert build_handler(PARSER_ENV, clients)(sqs_event(notification(key, etag)), None) == {"batchItemFailures": []}
    [verified] = keys(s3, VERIFIED_BUCKET)
    assert verified.startswith("telemetry_flat/type=otlp_logs/day=2026-11-25/hour=")
    local = tmp_path / "otlp.parquet"
    local.write_bytes(s3.get_object(Bucket=VERIFIED_BUCKET, Key=verified)["Body"].read())
    time_column = pq.ParquetFile(local).schema.column(0)
    assert (time_column.name, time_column.physical_type) == ("time", "INT64")
    assert json.loads(time_column.logical_type.to_json())["timeUnit"] == "microseconds"
    assert pq.read_table(local).column("time").to_pylist()[0].microsecond == 123456
    [quarantine_key] = keys(s3, QUARANTINE_BUCKET)
    assert quarantine_key.startswith("quarantine/source=otlp_logs/")


@pytest.mark.parametrize("column", ["event_time", "received_at"])
def test_duckdb_reads_the_output_with_hive_partitioning(s3: Any, clients: Clients, tmp_path: Path,
                                                        column: str) -> None:
    etag = put_raw(s3, RAW_KEY, LINES)
    build_handler(PARSER_ENV, clients)(sqs_event(notification(RAW_KEY, etag)), None)
    for key in keys(s3, VERIFIED_BUCKET):
        target = tmp_path / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket=VERIFIED_BUCKET, Key=key)["Body"].read())
    lock = tmp_path / "telemetry_flat" / "type=lock"
    parquet = pq.ParquetFile(next(lock.rglob("*.parquet")))
    physical = parquet.schema.column(parquet.schema_arrow.get_field_index(column))
    assert physical.physical_type == "INT64"
    assert json.loads(physical.logical_type.to_json())["timeUnit"] == "milliseconds"
    connection = duckdb.connect()
    connection.execute("SET TimeZone='UTC'")
    rows = connection.execute(
        f"SELECT type, day, hour, event_id, strftime({column}, '%Y-%m-%d %H:%M:%S.%g') "
        f"FROM read_parquet('{tmp_path}/telemetry_flat/*/*/*/*.parquet', hive_partitioning=true, union_by_name=true, "
        "hive_types={'type': 'VARCHAR', 'day': 'VARCHAR', 'hour': 'VARCHAR'}) "
        "ORDER BY event_id"
    ).fetchall()
    expected_time = {"event_time": ["2026-11-25 18:59:30.250", "2026-11-25 18:59:30.250", "2026-11-25 19:10:00.000"],
                     "received_at": ["2026-11-25 19:00:00.000"] * 3}[column]
    assert rows == [
        ("lock", "2026-11-25", "18", "e1", expected_time[0]),
        ("bridge", "2026-11-25", "18", "e2", expected_time[1]),
        ("video_doorbell", "2026-11-25", "19", "e3", expected_time[2]),
    ]


def test_emf_metrics_name_rows_by_type_and_quarantine_by_reason(s3: Any, clients: Clients,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    etag = put_raw(s3, RAW_KEY, LINES)
    build_handler(PARSER_ENV, clients)(sqs_event(notification(RAW_KEY, etag)), None)
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    by_type = {d["type"]: d["RowsOutByType"] for d in documents if "RowsOutByType" in d}
    by_reason = {d["reason"]: d["QuarantinedByReason"] for d in documents if "QuarantinedByReason" in d}
    assert by_type == {"bridge": [1.0], "lock": [1.0], "video_doorbell": [1.0]}
    assert by_reason == {"invalid_json": [1.0], "invalid_value": [1.0]}
    [batch] = [d for d in documents if "RowsOut" in d]
    assert [batch[name] for name in ("RowsOut", "Quarantined", "FilesOut", "BlankLines")] == [
        [3.0], [2.0], [3.0], [1.0]]
    assert batch["BytesIn"][0] > 0
    assert "LagSeconds" in batch
    assert "DurationMs" in batch


def test_a_reparse_that_quarantines_nothing_removes_the_old_quarantine_file(s3: Any, clients: Clients) -> None:
    # The first parse runs with a 30-day window: the January event is quarantined. A wider window (a
    # configuration or schema change) cures it; the reparse (a redrive) then has nothing to quarantine,
    # and the old file must not stay behind to be counted or replayed again.
    lines = [device_line("e1", battery_pct=80), device_line("old", battery_pct=70, event_time="2026-01-02T00:00:00Z")]
    etag = put_raw(s3, RAW_KEY, lines)
    message = sqs_event(notification(RAW_KEY, etag))
    assert build_handler({**PARSER_ENV, "EVENT_TIME_PAST_DAYS": "30"}, clients)(message, None) == {
        "batchItemFailures": []}
    [quarantined] = keys(s3, QUARANTINE_BUCKET)
    records = gzip.decompress(s3.get_object(Bucket=QUARANTINE_BUCKET, Key=quarantined)["Body"].read()).splitlines()
    assert [json.loads(r)["reason"] for r in records] == ["event_time_out_of_range"]

    assert build_handler(PARSER_ENV, clients)(message, None) == {"batchItemFailures": []}
    assert keys(s3, QUARANTINE_BUCKET) == []
    verified = keys(s3, VERIFIED_BUCKET)
    rows = sum(pq.read_table(_parquet(s3, key)).num_rows for key in verified)
    assert rows == 2
    item = clients.client("dynamodb").get_item(TableName=REGISTRY_TABLE, Key={
        name: {"S": value} for name, value in rk.raw_key(RAW_BUCKET, RAW_KEY).items()})["Item"]
    assert "quarantine_key" not in item
    assert item["quarantined"] == {"N": "0"}


def _parquet(s3: Any, key: str) -> Any:
    from shared.arrow import parquet_input  # noqa: PLC0415

    return parquet_input(s3.get_object(Bucket=VERIFIED_BUCKET, Key=key)["Body"].read())
