"""The local stack end to end: HTTP in, rows out of `signals query`, bad records in quarantine."""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from shared.schema import DEVICE_TABLES, DeviceType
from signals.env import Environment, Output
from signals.local.simulate import DeviceFleet, Tally
from signals.local.stack import LocalStack
from signals.query import QueryFailed
from tests.e2e.local.conftest import API_KEY, post, sql, wait_for


def quarantined(stack: LocalStack, device_prefix: str) -> Counter[str]:
    s3 = stack.client("s3")
    bucket = stack.outputs[Output.QUARANTINE_BUCKET]
    reasons: Counter[str] = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="quarantine/"):
        for item in page.get("Contents", []):
            for line in gzip.decompress(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()).splitlines():
                record = json.loads(line)
                if f'"{device_prefix}' in record["original"]:
                    reasons[record["reason"]] += 1
    return reasons


def test_device_events_land_per_type_and_bad_ones_in_quarantine(stack: LocalStack, env: Environment) -> None:
    tally = Tally()
    fleet = DeviceFleet(stack.api_url, API_KEY, devices=6, tally=tally, seed=3, period=0.3,
                        bad_share=0.25, id_prefix="fleet-")
    fleet.run(seconds=2.0, workers=3)
    assert tally.accepted > 0
    assert not tally.http_errors
    assert stack.wait_until_drained(60)

    for device_type in DeviceType:
        table = DEVICE_TABLES[device_type].name
        counted = sql(env, f"SELECT count(*) FROM {table} WHERE device_id LIKE 'fleet-%'").rows[0][0]
        assert counted == tally.expected_rows[device_type.value], table
    accepted_bad = sum(tally.expected_quarantine.values())
    assert sum(tally.expected_rows.values()) == tally.accepted - accepted_bad
    assert quarantined(stack, "fleet-") == tally.expected_quarantine
    assert set(tally.expected_quarantine) >= {"invalid_value", "missing_field"}
    assert set(tally.rejected) <= {"unknown_device_type", "not_an_object"}


def test_rows_keep_their_values(stack: LocalStack, env: Environment) -> None:
    event = {
        "event_id": "values-1", "device_id": "values-lock", "device_type": "lock", "event_name": "bolt_changed",
        "event_time": int(time.time() * 1000) - 1000, "battery_pct": 87.0, "bolt_state": "locked",
        "attributes": {"home": "h1", "zigbee": True}, "surprise": {"nested": 1},
    }
    status, reply = post(stack, "/v1/telemetry", json.dumps([event]).encode(),
                         {"x-api-key": API_KEY, "content-type": "application/json"})
    assert (status, reply["accepted"]) == (200, 1)
    assert stack.wait_until_drained(60)
    # Athena's SQL (the epoch milliseconds as the compactor computes them), not a DuckDB function.
    row = sql(env, "SELECT battery_pct, bolt_state, attributes['zigbee'], extra, "
                   "date_diff('millisecond', TIMESTAMP '1970-01-01 00:00:00', event_time) "
                   "FROM telemetry_lock_flat WHERE event_id = 'values-1'").rows
    assert row == [(87, "locked", "true", '{"surprise":{"nested":1}}', event["event_time"])]


def test_api_key_is_enforced_like_api_gateway(stack: LocalStack) -> None:
    body = b"[]"
    assert post(stack, "/v1/telemetry", body, {"content-type": "application/json"}) == (403, {"message": "Forbidden"})
    assert post(stack, "/v1/telemetry", body, {"x-api-key": "wrong"})[0] == 403
    assert post(stack, "/v1/nothing", body, {"x-api-key": API_KEY}) == (
        403, {"message": "Missing Authentication Token"})


def test_firehose_record_failures_are_retried_without_duplicates(stack: LocalStack, env: Environment) -> None:
    now = int(time.time() * 1000)
    events = [{"event_id": f"retry-{i}", "device_id": "retry-bridge", "device_type": "bridge",
               "event_name": "heartbeat", "event_time": now, "cpu_pct": 3.5} for i in range(20)]
    failed_before = stack.firehose.stats["telemetry-signals-lake-firehose"].records_failed
    stack.firehose.fail_next_records(1)  # the ingester's first PutRecordBatch reports FailedPutCount 1
    status, reply = post(stack, "/v1/telemetry", json.dumps(events).encode(),
                         {"x-api-key": API_KEY, "content-type": "application/json"})
    assert (status, reply["accepted"]) == (200, 20)
    assert stack.firehose.stats["telemetry-signals-lake-firehose"].records_failed == failed_before + 1
    assert stack.wait_until_drained(60)
    rows = sql(env, "SELECT count(*), count(DISTINCT event_id) FROM telemetry_bridge_flat "
                    "WHERE device_id = 'retry-bridge'").rows
    assert rows == [(20, 20)]


def test_firehose_stand_in_enforces_the_service_limits(stack: LocalStack) -> None:
    firehose = boto3.client("firehose", endpoint_url=stack.aws_endpoint_url, region_name="us-west-2",
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    stream = "telemetry-signals-lake-firehose"
    with pytest.raises(ClientError, match="less than or equal to 500"):
        firehose.put_record_batch(DeliveryStreamName=stream, Records=[{"Data": b"{}\n"}] * 501)
    with pytest.raises(ClientError, match="1024000"):
        firehose.put_record_batch(DeliveryStreamName=stream, Records=[{"Data": b"x" * (1000 * 1024 + 1)}])
    with pytest.raises(ClientError, match="4 MiB") as too_big:
        firehose.put_record_batch(DeliveryStreamName=stream, Records=[{"Data": b"x" * 1_000_000}] * 5)
    assert too_big.value.response["Error"]["Code"] == "InvalidArgumentException"
    with pytest.raises(ClientError) as missing:
        firehose.put_record(DeliveryStreamName="no-such-stream", Record={"Data": b"{}\n"})
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_raw_objects_are_gzip_under_the_expanded_prefix(stack: LocalStack) -> None:
    stats = stack.firehose.stats["telemetry-signals-lake-firehose"]
    assert wait_for(lambda: stats.objects_out > 0)
    key = stats.keys[-1]
    assert key.startswith("raw/json_telemetry/20")
    assert key.endswith(".gz")
    assert key.rsplit("/", 1)[-1].startswith("telemetry-signals-lake-firehose-1-20")
    body = stack.client("s3").get_object(Bucket=stack.outputs[Output.RAW_BUCKET], Key=key)["Body"].read()
    assert all(json.loads(line)["received_at"].endswith("Z") for line in gzip.decompress(body).splitlines())


def test_keep_copies_the_lake_and_function_logs_go_to_log_files(stack: LocalStack, tmp_path: Path) -> None:
    status, _ = post(stack, "/v1/telemetry", json.dumps([{
        "event_id": "keep-1", "device_id": "keep-lock", "device_type": "lock", "event_name": "bolt_changed",
        "event_time": int(time.time() * 1000)}]).encode(), {"x-api-key": API_KEY, "content-type": "application/json"})
    assert status == 200
    assert stack.wait_until_drained(60)
    copied = stack.keep(tmp_path)
    verified = list(tmp_path.glob("telemetry_flat/type=lock/day=*/hour=*/*.parquet"))
    assert verified
    assert copied >= len(verified)
    # Powertools' JSON logs land in the function's log file (EMF metrics too: see test_demo, as pytest
    # swaps sys.stdout under a running test).
    ingester_log = (stack.log_dir / "telemetry-signals-ingester.log").read_text()
    assert '"service":"ingester"' in ingester_log.replace(" ", "")


def test_query_errors_name_the_problem(stack: LocalStack, env: Environment) -> None:
    with pytest.raises(QueryFailed, match="no_such_table"):
        sql(env, "SELECT * FROM no_such_table")
    empty = sql(env, "SELECT count(*) AS n, min(day) AS first_day FROM telemetry_lock_flat WHERE device_id = 'nobody'")
    assert (empty.columns, empty.rows) == (["n", "first_day"], [(0, None)])
