"""The reconciler's four repairs, its time bound and its resumable state, against moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError

from reconciler.app import build_handler as build_reconciler
from reconciler.logic import GLUE, UNREGISTERED
from registry.app import build_handler as build_registry
from shared import registry_keys as rk
from shared.layout import Partition
from shared.s3events import parse_s3_notification
from tests.integration.registry.support import (
    GLUE_DATABASE,
    RAW_BUCKET,
    REGISTRY_ENV,
    REGISTRY_TABLE,
    VERIFIED_BUCKET,
    counted_clients,
    file_item,
    glue_partitions,
    load_event,
    notification,
    put_verified,
    sqs_event,
)

NOW_HOUR = Partition.from_datetime(datetime.now(UTC))


class FakeContext:
    """A Lambda context whose remaining time is plenty for `checks` calls, then nearly gone."""

    def __init__(self, checks: int = 10_000) -> None:
        self.checks = checks

    def get_remaining_time_in_millis(self) -> int:
        self.checks -= 1
        return 600_000 if self.checks >= 0 else 1_000


def reconciler_env(redrive_url: str, **overrides: str) -> dict[str, str]:
    return {
        **REGISTRY_ENV,
        "VERIFIED_BUCKET": VERIFIED_BUCKET,
        "RAW_BUCKET": RAW_BUCKET,
        "REDRIVE_QUEUE_URL": redrive_url,
        "REGISTRY_GRACE_MINUTES": "0",
        "RAW_GRACE_MINUTES": "0",
        **overrides,
    }


def state_item(dynamodb: Any) -> dict[str, Any]:
    item = dynamodb.get_item(TableName=REGISTRY_TABLE, Key={rk.PK: {"S": "RECONCILER"}, rk.SK: {"S": "STATE"}})
    return dict(item["Item"])


def test_failed_partition_is_repaired_by_the_next_run(s3: Any, dynamodb: Any, glue: Any, redrive_url: str) -> None:
    key = put_verified(s3, "lock", NOW_HOUR, "a" * 32)
    failing, _ = counted_clients()

    def entry_error(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        values = orjson.loads(params["body"])["PartitionInputList"][0]["Values"]
        detail = {"ErrorCode": "InternalServiceException", "ErrorMessage": "try later"}
        return AWSResponse("https://glue", 200, {}, None), {
            "Errors": [{"PartitionValues": values, "ErrorDetail": detail}]
        }

    failing.session.events.register("before-call.glue.BatchCreatePartition", entry_error)
    build_registry(REGISTRY_ENV, failing)(sqs_event([notification(s3, key)]), None)
    assert file_item(dynamodb, key)["status"] == rk.STATUS_PARTITION_FAILED  # type: ignore[index]

    summary = build_reconciler(reconciler_env(redrive_url))(load_event("reconciler_scheduled.json"), FakeContext())

    item = file_item(dynamodb, key)
    assert item is not None
    assert item["status"] == rk.STATUS_REGISTERED
    assert item["attempts"] == "2"
    assert "last_error" not in item
    assert [p["Values"] for p in glue_partitions(glue, "telemetry_lock_flat")] == [NOW_HOUR.values]
    assert summary["complete"] is True
    assert summary["counts"]["retried_registered"] == 1


def test_verified_files_without_an_item_are_registered_after_the_grace_period(
    s3: Any, dynamodb: Any, glue: Any, redrive_url: str
) -> None:
    key = put_verified(s3, "bridge", NOW_HOUR, "b" * 32, rows=4)  # its notification was lost

    build_reconciler(reconciler_env(redrive_url, REGISTRY_GRACE_MINUTES="20"))({}, FakeContext())
    assert file_item(dynamodb, key) is None  # too new: the registry may still be on it

    summary = build_reconciler(reconciler_env(redrive_url))({}, FakeContext())

    item = file_item(dynamodb, key)
    assert item is not None
    assert (item["status"], item["rows"]) == (rk.STATUS_REGISTERED, "4")
    assert summary["counts"]["lost_files_found"] == 1
    assert len(glue_partitions(glue, "telemetry_bridge_flat")) == 1


def test_a_late_file_outside_the_window_is_registered_through_the_raw_object_it_came_from(
    s3: Any, dynamodb: Any, glue: Any, redrive_url: str
) -> None:
    # Found by `signals chaos`: a device back after days offline sends events the parser puts in a
    # partition weeks old; if that file's notification is lost, the look-back window (partitions of the
    # last hours) never lists it, and the compactor (which plans from the registry) never sees it.
    old_hour = Partition.from_datetime(datetime.now(UTC) - timedelta(days=20))
    late_key = put_verified(s3, "lock", old_hour, "e" * 32, rows=2)  # its notification was lost
    raw_key = f"raw/json_telemetry/{NOW_HOUR.day.replace('-', '/')}/{NOW_HOUR.hour}/telemetry-1-late.gz"
    s3.put_object(Bucket=RAW_BUCKET, Key=raw_key, Body=b"{}")
    record = {**rk.raw_key(RAW_BUCKET, raw_key), "item_type": "raw", "raw_key": raw_key,
              "processed_at": "2000-01-01T00:00:00.000Z", "outputs": [late_key]}
    dynamodb.put_item(TableName=REGISTRY_TABLE, Item={
        k: ({"L": [{"S": x} for x in v]} if isinstance(v, list) else {"S": v}) for k, v in record.items()})

    summary = build_reconciler(reconciler_env(redrive_url))({}, FakeContext())

    item = file_item(dynamodb, late_key)
    assert item is not None, summary
    assert (item["status"], item["rows"], item["day"]) == (rk.STATUS_REGISTERED, "2", old_hour.day)
    assert summary["counts"]["late_files_found"] == 1
    assert [p["Values"] for p in glue_partitions(glue, "telemetry_lock_flat")] == [old_hour.values]
    again = build_reconciler(reconciler_env(redrive_url))({}, FakeContext())
    assert "late_files_found" not in again["counts"]


def test_partitions_missing_from_glue_are_recreated_and_a_dropped_table_too(
    s3: Any, glue: Any, redrive_url: str
) -> None:
    lock_key = put_verified(s3, "lock", NOW_HOUR, "c" * 32)
    bridge_key = put_verified(s3, "bridge", NOW_HOUR, "d" * 32)
    build_registry(REGISTRY_ENV)(sqs_event([notification(s3, lock_key), notification(s3, bridge_key)]), None)
    reconciler = build_reconciler(reconciler_env(redrive_url))
    assert reconciler({}, FakeContext())["counts"].get("partitions_recreated", 0) == 0  # warm, nothing to do
    glue.delete_partition(DatabaseName=GLUE_DATABASE, TableName="telemetry_lock_flat", PartitionValues=NOW_HOUR.values)
    glue.delete_table(DatabaseName=GLUE_DATABASE, Name="telemetry_bridge_flat")

    summary = reconciler({}, FakeContext())

    assert summary["counts"]["tables_recreated"] == 1
    assert summary["counts"]["partitions_recreated"] == 2
    for table, type_value in (("telemetry_lock_flat", "lock"), ("telemetry_bridge_flat", "bridge")):
        [partition] = glue_partitions(glue, table)
        assert partition["Values"] == NOW_HOUR.values
        assert partition["StorageDescriptor"]["Location"] == (
            f"s3://{VERIFIED_BUCKET}/telemetry_flat/type={type_value}/{NOW_HOUR.path}/"
        )
    columns = glue.get_table(DatabaseName=GLUE_DATABASE, Name="telemetry_bridge_flat")["Table"]["StorageDescriptor"]
    assert "wifi_rssi_dbm" in {column["Name"] for column in columns["Columns"]}


def test_raw_objects_without_a_processing_record_are_redriven(
    s3: Any, dynamodb: Any, sqs: Any, redrive_url: str
) -> None:
    prefix = f"raw/json_telemetry/{NOW_HOUR.day.replace('-', '/')}/{NOW_HOUR.hour}/"
    done_key = f"{prefix}telemetry-1-2026-11-25-10-00-00-done.gz"
    lost_key = f"{prefix}telemetry-1-2026-11-25-10-05-00-lost.gz"
    for key in (done_key, lost_key):
        s3.put_object(Bucket=RAW_BUCKET, Key=key, Body=b"{}\n")
    dynamodb.put_item(
        TableName=REGISTRY_TABLE,
        Item={rk.PK: {"S": f"RAW#{RAW_BUCKET}/{done_key}"}, rk.SK: {"S": "RAW"}, "item_type": {"S": "raw"}},
    )

    build_reconciler(reconciler_env(redrive_url, RAW_GRACE_MINUTES="30"))({}, FakeContext())
    assert "Messages" not in sqs.receive_message(QueueUrl=redrive_url, WaitTimeSeconds=0)  # inside the grace

    summary = build_reconciler(reconciler_env(redrive_url))({}, FakeContext())

    assert summary["counts"]["raw_redriven"] == 1
    [message] = sqs.receive_message(QueueUrl=redrive_url, MaxNumberOfMessages=10)["Messages"]
    [ref] = parse_s3_notification(message["Body"])
    assert (ref.bucket, ref.key) == (RAW_BUCKET, lost_key)
    assert ref.etag == s3.head_object(Bucket=RAW_BUCKET, Key=lost_key)["ETag"].strip('"')


def test_low_remaining_time_stops_the_run_and_the_next_run_resumes(
    s3: Any, dynamodb: Any, redrive_url: str
) -> None:
    key = put_verified(s3, "video_doorbell", NOW_HOUR, "e" * 32)  # in the window's last hour prefix
    handler = build_reconciler(reconciler_env(redrive_url))

    # 1 check at the start, 1 per status page of repair 1, then 5 hour prefixes of repair 2.
    first = handler({}, FakeContext(checks=8))

    assert first["complete"] is False
    assert first["stopped_in"] == UNREGISTERED
    state = state_item(dynamodb)
    assert state["cursor_phase"] == {"S": UNREGISTERED}
    assert state["cursor_index"] == {"N": "5"}
    assert state["last_summary"]["M"]["complete"] == {"N": "0"}
    assert file_item(dynamodb, key) is None

    second = build_reconciler(reconciler_env(redrive_url))({}, FakeContext())

    assert second["complete"] is True
    assert second["resumed_from"] == UNREGISTERED
    assert second["counts"]["verified_prefixes_listed"] == 28 - 5
    assert file_item(dynamodb, key) is not None
    state = state_item(dynamodb)
    assert "cursor_phase" not in state
    assert state["last_summary"]["M"]["complete"] == {"N": "1"}
    assert state["last_run_at"]["S"].endswith("Z")


def test_a_run_never_scans_and_reports_metrics(
    s3: Any, redrive_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    put_verified(s3, "lock", NOW_HOUR, "f" * 32)
    clients, counter = counted_clients()

    summary = build_reconciler(reconciler_env(redrive_url), clients)({}, FakeContext())

    assert summary["counts"]["lost_files_found"] == 1
    assert "dynamodb.Scan" not in counter.calls
    assert set(counter.service("dynamodb")) <= {
        "dynamodb.GetItem", "dynamodb.Query", "dynamodb.BatchGetItem", "dynamodb.PutItem",
        "dynamodb.BatchWriteItem", "dynamodb.UpdateItem",
    }
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(blob.get("lost_files_found") == [1.0] or blob.get("lost_files_found") == 1.0 for blob in emf)


def test_partition_check_stops_between_tables(s3: Any, dynamodb: Any, redrive_url: str) -> None:
    # 1 + 2 (repair 1) + 28 (repair 2) + 14 (repair 2b, late files) checks, then the first table of repair 3.
    summary = build_reconciler(reconciler_env(redrive_url))({}, FakeContext(checks=46))

    assert summary["stopped_in"] == GLUE
    assert state_item(dynamodb)["cursor_index"] == {"N": "1"}


def test_glue_still_down_keeps_the_file_pending_and_counts_the_attempt(
    s3: Any, dynamodb: Any, redrive_url: str
) -> None:
    key = put_verified(s3, "lock", NOW_HOUR, "9" * 32)
    clients, _ = counted_clients()

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://glue.us-west-2.amazonaws.com")

    clients.session.events.register("before-call.glue.BatchCreatePartition", unreachable)
    build_registry(REGISTRY_ENV, clients)(sqs_event([notification(s3, key)]), None)

    summary = build_reconciler(reconciler_env(redrive_url), clients)({}, FakeContext())

    item = file_item(dynamodb, key)
    assert item is not None
    assert (item["status"], item["attempts"]) == (rk.STATUS_PARTITION_PENDING, "2")
    assert "glue unavailable" in item["last_error"]
    assert summary["counts"]["retried_partition_pending"] == 1
