"""Arrow schemas derived from `shared.schema` (the only shared module that imports pyarrow)."""

from __future__ import annotations

from functools import cache

import pyarrow as pa

from shared.schema import TABLES_BY_TYPE, FieldSpec, Kind, TableSpec

_ARROW_TYPES = {
    Kind.STRING: pa.string(),
    Kind.INT: pa.int64(),
    Kind.INT32: pa.int32(),
    Kind.FLOAT: pa.float64(),
    Kind.BOOL: pa.bool_(),
    Kind.TIMESTAMP_MS: pa.timestamp("ms", tz="UTC"),
    Kind.TIMESTAMP_US: pa.timestamp("us", tz="UTC"),
    Kind.STRING_MAP: pa.map_(pa.string(), pa.string()),
}


def arrow_type(kind: Kind) -> pa.DataType:
    return _ARROW_TYPES[kind]


def arrow_field(spec: FieldSpec) -> pa.Field:
    return pa.field(
        spec.name, arrow_type(spec.kind), nullable=not spec.required,
        metadata={"description": spec.description},
    )


@cache
def arrow_schema(table: TableSpec) -> pa.Schema:
    """The explicit, stable schema a table's Parquet files are written with (partition keys excluded)."""
    return pa.schema([arrow_field(spec) for spec in table.fields], metadata={"table": table.name})


def arrow_schema_for_type(type_value: str) -> pa.Schema:
    return arrow_schema(TABLES_BY_TYPE[type_value])


def hive_timestamp_millis(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A timestamp column as Athena engine version 3 reads a Hive (Glue) `timestamp` column: at
    millisecond precision, rounded half up, in the column's own unit.

    Athena reads Hive TIMESTAMP at millisecond resolution
    (https://docs.aws.amazon.com/athena/latest/ug/data-types.html); its engine is Trino, whose Hive
    connector reads `timestamp` columns at `hive.timestamp-precision` (default MILLISECONDS) and
    rounds values with more precision. The verified tables are Hive tables, so a microsecond value
    reaches a MERGE into an Iceberg table already rounded to the millisecond (docs/data-contract.md,
    "Timestamps"). Whole milliseconds are unchanged; nulls stay null.
    """
    import pyarrow.compute as pc  # noqa: PLC0415

    per_ms = {"s": 0, "ms": 1, "us": 1_000, "ns": 1_000_000}[column.type.unit]
    if per_ms <= 1:
        return column
    if isinstance(column, pa.ChunkedArray):
        return pa.chunked_array([hive_timestamp_millis(chunk) for chunk in column.chunks], type=column.type)
    shifted = pc.add(column.cast(pa.int64()), per_ms // 2)
    quotient = pc.divide(shifted, per_ms)  # int64 division truncates toward zero: exact, never float
    remainder = pc.subtract(shifted, pc.multiply(quotient, per_ms))
    floored = pc.if_else(pc.less(remainder, 0), pc.subtract(quotient, 1), quotient)  # half up, before 1970 too
    return pc.multiply(floored, per_ms).cast(column.type)
