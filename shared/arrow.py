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
