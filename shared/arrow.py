"""Arrow schemas derived from `shared.schema`, and Parquet bytes handed to Arrow safely (the only
shared module that imports pyarrow)."""

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


def parquet_input(body: bytes) -> pa.BufferReader:
    """A Parquet object's bytes (an S3 body) copied into Arrow's own memory, to give to
    `pq.read_table`, `pq.ParquetFile` or `pq.read_metadata` instead of `io.BytesIO(body)`.

    A threaded read of a Python-backed source (`io.BytesIO`, or a buffer over Python `bytes`) can
    leave work on Arrow's thread pools that still holds the Python object after the read returns.
    If that work lets go of it while the interpreter shuts down, the Arrow thread needs the GIL,
    CPython unwinds it (pthread_exit) through a C++ frame that may not throw, and the process aborts
    with "terminate called without an active exception" (SIGABRT) after its work is done and its
    output printed: a command that succeeded exits -6 (apache/arrow#33975, #50482). Measured on
    pyarrow 26.0.1 and 25.0.1: a script that reads a small file three times from `io.BytesIO` and
    exits aborted in 177 of 300 runs; from this copy, in 0 of 200 (tests/unit/test_parquet_input.py
    pins it). The copy costs one memcpy of the object, about 10 ms per 64 MiB here.
    """
    sink = pa.BufferOutputStream()
    sink.write(body)
    return pa.BufferReader(sink.getvalue())


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
