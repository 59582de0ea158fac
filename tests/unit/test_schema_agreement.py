"""Every view of the schema agrees with the one definition, field by field and type by type."""

from __future__ import annotations

import pyarrow as pa
import pytest

from shared import models, schema
from shared.arrow import arrow_schema
from shared.schema import TABLES, DeviceType, Kind, TableSpec

# The expected mapping is written out independently of the code under test, so a drift in any one
# view (Arrow, Glue, pydantic, JSON Schema) fails here.
EXPECTED = {
    Kind.STRING: (pa.string(), "string", "string"),
    Kind.INT: (pa.int64(), "bigint", "integer"),
    Kind.INT32: (pa.int32(), "int", "integer"),
    Kind.FLOAT: (pa.float64(), "double", "number"),
    Kind.BOOL: (pa.bool_(), "boolean", "boolean"),
    Kind.TIMESTAMP_MS: (pa.timestamp("ms", tz="UTC"), "timestamp", None),
    Kind.TIMESTAMP_US: (pa.timestamp("us", tz="UTC"), "timestamp", None),
    Kind.STRING_MAP: (pa.map_(pa.string(), pa.string()), "map<string,string>", "object"),
}


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_arrow_schema_matches_definition(table: TableSpec) -> None:
    arrow = arrow_schema(table)
    assert arrow.names == table.column_names
    for spec in table.fields:
        field = arrow.field(spec.name)
        assert field.type == EXPECTED[spec.kind][0], spec.name
        assert field.nullable == (not spec.required), spec.name


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_glue_columns_match_arrow(table: TableSpec) -> None:
    columns = schema.glue_columns(table)
    arrow = arrow_schema(table)
    assert [c["Name"] for c in columns] == arrow.names
    for column in columns:
        spec = table.field(column["Name"])
        assert column["Type"] == EXPECTED[spec.kind][1], column["Name"]
    assert [k["Name"] for k in schema.glue_partition_keys()] == ["day", "hour"]
    assert not set(arrow.names) & {"day", "hour"}, "partition keys must not also be columns"


def _json_types(prop: dict[str, object]) -> set[str]:
    if "type" in prop:
        return {str(prop["type"])}
    found: set[str] = set()
    for option in prop.get("anyOf", []):  # type: ignore[attr-defined]
        if option.get("type") != "null":
            found.add(option.get("type"))
    return found


@pytest.mark.parametrize("device_type", list(DeviceType))
def test_pydantic_and_json_schema_match_device_table(device_type: DeviceType) -> None:
    table = schema.DEVICE_TABLES[device_type]
    model = models.DEVICE_MODELS[device_type]
    derived = {"extra", "source_key", "source_line"}
    input_columns = [name for name in table.column_names if name not in derived]
    assert sorted(model.model_fields) == sorted(input_columns)

    definitions = models.json_schema()["$defs"]
    properties = definitions[model.__name__]["properties"]
    assert sorted(properties) == sorted(input_columns)
    for name in input_columns:
        spec = table.field(name)
        json_type = EXPECTED[spec.kind][2]
        if json_type is not None and spec.choices is None:
            assert json_type in _json_types(properties[name]), name
        required = set(definitions[model.__name__].get("required", []))
        assert (name in required) == spec.required, name
        if spec.minimum is not None:
            bound = properties[name].get("minimum")
            if bound is None:
                bound = next(o["minimum"] for o in properties[name]["anyOf"] if "minimum" in o)
            assert bound == spec.minimum, name


def test_otlp_row_model_matches_table() -> None:
    assert list(models.OtlpLogRow.model_fields) == [
        n for n in schema.OTLP_TABLE.column_names if n not in {"source_key", "source_line"}
    ]


def test_timestamps_use_the_contract_units() -> None:
    for table in schema.DEVICE_TABLES.values():
        for field in arrow_schema(table):
            if pa.types.is_timestamp(field.type):
                assert field.type.unit == "ms"
    for field in arrow_schema(schema.OTLP_TABLE):
        if pa.types.is_timestamp(field.type):
            assert field.type.unit == "us"


def test_every_device_field_is_typed_for_one_table_only_where_declared() -> None:
    # A field typed for another device type is unknown for this one: it must go to `extra`.
    assert "wifi_rssi_dbm" not in schema.known_field_names(DeviceType.LOCK)
    assert "wifi_rssi_dbm" in schema.known_field_names(DeviceType.BRIDGE)
    assert "bolt_state" not in schema.known_field_names(DeviceType.VIDEO_DOORBELL)


def test_a_replaced_copy_leaves_the_original_tables_lookups_alone() -> None:
    import dataclasses  # noqa: PLC0415

    otlp = next(t for t in TABLES if t.name == "telemetry_otlp_logs_flat")
    before = otlp.field("severity_number")
    promoted = dataclasses.replace(before, kind=Kind.INT)
    copy = dataclasses.replace(otlp, fields=tuple(promoted if f is before else f for f in otlp.fields))
    assert copy.field("severity_number").kind is Kind.INT
    assert otlp.field("severity_number") is before
