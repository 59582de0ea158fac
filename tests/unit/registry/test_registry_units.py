"""Pure logic of the registry and reconciler, with fake AWS clients (no network)."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.logic import raw_hour_prefix, verified_hour_prefix, window_hours
from registry.dal import TABLE_CACHE_SECONDS, GlueCatalog, RegistryTable, table_input
from registry.logic import Registrar
from shared import registry_keys as rk
from shared.config import ConfigError, ReconcilerConfig, load
from shared.layout import Partition
from shared.schema import DEVICE_TABLES, DeviceType


class FakeGlue:
    def __init__(self, partition_keys: list[str] | None = None, errors: dict[str, str] | None = None) -> None:
        self.table_desc = table_input(DEVICE_TABLES[DeviceType.LOCK], "verified")
        if partition_keys is not None:
            self.table_desc["PartitionKeys"] = [{"Name": name, "Type": "string"} for name in partition_keys]
        self.errors = errors or {}
        self.create_calls: list[int] = []
        self.get_table_calls = 0

    def get_table(self, DatabaseName: str, Name: str) -> dict[str, Any]:
        self.get_table_calls += 1
        return {"Table": self.table_desc}

    def batch_create_partition(self, PartitionInputList: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        self.create_calls.append(len(PartitionInputList))
        errors = [
            {"PartitionValues": entry["Values"], "ErrorDetail": {"ErrorCode": self.errors[entry["Values"][1]]}}
            for entry in PartitionInputList
            if entry["Values"][1] in self.errors
        ]
        return {"Errors": errors}


class FakeDynamo:
    def __init__(self, present: frozenset[str] = frozenset(), unprocessed_rounds: int = 0) -> None:
        self.present = set(present)
        self.unprocessed_rounds = unprocessed_rounds
        self.batch_get_calls = 0
        self.written: list[str] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.batch_get_calls += 1
        [(table, request)] = RequestItems.items()
        if self.unprocessed_rounds:
            self.unprocessed_rounds -= 1
            return {"Responses": {table: []}, "UnprocessedKeys": {table: request}}
        found = [key for key in request["Keys"] if key[rk.PK]["S"] in self.present]
        return {"Responses": {table: found}}

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        for entries in RequestItems.values():
            self.written += [entry["PutRequest"]["Item"][rk.PK]["S"] for entry in entries]
        return {}


def hours(count: int) -> list[Partition]:
    return [Partition("2026-11-25", f"{hour:02d}") for hour in range(count)]


def test_batch_create_partition_is_chunked_by_100_and_already_exists_is_success() -> None:
    glue = FakeGlue(errors={"03": "AlreadyExistsException", "05": "InternalServiceException"})
    catalog = GlueCatalog(glue, "db")
    partitions = [Partition(f"2026-11-{day:02d}", f"{hour:02d}") for day in range(1, 12) for hour in range(24)][:250]

    errors = catalog.create_partitions("telemetry_lock_flat", partitions)

    assert glue.create_calls == [100, 100, 50]
    assert glue.get_table_calls == 1
    assert {error.code for error in errors} == {"InternalServiceException"}
    assert all(error.partition.hour == "05" for error in errors)


def test_partition_input_copies_the_table_descriptor_with_the_partition_location() -> None:
    catalog = GlueCatalog(FakeGlue(), "db")

    entry = catalog.partition_input("telemetry_lock_flat", Partition("2026-11-25", "07"))

    assert entry["Values"] == ["2026-11-25", "07"]
    assert entry["StorageDescriptor"]["Location"] == "s3://verified/telemetry_flat/type=lock/day=2026-11-25/hour=07/"
    table_descriptor = catalog.table("telemetry_lock_flat")["StorageDescriptor"]
    assert table_descriptor["Location"] == "s3://verified/telemetry_flat/type=lock/"  # the cached copy is intact
    assert entry["StorageDescriptor"]["SerdeInfo"] == table_descriptor["SerdeInfo"]


def test_a_new_column_reaches_new_partitions_once_the_cached_descriptor_expires() -> None:
    """After `signals schema apply` adds a column, a warm registry copies it into new partitions
    within TABLE_CACHE_SECONDS (old partitions are apply's to update)."""
    glue, now = FakeGlue(), [0.0]
    catalog = GlueCatalog(glue, "db", clock=lambda: now[0])
    partition = Partition("2026-11-25", "07")
    names = lambda: [c["Name"] for c in catalog.partition_input("telemetry_lock_flat", partition)  # noqa: E731
                     ["StorageDescriptor"]["Columns"]]
    assert "auto_lock_delay_s" not in names()
    glue.table_desc = copy.deepcopy(glue.table_desc)
    glue.table_desc["StorageDescriptor"]["Columns"].append({"Name": "auto_lock_delay_s", "Type": "bigint"})
    now[0] = TABLE_CACHE_SECONDS - 1
    assert "auto_lock_delay_s" not in names()
    assert glue.get_table_calls == 1
    now[0] = TABLE_CACHE_SECONDS + 1
    assert names()[-1] == "auto_lock_delay_s"
    assert glue.get_table_calls == 2


def test_a_table_with_other_partition_keys_gets_no_partitions() -> None:
    glue = FakeGlue(partition_keys=["day"])

    with pytest.raises(ValueError, match="partition keys"):
        GlueCatalog(glue, "db").create_partitions("telemetry_lock_flat", [Partition("2026-11-25", "07")])
    assert glue.create_calls == []


def test_known_partitions_cost_no_glue_call_and_no_second_lookup() -> None:
    on_record = rk.partition_key("telemetry_lock_flat", "2026-11-25", "01")[rk.PK]
    dynamodb = FakeDynamo(present={on_record})
    glue = FakeGlue()
    registrar = Registrar(RegistryTable(dynamodb, "registry"), GlueCatalog(glue, "db"), objects=None)  # type: ignore[arg-type]
    wanted = {("telemetry_lock_flat", partition) for partition in hours(3)}

    counts: Counter[str] = Counter()
    outcomes = registrar.ensure_partitions(wanted, counts)

    assert {outcome.status for outcome in outcomes.values()} == {rk.STATUS_REGISTERED}
    assert glue.create_calls == [2]  # hours 00 and 02; 01 was on record
    assert len(dynamodb.written) == 2
    assert counts["partitions_registered"] == 2

    registrar.ensure_partitions(wanted)
    assert glue.create_calls == [2]
    assert dynamodb.batch_get_calls == 1  # all three are cached now


def test_batch_get_retries_unprocessed_keys() -> None:
    dynamodb = FakeDynamo(present={"FILE#a"}, unprocessed_rounds=2)

    found = RegistryTable(dynamodb, "registry").batch_get([rk.file_key("a"), rk.file_key("b")])

    assert set(found) == {"FILE#a"}
    assert dynamodb.batch_get_calls == 3


def test_window_covers_lookback_hours_oldest_first_across_midnight() -> None:
    window = window_hours(datetime(2026, 11, 26, 2, 40, tzinfo=UTC), 6)

    assert [partition.path for partition in window] == [
        "day=2026-11-25/hour=20", "day=2026-11-25/hour=21", "day=2026-11-25/hour=22", "day=2026-11-25/hour=23",
        "day=2026-11-26/hour=00", "day=2026-11-26/hour=01", "day=2026-11-26/hour=02",
    ]


def test_hour_prefixes_match_firehose_and_verified_layouts() -> None:
    hour = Partition("2026-11-25", "09")

    assert raw_hour_prefix("json_telemetry", hour) == "raw/json_telemetry/2026/11/25/09/"
    assert verified_hour_prefix("otlp_logs", hour) == "telemetry_flat/type=otlp_logs/day=2026-11-25/hour=09/"


def test_reconciler_configuration_names_the_missing_variable() -> None:
    with pytest.raises(ConfigError, match="REDRIVE_QUEUE_URL"):
        load(ReconcilerConfig, {"REGISTRY_TABLE": "tbl", "GLUE_DATABASE": "db", "VERIFIED_BUCKET": "ver",
                                "RAW_BUCKET": "raw"})


def test_handlers_import_and_build_without_environment_or_aws() -> None:
    import reconciler.app  # noqa: PLC0415
    import registry.app  # noqa: PLC0415

    assert callable(registry.app.build_handler({}))
    assert callable(reconciler.app.build_handler({}))
    with pytest.raises(ConfigError, match="REGISTRY_TABLE"):
        reconciler.app.build_handler({})({}, None)
