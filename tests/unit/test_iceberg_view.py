"""The Iceberg view of the compacted and audit tables agrees with shared.schema and keeps its ids."""

from __future__ import annotations

import pytest

from shared.iceberg import field_ids, iceberg_fields, pyiceberg_partition_spec, pyiceberg_schema
from shared.schema import AUDIT_TABLES, COMPACTED_BY_TYPE, COMPACTED_TABLES, TABLES_BY_TYPE

# Written independently of shared.iceberg's mapping.
EXPECTED_TYPES = {
    "event_id": "string", "event_time": "timestamp", "received_at": "timestamp", "schema_version": "long",
    # Iceberg spec, appendix C (JSON serialization): a map is an object with its key and value ids.
    "attributes": '{"type":"map","key-id":21,"key":"string","value-id":22,"value":"string","value-required":false}',
    "battery_pct": "long", "temperature_c": "double",
    "source_line": "long", "day": "string", "hour": "string",
}


def test_compacted_tables_are_the_verified_columns_plus_day_and_hour() -> None:
    for type_value, compacted in COMPACTED_BY_TYPE.items():
        assert compacted.column_names == [*TABLES_BY_TYPE[type_value].column_names, "day", "hour"]
    assert [t.name for t in COMPACTED_TABLES] == [
        "int_lock_compacted_daily", "int_bridge_compacted_daily", "int_video_doorbell_compacted_daily",
        "int_otlp_logs_compacted_daily",
    ]


def test_content_columns_leave_out_arrival_and_lineage() -> None:
    otlp = COMPACTED_BY_TYPE["otlp_logs"]
    assert otlp.key_columns == ()
    assert {"received_at", "source_key", "source_line", "day", "hour"}.isdisjoint(otlp.content_columns)
    assert "body" in otlp.content_columns
    # An event id is unique per device only: two devices numbering their events alike are two events.
    assert COMPACTED_BY_TYPE["lock"].key_columns == ("device_id", "event_id")


def test_lock_fields_have_athena_iceberg_types() -> None:
    fields = {f["Name"]: f for f in iceberg_fields(COMPACTED_BY_TYPE["lock"])}
    for name, expected in EXPECTED_TYPES.items():
        assert fields[name]["Type"] == expected, name
    assert fields["event_id"]["Required"] is True
    assert fields["battery_pct"]["Required"] is False


@pytest.mark.parametrize("table", [*COMPACTED_TABLES, *AUDIT_TABLES], ids=lambda t: t.name)
def test_pyiceberg_schema_matches_the_declared_fields(table: object) -> None:
    schema = pyiceberg_schema(table)  # type: ignore[arg-type]
    declared = iceberg_fields(table)  # type: ignore[arg-type]
    assert [f.name for f in schema.fields] == [f["Name"] for f in declared]
    assert [f.field_id for f in schema.fields] == [f["Id"] for f in declared]
    assert len({*field_ids(table).values()}) == len(declared)  # type: ignore[arg-type]
    spec = pyiceberg_partition_spec(table)  # type: ignore[arg-type]
    assert [schema.find_field(f.source_id).name for f in spec.fields] == ["day"]
