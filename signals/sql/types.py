"""Types across the engine: Glue (Hive DDL) columns as Arrow, DuckDB results as Athena names and text.

Athena's `GetQueryResults` carries every value as text (`VarCharValue`, absent for NULL) next to a
typed `ResultSetMetadata.ColumnInfo`; the result CSV holds the same text, every field in double
quotes and NULL as an empty unquoted field. The text forms follow Athena (engine version 3):
`true`/`false`, Java's `Double.toString` for double and real (`1.0E7`), timestamps as
`2026-11-25 19:00:00.123` (a zone-aware one ends in ` UTC`), arrays `[1, 2]`, maps and rows `{k=v}`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

# --- Hive DDL type strings (Glue `Columns`) as Arrow ---------------------------------------------

_SIMPLE_HIVE = {
    "string": "string", "varchar": "string", "char": "string",
    "bigint": "int64", "int": "int32", "integer": "int32", "smallint": "int16", "tinyint": "int8",
    "double": "float64", "float": "float32", "real": "float32",
    "boolean": "bool", "date": "date32", "binary": "binary", "timestamp": "timestamp",
}


class HiveTypeError(ValueError):
    pass


def hive_to_arrow(type_text: str) -> Any:
    """`map<string,string>`, `array<struct<field:string,error:string>>`, `decimal(10,2)` ... as pyarrow."""
    parsed, rest = _parse_hive(type_text.strip().lower())
    if rest.strip():
        raise HiveTypeError(f"unexpected {rest!r} in type {type_text!r}")
    return parsed


def _parse_hive(text: str) -> tuple[Any, str]:
    import pyarrow as pa  # noqa: PLC0415 (heavy: the engine only)

    match = re.match(r"\s*([a-z_]+)", text)
    if not match:
        raise HiveTypeError(f"not a type: {text!r}")
    name, rest = match[1], text[match.end():]
    if name in ("array", "map", "struct"):
        rest = _expect(rest, "<")
        if name == "array":
            element, rest = _parse_hive(rest)
            return pa.list_(element), _expect(rest, ">")
        if name == "map":
            key, rest = _parse_hive(rest)
            rest = _expect(rest, ",")
            value, rest = _parse_hive(rest)
            return pa.map_(key, value), _expect(rest, ">")
        fields = []
        while True:
            field_match = re.match(r"\s*`?([^:`]+)`?\s*:", rest)
            if not field_match:
                raise HiveTypeError(f"bad struct field in {text!r}")
            field_type, rest = _parse_hive(rest[field_match.end():])
            fields.append(pa.field(field_match[1].strip(), field_type))
            if rest.lstrip().startswith(","):
                rest = rest.lstrip()[1:]
                continue
            return pa.struct(fields), _expect(rest, ">")
    arguments = re.match(r"\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)", rest)
    if arguments:
        rest = rest[arguments.end():]
    if name == "decimal":
        precision = int(arguments[1]) if arguments else 10
        scale = int(arguments[2]) if arguments and arguments[2] else 0
        return pa.decimal128(precision, scale), rest
    simple = _SIMPLE_HIVE.get(name)
    if simple is None:
        raise HiveTypeError(f"unsupported column type {name!r}")
    if simple == "timestamp":
        return pa.timestamp("us"), rest  # Hive timestamps have no zone; every value here is UTC
    return pa.type_for_alias(simple), rest


def _expect(text: str, token: str) -> str:
    stripped = text.lstrip()
    if not stripped.startswith(token):
        raise HiveTypeError(f"expected {token!r} at {text!r}")
    return stripped[len(token):]


# --- DuckDB result types as Athena's -------------------------------------------------------------

_ATHENA_BY_DUCKDB = {
    "varchar": "varchar", "bigint": "bigint", "hugeint": "bigint", "ubigint": "bigint", "uhugeint": "bigint",
    "integer": "integer", "uinteger": "bigint", "smallint": "smallint", "usmallint": "integer",
    "tinyint": "tinyint", "utinyint": "smallint", "double": "double", "float": "real", "boolean": "boolean",
    "date": "date", "timestamp": "timestamp", "timestamp_ms": "timestamp", "timestamp_s": "timestamp",
    "timestamp_ns": "timestamp", "timestamp with time zone": "timestamp with time zone", "time": "time",
    "blob": "varbinary", "decimal": "decimal", "list": "array", "array": "array", "map": "map",
    "struct": "row", "uuid": "uuid", "interval": "interval day to second", "json": "json", "null": "unknown",
    '"null"': "unknown",
}

# What Athena reports as a column's Precision and Scale, by type.
_PRECISION = {
    "varchar": 2147483647, "bigint": 19, "integer": 10, "smallint": 5, "tinyint": 3, "double": 17,
    "real": 7, "timestamp": 3, "timestamp with time zone": 3, "time": 3, "varbinary": 1073741824,
}


@dataclass(frozen=True)
class AthenaType:
    name: str  # Athena's type name: varchar, bigint, timestamp, decimal, array, map, row, ...
    precision: int = 0
    scale: int = 0


def athena_type(duckdb_type: Any) -> AthenaType:
    """The Athena type of a DuckDB result column (a `DuckDBPyType`)."""
    type_id = str(getattr(duckdb_type, "id", duckdb_type)).lower()
    if str(duckdb_type).upper() == "JSON":  # DuckDB's JSON is an alias of varchar: its id says varchar
        type_id = "json"
    name = _ATHENA_BY_DUCKDB.get(type_id)
    if name is None:
        name = "varchar"
    if name == "decimal":
        match = re.search(r"\((\d+),\s*(\d+)\)", str(duckdb_type))
        if match:
            return AthenaType("decimal", int(match[1]), int(match[2]))
    return AthenaType(name, _PRECISION.get(name, 0), 0)


# --- values as Athena writes them ----------------------------------------------------------------


def java_double(value: float) -> str:
    """Java's `Double.toString`, as Athena prints a double: `0.5`, `2.0`, `1.0E7`, `1.0E-4`, `NaN`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        text = repr(value)  # Python's shortest round-trip digits; never exponent form in this range
        return text if "." in text else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(str(d) for d in digits)
    scientific = len(text) + exponent - 1
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{scientific}"


def athena_text(value: Any, type_name: str = "varchar") -> str | None:
    """A result value as Athena's text (None for NULL)."""
    if value is None:
        return None
    return _text(value, type_name, top=True)


def _text(value: Any, type_name: str, *, top: bool = False) -> str:
    if value is None:
        return "null" if not top else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        text += f".{value.microsecond // 1000:03d}" if value.microsecond % 1000 == 0 else f".{value.microsecond:06d}"
        return text + (f" {_zone_text(value)}" if value.tzinfo is not None else "")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, bytes | bytearray | memoryview):
        return " ".join(f"{byte:02x}" for byte in bytes(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_text(k, '')}={_text(v, '')}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_text(item, "") for item in value) + "]"
    return str(value)


def _zone_text(value: datetime) -> str:
    """A `timestamp with time zone`'s zone as Trino prints it: `UTC`, the zone id (`America/New_York`:
    what `AT TIME ZONE` and `with_timezone` keep), or a fixed offset (`+05:30`)."""
    key = getattr(value.tzinfo, "key", None) or getattr(value.tzinfo, "zone", None)
    if key:
        return "UTC" if key in ("UTC", "Etc/UTC", "Etc/GMT", "GMT", "Z") else str(key)
    offset = value.utcoffset()
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    return f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def csv_field(text: str | None) -> str:
    """One field of Athena's result CSV: quoted, quotes doubled; NULL is an empty unquoted field."""
    if text is None:
        return ""
    return '"' + text.replace('"', '""') + '"'


def csv_line(texts: list[str | None]) -> str:
    return ",".join(csv_field(text) for text in texts) + "\n"
