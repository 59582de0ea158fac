"""The registry handler against moto: items, Glue partitions, call counts, failures."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError

from registry.app import build_handler
from shared import registry_keys as rk
from shared.layout import Partition
from tests.integration.registry.support import (
    GLUE_DATABASE,
    REGISTRY_ENV,
    VERIFIED_BUCKET,
    counted_clients,
    file_item,
    glue_partitions,
    load_event,
    notification,
    put_verified,
    sqs_event,
)

HOUR_10 = Partition("2026-11-25", "10")
HOUR_11 = Partition("2026-11-25", "11")
EVENT_KEY = "telemetry_flat/type=lock/day=2026-11-25/hour=10/0f1e2d3c4b5a69788796a5b4c3d2e1f0.parquet"


def batches(bodies: list[str], size: int = 10) -> list[dict[str, Any]]:
    return [sqs_event(bodies[start:start + size]) for start in range(0, len(bodies), size)]


def test_event_file_registers_the_object_and_acks_test_event_and_foreign_keys(
    s3: Any, dynamodb: Any, glue: Any
) -> None:
    put_verified(s3, "lock", HOUR_10, "0f1e2d3c4b5a69788796a5b4c3d2e1f0", rows=7)
    handler = build_handler(REGISTRY_ENV)

    response = handler(load_event("registry_sqs_batch.json"), None)

    assert response == {"batchItemFailures": []}
    item = file_item(dynamodb, EVENT_KEY)
    assert item is not None
    assert item["status"] == rk.STATUS_REGISTERED
    assert (item["type"], item["table"], item["day"], item["hour"], item["rows"]) == (
        "lock", "telemetry_lock_flat", "2026-11-25", "10", "7"
    )
    assert item["etag"] == s3.head_object(Bucket=VERIFIED_BUCKET, Key=EVENT_KEY)["ETag"].strip('"')
    assert item["source_key"].startswith("raw/json_telemetry/2026/11/25/10/")
    assert item["attempts"] == "1"
    [partition] = glue_partitions(glue, "telemetry_lock_flat")
    assert partition["Values"] == ["2026-11-25", "10"]
    table = glue.get_table(DatabaseName=GLUE_DATABASE, Name="telemetry_lock_flat")["Table"]
    descriptor = partition["StorageDescriptor"]
    assert descriptor["Location"] == f"s3://{VERIFIED_BUCKET}/telemetry_flat/type=lock/day=2026-11-25/hour=10/"
    assert descriptor["Columns"] == table["StorageDescriptor"]["Columns"]
    assert descriptor["SerdeInfo"] == table["StorageDescriptor"]["SerdeInfo"]


def test_fifty_files_in_two_partitions_cost_two_glue_calls_and_redelivery_is_a_no_op(
    s3: Any, dynamodb: Any, glue: Any
) -> None:
    keys = [put_verified(s3, "lock", HOUR_10 if n % 2 else HOUR_11, f"{n:032x}") for n in range(50)]
    bodies = [notification(s3, key) for key in keys]
    clients, counter = counted_clients()
    handler = build_handler(REGISTRY_ENV, clients)

    for event in batches(bodies):
        assert handler(event, None) == {"batchItemFailures": []}

    assert counter.service("glue") == {"glue.GetTable": 1, "glue.BatchCreatePartition": 1}
    assert counter.total("glue") == 2
    assert {p["Values"][1] for p in glue_partitions(glue, "telemetry_lock_flat")} == {"10", "11"}
    before = {key: file_item(dynamodb, key) for key in keys}
    assert all(item is not None and item["status"] == rk.STATUS_REGISTERED for item in before.values())

    counter.reset()
    for event in batches(bodies):  # SQS redelivers everything
        assert handler(event, None) == {"batchItemFailures": []}
    assert counter.total("glue") == 0
    assert {key: file_item(dynamodb, key) for key in keys} == before

    counter.reset()
    cold = build_handler(REGISTRY_ENV, clients)  # a new execution environment: partitions are on record
    cold(sqs_event(bodies[:10]), None)
    assert counter.total("glue") == 0
    assert counter.calls["dynamodb.BatchGetItem"] == 1


def test_partitions_of_two_tables_make_one_create_call_per_table(s3: Any, glue: Any) -> None:
    keys = [put_verified(s3, "lock", HOUR_10, f"a{n:031x}") for n in range(5)]
    keys += [put_verified(s3, "bridge", HOUR_10, f"b{n:031x}") for n in range(5)]
    clients, counter = counted_clients()

    build_handler(REGISTRY_ENV, clients)(sqs_event([notification(s3, key) for key in keys]), None)

    assert counter.calls["glue.BatchCreatePartition"] == 2
    assert len(glue_partitions(glue, "telemetry_bridge_flat")) == 1


def test_newer_etag_for_the_same_key_updates_the_item(s3: Any, dynamodb: Any) -> None:
    key = put_verified(s3, "bridge", HOUR_10, "c" * 32, rows=3)
    handler = build_handler(REGISTRY_ENV)
    handler(sqs_event([notification(s3, key)]), None)
    first = file_item(dynamodb, key)

    put_verified(s3, "bridge", HOUR_10, "c" * 32, rows=9)  # reprocessed: same key, new content
    handler(sqs_event([notification(s3, key)]), None)

    second = file_item(dynamodb, key)
    assert first is not None
    assert second is not None
    assert second["rows"] == "9"
    assert second["etag"] != first["etag"]
    assert second["etag"] == s3.head_object(Bucket=VERIFIED_BUCKET, Key=key)["ETag"].strip('"')


def test_missing_metadata_falls_back_to_the_parquet_footer(s3: Any, dynamodb: Any) -> None:
    key = put_verified(s3, "video_doorbell", HOUR_10, "d" * 32, rows=11, metadata=False)

    build_handler(REGISTRY_ENV)(sqs_event([notification(s3, key)]), None)

    item = file_item(dynamodb, key)
    assert item is not None
    assert item["rows"] == "11"
    assert item["source_key"].startswith("raw/json_telemetry/")
    assert item["status"] == rk.STATUS_REGISTERED


def test_poison_message_fails_alone(s3: Any, dynamodb: Any) -> None:
    key = put_verified(s3, "lock", HOUR_10, "e" * 32)
    event = sqs_event(["this is not json", notification(s3, key)])

    response = build_handler(REGISTRY_ENV)(event, None)

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert file_item(dynamodb, key) is not None


def test_per_entry_glue_error_marks_partition_failed_with_the_error(s3: Any, dynamodb: Any, glue: Any) -> None:
    key = put_verified(s3, "lock", HOUR_10, "f" * 32)
    clients, _ = counted_clients()

    def entry_error(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        values = orjson.loads(params["body"])["PartitionInputList"][0]["Values"]  # Glue speaks JSON
        detail = {"ErrorCode": "InternalServiceException", "ErrorMessage": "partition store hiccup"}
        parsed = {"Errors": [{"PartitionValues": values, "ErrorDetail": detail}]}
        return AWSResponse("https://glue", 200, {}, None), parsed  # answered without reaching Glue

    clients.session.events.register("before-call.glue.BatchCreatePartition", entry_error)

    response = build_handler(REGISTRY_ENV, clients)(sqs_event([notification(s3, key)]), None)

    assert response == {"batchItemFailures": []}  # the file is on record; the reconciler repairs it
    item = file_item(dynamodb, key)
    assert item is not None
    assert item["status"] == rk.STATUS_PARTITION_FAILED
    assert "InternalServiceException" in item["last_error"]
    assert glue_partitions(glue, "telemetry_lock_flat") == []


def test_glue_unreachable_leaves_the_file_pending(s3: Any, dynamodb: Any) -> None:
    key = put_verified(s3, "lock", HOUR_10, "1" * 32)
    clients, _ = counted_clients()

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://glue.us-west-2.amazonaws.com")

    clients.session.events.register("before-call.glue.BatchCreatePartition", unreachable)

    response = build_handler(REGISTRY_ENV, clients)(sqs_event([notification(s3, key)]), None)

    assert response == {"batchItemFailures": []}
    item = file_item(dynamodb, key)
    assert item is not None
    assert item["status"] == rk.STATUS_PARTITION_PENDING
    assert "glue unavailable" in item["last_error"]


def test_table_with_wrong_partition_keys_gets_no_partition(s3: Any, dynamodb: Any, glue: Any) -> None:
    table = glue.get_table(DatabaseName=GLUE_DATABASE, Name="telemetry_lock_flat")["Table"]
    glue.update_table(
        DatabaseName=GLUE_DATABASE,
        TableInput={
            "Name": "telemetry_lock_flat",
            "StorageDescriptor": table["StorageDescriptor"],
            "PartitionKeys": [{"Name": "day", "Type": "string"}],
        },
    )
    key = put_verified(s3, "lock", HOUR_10, "2" * 32)

    build_handler(REGISTRY_ENV)(sqs_event([notification(s3, key)]), None)

    item = file_item(dynamodb, key)
    assert item is not None
    assert item["status"] == rk.STATUS_PARTITION_FAILED
    assert "partition keys" in item["last_error"]
    assert glue_partitions(glue, "telemetry_lock_flat") == []


def test_missing_configuration_names_the_variable() -> None:
    from shared.config import ConfigError  # noqa: PLC0415

    handler = build_handler({"REGISTRY_TABLE": "registry"})
    with pytest.raises(ConfigError, match="GLUE_DATABASE"):
        handler(sqs_event([]), None)


def test_redelivery_after_glue_recovered_upgrades_a_pending_item(s3: Any, dynamodb: Any, glue: Any) -> None:
    key = put_verified(s3, "lock", HOUR_11, "3" * 32)
    body = notification(s3, key)
    down, _ = counted_clients()

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://glue.us-west-2.amazonaws.com")

    down.session.events.register("before-call.glue.BatchCreatePartition", unreachable)
    build_handler(REGISTRY_ENV, down)(sqs_event([body]), None)
    assert file_item(dynamodb, key)["status"] == rk.STATUS_PARTITION_PENDING  # type: ignore[index]

    build_handler(REGISTRY_ENV)(sqs_event([body]), None)  # the same notification again, Glue back

    item = file_item(dynamodb, key)
    assert item is not None
    assert item["status"] == rk.STATUS_REGISTERED
    assert "last_error" not in item
    assert [p["Values"] for p in glue_partitions(glue, "telemetry_lock_flat")] == [HOUR_11.values]


def test_notification_for_a_deleted_object_is_acked_without_an_item(s3: Any, dynamodb: Any) -> None:
    key = put_verified(s3, "lock", HOUR_10, "4" * 32)
    body = notification(s3, key)
    s3.delete_object(Bucket=VERIFIED_BUCKET, Key=key)

    response = build_handler(REGISTRY_ENV)(sqs_event([body]), None)

    assert response == {"batchItemFailures": []}
    assert file_item(dynamodb, key) is None
